"""Training throughput and peak memory of deepgen's Trainer against a plain PyTorch loop.

For the MLP VAE (784-400-20), the conv VAE and the DCGAN, a plain hand-written loop and
deepgen's Trainer train the same network (same initial weights, optimiser, batch size and
preprocessing) on MNIST held in memory as uint8. The plain loop is what a user writes by
hand: a permutation per epoch, index, preprocess, forward, loss, backward, step (for the
GAN: Goodfellow et al.'s Algorithm 1 with k = 1, as in the PyTorch DCGAN example). The
Trainer is also measured with ``--compile`` (torch.compile of each network) and
``--channels-last``.

Every measurement runs in a fresh process: 10 warm-up steps (compilation happens there),
then the timed run. Peak memory is the process's peak resident set during training above
its resident set before it (the dataset and libraries excluded). The figures printed are
medians over repeats, which are interleaved so drift in machine load hits every variant;
the ratio is against the plain loop of the same model.

    python benchmarks/throughput.py [--models mlp-vae,conv-vae,dcgan] [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import resource
import statistics
import time

import torch

# model -> (family, model config, images per timed run, batch size)
MODELS = {
    "mlp-vae": ("vae", {"net": "mlp"}, 100_000, 128),
    "conv-vae": ("vae", {"net": "conv"}, 20_000, 128),
    "dcgan": ("gan", {}, 4_000, 64),
}
VARIANTS = ("plain", "deepgen", "deepgen+compile", "deepgen+channels-last")
WARMUP_STEPS = 10


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def _index_batches(n: int, n_images: int, batch_size: int, gen):
    """Index tensors of ``n_images // batch_size`` batches, a fresh permutation per epoch."""
    steps, done = n_images // batch_size, 0
    while done < steps:
        perm = torch.randperm(n, generator=gen)
        for b in range(min(n // batch_size, steps - done)):
            yield perm[b * batch_size : (b + 1) * batch_size]
            done += 1


def _plain_vae(model, images, n_images, batch_size, gen) -> None:
    from deepgen import losses

    opt = torch.optim.Adam(model.parameters(), lr=model.config.lr)
    for idx in _index_batches(len(images), n_images, batch_size, gen):
        x = torch.bernoulli(images[idx].float() / 255, generator=gen)
        mu, logvar = model.encoder(x).chunk(2, dim=1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
        recon = (
            torch.nn.functional.binary_cross_entropy_with_logits(
                model.decoder(z), x, reduction="none"
            )
            .flatten(1)
            .sum(1)
        )
        loss = (recon + losses.kl_normal_std_normal(mu, logvar)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def _plain_gan(model, images, n_images, batch_size, gen) -> None:
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    c = model.config
    g, d = model.generator, model.discriminator
    opt_g = torch.optim.Adam(g.parameters(), lr=c.lr, betas=(c.beta1, c.beta2))
    opt_d = torch.optim.Adam(d.parameters(), lr=c.lr, betas=(c.beta1, c.beta2))
    for idx in _index_batches(len(images), n_images, batch_size, gen):
        x = images[idx].float() / 127.5 - 1
        with torch.no_grad():
            fake = g(torch.randn(batch_size, c.latent_dim, generator=gen))
        real_logits, fake_logits = d(x), d(fake)
        loss_d = bce(real_logits, torch.ones_like(real_logits)) + bce(
            fake_logits, torch.zeros_like(fake_logits)
        )
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        fake_logits = d(g(torch.randn(batch_size, c.latent_dim, generator=gen)))
        loss_g = bce(fake_logits, torch.ones_like(fake_logits))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()


def measure(name: str, variant: str, seed: int) -> tuple[float, float]:
    """(images/s, peak MB above the starting resident set) of one timed run."""
    import deepgen
    from deepgen.models import build_model

    family, config, n_images, batch_size = MODELS[name]
    data = deepgen.load_dataset("mnist")
    model = build_model(family, config, data.data_shape, seed=seed)
    start_rss = _rss_mb()
    if variant == "plain":
        loop = _plain_vae if family == "vae" else _plain_gan
        gen = torch.Generator().manual_seed(seed)
        loop(model, data["train"].x, WARMUP_STEPS * batch_size, batch_size, gen)
        start = time.perf_counter()
        loop(model, data["train"].x, n_images, batch_size, gen)
        seconds = time.perf_counter() - start
    else:
        options = {
            "compile": variant.endswith("compile"),
            "channels_last": variant.endswith("channels-last"),
        }

        def fit(images: int) -> float:
            cfg = deepgen.TrainConfig(
                images=images, batch_size=batch_size, seed=seed, log_every=100, **options
            )
            trainer = deepgen.Trainer(
                model, data, cfg, progress=False, log=lambda m: None, evaluate=False
            )
            t0 = time.perf_counter()
            trainer.fit()
            return time.perf_counter() - t0

        fit(WARMUP_STEPS * batch_size)
        seconds = fit(n_images)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return n_images // batch_size * batch_size / seconds, max(0.0, peak - start_rss)


def _in_fresh_process(name: str, variant: str, seed: int) -> tuple[float, float]:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, (name, variant, seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    models, variants = args.models.split(","), args.variants.split(",")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
        f"median of {args.repeats} interleaved repeats, each in a fresh process"
    )
    print(
        f"{'model':10s} {'variant':22s} {'images/s':>9s} {'vs plain':>9s} {'peak MB':>8s}  (batch, images timed)"
    )
    for name in models:
        speed: dict[str, list[float]] = {v: [] for v in variants}
        memory: dict[str, list[float]] = {v: [] for v in variants}
        for r in range(args.repeats):
            for v in variants:
                s, m = _in_fresh_process(name, v, r)
                speed[v].append(s)
                memory[v].append(m)
        plain = statistics.median(speed["plain"]) if "plain" in speed else float("nan")
        _, _, n_images, batch_size = MODELS[name]
        for v in variants:
            s = statistics.median(speed[v])
            print(
                f"{name:10s} {v:22s} {s:9.0f} {s / plain:9.2f} {statistics.median(memory[v]):8.0f}"
                f"  ({batch_size}, {n_images})",
                flush=True,
            )


if __name__ == "__main__":
    main()
