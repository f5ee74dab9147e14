"""The IDX reader on generated files, including damaged ones; fuzzed with hypothesis."""

import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepgen.data.idx import encode_idx, parse_idx, read_idx
from deepgen.errors import DataError


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)


def test_round_trip_raw_and_gzipped(tmp_path, images):
    (tmp_path / "a").write_bytes(encode_idx(images))
    (tmp_path / "a.gz").write_bytes(gzip.compress(encode_idx(images)))
    assert np.array_equal(read_idx(tmp_path / "a"), images)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), images)
    labels = np.arange(10, dtype=np.uint8)
    assert np.array_equal(parse_idx(encode_idx(labels)), labels)


def test_header_matches_the_published_layout(images):
    data = encode_idx(images)
    assert data[:4] == b"\x00\x00\x08\x03"
    assert data[4:16] == (7).to_bytes(4, "big") + (5).to_bytes(4, "big") + (3).to_bytes(4, "big")


@pytest.mark.parametrize("cut", [0, 3, 9, 16, 50])
def test_truncated_file_is_a_data_error(tmp_path, images, cut):
    data = encode_idx(images)
    with pytest.raises(DataError, match="truncated|too short"):
        parse_idx(data[:cut] if cut < 16 else data[:-cut])


def test_padded_file_is_a_data_error(images):
    with pytest.raises(DataError, match="longer than its header"):
        parse_idx(encode_idx(images) + b"\x00")


def test_bad_magic_and_type(images):
    data = bytearray(encode_idx(images))
    data[0] = 1
    with pytest.raises(DataError, match="not an IDX file"):
        parse_idx(bytes(data))
    data = bytearray(encode_idx(images))
    data[2] = 0x0D  # float32
    with pytest.raises(DataError, match="only unsigned bytes"):
        parse_idx(bytes(data))


def test_damaged_and_truncated_gzip(tmp_path, images):
    blob = gzip.compress(encode_idx(images))
    (tmp_path / "cut.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="damaged or truncated gzip"):
        read_idx(tmp_path / "cut.gz")
    bad = bytearray(blob)
    bad[len(bad) // 2] ^= 0xFF
    (tmp_path / "flip.gz").write_bytes(bytes(bad))
    with pytest.raises(DataError):
        read_idx(tmp_path / "flip.gz")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "nope")


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=64))
def test_fuzzed_bytes_give_an_array_or_a_data_error(data):
    try:
        out = parse_idx(data)
    except DataError:
        return
    assert out.dtype == np.uint8


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.integers(0, 2**32 - 1))
def test_fuzzed_headers_never_escape(shape, seed):
    arr = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    data = bytearray(encode_idx(arr))
    data[4 + (seed % (4 * len(shape)))] ^= 1 + seed % 255  # corrupt one header byte
    try:
        parse_idx(bytes(data))
    except DataError:
        pass
