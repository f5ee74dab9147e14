"""Fuzzed image files (hypothesis): the imagefolder and arrays readers return images or
raise DataError naming the file, never a bare PIL/NumPy exception, never a pickle load."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from deepgen.data.arrays import arrays_dataset
from deepgen.data.imagefolder import load_arrays
from deepgen.errors import DataError

pytestmark = pytest.mark.slow  # thousands of hypothesis cases

FUZZ = settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
MUTATION = dict(
    cut=st.integers(0, 400),
    flips=st.lists(st.tuples(st.integers(0, 10**5), st.integers(1, 255)), max_size=6),
    junk=st.binary(max_size=32),
)


def _encoded(fmt: str, mode: str) -> bytes:
    rng = np.random.default_rng(0)
    shape = (20, 13) if mode == "L" else (20, 13, 3 if mode == "RGB" else 4)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(buf, format=fmt)
    return buf.getvalue()


ORIGINALS = {
    (fmt, mode): _encoded(fmt, mode)
    for fmt in ("PNG", "JPEG")
    for mode in ("L", "RGB", "RGBA")
    if not (fmt == "JPEG" and mode == "RGBA")
}


def _mutate(original: bytes, cut: int, flips, junk: bytes) -> bytes:
    blob = bytearray(original[: max(0, len(original) - cut)] + junk)
    for pos, xor in flips:
        if blob:
            blob[pos % len(blob)] ^= xor
    return bytes(blob)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPGEN_DATA", str(tmp_path / "cache"))
    return tmp_path / "images"


@FUZZ
@given(
    kind=st.sampled_from(sorted(ORIGINALS)),
    channels=st.sampled_from([1, 3]),
    skip=st.booleans(),
    **MUTATION,
)
def test_mutated_png_and_jpeg_files_give_images_or_a_data_error(
    folder, kind, channels, skip, cut, flips, junk
):
    shutil.rmtree(folder.parent / "cache", ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    suffix = ".png" if kind[0] == "PNG" else ".jpg"
    (folder / f"good{suffix}").write_bytes(ORIGINALS[kind])
    (folder / f"fuzzed{suffix}").write_bytes(_mutate(ORIGINALS[kind], cut, flips, junk))
    try:
        images, _, _, _ = load_arrays(folder, 8, channels, "skip" if skip else "stop")
    except DataError as err:
        assert not skip and "fuzzed" in str(err)  # the good file is always readable
        return
    assert (
        images.dtype == np.uint8 and images.shape[1:] == (channels, 8, 8) and len(images) in (1, 2)
    )


def _npz(images, labels=None) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, images=images, **({} if labels is None else {"labels": labels}))
    return buf.getvalue()


def _npy(images) -> bytes:
    buf = io.BytesIO()
    np.save(buf, images)
    return buf.getvalue()


ARRAYS = {
    ".npz": _npz(np.arange(5 * 6 * 6, dtype=np.uint8).reshape(5, 6, 6), np.arange(5)),
    ".npy": _npy(np.linspace(0, 1, 5 * 3 * 4 * 4, dtype=np.float32).reshape(5, 3, 4, 4)),
}


@FUZZ
@given(suffix=st.sampled_from(sorted(ARRAYS)), **MUTATION)
def test_mutated_array_files_give_a_dataset_or_a_data_error(tmp_path, suffix, cut, flips, junk):
    path = tmp_path / f"fuzzed{suffix}"
    path.write_bytes(_mutate(ARRAYS[suffix], cut, flips, junk))
    try:
        data = arrays_dataset(None, data_dir=path)
    except DataError as err:
        assert "fuzzed" in str(err)
        return
    assert data["train"].x.dtype.is_floating_point is False
