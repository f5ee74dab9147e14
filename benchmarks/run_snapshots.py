"""A benchmark's view of a deepgen run folder whose checkpoints were all kept: one record per
checkpoint, timed by when it was written, and the model at any one of them. Shared by
budget_gan.py and budget_vae_nll.py."""

from __future__ import annotations

from pathlib import Path


def snapshots(run: Path, start: float) -> list[dict]:
    """One record per checkpoint of ``run``, oldest first: its folder name (``file``), its
    iteration (the folder's number) and ``seconds`` from the time ``start`` (time.time())
    to when it was written."""
    from deepgen.checkpoint import PREFIX, checkpoint_dirs

    records = [
        {
            "file": path.name,
            "iteration": int(path.name.removeprefix(PREFIX)),
            "seconds": (path / "manifest.json").stat().st_mtime - start,
        }
        for path in checkpoint_dirs(run)
    ]
    return sorted(records, key=lambda r: r["seconds"])


def checkpoint_model(run: Path, name: str):
    """The model of ``run`` at its checkpoint ``name``, in eval mode, as deepgen loads it."""
    import deepgen
    from deepgen.checkpoint import load_checkpoint
    from deepgen.config import RunConfig

    config = RunConfig.from_json((run / "config.json").read_text())
    model = deepgen.build_model(config.family, config.model)
    model.load_state_dict(load_checkpoint(run / "checkpoints" / name).model)
    return model.eval()
