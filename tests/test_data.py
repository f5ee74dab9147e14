"""Dataset registry, search order, checksums, fetch helpers and batching."""

import gzip
import pickle
import re

import numpy as np
import pytest
import torch

import deepgen
from deepgen.data import DATASETS, StreamOrder, binarize, search_dirs, symmetric, unit
from deepgen.data.fetch import mnist_pickle_to_idx, write_idx_files
from deepgen.data.idx import encode_idx
from deepgen.errors import ConfigError, DataError


def _write_dataset(directory, arrays):
    directory.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        (directory / f"{name}.gz").write_bytes(gzip.compress(encode_idx(arr)))


def test_unknown_dataset_names_the_known_ones():
    known = ", ".join(sorted(deepgen.DATASETS))
    assert {"mnist", "fashion-mnist", "expressions"} <= set(deepgen.DATASETS)
    with pytest.raises(ConfigError, match=f"unknown dataset 'nosuch'; known: {re.escape(known)}$"):
        deepgen.load_dataset("nosuch")


def test_missing_dataset_lists_every_place_and_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPGEN_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr("deepgen.data.datasets.SYSTEM_DIRS", (tmp_path / "system",))
    with pytest.raises(DataError) as err:
        deepgen.load_dataset("mnist")
    msg = str(err.value)
    for place in ("cache/mnist", "system/mnist"):
        assert place in msg
    assert "deepgen data fetch mnist" in msg


@pytest.mark.slow
def test_a_named_data_dir_is_used_or_refused_never_skipped_for_the_cache(tmp_path, mnist):
    """Issue 21, finding 5: a --data-dir holding a garbage or partial MNIST trained on the
    cached copy without a word. A whole copy is used; a bad copy is reported, not skipped."""
    mine = tmp_path / "mine"
    (mine / "mnist").mkdir(parents=True)
    with pytest.raises(DataError, match=r"neither .*mine/mnist nor .*mine holds mnist's files"):
        deepgen.load_dataset("mnist", data_dir=mine)
    (mine / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(
        DataError, match=r"holds only part of mnist: train-labels-idx1-ubyte, .* missing"
    ):
        deepgen.load_dataset("mnist", data_dir=mine)
    for name, array in mnist_like(mnist).items():
        (mine / "mnist" / f"{name}.gz").unlink(missing_ok=True)
        (mine / "mnist" / name).write_bytes(encode_idx(array))
    data = deepgen.load_dataset("mnist", data_dir=mine)
    assert data.source == str(mine / "mnist")
    recorded = deepgen.rundata.record_streams({"data": data})["data"]
    assert recorded.source == str(mine / "mnist") and recorded.request().source is None
    labels = mnist_like(mnist)["t10k-labels-idx1-ubyte"].copy()
    labels[0] ^= 1  # one flipped label: only a checksum sees it
    (mine / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(encode_idx(labels))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte is corrupt: sha256"):
        deepgen.load_dataset("mnist", data_dir=mine)


def test_a_gzip_bomb_is_refused_before_it_is_inflated(tmp_path):
    import tracemalloc

    from deepgen.data.idx import read_idx_bytes

    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    bomb.write_bytes(gzip.compress(b"\0" * 200_000_000, compresslevel=1))
    tracemalloc.start()
    with pytest.raises(DataError, match="decompresses to more than the 47,040,016 bytes"):
        read_idx_bytes(bomb, limit=47_040_016)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 120_000_000  # at most the limit (twice, while joining), never the 200 MB


def test_search_order(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPGEN_DATA", str(tmp_path / "cache"))
    dirs = search_dirs("mnist", tmp_path / "mine")
    assert dirs[:3] == [
        tmp_path / "mine" / "mnist",
        tmp_path / "mine",
        tmp_path / "cache" / "mnist",
    ]
    assert dirs[-1].as_posix() == "/usr/share/datasets/mnist"


def mnist_like(ds):
    train = torch.cat([ds["train"].x, ds["valid"].x])[:, 0].numpy()
    train_y = torch.cat([ds["train"].labels, ds["valid"].labels]).numpy().astype(np.uint8)
    return {
        "train-images-idx3-ubyte": train,
        "train-labels-idx1-ubyte": train_y,
        "t10k-images-idx3-ubyte": ds["test"].x[:, 0].numpy(),
        "t10k-labels-idx1-ubyte": ds["test"].labels.numpy().astype(np.uint8),
    }


def test_real_mnist_is_the_standard_split(mnist):
    assert {k: len(v) for k, v in mnist.splits.items()} == {
        "train": 50000,
        "valid": 10000,
        "test": 10000,
    }
    assert mnist.data_shape == (1, 28, 28)
    assert mnist["train"].x.dtype == torch.uint8
    assert mnist["train"].labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert mnist["test"].labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert torch.bincount(mnist["test"].labels).tolist()[1] == 1135


def test_pickle_conversion_round_trips_and_refuses_code():
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, size=(6, 784), dtype=np.uint8)
    parts = [
        (u8[:2] / np.float32(256), np.array([1, 2])),
        (u8[2:4] / np.float32(256), np.array([3, 4])),
        (u8[4:] / np.float32(256), np.array([5, 6])),
    ]
    arrays = mnist_pickle_to_idx(gzip.compress(pickle.dumps(tuple(parts))))
    assert np.array_equal(arrays["train-images-idx3-ubyte"].reshape(4, 784), u8[:4])
    assert arrays["t10k-labels-idx1-ubyte"].tolist() == [5, 6]

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    with pytest.raises(DataError, match="refusing to load builtins.print"):
        mnist_pickle_to_idx(gzip.compress(pickle.dumps(Evil())))


def test_write_idx_files_refuses_wrong_checksums(tmp_path):
    arrays = {
        f.name: np.zeros(f.shape[:1] + (28, 28)[: len(f.shape) - 1], np.uint8)
        for f in DATASETS["mnist"].files
    }
    with pytest.raises(DataError, match="expected"):
        write_idx_files(DATASETS["mnist"], tmp_path, arrays)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_the_validation_split_of_mnist_is_an_option(mnist):
    """n_valid moves the cut between train and valid in the training file (the default is
    the standard 50k/10k); a cut that leaves no training image is a one-line error."""
    held = deepgen.load_dataset("mnist", n_valid=1000)
    assert held.sizes() == {"train": 59_000, "valid": 1000, "test": 10_000}
    assert torch.equal(held["train"].x[:50_000], mnist["train"].x)
    assert torch.equal(held["valid"].x, mnist["valid"].x[-1000:])
    assert torch.equal(held["test"].x, mnist["test"].x)
    with pytest.raises(DataError, match="n_valid=60000 leaves no training image"):
        deepgen.load_dataset("mnist", n_valid=60_000)
    with pytest.raises(ConfigError, match="n_valid"):
        deepgen.load_dataset("mnist", n_valid=0)


def test_fashion_mnist_splits(fashion_mnist):
    assert [len(fashion_mnist[s]) for s in ("train", "valid", "test")] == [50000, 10000, 10000]


def test_preprocessing_ranges():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8)
    assert unit(x).tolist() == pytest.approx([0.0, 0.2, 1.0])
    assert symmetric(x).tolist() == pytest.approx([-1.0, -0.6, 1.0])


def test_dynamic_binarisation_is_fresh_and_unbiased():
    x = torch.full((200_000,), 51, dtype=torch.uint8)  # p = 0.2
    g = torch.Generator().manual_seed(0)
    a, b = binarize(x, g), binarize(x, g)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(a, b)
    assert abs(a.mean().item() - 0.2) < 0.005


def test_batches_depend_on_seed_stream_pass_and_position_only():
    order = StreamOrder(100, 32, draws=1, seed=1, stream="data")
    assert order.iterations_per_pass == 3  # the last partial batch is dropped
    first_pass = [order.indices(i, 0) for i in range(3)]
    assert all(len(b) == 32 for b in first_pass) and len(set(torch.cat(first_pass).tolist())) == 96
    again = StreamOrder(100, 32, 1, 1, "data")
    assert torch.equal(torch.cat(first_pass), torch.cat([again.indices(i, 0) for i in range(3)]))
    assert torch.equal(again.indices(1, 0), first_pass[1])  # from any point, as a resume needs
    assert not torch.equal(order.indices(3, 0), first_pass[0])  # the next pass is reshuffled
    for other in (StreamOrder(100, 32, 1, 2, "data"), StreamOrder(100, 32, 1, 1, "target")):
        assert not torch.equal(other.indices(0, 0), first_pass[0])


def test_a_stream_drawn_twice_per_iteration_passes_in_half_the_iterations():
    order = StreamOrder(100, 10, draws=2, seed=0, stream="data")
    assert order.iterations_per_pass == 5
    drawn = torch.cat([order.indices(i, d) for i in range(5) for d in range(2)])
    assert sorted(drawn.tolist()) == sorted(set(drawn.tolist())) and len(drawn) == 100
    assert order.position(7) == (1, 4)


def test_a_stream_smaller_than_an_iteration_cycles_through_its_passes():
    order = StreamOrder(15, 10, 2, 0, "labelled")  # 15 rows, two batches of 10 per iteration
    assert order.cyclic
    drawn = torch.cat(
        [order.indices(i, d) for i in range(3) for d in range(2)]
    )  # 60 rows = 4 passes
    for p in range(4):
        assert sorted(drawn[15 * p : 15 * (p + 1)].tolist()) == list(
            range(15)
        )  # every row once per pass
    assert not torch.equal(drawn[:15], drawn[15:30])  # each pass its own order
    again = StreamOrder(15, 10, 2, 0, "labelled")
    assert torch.equal(
        again.indices(2, 1), order.indices(2, 1)
    )  # from any point, as a resume needs
    assert order.position(2) == (2, 10)
    with pytest.raises(DataError, match="empty"):
        StreamOrder(0, 10, 1, 0, "labelled")


@pytest.mark.parametrize("name", ["ring8", "grid25", "swissroll"])
def test_toy_datasets_are_fixed_float_points(name):
    a, b = deepgen.load_dataset(name), deepgen.load_dataset(name)
    assert a.is_points and a.data_shape == (2,)
    assert [len(a[s]) for s in ("train", "valid", "test")] == [20000, 2000, 2500]
    assert torch.equal(a["test"].x, b["test"].x)
