"""`deepgen eval`: compute a run's metrics and write RUN/eval.json.

Each metric is registered by name and computed from a shared context that draws the
generated samples and the classifier features once. Every number carries an uncertainty
(standard error, or the spread the metric's paper reports), its protocol, sample counts,
the seed, and the sha256 of the feature classifier it was computed under.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from .. import distributed
from ..api import load_checkpointed, make_generator, run_data, sample, translate
from ..data.datasets import Dataset
from ..errors import ConfigError, DeepgenError, option
from ..fileio import atomic_write_text
from ..models.capabilities import (
    Capability,
    Classifier,
    Likelihood,
    Sampler,
    Strings,
    Translator,
    require,
    supports,
)
from ..models.contract import GenerativeModel
from ..registry import Registry
from ..rundir import RunDir
from ..seeds import batch_generator
from ..version import __version__
from .classifier import classifier_outputs, load_classifier
from .feature_space import (
    density_coverage,
    fid,
    inception_score,
    kid,
    kid_full,
    precision_recall,
)
from .likelihood import evaluate_nll
from .paper_protocols import counts_used, label
from .parzen import parzen_protocol


@dataclass(frozen=True)
class Metric:
    """A metric of ``deepgen eval``: how it is computed, the capability it needs, the kind
    of data it applies to (None: any), and whether a plain ``deepgen eval`` runs it."""

    compute: Callable[[Context], dict]
    needs: type[Capability]
    kind: str | None = "images"
    default: bool = True


METRICS: Registry[Metric] = Registry("metric")
# FID's bootstrap resamples: the std of B resamples is itself uncertain by about
# 1 / sqrt(2 (B - 1)), 7% at 100 (24% at the 10 used before 2026-11-30)
BOOTSTRAP = 100


def register_metric(
    name: str, needs: type[Capability] = Sampler, kind: str | None = "images", default: bool = True
):
    """Decorator: register ``fn(ctx: Context) -> dict`` as the metric ``name`` of ``deepgen eval``."""

    def wrap(fn):
        METRICS.register(name, Metric(fn, needs, kind, default))
        return fn

    return wrap


def default_metrics(model, kind: str) -> list[str]:
    """The metrics a plain ``deepgen eval`` computes for ``model`` on data of ``kind``: the
    default ones it has the capability for and that apply to its data."""
    return [
        name
        for name, m in METRICS.items()
        if m.default and supports(model, m.needs) and m.kind in (None, kind)
    ]


class Context:
    """What the metrics of one evaluation share: model, data, samples and features."""

    def __init__(
        self,
        model,
        streams: dict,
        n: int,
        k: int,
        seed: int,
        checkpoint=None,
        precision: str = "float32",
    ):
        self.model, self.streams, self.checkpoint = model, streams, checkpoint
        self.n, self.k, self.seed, self.precision = n, k, seed, precision
        self.data = self.streams[self.model.epoch_stream]
        self.test = self.data["test"].x[:n]

    @classmethod
    def of_run(
        cls,
        run: Path,
        n: int,
        k: int,
        seed: int,
        device: str = "auto",
        warn=None,
        precision: str = "float32",
    ):
        """The context of a run folder's model (newest good checkpoint) and data."""
        model, checkpoint = load_checkpointed(run, device=device, warn=warn)
        return cls(model, run_data(run), n, k, seed, checkpoint, precision)

    @cached_property
    def samples(self) -> torch.Tensor:
        """n generated images (n, C, H, W) in [0, 1], from ``seed`` (split over ranks)."""
        return sample(self.model, self.n, self.seed)

    @cached_property
    def classifier(self):
        return load_classifier(self.data.name)

    @cached_property
    def real_outputs(self):
        return classifier_outputs(self.classifier[0], self.test)

    @cached_property
    def fake_outputs(self):
        return classifier_outputs(self.classifier[0], self.samples)

    @cached_property
    def train_images(self) -> torch.Tensor:
        """min(n, size) real training images (uint8), drawn without replacement by the
        seed: the stand-in for a perfect model's samples in each metric's reference value."""
        train = self.data["train"].x
        order = torch.randperm(len(train), generator=make_generator(self.seed))
        return train[order[: min(self.n, len(train))]]

    @cached_property
    def train_outputs(self):
        return classifier_outputs(self.classifier[0], self.train_images)


TRAIN_VS_TEST = "real training images in place of samples"


def _reference(mean: float, stderr: float, of: str) -> dict:
    """A metric's value on real data (``of`` says which), beside the model's: what a perfect
    model would score under the same feature network, counts and seed."""
    return {"mean": mean, "stderr": stderr, "of": of}


def bootstrap_std(
    fn, a: torch.Tensor, b: torch.Tensor, seed: int, resamples: int = BOOTSTRAP
) -> float:
    """The standard deviation of ``fn(a*, b*)`` over ``resamples`` bootstrap resamples of the
    rows of ``a`` and ``b`` (Efron 1979), drawn from ``seed``: FID's standard error."""
    g = torch.Generator().manual_seed(seed)
    vals = [
        fn(
            a[torch.randint(0, len(a), (len(a),), generator=g)],
            b[torch.randint(0, len(b), (len(b),), generator=g)],
        )
        for _ in range(resamples)
    ]
    return float(torch.tensor(vals).std())


@register_metric("nll", needs=Likelihood, kind=None, default=False)
def _nll(ctx: Context) -> dict:
    return evaluate_nll(ctx.model, ctx.test, k=ctx.k, seed=ctx.seed, precision=ctx.precision)


@register_metric("parzen")
def _parzen(ctx: Context) -> dict:
    flat = lambda x: x.flatten(1)
    valid = ctx.data["valid"].x[:1000].float() / 255
    test = flat(ctx.test.float() / 255)
    out = parzen_protocol(flat(ctx.samples), flat(valid), test)
    real = parzen_protocol(flat(ctx.train_images.float() / 255), flat(valid), test)
    out["reference"] = _reference(real["mean"], real["stderr"], "training images as the kernels")
    out["protocol"] = (
        "Gaussian Parzen window on pixels in [0, 1] (Goodfellow et al. 2014): sigma from "
        "logspace(-1, 0, 10) chosen on 1,000 validation images; mean +- std/sqrt(N) over test images"
    )
    return out


@register_metric("fid")
def _fid(ctx: Context) -> dict:
    real, fake, train = ctx.real_outputs[0], ctx.fake_outputs[0], ctx.train_outputs[0]
    return {
        "mean": fid(real, fake),
        "stderr": bootstrap_std(fid, real, fake, ctx.seed),
        "reference": _reference(
            fid(real, train), bootstrap_std(fid, real, train, ctx.seed), TRAIN_VS_TEST
        ),
        "n_real": len(real),
        "n_fake": len(fake),
        "unit": "squared classifier-feature units",
        "protocol": f"Fréchet distance of Gaussians fitted to 128-d classifier features (Heusel et al. 2017); "
        f"stderr: std over {BOOTSTRAP} bootstrap resamples",
    }


@register_metric("kid")
def _kid(ctx: Context) -> dict:
    real, fake = ctx.real_outputs[0], ctx.fake_outputs[0]
    train = ctx.train_outputs[0]
    value, stderr = kid_full(real, fake)
    ref, ref_stderr = kid_full(real, train)
    size = min(1000, len(real), len(fake), len(train))
    subset_mean, subset_std = kid(
        real, fake, subsets=100, subset_size=size, generator=make_generator(ctx.seed)
    )
    return {
        "mean": value,
        "stderr": stderr,
        "reference": _reference(ref, ref_stderr, TRAIN_VS_TEST),
        "pairs": min(len(real), len(fake)),
        "subset_protocol": {
            "mean": subset_mean,
            "std_over_subsets": subset_std,
            "subsets": 100,
            "subset_size": size,
            "protocol": "Bińkowski et al. 2018's: the mean over 100 random subsets, which "
            "varies with the subsets drawn",
        },
        "unit": "MMD^2, cubic polynomial kernel on classifier features",
        "protocol": "unbiased MMD^2 over all n (real, generated) pairs (Gretton et al. 2012, "
        "eq. 3) with Bińkowski et al. 2018's kernel; stderr from the U-statistic's variance "
        "(Serfling 1980, sec. 5.2.1), both of its terms estimated from the kernel matrices",
    }


@register_metric("is")
def _is(ctx: Context) -> dict:
    mean, std = inception_score(ctx.fake_outputs[1], splits=10)
    ref, ref_std = inception_score(ctx.real_outputs[1], splits=10)
    return {
        "mean": mean,
        "std_over_splits": std,
        "stderr": std / math.sqrt(10),
        "reference": _reference(ref, ref_std / math.sqrt(10), "the test images themselves"),
        "splits": 10,
        "unit": "effective number of classes (1 to 10)",
        "protocol": "exp E KL(p(y|x) || p(y)) with the dataset's classifier (Salimans et al. 2016), 10 splits",
    }


@register_metric("pr")
def _pr(ctx: Context) -> dict:
    real, fake = ctx.real_outputs[0], ctx.fake_outputs[0]
    se = lambda q, m: math.sqrt(max(q * (1 - q), 0) / m)

    def measured(other: torch.Tensor) -> dict:
        p, r = precision_recall(real, other, k=3)
        d, c, d_stderr = density_coverage(real, other, k=5, stderr=True)
        return {
            "precision": {"mean": p, "stderr": se(p, len(other))},
            "recall": {"mean": r, "stderr": se(r, len(real))},
            "density": {"mean": d, "stderr": d_stderr},
            "coverage": {"mean": c, "stderr": se(c, len(real))},
        }

    reference = measured(ctx.train_outputs[0])
    return measured(fake) | {
        "reference": {k: v | {"of": TRAIN_VS_TEST} for k, v in reference.items()},
        "protocol": "k-NN manifolds of classifier features: precision/recall k = 3 (Kynkäänniemi et al. 2019), "
        "density/coverage k = 5 (Naeem et al. 2020); stderr with the manifolds held fixed: "
        "binomial, and for density the std of each sample's count / k over sqrt(n)",
    }


@register_metric("modes", kind="points")
def _modes(ctx: Context) -> dict:
    from ..data.toy import TOY_MIXTURES

    name = ctx.data.name
    if name not in TOY_MIXTURES:
        raise ConfigError(
            f"the modes metric needs a mixture dataset ({', '.join(TOY_MIXTURES)}), not {name!r}"
        )
    from .modes import mode_metrics

    samples = ctx.model.sample(2500, generator=make_generator(ctx.seed, ctx.model.device)).cpu()
    out = mode_metrics(samples, TOY_MIXTURES[name])
    out["protocol"] = (
        "2,500 samples; a mode is captured when a sample lies within 3 std of it; high quality: "
        "within 3 std of some mode; reverse KL of the mode histogram vs uniform (VEEGAN, PacGAN)"
    )
    return out


def class_predictions(
    model, split, seed: int, n: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted, true) labels, each (n,) int64, of a :class:`Classifier` on the first
    ``n`` examples of ``split`` (all by default), preprocessed in batches of 1,000 with the
    evaluation's generators of ``seed`` (so dynamic binarisation repeats).

    Raises: ConfigError when the split has no labels."""
    if split.labels is None:
        raise ConfigError("classification needs labels, and this split has none")
    x, y = split.x[:n], split.labels[:n]

    def one_batch(index: int, start: int, stop: int) -> torch.Tensor:
        gen = batch_generator(seed, index, model.device)
        inputs = model.preprocess(x[start:stop].to(model.device), gen)
        return model.class_logits(inputs).argmax(1).cpu()

    with torch.no_grad():
        return distributed.map_batches(one_batch, len(x), 1000), y


def confusion(model, split, seed: int, n: int | None = None) -> torch.Tensor:
    """counts[true, predicted] (K, K) int64 of a :class:`Classifier` with K classes on the
    first ``n`` examples of ``split`` (see :func:`class_predictions`).

    Raises: ConfigError when the split has no labels."""
    predicted, y = class_predictions(model, split, seed, n)
    k = model.num_classes
    return torch.bincount(y * k + predicted, minlength=k * k).view(k, k)


@register_metric("accuracy", needs=Classifier, kind=None)
def _accuracy(ctx: Context) -> dict:
    model = ctx.model
    stream = model.accuracy_stream or model.streams[0]
    test = ctx.streams[stream]["test"]
    if test.labels is None:
        raise ConfigError(
            f"accuracy needs labels, and the test split of stream {stream!r} has none"
        )
    counts = confusion(model, test, ctx.seed, ctx.n)
    n = int(counts.sum())
    p = int(counts.trace()) / n
    return {
        "mean": p,
        "stderr": math.sqrt(p * (1 - p) / n),
        "n_test": n,
        "stream": stream,
        "confusion": counts.tolist(),
        "unit": "fraction of test examples classified correctly",
        "protocol": f"argmax of the model's class logits on the test split of stream {stream!r}; "
        "stderr binomial, sqrt(p (1 - p) / n); confusion[true][predicted] counts",
    }


def translation_direction(ctx: Context, direction: str) -> dict:
    """Label preservation, cycle error and FID of one direction (see ``_translation``)."""
    model = ctx.model
    origin, goal = model.direction_streams(direction)
    test = ctx.streams[origin]["test"]
    x = test.x[: ctx.n]
    moved = translate(model, x, direction, ctx.seed)
    back_direction = f"{goal}-to-{origin}"
    out: dict = {"n": len(x), "from": origin, "to": goal}
    if back_direction in model.directions:
        as_uint8 = (moved * 255).round().to(torch.uint8)
        back = translate(model, as_uint8, back_direction, ctx.seed)
        error = (back - x.float() / 255).abs().flatten(1).mean(1)
        out["cycle_error"] = {
            "mean": float(error.mean()),
            "stderr": float(error.std() / math.sqrt(len(error))),
            "unit": "mean |F(G(x)) - x| per pixel, [0, 1] units (the translation rounded to "
            "uint8 between)",
        }
    goal_data = ctx.streams[goal]
    try:
        judge, sha = load_classifier(goal_data.name)
    except DeepgenError as err:
        out["skipped"] = f"label preservation and FID need a classifier of {goal_data.name}: {err}"
        return out
    fake_features, fake_probs = classifier_outputs(judge, moved)
    if test.labels is not None:
        correct = (fake_probs.argmax(1) == test.labels[: ctx.n]).float()
        p = float(correct.mean())
        out["label_preservation"] = {
            "mean": p,
            "stderr": math.sqrt(p * (1 - p) / len(correct)),
            "unit": f"fraction of translated {origin} test images that {goal_data.name}'s classifier "
            "gives their own label",
        }
    real_features, _ = classifier_outputs(judge, goal_data["test"].x[: ctx.n])
    out["fid"] = {
        "mean": fid(real_features, fake_features),
        "stderr": bootstrap_std(fid, real_features, fake_features, ctx.seed),
        "unit": f"squared feature units of {goal_data.name}'s classifier",
    }
    out["classifier"] = {"dataset": goal_data.name, "sha256": sha}
    return out


@register_metric("translation", needs=Translator, kind="images")
def _translation(ctx: Context) -> dict:
    out = {direction: translation_direction(ctx, direction) for direction in ctx.model.directions}
    first = out[ctx.model.directions[0]]
    headline = (
        first.get("label_preservation")
        or first.get("cycle_error")
        or {"mean": math.nan, "stderr": math.nan}
    )
    return {
        **out,
        "mean": headline["mean"],
        "stderr": headline["stderr"],
        "protocol": "each test image of a direction's first stream translated (n images); label "
        "preservation: the second stream's shipped classifier (deepgen classifier train) "
        "agrees with the image's own label, stderr binomial; cycle error: translated and "
        "translated back; FID of the translations against the second stream's test images "
        f"under that classifier's 128-d features, stderr: std over {BOOTSTRAP} bootstrap "
        "resamples. mean/stderr: the first direction's label preservation (or cycle error)",
    }


@register_metric("validity", needs=Strings, kind="sequences")
def _validity(ctx: Context) -> dict:
    model, n = ctx.model, ctx.n
    z = model.latent_prior(n, make_generator(ctx.seed, model.device))
    with torch.no_grad():
        strings = [s for i in range(0, n, 1000) for s in model.decode_strings(z[i : i + 1000])]
    valid = [s for s in strings if s is not None]
    p = len(valid) / n
    return {
        "mean": p,
        "stderr": math.sqrt(p * (1 - p) / n),
        "unique": len(set(valid)) / max(1, len(valid)),
        "examples": strings[:10],
        "unit": "fraction of prior draws decoded to a string of the grammar",
        "protocol": "greedy decoding of n draws of z from the prior; a sequence is valid when it derives or "
        "parses as a string of the grammar (cut off at the length limit: invalid); stderr "
        "binomial; unique: distinct strings among the valid ones",
    }


def evaluate_run(
    run: str | Path,
    metrics: list[str] | None = None,
    n: int = 10_000,
    k: int = 5000,
    seed: int = 0,
    device: str = "auto",
    log=print,
    precision: str = "float32",
) -> dict:
    """Compute ``metrics`` for the run and write ``RUN/eval.json`` (merged with earlier ones).

    ``metrics`` None: every default metric the model has the capability for and that
    applies to its data (:func:`default_metrics`). ``precision``: the decoder's in the
    importance-sampled likelihood (:data:`~deepgen.metrics.likelihood.DECODER_DTYPES`).
    Each number records the checkpoint it was computed from (folder, iteration, manifest
    sha256, whether it was the newest); ``log`` is also told when an older checkpoint had
    to be used.

    Raises:
        ConfigError: an unknown metric, n < 2, or a metric for another kind of data.
        MissingCapability: a metric the model cannot be measured by.
    """
    _check_request(metrics, n)
    run = Path(run)
    ctx = Context.of_run(run, n, k, seed, device, warn=log, precision=precision)
    computed = _compute(ctx, metrics, log)
    results = _earlier_results(RunDir(run), log)
    results["metrics"].update(computed)
    if "classifier" in ctx.__dict__:
        results["classifier"] = {"dataset": ctx.data.name, "sha256": ctx.classifier[1]}
    results.update(run=str(run), dataset=ctx.data.name, deepgen_version=__version__)
    if distributed.is_main():
        atomic_write_text(run / "eval.json", json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results


def evaluate_model(
    model,
    data,
    metrics: list[str] | None = None,
    n: int = 10_000,
    k: int = 5000,
    seed: int = 0,
    log=print,
    precision: str = "float32",
) -> dict:
    """``metrics`` of an in-memory ``model`` on ``data`` (a Dataset, or stream -> Dataset):
    the same numbers as :func:`evaluate_run`, returned as {"metrics": {name: value}, ...}
    and written nowhere.

    Raises:
        ConfigError: as :func:`evaluate_run`; data of another shape than the model's.
    """
    from ..validation import as_streams

    _check_request(metrics, n)
    streams = as_streams(model, data)
    model.check_data(streams)
    ctx = Context(model.eval(), streams, n, k, seed, precision=precision)
    results = {"metrics": _compute(ctx, metrics, log), "dataset": ctx.data.name}
    if "classifier" in ctx.__dict__:
        results["classifier"] = {"dataset": ctx.data.name, "sha256": ctx.classifier[1]}
    return results | {"deepgen_version": __version__}


def evaluate(
    model_or_run: GenerativeModel | str | os.PathLike,
    data: Dataset | dict[str, Dataset] | None = None,
    metrics: list[str] | None = None,
    n: int = 10_000,
    seed: int = 0,
    log=None,
    **options,
) -> dict:
    """``deepgen eval`` from Python: the metrics (``deepgen.metrics.evaluate.METRICS``
    names; None: every default one that applies) of a run folder, written to its
    eval.json as well, or of an in-memory model on ``data`` (a Dataset, or stream ->
    Dataset), returned only. ``options``: ``k`` (importance samples of nll), ``device``
    (a run's). Returns {"metrics": {name: {mean, stderr, unit, protocol, ...}}, ...}.

    Raises:
        ConfigError: an unknown metric, n < 2, a model given without ``data`` or a run with
            it. MissingCapability: a metric the model cannot be measured by.
    """
    log = log or (lambda msg: None)
    if isinstance(model_or_run, GenerativeModel):
        if data is None:
            raise ConfigError("evaluate(model, data): give the data to measure the model on")
        options.pop("device", None)
        return evaluate_model(model_or_run, data, metrics, n=n, seed=seed, log=log, **options)
    if data is not None:
        raise ConfigError("evaluate(run) measures the run on the data it recorded; leave out data")
    return evaluate_run(model_or_run, metrics, n=n, seed=seed, log=log, **options)


def _check_request(metrics: list[str] | None, n: int) -> None:
    for name in metrics or []:
        METRICS[name]  # unknown names fail before any work
    if n < 2:
        raise ConfigError(f"n must be at least 2, not {n}")


def _compute(ctx: Context, metrics: list[str] | None, log) -> dict:
    """name -> value of each metric (every default one that applies when None)."""
    kind = ctx.data.kind
    if metrics is None:
        metrics = default_metrics(ctx.model, kind)
        if not metrics:
            raise ConfigError(
                f"no metric applies to a {ctx.model.family} on {kind}; "
                f"name one with {option('metrics')}"
            )
    for name in metrics:
        metric = METRICS[name]
        require(ctx.model, metric.needs, f"the {name} metric")
        if metric.kind not in (None, kind):
            raise ConfigError(
                f"the {name} metric applies to {metric.kind}, and this run's data are {kind}"
            )
    out = {}
    for name in metrics:
        start = time.perf_counter()
        value = METRICS[name].compute(ctx)
        value["seconds"] = round(time.perf_counter() - start, 2)
        value["n"], value["seed"] = len(ctx.test), ctx.seed
        if name != "nll" or "k" in value:  # an exact density has no sampling protocol
            label(name, value, ctx.data.name, counts_used(name, ctx.n, len(ctx.test), ctx.k))
        if ctx.checkpoint is not None:
            value["checkpoint"] = ctx.checkpoint.record()
        out[name] = value
        note = ""
        if not value.get("paper_protocol", {}).get("follows", True):
            note = f" [not {value['paper_protocol']['paper']}'s protocol: " + "; ".join(
                value["paper_protocol"]["deviations"]
            )
            note += "]"
        log(f"{name}: {_headline(name, value)} ({value['seconds']:.0f} s){note}")
    return out


def _earlier_results(run: RunDir, log) -> dict:
    """The eval.json of earlier evaluations, to merge into; an unreadable one is moved aside
    to eval.json.unreadable (kept, not overwritten) and a new one begun."""
    try:
        return run.evaluation() or {"metrics": {}}
    except DeepgenError as err:
        aside = run.eval_path.with_name(run.eval_path.name + ".unreadable")
        if distributed.is_main():
            run.eval_path.replace(aside)
        log(f"{err}; kept it as {aside.name} and started a new eval.json")
        return {"metrics": {}}


def _headline(name: str, v: dict) -> str:
    if name == "nll":
        how = f"k = {v['k']}" if "k" in v else "exact"
        return f"{v['nll']['mean']:.2f} +- {v['nll']['stderr']:.2f} nats ({how})"
    if name == "modes":
        return (
            f"{v['modes']}/{v['num_modes']} modes, {v['high_quality_percent']:.1f}% high quality, "
            f"reverse KL {v['reverse_kl']:.3f}"
        )
    if name == "pr":
        parts = ("precision", "recall", "density", "coverage")
        line = ", ".join(f"{p} {v[p]['mean']:.3f}" for p in parts)
        if "reference" in v:
            line += " (real data " + ", ".join(f"{v['reference'][p]['mean']:.3f}" for p in parts)
            line += ")"
        return line
    line = f"{v['mean']:.4g} +- {v['stderr']:.2g}"
    ref = v.get("reference")
    if ref and "mean" in ref:
        line += f" (real data {ref['mean']:.4g} +- {ref['stderr']:.2g})"
    return line
