"""Two domains: the MNIST-M recipe, the optdigits set, the gradient reversal layer, ADDA,
DANN and the baselines, CycleGAN's losses and its pool, and the errors of mismatched data."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from conftest import run_cli

import deepgen
from deepgen.checkpoint import checkpoint_dirs
from deepgen.data import DATASETS
from deepgen.data.datasets import Dataset, Split, fake_dataset
from deepgen.data.mnist_m import PATCH, blend, region_rows
from deepgen.data.optdigits import upsample
from deepgen.errors import ConfigError
from deepgen.models import Batch, build_model
from deepgen.models.adaptation import reverse_gradient
from deepgen.models.cyclegan import ImagePool

SHAPES = {"source": (1, 28, 28), "target": (3, 28, 28)}


def photos(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in ((120, 90), (200, 64))]


def test_mnist_m_blend_is_the_recipe_and_a_function_of_its_seed():
    digits = np.random.default_rng(1).integers(0, 256, size=(300, 28, 28), dtype=np.uint8)
    pictures = photos()
    a, b = blend(digits, pictures, "train", 0), blend(digits, pictures, "train", 0)
    assert np.array_equal(a.images, b.images) and a.images.shape == (300, 3, 28, 28)
    assert not np.array_equal(a.images, blend(digits, pictures, "train", 1).images)
    for i in (0, 17, 299):
        patch = pictures[a.photo[i]][a.top[i] : a.top[i] + PATCH, a.left[i] : a.left[i] + PATCH]
        expected = np.abs(digits[i].astype(int)[..., None] - patch.astype(int)).transpose(2, 0, 1)
        assert np.array_equal(a.images[i], expected)


def test_mnist_m_test_patches_never_come_from_training_regions():
    digits = np.zeros((2000, 28, 28), dtype=np.uint8)
    pictures = photos()
    train, test = blend(digits, pictures, "train", 0), blend(digits, pictures, "test", 0)
    heights = np.array([p.shape[0] for p in pictures])
    cut = np.array([region_rows(h, "train")[1] for h in heights])
    assert np.all(train.top + PATCH <= cut[train.photo])  # wholly above the cut
    assert np.all(test.top >= cut[test.photo])  # wholly below it
    assert np.all(test.top + PATCH <= heights[test.photo])
    assert set(train.photo) == set(test.photo) == {0, 1}


@pytest.mark.slow
def test_mnist_m_build_matches_the_stored_checksums(tmp_path):
    # fetch_dataset verifies each written file against MNIST_M_SHA256 (DataError otherwise)
    where = deepgen.fetch_dataset("mnist-m", data_dir=tmp_path, force=True, log=lambda m: None)
    data = deepgen.load_dataset("mnist-m", data_dir=where.parent)
    assert data.sizes() == {"train": 50_000, "valid": 10_000, "test": 10_000}
    assert data.data_shape == (3, 28, 28)
    mnist = deepgen.load_dataset("mnist")
    assert torch.equal(data["test"].labels, mnist["test"].labels)


def test_optdigits_splits_and_upsampling():
    data = deepgen.load_dataset("optdigits")
    assert data.sizes() == {"train": 1097, "valid": 200, "test": 500}
    assert data.data_shape == (1, 28, 28) and data.num_classes == 10
    rows = {tuple(x.flatten().tolist()) for split in data.splits.values() for x in split.x}
    assert len(rows) > 1700  # the splits are a partition (a few digits repeat exactly)
    full = upsample(np.full((1, 8, 8), 16, dtype=np.uint8), 20)[0, 0]
    assert full[4:24, 4:24].eq(255).all() and full.sum() == 255 * 400
    other = deepgen.load_dataset("optdigits", seed=1)
    assert not torch.equal(other["test"].labels, data["test"].labels)


def test_gradient_reversal_multiplies_the_gradient_by_minus_lambda():
    x = torch.randn(4, 5, requires_grad=True)
    w = torch.randn(4, 5)
    (reverse_gradient(x, 0.3) * w).sum().backward()
    assert torch.equal(reverse_gradient(x, 0.3), x)
    torch.testing.assert_close(x.grad, -0.3 * w)


def test_streams_of_other_sizes_or_channels_are_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"source \(1, 28, 28\), target \(3, 32, 32\)"):
        build_model("dann", {"num_classes": 10}, {"source": (1, 28, 28), "target": (3, 32, 32)})
    with pytest.raises(ConfigError, match="channel counts"):
        build_model("adda", {"num_classes": 10}, {"source": (2, 28, 28), "target": (3, 28, 28)})
    with pytest.raises(ConfigError, match="identity"):
        build_model("cyclegan", {"identity": 0.5}, SHAPES)


def grey_background_pair(mnist, n: int = 3000) -> dict[str, Dataset]:
    """MNIST digits as the source; as the target, other MNIST digits at 60% contrast on a
    grey background (0.6 x + 100), which a source classifier mostly misreads."""

    def part(split: str, start: int, count: int, shift: bool) -> Split:
        x = mnist[split].x[start : start + count]
        if shift:
            x = (x.float() * 0.6 + 100).round().to(torch.uint8)
        return Split(x, mnist[split].labels[start : start + count])

    def domain(shift: bool, start: int) -> Dataset:
        splits = {"train": part("train", start, n, shift), "valid": part("valid", 0, 100, shift)}
        return Dataset("pair", splits | {"test": part("test", 0, 1000, shift)}, num_classes=10)

    return {"source": domain(False, 0), "target": domain(True, 20_000)}


@pytest.mark.slow
def test_a_short_adda_run_beats_source_only_on_a_shifted_background(mnist):
    data = grey_background_pair(mnist)
    errors = {}
    for family in ("source-only", "adda"):
        model = build_model(family, {"num_classes": 10}, {s: (1, 28, 28) for s in data})
        deepgen.fit(model, data, epochs=8, batch_size=64, progress=False, log=lambda m: None)
        x, y = data["target"]["test"].x, data["target"]["test"].labels
        with torch.no_grad():
            predicted = model.class_logits(model.preprocess(x)).argmax(1)
        errors[family] = float((predicted != y).float().mean())
    # measured: 0.48 source-only, 0.25 ADDA (1,000 test images: stderr about 0.016)
    assert errors["adda"] < errors["source-only"] - 0.1, errors


def test_image_pool_fills_then_swaps_and_is_state():
    pool = ImagePool(4, (1, 2, 2))
    g = torch.Generator().manual_seed(0)
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    assert torch.equal(pool.query(first, g), first) and int(pool.count) == 4
    new = (100 + torch.arange(64.0)).view(64, 1, 1, 1).expand(64, 1, 2, 2)
    out = pool.query(new, g)
    swapped = (out != new).flatten(1).all(1)
    assert 16 < int(swapped.sum()) < 48  # about half are swapped for a stored image
    # nothing is lost or made up: what went in is what came out plus what is kept
    values = lambda t: sorted(t[:, 0, 0, 0].tolist())
    assert values(torch.cat([first, new])) == values(torch.cat([out, pool.images]))
    assert set(pool.state_dict()) == {"images", "count"}


def test_cyclegan_cycle_loss_is_zero_for_an_identity_pair():
    model = build_model(
        "cyclegan", {"width": 4, "blocks": 1}, {"source": (1, 8, 8), "target": (1, 8, 8)}
    )
    for net in (model.G, model.F):
        for p in net.parameters():
            torch.nn.init.zeros_(p)
    x = torch.rand(5, 1, 8, 8) * 1.6 - 0.8
    with torch.no_grad():
        identity = lambda t: t
        model.G.net = model.F.net = torch.nn.Sequential(torch.nn.Identity())
        out = model._generator_loss(Batch({"source": _rows(x), "target": _rows(x)}), None)
        assert torch.equal(out["cycle"], torch.zeros(5))
        assert torch.equal(model.translate(x, "source-to-target"), (identity(x) + 1) / 2)
        evaluated = model.evaluate(Batch({"source": _rows(x)}), None)
    assert torch.equal(evaluated["cycle"], torch.zeros(5))


def _rows(x):
    from deepgen.models import StreamBatch

    return StreamBatch(x)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["source-only", "target-only", "dann", "adda", "cyclegan"])
def test_two_domain_families_resume_bitwise_from_mid_run(family, tmp_path):
    """The schedules (DANN's lambda and learning rate, ADDA's stages, CycleGAN's decay and
    image pools) are state or functions of the progress: a run resumed from an earlier
    checkpoint ends bitwise where the uninterrupted run ended."""
    side = 8 if family == "cyclegan" else 28
    source = fake_dataset(DATASETS["fake"], shape=(1, side, side), sizes=(96, 16, 16), seed=1)
    target = fake_dataset(DATASETS["fake"], shape=(3, side, side), sizes=(64, 16, 16), seed=2)
    options = (
        {"width": 4, "blocks": 1, "pool_size": 8} if family == "cyclegan" else {"num_classes": 10}
    )
    if family == "adda":
        options["source_fraction"] = 0.6  # adaptation starts after the checkpoint resumed from
    model = build_model(family, options, {"source": source.data_shape, "target": target.data_shape})
    deepgen.fit(
        model,
        {"source": source, "target": target},
        out=tmp_path / "run",
        epochs=4,
        batch_size=16,
        keep_checkpoints=4,
        progress=False,
        log=lambda m: None,
    )
    for newest in checkpoint_dirs(tmp_path / "run")[:2]:
        shutil.rmtree(newest)
    resumed = deepgen.resume(tmp_path / "run", progress=False, log=lambda m: None)
    a, b = model.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]


@pytest.mark.slow
def test_cyclegan_from_the_command_line_translates_evaluates_and_reports(tmp_path):
    from deepgen.cli import main

    run = tmp_path / "run"
    args = ["train", "cyclegan", "--data", "fake", "--stream", "target=fake", "--out", str(run)]
    args += ["--width", "4", "--blocks", "1", "--images", "256", "--batch-size", "32", "--quiet"]
    assert main(args) == 0
    npz = tmp_path / "moved.npz"
    assert main(["translate", str(run), "--npz", str(npz), "--split", "valid", "-n", "8"]) == 0
    moved = deepgen.load_dataset("arrays", data_dir=npz)
    assert sum(moved.sizes().values()) == 256 and moved.data_shape == (1, 28, 28)
    assert main(["eval", str(run), "--metrics", "translation", "--n", "64"]) == 0
    result = json_of(run / "eval.json")["metrics"]["translation"]
    for direction in ("source-to-target", "target-to-source"):
        assert 0 < result[direction]["cycle_error"]["mean"] < 1
        assert "classifier of fake" in result[direction]["skipped"]
    assert main(["report", str(run), "-o", str(tmp_path / "report.html")]) == 0
    page = (tmp_path / "report.html").read_text()
    assert "source-to-target: test images, their translations" in page
    assert "target-to-source" in page
    assert main(["translate", str(tmp_path / "nowhere")]) != 0
    not_a_translator = tmp_path / "vae"
    assert (
        main(
            [
                "train",
                "vae",
                "--data",
                "fake",
                "--images",
                "64",
                "--out",
                str(not_a_translator),
                "--quiet",
            ]
        )
        == 0
    )
    proc = run_cli("translate", str(not_a_translator))
    assert proc.returncode == 2 and "cyclegan" in proc.stderr, proc.stderr


def json_of(path):
    import json

    return json.loads(path.read_text())


def test_a_target_without_labels_trains_and_is_refused_only_for_accuracy(tmp_path):
    from deepgen.cli import main
    from deepgen.data.arrays import save_arrays

    target = fake_dataset(DATASETS["fake"], sizes=(200, 20, 20), seed=5)["train"].x
    save_arrays(tmp_path / "unlabelled.npz", target)
    run = tmp_path / "run"
    target = f"target=arrays:{tmp_path / 'unlabelled.npz'}"
    args = ["train", "dann", "--data", "fake", "--stream", target, "--out", str(run)]
    args += ["--images", "128", "--batch-size", "32", "--quiet"]
    assert main(args) == 0
    proc = run_cli("eval", str(run), "--metrics", "accuracy")
    assert proc.returncode == 2
    assert "accuracy needs labels, and the test split of stream 'target' has none" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
