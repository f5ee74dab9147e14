"""Your own image folder: mixed sizes and modes, class sub-folders, a bad file, the cache,
and 64x64 RGB training of every image family from the CLI."""

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image

import deepgen
from deepgen.errors import DataError


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPGEN_DATA", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for i in range(12):
        (root / "cats").mkdir(parents=True, exist_ok=True)
        (root / "dogs").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(root / "cats" / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (70, 50), dtype=np.uint8)).save(root / "dogs" / f"{i}.jpg")
    Image.fromarray(rng.integers(0, 256, (40, 40, 4), dtype=np.uint8), "RGBA").save(root / "cats" / "rgba.png")
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).convert("P").save(root / "dogs" / "pal.png")
    (root / "cats" / "bad.png").write_bytes(b"\x89PNG not really")
    return root


def test_bad_file_stops_with_its_path_or_is_skipped(folder):
    with pytest.raises(DataError, match=r"cannot read image .*bad\.png.*--on-bad-file skip"):
        deepgen.load_dataset("imagefolder", folder)
    logs = []
    data = deepgen.load_dataset("imagefolder", folder, image_size=32, on_bad_file="skip", log=logs.append)
    assert any("bad.png" in line for line in logs)
    n = sum(len(data[s]) for s in ("train", "valid", "test"))
    assert n == 26 and data.data_shape == (3, 32, 32) and data.num_classes == 2
    labels = torch.cat([data[s].labels for s in ("train", "valid", "test")])
    assert torch.bincount(labels).tolist() == [13, 13]  # cats, dogs


def test_grey_conversion_and_the_cache(folder):
    first = deepgen.load_dataset("imagefolder", folder, image_size=28, image_channels=1, on_bad_file="skip")
    again = deepgen.load_dataset("imagefolder", folder, image_size=28, image_channels=1, on_bad_file="skip")
    assert "decoded" in first.source and "cache" in again.source
    assert torch.equal(first["train"].x, again["train"].x) and first.data_shape == (1, 28, 28)
    (folder / "cats" / "0.png").unlink()  # the folder changed: the cache key changes
    assert "decoded" in deepgen.load_dataset("imagefolder", folder, image_size=28, image_channels=1,
                                             on_bad_file="skip").source


def test_missing_folder():
    with pytest.raises(DataError, match="does not exist"):
        deepgen.load_dataset("imagefolder", "/nonexistent/folder")
    with pytest.raises(DataError, match="--data-dir"):
        deepgen.load_dataset("imagefolder")


@pytest.mark.slow
@pytest.mark.parametrize("family", ["vae", "gan"])
def test_a_64px_rgb_folder_trains_from_the_cli(folder, tmp_path, family):
    out = tmp_path / family
    env = {"DEEPGEN_DATA": str(tmp_path / "cache")}
    proc = run_cli("train", family, "--data", "imagefolder", "--data-dir", str(folder), "--on-bad-file", "skip",
                   "--images", "48", "--batch-size", "8", "--out", str(out), "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("sample", str(out), "-n", "4", "-o", str(tmp_path / "s.png"), env=env)
    assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "s.png") as img:
        assert img.mode == "RGB" and img.size[0] > 2 * 64
