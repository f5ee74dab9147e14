"""A self-contained HTML report of one or more runs: config, test numbers, training
curves, samples, reconstructions and samples over training. Pictures are embedded as
base64 PNGs, so the file can be mailed or opened anywhere."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import torch

from .api import load_checkpointed, make_generator, run_data, translate
from .data.datasets import Dataset
from .errors import DeepgenError
from .fileio import atomic_write_text
from .models.capabilities import (
    Classifier,
    Conditional,
    Encoder,
    Sampler,
    Strings,
    Translator,
    require,
    supports,
)
from .models.contract import MODELS, GenerativeModel
from .report_cache import PictureCache
from .rundir import RunDir
from .viz import curves_png, grid_image, png_bytes, samples_png

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
.figs{display:flex;flex-wrap:wrap;gap:1em} figure{margin:0;max-width:100%}
img{max-width:100%;height:auto} figcaption{font-size:.85em;color:#555}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.8em} .note{color:#a33}
"""


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _figure(data: bytes, caption: str, shown: bool = True) -> str:
    """A picture with ``caption`` below it, or (``shown`` False: a plot whose title already
    says it) only as its alt text."""
    below = f"<figcaption>{html.escape(caption)}</figcaption>" if shown else ""
    return f"<figure>{_img(data, caption)}{below}</figure>"


def reconstruction_grid(
    model: GenerativeModel,
    data: Dataset,
    split: str = "test",
    n: int = 32,
    nrow: int = 8,
    seed: int = 0,
) -> tuple[torch.Tensor, int]:
    """Rows alternating the first ``n`` images of ``split`` of ``data`` (in [0, 1]) and their
    reconstructions; returns (images (2n, C, H, W), images per row). A :class:`Conditional`
    model reconstructs each image given its label.

    Raises:
        MissingCapability: the model has no :class:`Encoder`. DataError: no such split.
    """
    require(model, Encoder, "reconstruction")
    split_data = data[split]
    x = split_data.x[:n].to(model.device)
    x_in = model.preprocess(x, make_generator(seed, model.device))
    if supports(model, Conditional) and split_data.labels is not None:
        recon = model.reconstruct(x_in, labels=split_data.labels[:n])
    else:
        recon = model.reconstruct(x_in)
    original = x.float() / 255.0
    rows = []
    for start in range(0, len(x), nrow):
        rows += [original[start : start + nrow], recon[start : start + nrow]]
    return torch.cat(rows), nrow


def translation_grid(
    model: GenerativeModel,
    streams: dict[str, Dataset],
    direction: str,
    split: str = "test",
    n: int = 32,
    nrow: int = 8,
    seed: int = 0,
) -> tuple[torch.Tensor, int]:
    """The first ``n`` images x of ``split`` of the direction's first stream (in [0, 1]),
    their translations G(x) and, when the model also translates back, F(G(x)): rows of
    ``nrow`` taking turns (x, G(x)[, F(G(x))]); grey images are shown as three equal
    channels beside colour ones. Returns (images (2n or 3n, C, H, W), images per row).

    Raises:
        MissingCapability: the model has no :class:`Translator`. ConfigError: an unknown
            direction.
    """
    require(model, Translator, "translation")
    origin, goal = model.direction_streams(direction)
    x = streams[origin][split].x[:n]
    kinds = [x.float() / 255.0, translate(model, x, direction, seed)]
    back = f"{goal}-to-{origin}"
    if back in model.directions:
        kinds.append(translate(model, (kinds[1] * 255).round().to(torch.uint8), back, seed))
    channels = max(k.shape[1] for k in kinds)
    kinds = [k.expand(-1, channels, -1, -1) for k in kinds]
    rows = []
    for start in range(0, len(x), nrow):
        rows += [k[start : start + nrow] for k in kinds]
    return torch.cat(rows), nrow


def current_names(record: dict) -> dict:
    """``record`` with today's training metric names. Runs written by earlier versions
    named every training term ``PLAYER/TERM`` (``vae/elbo``); today only each player's
    ``loss`` and a term two players share keep the player, so training and validation
    records name a quantity alike (``elbo``). Validation records are returned unchanged."""
    if record.get("split") != "train":
        return record
    renamed = {k: v for k, v in record.items() if "/" not in k}
    terms = [key.split("/", 1) for key in record if key.count("/") == 1]
    for player, term in terms:
        shared = term == "loss" or sum(t == term for _, t in terms) > 1
        renamed[f"{player}/{term}" if shared else term] = record[f"{player}/{term}"]
    return renamed


def _series(records: list[dict], key: str) -> tuple[list[float], list[float]] | None:
    """(thousands of training images seen, values) of ``key`` in ``records`` (``valid:NAME``
    from the validation records, other keys from the training ones); None if absent."""
    split, name = key.split(":", 1) if ":" in key else ("train", key)
    points = [
        (r["images"] / 1000, r[name])
        for r in records
        if r.get("split") == split
        and isinstance(r.get(name), (int, float))
        and math.isfinite(r[name])
    ]
    if not points:
        return None
    xs, ys = zip(*points)
    return list(xs), list(ys)


def _curves(model_cls, records: list[dict]) -> list[str]:
    figs = []
    for title, ylabel, keys in model_cls.report_curves:
        series = [(label, *xy) for key, label in keys if (xy := _series(records, key))]
        if series:
            figs.append(
                _figure(
                    curves_png(series, "training images seen (thousands)", ylabel, title),
                    title,
                    shown=False,
                )
            )
    return figs


def run_curves(path: Path) -> list[str]:
    """The training curves of one run folder as HTML figures (PNG data URLs), the report's
    own; [] for a folder whose config is unreadable.

    Raises: nothing for a broken folder: it has no curves."""
    try:
        family = RunDir(path).config().family
    except DeepgenError:
        return []
    if family not in MODELS:
        return []
    return _curves(MODELS[family], [current_names(r) for r in RunDir(path).metrics()])


def family_curves(runs: list[Path]) -> str:
    """For each family with two runs or more among ``runs``, its curves with every run's
    line in the same plot (labelled by run folder), e.g. the ELBO of VAEs of two seeds."""
    by_family: dict[str, list[tuple[str, list[dict]]]] = {}
    for path in runs:
        try:
            family = RunDir(path).config().family
        except DeepgenError:
            continue
        records = [current_names(r) for r in RunDir(path).metrics()]
        by_family.setdefault(family, []).append((path.name, records))
    figs = []
    for family, members in sorted(by_family.items()):
        if len(members) < 2 or family not in MODELS:
            continue
        for title, ylabel, keys in MODELS[family].report_curves:
            series = [
                (f"{name}: {label}" if len(keys) > 1 else name, *xy)
                for name, records in members
                for key, label in keys
                if (xy := _series(records, key))
            ]
            if series:
                heading = f"{family}: {title}"
                png = curves_png(series, "training images seen (thousands)", ylabel, heading)
                figs.append(_figure(png, heading, shown=False))
    if not figs:
        return ""
    return "<h3>Runs of one family, overlaid</h3><div class='figs'>" + "".join(figs) + "</div>"


def _results_table(results: dict | None) -> str:
    if not results:
        return '<p class="note">No results.json: training has not finished.</p>'
    units = results.get("units", {})
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{_with_error(v)}</td>"
        f"<td>{html.escape(units.get(k, ''))}</td><td>{v['n']}</td></tr>"
        for k, v in sorted(results.get("metrics", {}).items())
    )
    head = (
        f"<p>{html.escape(results.get('split', 'test'))} split, after {_epochs(results.get('epochs', 0))} "
        f"({results.get('images_seen', 0):,} images, {results.get('training_seconds', 0):.0f} s of training). "
        f"Protocol: {html.escape(results.get('protocol', ''))}</p>"
    )
    return (
        head
        + "<table><tr><th>metric</th><th>value ± std. error</th><th>unit</th><th>n</th></tr>"
        + f"{rows}</table>"
    )


def _epochs(n: float) -> str:
    """'1 epoch', '2.5 epochs'."""
    return f"{n:.3g} epoch{'' if n == 1 else 's'}"


def find_runs(paths: list[Path]) -> list[Path]:
    """The run folders among ``paths``: a path holding a config.json is one; any other
    folder is searched, at any depth, for folders whose config.json is a run's (stray
    files and other JSON are passed over). Sorted by path within each folder searched.

    Raises:
        ConfigError: a path does not exist, or a folder holds no run.
    """
    from .errors import ConfigError

    found: list[Path] = []
    for path in paths:
        if (path / "config.json").is_file():
            found.append(path)
            continue
        if not path.is_dir():
            raise ConfigError(f"no run folder at {path}")
        runs = []
        for config in sorted(path.rglob("config.json")):
            try:
                RunDir.open(config.parent).config()
            except DeepgenError:
                continue
            runs.append(config.parent)
        if not runs:
            raise ConfigError(f"{path} holds no deepgen run folder (none with a run's config.json)")
        found += runs
    return found


def comparison_table(runs: list[Path]) -> str:
    """One row per run: family, data, seed, epochs, training minutes and the headline test
    number with its standard error (blank where training has not finished)."""
    rows = []
    for path in runs:
        run = RunDir(path)
        try:
            config, results = run.config(), run.results()
        except DeepgenError:
            rows.append(
                f"<tr><td>{html.escape(path.name)}</td><td colspan='6'>unreadable</td></tr>"
            )
            continue
        summary = (results or {}).get("summary")
        headline = (
            f"{html.escape(summary['metric'])} {summary['mean']:.4g} ± {summary['stderr']:.2g} "
            f"{html.escape(summary['unit'])}"
            if summary
            else ""
        )
        epochs = f"{results['epochs']:.3g}" if results else "unfinished"
        minutes = f"{results.get('training_seconds', 0) / 60:.1f}" if results else ""
        rows.append(
            f"<tr><td><a href='#{html.escape(path.name)}'>{html.escape(str(path))}</a></td>"
            f"<td>{html.escape(config.family)}</td><td>{html.escape(config.data.name)}</td>"
            f"<td>{config.train.seed}</td><td>{epochs}</td><td>{minutes}</td><td>{headline}</td>"
            f"<td>{eval_numbers(run)}</td></tr>"
        )
    head = (
        "<tr><th>run</th><th>family</th><th>data</th><th>seed</th><th>epochs</th>"
        "<th>training minutes</th><th>test headline ± std. error</th>"
        "<th>deepgen eval ± std. error</th></tr>"
    )
    return f"<h2>Runs</h2><table>{head}{''.join(rows)}</table>"


def eval_numbers(run: RunDir) -> str:
    """The run's single-number eval metrics in one cell ("fid 536 ± 12, is 6.42 ± 0.03"),
    blank when it was not evaluated or its eval.json is unreadable."""
    try:
        data = run.evaluation() or {}
    except DeepgenError:
        return ""
    numbers = [
        f"{html.escape(name)} {_with_error(v)}"
        for name, v in sorted(data.get("metrics", {}).items())
        if isinstance(v, dict) and isinstance(v.get("mean"), (int, float))
    ]
    return ", ".join(numbers)


def _with_error(num: dict | None) -> str:
    """ "value ± error" of a {"mean", "stderr"} number ("" for None; no ± without an error)."""
    if not num:
        return ""
    err = num.get("stderr")
    return f"{num['mean']:.4g}" + ("" if err is None else f" ± {err:.2g}")


FEATURES_NOTE = (
    "FID, KID, IS and precision/recall use deepgen's own classifier of this dataset as the "
    "feature network (a small CNN, not Inception-v3): compare them with other deepgen runs "
    "on the same data and with the real-data column, not with Inception-based figures in "
    "papers."
)


def _eval_table(run: RunDir) -> str:
    """The metrics of ``deepgen eval`` (eval.json), if it was run: the model's value and
    the same metric on real data side by side, each metric's protocol once below."""
    try:
        data = run.evaluation()
    except DeepgenError as err:
        return f'<p class="note">{html.escape(str(err))}</p>'
    if data is None:
        return ""
    rows, protocols, reference_of = [], [], set()
    for name, v in sorted(data.get("metrics", {}).items()):
        ref = v.get("reference") or {}
        if name == "nll":
            flat = {"nll": (v["nll"], None), "bits/dim": (v["bits_per_dim"], None)}
        elif name == "pr":
            flat = {k: (v[k], ref.get(k)) for k in ("precision", "recall", "density", "coverage")}
        elif name == "modes":
            flat = {
                "modes captured": ({"mean": v["modes"]}, None),
                "% high quality": ({"mean": v["high_quality_percent"]}, None),
                "reverse KL (nats)": ({"mean": v["reverse_kl"]}, None),
            }
        elif name == "human":
            flat = {
                "human fooling rate (%)": (v, ref or None),
                "HYPE-infinity (%)": (v.get("hype_inf"), None),
            }
        elif "mean" in v:
            flat = {name: (v, ref or None)}
        else:
            continue  # a metric of several parts the table does not flatten (translation)
        for label, (num, real) in flat.items():
            if real:
                reference_of.add(real.get("of", ""))
            rows.append(
                f"<tr><td>{html.escape(label)}</td><td>{_with_error(num)}</td>"
                f"<td>{_with_error(real)}</td><td>{v.get('n', '')}</td></tr>"
            )
        if v.get("protocol"):
            protocols.append(f"<li><b>{html.escape(name)}</b>: {html.escape(v['protocol'])}</li>")
    if not rows:
        return ""
    notes = "<ul class='protocols'>" + "".join(protocols) + "</ul>" if protocols else ""
    if reference_of - {""}:
        notes += (
            "<p>Real data: the metric with "
            + "; ".join(sorted(html.escape(r) for r in reference_of - {""}))
            + ", the same counts and seed: what a perfect model would score.</p>"
        )
    if any(name in data.get("metrics", {}) for name in ("fid", "kid", "is", "pr")):
        notes += f"<p class='note'>{html.escape(FEATURES_NOTE)}</p>"
    clf = data.get("classifier")
    note = (
        f"<p>Feature classifier sha256: <code>{html.escape(clf['sha256'])}</code></p>"
        if clf
        else ""
    )
    sources = sorted(
        {
            (v["checkpoint"]["name"], v["checkpoint"].get("newest", True))
            for v in data["metrics"].values()
            if isinstance(v.get("checkpoint"), dict)
        }
    )
    if sources:
        note += (
            "<p>Computed from "
            + ", ".join(
                f"{html.escape(name)}" + ("" if newest else " (not the newest checkpoint then)")
                for name, newest in sources
            )
            + ".</p>"
        )
    head = (
        "<tr><th>metric</th><th>model ± std. error</th><th>real data ± std. error</th>"
        "<th>n</th></tr>"
    )
    table = f"<table>{head}{''.join(rows)}</table>"
    return f"<h3>Evaluation (deepgen eval)</h3>{table}{notes}{note}"


# (tool, caption) of the latent pictures a report shows, when the model supports them.
LATENT_FIGURES = (
    ("interpolate", "interpolation between prior draws (rows), linear"),
    ("traverse", "traversal: row i varies latent coordinate i over [-3, 3], the rest held"),
    ("manifold", "the 2-D latent manifold through the inverse Gaussian CDF (Kingma & Welling)"),
    (
        "arithmetic",
        "arithmetic 7 - 1 + 4: rows of 3 exemplars and their mean; last row the result, then with noise",
    ),
    ("complete", "completion: test images, what is given, completions"),
    ("neighbours", "samples (first column) and their nearest training images"),
    (
        "analogies",
        "analogies: test images (first column), their style given their label, as each class",
    ),
)


def _latent_figures(
    model: GenerativeModel, dataset: Dataset | None, cache: PictureCache
) -> list[str]:
    """The pictures of the latent tools the model has the capabilities for; a tool that
    needs the data when it could not be loaded, or that refuses this model's setting (the
    manifold grid of a latent space that is not 2-D), is left out."""
    from .latent import LATENT_TOOLS, tools_for

    figs = []
    supported = tools_for(model)
    for tool, caption in LATENT_FIGURES:
        entry = LATENT_TOOLS[tool]
        if tool not in supported or (entry.reads_data and dataset is None):
            continue

        def draw(entry=entry, tool=tool, caption=caption) -> tuple[bytes, str]:
            images, nrow = entry.fn(model, **({"dataset": dataset} if entry.reads_data else {}))
            return png_bytes(grid_image(images.detach(), nrow)), f"{tool}: {caption}"

        try:
            figs.append(_figure(*cache.get(f"latent-{tool}", draw)))
        except DeepgenError:
            continue
    return figs


def _model_figures(
    model: GenerativeModel,
    streams: dict[str, Dataset] | None,
    notes: list[str],
    cache: PictureCache,
) -> list[str]:
    """Samples (or what the model previews) and reconstructions; a note for each that fails."""
    figs = []
    points = not model.is_image
    size = 2500 if points else 64
    test = None if streams is None else {name: ds["test"].x for name, ds in streams.items()}
    reference = test[model.epoch_stream] if test is not None and points else None

    def draw_samples() -> tuple[bytes, str] | None:
        if test is not None:
            samples = model.preview(test, size, make_generator(0))  # None: nothing to show
        elif supports(model, Sampler):
            samples = model.sample(size, generator=make_generator(0))
        else:
            return None
        if samples is None:
            return None
        return samples_png(samples, model.grid_nrow, reference), f"{len(samples)} samples (seed 0)"

    try:
        if drawn := cache.get("samples", draw_samples):
            figs.append(_figure(*drawn))
    except DeepgenError as err:
        notes.append(f'<p class="note">No samples: {html.escape(str(err))}</p>')
    if supports(model, Encoder) and model.is_image and streams is not None:

        def draw_reconstructions() -> tuple[bytes, str]:
            grid, nrow = reconstruction_grid(model, streams[model.epoch_stream])
            caption = "test images (odd rows) and their reconstructions (even rows)"
            return png_bytes(grid_image(grid, nrow)), caption

        try:
            figs.append(_figure(*cache.get("reconstructions", draw_reconstructions)))
        except DeepgenError as err:
            notes.append(f'<p class="note">No reconstructions: {html.escape(str(err))}</p>')
    if supports(model, Translator) and model.is_image and streams is not None:
        for direction in model.directions:

            def draw_translations(direction=direction) -> tuple[bytes, str]:
                grid, nrow = translation_grid(model, streams, direction)
                caption = (
                    f"{direction}: test images, their translations and (where the model "
                    "translates back) the translations translated back, in turn by row"
                )
                return png_bytes(grid_image(grid, nrow)), caption

            figs.append(_figure(*cache.get(f"translate-{direction}", draw_translations)))
    return figs


def _confusion_section(model: GenerativeModel, streams: dict[str, Dataset]) -> str:
    """A classifier's test confusion matrix (rows: true class, columns: predicted), as
    ``deepgen eval --metrics accuracy`` computes it (evaluation seed 0)."""
    from .metrics.evaluate import confusion

    stream = model.accuracy_stream or model.streams[0]
    test = streams[stream]["test"]
    if test.labels is None:
        return ""
    counts = confusion(model, test, seed=0).numpy()
    classes = list(range(model.num_classes))
    cell = lambda i, j: (
        f"<b>{counts[i, j]}</b>" if i == j else (str(counts[i, j]) if counts[i, j] else "")
    )
    head = "".join(f"<th>{j}</th>" for j in classes)
    rows = "".join(
        f"<tr><th>{i}</th>{''.join(f'<td>{cell(i, j)}</td>' for j in classes)}</tr>"
        for i in classes
    )
    error = 1.0 - counts.trace() / max(1, counts.sum())
    return (
        f"<h3>Test confusion matrix (stream {html.escape(stream)}; rows: true class, columns: "
        f"predicted)</h3><p>{counts.sum() - counts.trace():,} of {counts.sum():,} test images "
        f"misclassified ({100 * error:.2f}%)</p><table><tr><th></th>{head}</tr>{rows}</table>"
    )


def _strings_section(
    model: GenerativeModel, streams: dict[str, Dataset] | None, optimized: Path
) -> str:
    """A model of strings: prior samples, an interpolation between two test expressions,
    and the Bayesian optimisation's results when `deepgen optimize` was run."""
    from .latent_strings import interpolate_strings, sample_strings

    show = lambda s: "<i>invalid</i>" if s is None else f"<code>{html.escape(s)}</code>"
    samples = sample_strings(model, 100)[0]
    valid = sum(s is not None for s in samples)
    out = [
        f"<h3>Strings</h3><p>Prior samples (greedy decoding; {valid} of 100 valid): "
        + ", ".join(show(s) for s in samples[:12])
        + "</p>"
    ]
    if streams is not None:
        test = [s for s in model.strings_of(streams[model.epoch_stream]["test"].x[:20]) if s]
        if len(test) >= 2:
            line = interpolate_strings(model, between=(test[0], test[1]))[0]
            out.append(
                f"<p>Interpolation from {show(test[0])} to {show(test[1])}: "
                + " &rarr; ".join(show(s) for s in line)
                + "</p>"
            )
    if optimized.is_file():
        result = json.loads(optimized.read_text())
        summary, best = result.get("summary", {}), result.get("best") or {}
        valid_fraction, average = (
            summary.get("valid_fraction", {}),
            summary.get("average_score", {}),
        )
        out.append(
            f"<p>Bayesian optimisation towards {show(result.get('target'))} over "
            f"{valid_fraction.get('n', 0)} seed(s): valid proposals {valid_fraction.get('mean', 0):.3f} ± "
            f"{valid_fraction.get('sd', 0):.3f}, average score of the valid proposals "
            f"{average.get('mean', 0):.3f} ± {average.get('sd', 0):.3f} (± sd over seeds); "
            f"best {show(best.get('expression'))} (score "
            f"{best.get('score', float('nan')):.4f})</p>"
        )
        png = optimized.with_suffix(".png")
        if png.is_file():
            out.append(_figure(png.read_bytes(), "the target and the best expression found"))
    return "".join(out)


def _checkpoint_note(ckpt, results: dict | None, notes: list[str]) -> str:
    """Which checkpoint the pictures below come from, and a warning when it is not the
    newest or not the one results.json was computed from."""
    text = (
        f"Pictures from checkpoint {ckpt.path.name} (iteration {ckpt.iteration}, manifest sha256 "
        f"{ckpt.manifest_sha256[:12]}…)."
    )
    warn = [*notes]
    if results and results.get("iteration") not in (None, ckpt.iteration):
        warn.append(
            f"results.json was computed at iteration {results['iteration']}, "
            f"not from this checkpoint's weights"
        )
    if not warn:
        return f"<p>{html.escape(text)}</p>"
    return (
        f'<p class="note">{html.escape(text)} '
        + " ".join(html.escape(w) + "." for w in warn)
        + "</p>"
    )


def run_section(path: Path) -> str:
    """The HTML section of one run folder."""
    run = RunDir.open(path)
    config = run.config()
    try:
        results = run.results()
    except DeepgenError as err:
        results = None
        damaged = f'<p class="note">{html.escape(str(err))}</p>'
    else:
        damaged = ""
    title = f"{path.name}: {config.family} on {config.data.name}"
    parts = [f"<h2 id='{html.escape(path.name)}'>{html.escape(title)}</h2>"]
    if results and "summary" in results:
        s = results["summary"]
        parts.append(
            f"<p><b>test {html.escape(s['metric'])}: {s['mean']:.4g} ± {s['stderr']:.2g} "
            f"{html.escape(s['unit'])}</b></p>"
        )
    parts.append(damaged or _results_table(results))
    parts.append(_eval_table(run))
    notes: list[str] = []
    try:
        model, ckpt = load_checkpointed(path, warn=notes.append)
        parts.append(_checkpoint_note(ckpt, results, notes))
    except DeepgenError as err:
        parts.append(f'<p class="note">Model not loaded: {html.escape(str(err))}</p>')
        model = None
    figs = _curves(MODELS[config.family], [current_names(r) for r in run.metrics()])
    streams = None
    if model is not None:
        try:
            streams = run_data(path)
        except DeepgenError as err:
            parts.append(
                f'<p class="note">Data not loaded, so no pictures that need it: {html.escape(str(err))}</p>'
            )
    cache = PictureCache(path, ckpt if model is not None else None)
    if model is not None:
        figs += _model_figures(model, streams, parts, cache)
    parts.append(f'<div class="figs">{"".join(figs)}</div>')
    if model is not None and supports(model, Strings):
        parts.append(_strings_section(model, streams, path / "optimize.json"))
    if model is not None and supports(model, Classifier) and streams is not None:
        parts.append(_confusion_section(model, streams))
    if model is not None and model.is_image:
        dataset = None if streams is None else streams[model.epoch_stream]
        latent_figs = _latent_figures(model, dataset, cache)
        if latent_figs:
            parts.append(
                f"<h3>Latent space (deepgen latent RUN TOOL)</h3><div class='figs'>{''.join(latent_figs)}</div>"
            )
    history = sorted(run.samples_dir.glob("iteration-*.png"))
    if history:
        picks = (
            history
            if len(history) <= 5
            else [history[round(i * (len(history) - 1) / 4)] for i in range(5)]
        )
        parts.append(
            "<h3>Samples during training (fixed noise)</h3><div class='figs'>"
            + "".join(
                _figure(p.read_bytes(), f"iteration {int(p.stem.split('-')[1])}") for p in picks
            )
            + "</div>"
        )
    parts.append(
        f"<details><summary>config.json</summary><pre>{html.escape(config.to_json())}</pre></details>"
    )
    if results:
        parts.append(
            f"<details><summary>results.json</summary><pre>"
            f"{html.escape(json.dumps(results, indent=2))}</pre></details>"
        )
    return "<section>" + "\n".join(parts) + "</section>"


def write_report(runs: list[Path], output: Path, title: str = "deepgen report") -> Path:
    """Write the HTML report of ``runs`` to ``output`` atomically; returns the path.
    Several runs get a comparison table first (:func:`comparison_table`)."""
    runs = [Path(r) for r in runs]
    sections = [comparison_table(runs) + family_curves(runs)] if len(runs) > 1 else []
    body = "\n".join(sections + [run_section(r) for r in runs])
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )
    return atomic_write_text(output, page)
