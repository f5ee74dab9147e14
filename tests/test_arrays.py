"""NumPy files and in-memory tensors as datasets."""

import pickle

import numpy as np
import pytest
import torch
from conftest import run_cli

import deepgen
from deepgen.data import from_tensors
from deepgen.errors import DataError


def test_layouts_and_ranges_are_normalised():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (40, 8, 8), dtype=np.uint8)
    nhwc = rng.random((40, 8, 8, 3)).astype(np.float32)
    assert from_tensors(grey).data_shape == (1, 8, 8)
    data = from_tensors(torch.from_numpy(nhwc), labels=np.arange(40) % 4)
    assert data.data_shape == (3, 8, 8) and data.num_classes == 4
    assert [len(data[s]) for s in ("train", "valid", "test")] == [36, 2, 2]
    assert data["train"].x.dtype == torch.uint8


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((10, 8, 8, 5), np.uint8), "C 1 or 3"),
        (np.full((10, 8, 8), 2.0), r"in \[0, 1\]"),
        (np.zeros((10, 8, 8), np.int32), "uint8 or float"),
        (np.zeros((2, 8, 8), np.uint8), "at least 3"),
    ],
)
def test_bad_arrays(bad, match):
    with pytest.raises(DataError, match=match):
        from_tensors(bad)


@pytest.mark.slow
def test_npz_and_npy_files_through_the_cli(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(
        tmp_path / "d.npz",
        images=rng.integers(0, 256, (64, 28, 28), dtype=np.uint8),
        labels=rng.integers(0, 10, 64),
    )
    np.save(tmp_path / "d.npy", rng.random((64, 1, 28, 28)).astype(np.float32))
    assert deepgen.load_dataset("arrays", tmp_path / "d.npy").data_shape == (1, 28, 28)
    proc = run_cli(
        "train",
        "vae",
        "--net",
        "mlp",
        "--data",
        "arrays",
        "--data-dir",
        str(tmp_path / "d.npz"),
        "--images",
        "64",
        "--batch-size",
        "16",
        "--out",
        str(tmp_path / "run"),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr


def test_bad_files_are_data_errors_and_pickles_are_refused(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 broken")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "nokey.npz", x=np.zeros(3))
    with open(tmp_path / "evil.npy", "wb") as fh:
        pickle.dump(np.zeros(3), fh)
    for name, match in (
        ("junk.npz", "not a readable"),
        ("obj.npy", "refused"),
        ("nokey.npz", "named 'images'"),
        ("evil.npy", "refused"),
        ("missing.npz", "no array file"),
    ):
        with pytest.raises(DataError, match=match):
            deepgen.load_dataset("arrays", tmp_path / name)
    with pytest.raises(DataError, match="data_dir"):
        deepgen.load_dataset("arrays")


def test_arrays_that_declare_more_than_the_limit_are_refused_before_reading(tmp_path, monkeypatch):
    """Issue 21: a 2 MB .npz holding 2 GB of zeros loaded and trained (here 200 MB, the
    limit lowered to 1 MB)."""
    import zipfile

    big = tmp_path / "bomb.npz"
    header = np.lib.format
    with (
        zipfile.ZipFile(big, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("images.npy", "w", force_zip64=True) as fh,
    ):
        header.write_array_header_1_0(
            fh, {"descr": "|u1", "fortran_order": False, "shape": (5_000, 200, 200)}
        )
        block = bytes(200 * 200 * 100)
        for _ in range(50):
            fh.write(block)
    assert big.stat().st_size < 1_000_000
    with pytest.raises(
        DataError,
        match=r"declares 200,000,\d\d\d bytes of arrays, more than the "
        r"1,000,000 allowed; .*DEEPGEN_MAX_DATA_BYTES",
    ):
        monkeypatch.setenv("DEEPGEN_MAX_DATA_BYTES", "1000000")
        deepgen.load_dataset("arrays", big)
    npy = tmp_path / "big.npy"
    np.save(npy, np.zeros((100, 100, 100), np.uint8))
    with pytest.raises(DataError, match="declares 1,000,000 bytes"):
        monkeypatch.setenv("DEEPGEN_MAX_DATA_BYTES", "999999")
        deepgen.load_dataset("arrays", npy)


@pytest.mark.parametrize(
    "images,match",
    [
        (np.zeros((10, 0, 0), np.uint8), "at least 1"),
        (np.zeros((0, 28, 28), np.uint8), "at least 1"),
    ],
)
def test_empty_images_are_refused(images, match):
    with pytest.raises(DataError, match=match):
        deepgen.from_tensors(images)


def test_string_labels_are_one_line(tmp_path):
    path = tmp_path / "named.npz"
    np.savez(path, images=np.zeros((10, 8, 8), np.uint8), labels=np.array(["cat"] * 10))
    with pytest.raises(DataError, match="labels must be integers .* not <U3 values such as .'cat'"):
        deepgen.load_dataset("arrays", path)
    with pytest.raises(DataError, match="labels must be integers >= 0"):
        deepgen.from_tensors(np.zeros((10, 8, 8), np.uint8), labels=-np.ones(10, int))
