"""The latent tools that read data: latent arithmetic (Radford et al. 2015, sec. 6.3), image
completion by optimising z (Yeh et al. 2017), and the nearest training images of samples
(the memorisation check of Theis et al. 2016, sec. 3.3). Registered in :mod:`deepgen.latent`.
"""

from __future__ import annotations

import torch

from .data.batches import unit
from .data.datasets import Dataset
from .errors import ConfigError
from .models.capabilities import (
    Completer,
    Conditional,
    Encoder,
    LatentSpace,
    Sampler,
    require,
    supports,
)
from .viz import Captions

MASKS = ("center", "left", "right", "top", "bottom", "random")


def latent_images(model, tool: str, capability=LatentSpace):
    """``model`` if it has ``capability`` and makes images (latent pictures show images).

    Raises: MissingCapability; ConfigError for a model of points or sequences."""
    require(model, capability, f"deepgen {tool}")
    if not model.is_image:
        raise ConfigError(
            f"deepgen {tool} draws images; this {model.family} models data of shape "
            f"{model.data_shape}"
        )
    return model


def _unconditional(model, what: str) -> None:
    if supports(model, Conditional):
        raise ConfigError(
            f"{what} needs an unconditional model, whose codes alone decide the image; "
            f"a {model.family}'s decoder also takes a condition"
        )


# --- arithmetic -----------------------------------------------------------------------


def concept_codes(
    model, dataset: Dataset, label: int, count: int = 3, seed: int = 0, pool: int = 2000
) -> torch.Tensor:
    """``count`` latent codes (count, latent_dim) of exemplars of class ``label``.

    A model with an :class:`Encoder`: the codes (posterior means) of the first ``count``
    training images of that class. Otherwise: of ``pool`` prior draws, the ``count`` that the
    shipped classifier of the dataset is surest show that class (Radford et al. picked
    theirs by eye). Raises ConfigError for an unlabelled dataset or a label it lacks,
    CheckpointError when the dataset has no shipped classifier.
    """
    train = dataset["train"]
    if train.labels is None:
        raise ConfigError(f"latent arithmetic needs class labels; {dataset.name} has none")
    if supports(model, Encoder):
        idx = (train.labels == label).nonzero().flatten()[:count]
        if len(idx) < count:
            raise ConfigError(
                f"{dataset.name} has fewer than {count} training images of class {label}"
            )
        x = model.preprocess(
            train.x[idx].to(model.device), torch.Generator(device=model.device).manual_seed(seed)
        )
        return model.encode(x)
    from .metrics.classifier import load_classifier

    classifier, _ = load_classifier(dataset.name)
    if not 0 <= label < classifier.head[-1].out_features:
        raise ConfigError(
            f"class {label} is not one of the classifier's {classifier.head[-1].out_features}"
        )
    z = model.latent_prior(pool, torch.Generator(device=model.device).manual_seed(seed))
    probs = torch.softmax(classifier(model.generate(z).cpu()), dim=1)[:, label]
    return z[probs.topk(count).indices.to(z.device)]


@torch.no_grad()
def arithmetic(
    model,
    dataset: Dataset,
    concepts: tuple[int, int, int] = (7, 1, 4),
    seed: int = 0,
    noise: float = 0.25,
):
    """DCGAN-style vector arithmetic: mean z of 3 exemplars of each concept (a class), then
    z_a - z_b + z_c. Rows: the exemplars of a, b, c and their mean; the result and three
    copies with N(0, noise^2) added (Radford et al. added uniform noise of +-0.25).

    Returns (images (16, C, H, W), 4).
    """
    latent_images(model, "latent arithmetic")
    _unconditional(model, "latent arithmetic")
    if len(concepts) != 3:
        raise ConfigError(f"latent arithmetic takes three concepts a - b + c, not {len(concepts)}")
    rows, means = [], []
    for i, label in enumerate(concepts):
        codes = concept_codes(model, dataset, int(label), seed=seed + i)
        means.append(codes.mean(0))
        rows.append(torch.cat([codes, means[-1][None]]))
    result = means[0] - means[1] + means[2]
    gen = torch.Generator(device=result.device).manual_seed(seed)
    jitter = noise * torch.randn(3, result.numel(), generator=gen, device=result.device)
    rows.append(torch.cat([result[None], result[None] + jitter]))
    return model.generate(torch.cat(rows)), 4


def arithmetic_captions(model, options: dict, rows: int) -> Captions:
    a, b, c = options["concepts"]
    return Captions(
        "latent arithmetic (Radford et al. 2015): rows 1-3 decode three exemplars of a class "
        f"and the mean of their codes; row 4 decodes {a} - {b} + {c} of the means, then three "
        f"times with N(0, {options['noise']:g}^2) noise added",
        rows=[f"class {a}", f"class {b}", f"class {c}", f"{a} - {b} + {c}, + noise"],
        columns=["exemplar", "exemplar", "exemplar", "mean"],
    )


# --- completion -----------------------------------------------------------------------


def region_mask(kind: str, shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    """(C, H, W) float mask, 1 on the known pixels: ``center`` hides the central square of
    half the side (Yeh et al.'s central mask), left/right/top/bottom hide that half,
    ``random`` hides each pixel with probability 0.5 (one draw shared by all channels)."""
    c, h, w = shape
    halves = {
        "left": (slice(None), slice(0, w // 2)),
        "right": (slice(None), slice(w // 2, None)),
        "top": (slice(0, h // 2), slice(None)),
        "bottom": (slice(h // 2, None), slice(None)),
        "center": (slice(h // 4, h // 4 + h // 2), slice(w // 4, w // 4 + w // 2)),
    }
    known = torch.ones(h, w)
    if kind in halves:
        known[halves[kind]] = 0
    elif kind == "random":
        known = (torch.rand(h, w, generator=torch.Generator().manual_seed(seed)) >= 0.5).float()
    else:
        raise ConfigError(f"mask must be one of {', '.join(MASKS)}, not {kind!r}")
    return known.expand(c, h, w).clone()


def complete_by_optimisation(
    model,
    x: torch.Tensor,
    known: torch.Tensor,
    steps: int = 300,
    lr: float = 0.05,
    weight: float = 0.003,
    seed: int = 0,
) -> torch.Tensor:
    """Yeh et al. 2017: z* = argmin ||M * (G(z) - x)||_1 + weight * prior(z) (eq. 4-5, their
    lambda 0.003), by Adam from a prior draw, then the known pixels of x pasted over G(z*)
    (they blend with Poisson editing; the overlay is the simpler version). The prior term
    is the model's ``prior_energy`` (a GAN: log(1 - D(G(z))); a Gaussian prior: -log p(z)).

    x: (B, C, H, W) in [0, 1]; known: (C, H, W) or (B, C, H, W) mask, 1 = known.
    Returns (B, C, H, W) completions in [0, 1]. The model's weights are left unchanged.
    """
    was = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        z = model.latent_prior(
            len(x), torch.Generator(device=model.device).manual_seed(seed)
        ).clone()
        z.requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            images = model.generate(z)
            loss = ((images - x).abs() * known).flatten(1).sum(1) + weight * model.prior_energy(
                z, images
            )
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
        with torch.no_grad():
            return known * x + (1 - known) * model.generate(z)
    finally:
        for p, r in zip(model.parameters(), was):
            p.requires_grad_(r)


def complete(
    model, dataset: Dataset, n: int = 8, mask: str = "center", steps: int = 300, seed: int = 0
):
    """Complete ``n`` test images with a ``mask`` region hidden. Rows: originals, what is
    given (hidden pixels grey), completions by optimising z. A :class:`Completer` (the
    quadrant CVAE) completes its own region, amortised: rows originals, given, its
    reference completions (the baseline), then 3 samples.

    Returns (images (rows * n, C, H, W), n).
    """
    amortised = supports(model, Completer)
    latent_images(model, "latent complete", Completer if amortised else LatentSpace)
    x = unit(dataset["test"].x[:n]).to(model.device)
    if amortised:
        with torch.no_grad():
            known = model.known_mask().float()
            shown = known * x + (1 - known) * 0.5
            references = list(model.reference_completions(x).values())
            samples = model.complete(x, 3, torch.Generator(device=model.device).manual_seed(seed))
        return torch.cat([x, shown, *references, *samples]), n
    _unconditional(model, "completion by optimising z")
    known = region_mask(mask, tuple(x.shape[1:]), seed).to(model.device)
    filled = complete_by_optimisation(model, x, known, steps=steps, seed=seed)
    return torch.cat([x, known * x + (1 - known) * 0.5, filled]), n


def completion_captions(model, options: dict, rows: int) -> Captions:
    if supports(model, Completer):
        references = rows - 5  # original, given, the references, 3 samples
        return Captions(
            "completion of the hidden region by the model itself: the original, what is given "
            "(hidden pixels grey), the reference completions, then three samples",
            rows=["original", "given", *["reference"] * references, "sample", "sample", "sample"],
        )
    return Captions(
        f"completion of the {options['mask']} region by optimising z (Yeh et al. 2017), "
        f"{options['steps']} steps",
        rows=["original", "given", "completed"],
    )


# --- nearest neighbours ---------------------------------------------------------------


def nearest_neighbours(
    queries: torch.Tensor, pool: torch.Tensor, k: int = 5, chunk: int = 10_000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean k nearest rows of ``pool`` (N, D) to each of ``queries`` (n, D):
    (distances (n, k), indices (n, k)), nearest first. Chunked over the pool."""
    best_d = torch.full((len(queries), 0), float("inf"), dtype=torch.float64, device=queries.device)
    best_i = torch.zeros((len(queries), 0), dtype=torch.long, device=queries.device)
    for start in range(0, len(pool), chunk):
        d = torch.cdist(queries.double(), pool[start : start + chunk].double())
        d, i = d.topk(min(k, d.shape[1]), dim=1, largest=False)
        best_d, order = torch.cat([best_d, d], 1).sort(dim=1)
        best_i = torch.cat([best_i, i + start], 1).gather(1, order)
        best_d, best_i = best_d[:, :k], best_i[:, :k]
    return best_d, best_i


@torch.no_grad()
def neighbours(model, dataset: Dataset, n: int = 8, k: int = 5, seed: int = 0):
    """Each of ``n`` samples beside its ``k`` nearest training images (pixel distance).
    A model that memorised shows near copies. Returns (images (n * (k + 1), C, H, W), k + 1)."""
    latent_images(model, "latent neighbours", Sampler)
    samples = model.sample(
        n, generator=torch.Generator(device=model.device).manual_seed(seed)
    ).cpu()
    train = unit(dataset["train"].x)
    _, idx = nearest_neighbours(samples.flatten(1), train.flatten(1), k)
    rows = [torch.cat([s[None], train[i]]) for s, i in zip(samples, idx)]
    return torch.cat(rows), k + 1


def neighbour_captions(model, options: dict, rows: int) -> Captions:
    k = options["k"]
    return Captions(
        f"each sample beside its {k} nearest training images (pixel distance): near copies "
        "would mean memorisation",
        columns=["sample", *[f"#{i + 1}" for i in range(k)]],
    )


# --- analogies ------------------------------------------------------------------------


@torch.no_grad()
def analogies(model, dataset: Dataset, rows: int = 8, seed: int = 0):
    """Kingma et al. 2014, Figure 1 ("analogies"): the style z = mu(x, y) of each of the
    first ``rows`` test images, inferred with its true label, decoded as every class.
    Row i: the test image, then its style rendered as classes 0 .. K-1.

    Returns (images (rows * (K + 1), C, H, W) in [0, 1], K + 1).
    Raises: MissingCapability without an Encoder and Conditional decoding; ConfigError
    for an unlabelled dataset.
    """
    latent_images(model, "latent analogies", Conditional)
    require(model, Encoder, "deepgen latent analogies")
    test = dataset["test"]
    if test.labels is None:
        raise ConfigError(
            f"analogies infer each image's style given its label; {dataset.name} has none"
        )
    x, y = test.x[:rows].to(model.device), test.labels[:rows].to(model.device)
    z = model.encode(model.preprocess(x, torch.Generator(device=model.device).manual_seed(seed)), y)
    k = model.num_classes
    styles = model.generate(
        z.repeat_interleave(k, 0), torch.arange(k, device=z.device).repeat(len(z))
    )
    grid = torch.cat([unit(x).unsqueeze(1), styles.view(len(z), k, *styles.shape[1:])], 1)
    return grid.flatten(0, 1), k + 1


def analogy_captions(model, options: dict, rows: int) -> Captions:
    return Captions(
        "analogies (Kingma et al. 2014, Fig. 1): the style of each test image, inferred with "
        "its label, rendered as every class",
        columns=["test image", *[str(k) for k in range(model.num_classes)]],
    )
