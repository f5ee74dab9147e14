"""The IDX format of MNIST and Fashion-MNIST (LeCun et al., yann.lecun.com/exdb/mnist).

Layout: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions
``d``, then ``d`` big-endian uint32 sizes, then the data in C order. Files may be gzipped.
Only unsigned-byte data is used by these datasets, and only that is read.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

UBYTE = 0x08
_MAX_DIMS = 4


def read_idx_bytes(path: str | Path, limit: int = 1 << 30) -> bytes:
    """The decompressed bytes of an IDX file (gzip detected by its magic number).

    At most ``limit`` bytes are read or decompressed: a larger file, or a gzip stream that
    inflates past it (a "gzip bomb"), is refused before it fills memory.

    Raises:
        DataError: the file is missing, unreadable, larger than ``limit``, or a damaged
            gzip stream.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > limit:
            raise DataError(
                f"{path} holds {size:,} bytes, more than the {limit:,} its dataset can; "
                "delete it and fetch it again"
            )
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    data, rest = b"", raw
    while rest.strip(b"\0"):  # one gzip member after another, as gzip.decompress reads them
        inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            data += inflate.decompress(rest, limit + 1 - len(data))
        except zlib.error as err:
            raise DataError(
                f"{path} is a damaged or truncated gzip file ({err}); delete it and fetch it again"
            ) from None
        if len(data) > limit:
            raise DataError(
                f"{path} decompresses to more than the {limit:,} bytes its dataset can hold (a "
                "damaged or hostile file); delete it and fetch it again"
            )
        if not inflate.eof:
            raise DataError(
                f"{path} is a damaged or truncated gzip file (its stream ends early); delete it "
                "and fetch it again"
            )
        rest = inflate.unused_data
    return data


def parse_idx(data: bytes, source: str = "IDX data") -> np.ndarray:
    """Parse IDX bytes into a uint8 array of the shape the header gives.

    Raises:
        DataError: bad magic, a type other than unsigned byte, or a size that does not
            match the header (truncated or padded file).
    """
    if len(data) < 4:
        raise DataError(f"{source} is too short to be an IDX file ({len(data)} bytes)")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or not 1 <= ndim <= _MAX_DIMS:
        raise DataError(f"{source} is not an IDX file (bad magic number {data[:4].hex()})")
    if dtype != UBYTE:
        raise DataError(
            f"{source} holds IDX type 0x{dtype:02x}; only unsigned bytes (0x08) are read"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source} is truncated inside its IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    got = len(data) - header
    if got != expected:
        what = "truncated" if got < expected else "longer than its header says"
        raise DataError(
            f"{source} is {what}: header shape {tuple(shape)} needs {expected} bytes, found {got}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_idx(path: str | Path) -> np.ndarray:
    """Read a (possibly gzipped) IDX file into a uint8 array."""
    return parse_idx(read_idx_bytes(path), source=str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array (1 to 4 dimensions)."""
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"IDX encoding here takes uint8 arrays, not {array.dtype}")
    if not 1 <= array.ndim <= _MAX_DIMS:
        raise ValueError(f"IDX arrays have 1 to {_MAX_DIMS} dimensions, not {array.ndim}")
    header = struct.pack(">HBB", 0, UBYTE, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return header + array.tobytes()
