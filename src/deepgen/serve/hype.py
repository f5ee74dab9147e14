"""The numbers of a human study: fooling rates and HYPE-infinity with bootstrap intervals
over raters and images (Zhou et al. 2019, Section 3), the CSV export and eval.json.

Raters who fail an attention check are flagged and left out of every number (they are
still counted and exported). Tutorial judgements are never scored.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DeepgenError
from ..fileio import atomic_write_bytes, atomic_write_text
from ..rundir import RunDir
from .store import Study

RESAMPLES = 2000


def _interval(values: np.ndarray, point: float) -> dict:
    """{mean, stderr, ci95} in percent of a point estimate and its bootstrap replicates."""
    lo, hi = np.percentile(values, [2.5, 97.5])
    return {
        "mean": round(100 * point, 4),
        "stderr": round(100 * float(values.std(ddof=1)), 4),
        "ci95": [round(100 * float(lo), 4), round(100 * float(hi), 4)],
    }


def bootstrap_rates(
    judged_real: np.ndarray,
    judged: np.ndarray,
    groups: dict[str, np.ndarray],
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, tuple[float, np.ndarray]]:
    """The fraction of judgements "real" in each group of images, and its bootstrap
    replicates, resampling raters and images with replacement (HYPE's two-way bootstrap).

    Args:
        judged_real: (R, I) 1 where rater r answered "real" for image i, else 0.
        judged: (R, I) 1 where rater r judged image i.
        groups: name -> column indices of the group's images.

    Returns: name -> (rate over all judgements of the group in [0, 1], (resamples,) rates);
    one rater resample is shared by all groups in a replicate, images are resampled within
    each group. A replicate that drew no judgement of a group is dropped for that group.
    """
    rng = np.random.default_rng(seed)
    n_raters = judged.shape[0]
    raters = rng.multinomial(n_raters, np.full(n_raters, 1 / n_raters), size=resamples)
    out = {}
    for name, cols in groups.items():
        real, seen = judged_real[:, cols], judged[:, cols]
        images = rng.multinomial(len(cols), np.full(len(cols), 1 / len(cols)), size=resamples)
        num = ((raters @ real) * images).sum(1)
        den = ((raters @ seen) * images).sum(1)
        ok = den > 0
        out[name] = (float(real.sum() / seen.sum()), num[ok] / den[ok])
    return out


def _flagged(rows: list[dict]) -> set[str]:
    """Raters who answered an attention check wrongly (called noise real or an obvious real
    fake)."""
    return {
        r["rater"]
        for r in rows
        if r["kind"] == "check" and (r["answer"] == "real") != (r["source"] == "real")
    }


def study_results(study: Study, resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """Per model: the fooling rate (its images judged real), HYPE-infinity (the error rate
    over its images and the real ones, each half weighted equally), and the real images'
    accuracy, each in percent with a bootstrap standard error and 95% interval.

    Raises: ConfigError when no rater who passed the checks has judged a study image.
    """
    rows = study.judgements()
    flagged = _flagged(rows)
    scored = [r for r in rows if r["kind"] == "study" and r["rater"] not in flagged]
    all_raters = {r["rater"] for r in rows if r["kind"] != "tutorial"}
    if not scored:
        raise ConfigError(
            f"study {study.name} has no judgements to score yet ({len(all_raters)} rater(s), "
            f"{len(flagged)} flagged by attention checks)"
        )
    raters = sorted({r["rater"] for r in scored})
    images = sorted({r["image"] for r in scored})
    r_index = {r: i for i, r in enumerate(raters)}
    i_index = {m: i for i, m in enumerate(images)}
    judged = np.zeros((len(raters), len(images)))
    judged_real = np.zeros_like(judged)
    source_of = {}
    for r in scored:
        a, b = r_index[r["rater"]], i_index[r["image"]]
        judged[a, b] = 1
        judged_real[a, b] = r["answer"] == "real"
        source_of[r["image"]] = r["source"]
    sources = sorted(set(source_of.values()))
    groups = {s: np.array([i_index[m] for m in images if source_of[m] == s]) for s in sources}
    rates = bootstrap_rates(judged_real, judged, groups, resamples, seed)
    counts = {s: int(judged[:, cols].sum()) for s, cols in groups.items()}
    models = {}
    real = rates.get("real")
    for name, run in study.meta["models"].items():
        if name not in rates:
            continue
        point, reps = rates[name]
        entry = {
            "run": run,
            "fooling_rate": _interval(reps, point),
            "images": len(groups[name]),
            "judgements": counts[name],
        }
        if real is not None:
            n = min(len(reps), len(real[1]))
            hype = 0.5 * (reps[:n] + 1 - real[1][:n])
            entry["hype_inf"] = _interval(hype, 0.5 * (point + 1 - real[0]))
        models[name] = entry
    return {
        "study": study.name,
        "protocol": study.meta["protocol"],
        "unit": "%",
        "raters": {"total": len(all_raters), "flagged": len(flagged), "scored": len(raters)},
        "real": None
        if real is None
        else {
            "judged_real": _interval(real[1], real[0]),
            "images": len(groups["real"]),
            "judgements": counts["real"],
        },
        "models": models,
        "resamples": resamples,
        "seed": seed,
    }


def judgements_csv(study: Study) -> bytes:
    """Every judgement as CSV, one row each, with a ``flagged`` column for raters who failed
    an attention check."""
    rows = study.judgements()
    flagged = _flagged(rows)
    buf = io.StringIO()
    fields = ["study", "rater", "position", "image", "source", "kind", "answer"]
    fields += ["response_ms", "timestamp", "flagged"]
    writer = csv.DictWriter(buf, fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(r | {"flagged": int(r["rater"] in flagged)})
    return buf.getvalue().encode()


def write_results(study: Study, results: dict, log=print) -> list[Path]:
    """STUDY/results.json and STUDY/judgements.csv, and a ``human`` entry in the eval.json of
    each model's run (merged with what `deepgen eval` wrote there). A run folder that is
    gone or whose eval.json is unreadable is named to ``log`` and left alone.

    Returns: the files written."""
    written = [
        atomic_write_text(study.path / "results.json", json.dumps(results, indent=2) + "\n"),
        atomic_write_bytes(study.path / "judgements.csv", judgements_csv(study)),
    ]
    for name, entry in results["models"].items():
        run = RunDir(entry["run"])
        try:
            RunDir.open(run.path)
            evaluation = run.evaluation() or {"metrics": {}}
        except DeepgenError as err:
            log(f"{name}: {err}; its eval.json was not updated")
            continue
        real = results["real"]
        evaluation["metrics"]["human"] = entry["fooling_rate"] | {
            "unit": "%",
            "protocol": (
                f"{results['protocol']}: fooling rate, the % of this model's images that raters "
                "called real; ± bootstrap std. error over raters and images "
                f"({results['resamples']} resamples); raters who failed an attention check "
                "left out"
            ),
            "n": entry["judgements"],
            "raters": results["raters"],
            "study": str(study.path.resolve()),
            "hype_inf": entry.get("hype_inf"),
            "reference": None
            if real is None
            else real["judged_real"] | {"of": "real test images called real"},
        }
        text = json.dumps(evaluation, indent=2, sort_keys=True) + "\n"
        written.append(atomic_write_text(run.eval_path, text))
    return written


def results_table(results: dict) -> str:
    """A plain-text table of :func:`study_results` for the terminal."""
    r = results["raters"]
    lines = [
        (
            f"study {results['study']} ({results['protocol']}): {r['scored']} rater(s) "
            f"scored, {r['flagged']} flagged by attention checks, of {r['total']}"
        ),
        f"{'model':<24} {'fooling rate %':>24} {'HYPE-inf %':>24} {'judgements':>10}",
    ]

    def cell(v: dict | None) -> str:
        if v is None:
            return "-"
        return f"{v['mean']:.1f} [{v['ci95'][0]:.1f}, {v['ci95'][1]:.1f}]"

    for name, m in results["models"].items():
        lines.append(
            f"{name:<24} {cell(m['fooling_rate']):>24} {cell(m.get('hype_inf')):>24} "
            f"{m['judgements']:>10}"
        )
    if results["real"]:
        real = results["real"]
        lines.append(
            f"{'real images called real':<24} {cell(real['judged_real']):>24} {'':>24} "
            f"{real['judgements']:>10}"
        )
    lines.append("[95% bootstrap intervals over raters and images]")
    return "\n".join(lines)
