"""Your own image folder: mixed sizes and modes, class sub-folders, a bad file, the cache,
and 64x64 RGB training of every image family from the CLI."""

import os

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
        Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(
            root / "cats" / f"{i}.png"
        )
        Image.fromarray(rng.integers(0, 256, (70, 50), dtype=np.uint8)).save(
            root / "dogs" / f"{i}.jpg"
        )
    Image.fromarray(rng.integers(0, 256, (40, 40, 4), dtype=np.uint8), "RGBA").save(
        root / "cats" / "rgba.png"
    )
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).convert("P").save(
        root / "dogs" / "pal.png"
    )
    (root / "cats" / "bad.png").write_bytes(b"\x89PNG not really")
    return root


def test_bad_file_stops_with_its_path_or_is_skipped(folder):
    with pytest.raises(DataError, match=r"cannot read image .*bad\.png.*on_bad_file='skip'"):
        deepgen.load_dataset("imagefolder", folder)
    logs = []
    data = deepgen.load_dataset(
        "imagefolder", folder, image_size=32, on_bad_file="skip", log=logs.append
    )
    assert any("bad.png" in line for line in logs)
    n = sum(len(data[s]) for s in ("train", "valid", "test"))
    assert n == 26 and data.data_shape == (3, 32, 32) and data.num_classes == 2
    labels = torch.cat([data[s].labels for s in ("train", "valid", "test")])
    assert torch.bincount(labels).tolist() == [13, 13]  # cats, dogs


def test_grey_conversion_and_the_cache(folder):
    first = deepgen.load_dataset(
        "imagefolder", folder, image_size=28, image_channels=1, on_bad_file="skip"
    )
    again = deepgen.load_dataset(
        "imagefolder", folder, image_size=28, image_channels=1, on_bad_file="skip"
    )
    assert "decoded" in first.source and "cache" in again.source
    assert torch.equal(first["train"].x, again["train"].x) and first.data_shape == (1, 28, 28)
    (folder / "cats" / "0.png").unlink()  # the folder changed: the cache key changes
    assert (
        "decoded"
        in deepgen.load_dataset(
            "imagefolder", folder, image_size=28, image_channels=1, on_bad_file="skip"
        ).source
    )


def test_missing_folder():
    with pytest.raises(DataError, match="does not exist"):
        deepgen.load_dataset("imagefolder", "/nonexistent/folder")
    with pytest.raises(DataError, match="data_dir"):
        deepgen.load_dataset("imagefolder")


@pytest.mark.slow
@pytest.mark.parametrize("family", ["vae", "gan"])
def test_a_64px_rgb_folder_trains_from_the_cli(folder, tmp_path, family):
    out = tmp_path / family
    env = {"DEEPGEN_DATA": str(tmp_path / "cache")}
    proc = run_cli(
        "train",
        family,
        "--data",
        "imagefolder",
        "--data-dir",
        str(folder),
        "--on-bad-file",
        "skip",
        "--images",
        "48",
        "--batch-size",
        "8",
        "--out",
        str(out),
        "--quiet",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("sample", str(out), "-n", "4", "-o", str(tmp_path / "s.png"), env=env)
    assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "s.png") as img:
        assert img.mode == "RGB" and img.size[0] > 2 * 64


def _grey_ramp() -> np.ndarray:
    """A 32x32 ramp 0..255 along each row: what every mode below should load as."""
    return np.tile(np.linspace(0, 255, 32).round().astype(np.uint8), (32, 1))


def _mode_image(mode: str) -> Image.Image:
    ramp = _grey_ramp()
    if mode.startswith("I;16") or mode == "I":
        wide = ramp.astype(np.uint16) * 257  # 0..65535
        if mode == "I;16B":  # big-endian bytes (PIL's convert to I;16B clips at 255)
            return Image.frombytes(mode, (32, 32), wide.astype(">u2").tobytes())
        return Image.fromarray(wide if mode != "I" else wide.astype(np.int32))
    if mode == "F":
        return Image.fromarray(ramp.astype(np.float32) / 255)
    grey = Image.fromarray(ramp)
    return grey.convert(mode)  # RGBA and LA opaque: compositing over white must change nothing


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I", "F", "RGBA", "LA", "P", "CMYK", "L", "RGB"])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_pil_mode_loads_to_the_same_grey_levels(mode, channels):
    from deepgen.data.imagefolder import to_8bit

    got = np.asarray(to_8bit(_mode_image(mode), channels), dtype=np.int16)
    want = _grey_ramp().astype(np.int16)
    if channels == 3:
        want = np.repeat(want[..., None], 3, axis=2)
    tolerance = 2 if mode == "CMYK" else 1  # CMYK's conversion rounds twice
    assert np.abs(got - want).max() <= tolerance, mode


def test_16_bit_pngs_train_as_their_grey_levels_not_white(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPGEN_DATA", str(tmp_path / "cache"))
    root = tmp_path / "sixteen"
    root.mkdir()
    for i in range(4):
        Image.fromarray(_grey_ramp().astype(np.uint16) * 257).save(root / f"{i}.png")
        Image.fromarray(_grey_ramp()).convert("1").save(root / f"bits{i}.png")
    data = deepgen.load_dataset("imagefolder", root, image_size=32, image_channels=1)
    x = torch.cat([data[s].x for s in ("train", "valid", "test")])[:, 0]
    ramps = [img for img in x if torch.equal(img, torch.from_numpy(_grey_ramp()))]
    one_bit = [img for img in x if set(img.unique().tolist()) == {0, 255}]  # dithered, not white
    assert len(ramps) == 4 and len(one_bit) == 4


def test_transparent_pixels_load_as_white():
    from deepgen.data.imagefolder import to_8bit

    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert np.asarray(to_8bit(clear, 3)).min() == 255
    with pytest.raises(DataError, match="scale is unknown"):
        to_8bit(Image.fromarray(np.full((4, 4), 70000, np.int32)), 1)


def test_a_file_name_that_is_not_utf8_loads_and_is_named_in_messages(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPGEN_DATA", str(tmp_path / "cache"))
    root = tmp_path / "latin"
    root.mkdir()
    for i in range(3):
        Image.fromarray(_grey_ramp()).save(
            os.fsdecode(bytes(root) + f"/caf\xe9{i}.png".encode("latin-1"))
        )
    (root / "bad.png").write_bytes(b"not a png")
    os.rename(root / "bad.png", os.fsdecode(bytes(root) + "/b\xe4d.png".encode("latin-1")))
    with pytest.raises(DataError, match="cannot read image"):
        deepgen.load_dataset("imagefolder", root, image_size=16)
    said = []
    data = deepgen.load_dataset(
        "imagefolder", root, image_size=16, on_bad_file="skip", log=said.append
    )
    assert sum(len(data[s]) for s in ("train", "valid", "test")) == 3 and "skipping" in said[0]


@pytest.mark.parametrize("damage", ["garbage", "other-pixels"])
def test_a_damaged_or_replaced_cache_is_rebuilt(folder, damage):
    first = deepgen.load_dataset("imagefolder", folder, image_size=16, on_bad_file="skip")
    cache = next((folder.parent / "cache" / "imagefolder").glob("*.npz"))
    if damage == "garbage":
        cache.write_bytes(b"PK\x03\x04 not a zip")
    else:
        with np.load(cache) as z:
            arrays = dict(z)
        arrays["images"] = np.zeros_like(arrays["images"])
        np.savez(cache, **arrays)
        cache.with_name(cache.stem + ".npz").rename(cache) if not cache.exists() else None
    said = []
    again = deepgen.load_dataset(
        "imagefolder", folder, image_size=16, on_bad_file="skip", log=said.append
    )
    assert any("rebuilding the image cache" in line for line in said)
    assert torch.equal(again["train"].x, first["train"].x)
