"""What `deepgen serve` serves: the run folders and studies under its paths, found afresh
on each request, and one dashboard row per run (a broken run is a row that says so)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import DeepgenError
from ..report import eval_numbers
from ..rundir import RunDir
from .store import STUDY_FILE, is_study

MAX_DEPTH = 6  # folder levels searched below a served path


@dataclass(frozen=True)
class Row:
    """One run in the dashboard. ``problem``: why the folder cannot be read (else "")."""

    id: str
    path: Path
    name: str
    family: str = ""
    data: str = ""
    seed: str = ""
    epochs: str = ""
    minutes: str = ""
    headline: str = ""
    evaluation: str = ""
    samples: str = ""  # the newest sample grid, relative to the run folder
    problem: str = ""


def run_id(path: Path) -> str:
    """A run's id in URLs: a digest of its resolved path (opaque, stable across restarts)."""
    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]


def _walk(root: Path, marker: str) -> list[Path]:
    """Folders at or below ``root`` (to :data:`MAX_DEPTH` levels) holding ``marker``."""
    if (root / marker).is_file():
        return [root]
    found = []
    for depth in range(1, MAX_DEPTH + 1):
        found += [p.parent for p in root.glob("/".join(["*"] * depth) + f"/{marker}")]
    return sorted(found)


class Served:
    """The folders given to `deepgen serve`: each is a run, a study, or holds them."""

    def __init__(self, paths: list[Path]):
        self.paths = [Path(p) for p in paths]

    def runs(self) -> dict[str, Path]:
        """id -> run folder (a folder with a config.json), readable or not."""
        out = {}
        for root in self.paths:
            for path in _walk(root, "config.json"):
                if "report-cache" not in path.parts:
                    out[run_id(path)] = path
        return out

    def studies(self) -> dict[str, Path]:
        """name -> study folder (first found wins a repeated name)."""
        out: dict[str, Path] = {}
        for root in self.paths:
            for path in _walk(root, STUDY_FILE):
                if is_study(path):
                    out.setdefault(path.name, path)
        return out


def newest_samples(run: RunDir) -> str:
    """The newest sample grid of a run, relative to its folder ("" when it has none)."""
    if not run.samples_dir.is_dir():
        return ""
    grids = sorted(run.samples_dir.glob("*.png"), key=lambda p: p.stat().st_mtime)
    return f"samples/{grids[-1].name}" if grids else ""


def row(path: Path) -> Row:
    """The dashboard row of a run folder; one that cannot be read gets its reason."""
    run = RunDir(path)
    base = {"id": run_id(path), "path": path, "name": path.name}
    try:
        config = run.config()
    except DeepgenError as err:
        return Row(**base, problem=str(err))
    try:
        results = run.results()
    except DeepgenError as err:
        results, problem = None, str(err)
    else:
        problem = "" if results else "unfinished: no results.json yet"
    summary = (results or {}).get("summary")
    headline = (
        f"{summary['metric']} {summary['mean']:.4g} ± {summary['stderr']:.2g} {summary['unit']}"
        if summary
        else ""
    )
    return Row(
        **base,
        family=config.family,
        data=config.data.name,
        seed=str(config.train.seed),
        epochs=f"{results['epochs']:.3g}" if results else "",
        minutes=f"{results.get('training_seconds', 0) / 60:.1f}" if results else "",
        headline=headline,
        evaluation=eval_numbers(run),
        samples=newest_samples(run),
        problem=problem,
    )
