"""A self-contained HTML report of one or more runs: config, test numbers, training
curves, samples, reconstructions and samples over training. Pictures are embedded as
base64 PNGs, so the file can be mailed or opened anywhere."""

from __future__ import annotations

import base64
import html
import inspect
import json
import math
from pathlib import Path

import torch

from .api import load, make_generator
from .config import RunConfig
from .data.datasets import Dataset
from .errors import DeepgenError
from .fileio import atomic_write_text
from .models.base import MODELS, GenerativeModel
from .rundir import RunDir
from .viz import curves_png, grid_image, png_bytes, samples_png

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
.figs{display:flex;flex-wrap:wrap;gap:1em} figure{margin:0} figcaption{font-size:.85em;color:#555}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.8em} .note{color:#a33}
"""


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _figure(data: bytes, caption: str) -> str:
    return f"<figure>{_img(data, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>"


def reconstruction_grid(model: GenerativeModel, config: RunConfig, split: str = "test",
                        n: int = 32, nrow: int = 8, seed: int = 0,
                        dataset: Dataset | None = None) -> tuple[torch.Tensor, int]:
    """Rows alternating the first ``n`` images of ``split`` (in [0, 1]) and their
    reconstructions; returns (images (2n, C, H, W), images per row). The run's dataset is
    loaded unless ``dataset`` is given.

    Raises:
        ConfigError: the model has no encoder. DataError: the dataset is missing.
    """
    if not model.has_encoder:
        model.reconstruct(torch.zeros(0))  # raises the model's own error
    data = (dataset or config.data.load())[split]
    x = data.images[:n].to(model.device)
    x_in = model.preprocess(x, make_generator(seed, model.device))
    if "labels" in inspect.signature(model.reconstruct).parameters and data.labels is not None:
        recon = model.reconstruct(x_in, labels=data.labels[:n])  # a label-conditional model
    else:
        recon = model.reconstruct(x_in)
    original = x.float() / 255.0
    rows = []
    for start in range(0, len(x), nrow):
        rows += [original[start:start + nrow], recon[start:start + nrow]]
    return torch.cat(rows), nrow


def _curves(model_cls, records: list[dict]) -> list[str]:
    figs = []
    for title, ylabel, keys in model_cls.report_curves:
        series = []
        for key, label in keys:
            split, name = key.split(":", 1) if ":" in key else ("train", key)
            points = [(r["images"], r[name]) for r in records if r.get("split") == split and name in r
                      and isinstance(r[name], (int, float)) and math.isfinite(r[name])]
            if points:
                xs, ys = zip(*points)
                series.append((label, [x / 1000 for x in xs], ys))
        if series:
            figs.append(_figure(curves_png(series, "training images seen (thousands)", ylabel, title), title))
    return figs


def _results_table(results: dict | None) -> str:
    if not results:
        return '<p class="note">No results.json: training has not finished.</p>'
    units = results.get("units", {})
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v['mean']:.4g}</td><td>{v['stderr']:.2g}</td>"
        f"<td>{html.escape(units.get(k, ''))}</td><td>{v['n']}</td></tr>"
        for k, v in sorted(results.get("metrics", {}).items()))
    head = (f"<p>{html.escape(results.get('split', 'test'))} split, after {results.get('epochs', 0):.3g} epochs "
            f"({results.get('images_seen', 0):,} images, {results.get('training_seconds', 0):.0f} s of training). "
            f"Protocol: {html.escape(results.get('protocol', ''))}</p>")
    return head + f"<table><tr><th>metric</th><th>mean</th><th>std. error</th><th>unit</th><th>n</th></tr>{rows}</table>"


def _eval_table(path: Path) -> str:
    """The metrics of ``deepgen eval`` (eval.json), if it was run."""
    if not path.exists():
        return ""
    data = json.loads(path.read_text())
    rows = []
    for name, v in sorted(data.get("metrics", {}).items()):
        if name == "nll":
            flat = {"nll": v["nll"], "bits/dim": v["bits_per_dim"]}
        elif name == "pr":
            flat = {k: v[k] for k in ("precision", "recall", "density", "coverage")}
        elif name == "modes":
            flat = {"modes captured": {"mean": v["modes"]}, "% high quality": {"mean": v["high_quality_percent"]},
                    "reverse KL (nats)": {"mean": v["reverse_kl"]}}
        else:
            flat = {name: v}
        for label, num in flat.items():
            err = num.get("stderr")
            rows.append(f"<tr><td>{html.escape(label)}</td><td>{num['mean']:.4g}</td>"
                        f"<td>{'' if err is None else f'{err:.2g}'}</td><td>{v.get('n', '')}</td>"
                        f"<td style='text-align:left'>{html.escape(v.get('protocol', ''))}</td></tr>")
    clf = data.get("classifier")
    note = f"<p>Feature classifier sha256: <code>{html.escape(clf['sha256'])}</code></p>" if clf else ""
    return ("<h3>Evaluation (deepgen eval)</h3><table><tr><th>metric</th><th>value</th><th>std. error</th>"
            "<th>n</th><th>protocol</th></tr>" + "".join(rows) + "</table>" + note)


# (tool, caption) of the latent pictures a report shows, when the model supports them.
LATENT_FIGURES = (
    ("interpolate", "interpolation between prior draws (rows), linear"),
    ("traverse", "traversal: row i varies latent coordinate i over [-3, 3], the rest held"),
    ("manifold", "the 2-D latent manifold through the inverse Gaussian CDF (Kingma & Welling)"),
    ("arithmetic", "arithmetic 7 - 1 + 4: rows of 3 exemplars and their mean; last row the result, then with noise"),
    ("complete", "completion: test images, what is given, completions"),
    ("neighbours", "samples (first column) and their nearest training images"),
)


def _latent_figures(model: GenerativeModel, dataset: Dataset | None) -> list[str]:
    """The latent tools' pictures; a tool the model does not support, or one that needs
    the data when it could not be loaded, is left out."""
    from .latent import LATENT_TOOLS

    figs = []
    for tool, caption in LATENT_FIGURES:
        fn = LATENT_TOOLS[tool]
        needs_data = "dataset" in inspect.signature(fn).parameters
        if needs_data and dataset is None:
            continue
        try:
            images, nrow = fn(model, **({"dataset": dataset} if needs_data else {}))
        except DeepgenError:
            continue
        figs.append(_figure(png_bytes(grid_image(images.detach(), nrow)), f"{tool}: {caption}"))
    return figs


def run_section(path: Path) -> str:
    """The HTML section of one run folder."""
    run = RunDir.open(path)
    config = run.config()
    results = run.results()
    parts = [f"<h2>{html.escape(path.name)}: {html.escape(config.family)} on {html.escape(config.data.name)}</h2>"]
    if results and "summary" in results:
        s = results["summary"]
        parts.append(f"<p><b>test {html.escape(s['metric'])}: {s['mean']:.2f} ± {s['stderr']:.2f} "
                     f"{html.escape(s['unit'])}</b></p>")
    parts.append(_results_table(results))
    parts.append(_eval_table(path / "eval.json"))
    try:
        model = load(path)
    except DeepgenError as err:
        parts.append(f'<p class="note">Model not loaded: {html.escape(str(err))}</p>')
        model = None
    figs = _curves(MODELS[config.family], run.metrics())
    dataset = None
    if model is not None:
        try:
            dataset = config.data.load()
        except DeepgenError as err:
            parts.append(f'<p class="note">Data not loaded, so no pictures that need it: {html.escape(str(err))}</p>')
    if model is not None:
        points = not model.is_image
        test_images = dataset["test"].images if dataset is not None else None
        try:
            samples = (model.preview(test_images, 2500 if points else 64, make_generator(0)) if test_images is not None
                       else model.sample(2500 if points else 64, generator=make_generator(0)))
            figs.append(_figure(samples_png(samples, model.grid_nrow, test_images if points else None),
                                f"{len(samples)} samples (seed 0)"))
        except DeepgenError as err:
            parts.append(f'<p class="note">No samples: {html.escape(str(err))}</p>')
        if model.has_encoder and dataset is not None:
            try:
                grid, nrow = reconstruction_grid(model, config, dataset=dataset)
                figs.append(_figure(png_bytes(grid_image(grid, nrow)),
                                    "test images (odd rows) and their reconstructions (even rows)"))
            except DeepgenError as err:
                parts.append(f'<p class="note">No reconstructions: {html.escape(str(err))}</p>')
    parts.append(f'<div class="figs">{"".join(figs)}</div>')
    if model is not None and model.is_image:
        latent_figs = _latent_figures(model, dataset)
        if latent_figs:
            parts.append(f"<h3>Latent space (deepgen latent RUN TOOL)</h3><div class='figs'>{''.join(latent_figs)}</div>")
    history = sorted(run.samples_dir.glob("iteration-*.png"))
    if history:
        picks = history if len(history) <= 5 else [history[round(i * (len(history) - 1) / 4)] for i in range(5)]
        parts.append("<h3>Samples during training (fixed noise)</h3><div class='figs'>" + "".join(
            _figure(p.read_bytes(), f"iteration {int(p.stem.split('-')[1])}") for p in picks) + "</div>")
    parts.append(f"<details><summary>config.json</summary><pre>{html.escape(config.to_json())}</pre></details>")
    if results:
        parts.append(f"<details><summary>results.json</summary><pre>"
                     f"{html.escape(json.dumps(results, indent=2))}</pre></details>")
    return "<section>" + "\n".join(parts) + "</section>"


def write_report(runs: list[Path], output: Path, title: str = "deepgen report") -> Path:
    """Write the HTML report of ``runs`` to ``output`` atomically; returns the path."""
    body = "\n".join(run_section(Path(r)) for r in runs)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n")
    return atomic_write_text(output, page)
