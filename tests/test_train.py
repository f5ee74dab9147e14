"""The Trainer: exact resume, lengths, divergence, checkpoints that verify or fall back."""

import json
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

import deepgen
from deepgen.checkpoint import checkpoint_dirs, latest_checkpoint, load_checkpoint
from deepgen.config import TrainConfig
from deepgen.errors import CheckpointError, TrainingDiverged
from deepgen.models import build_model
from deepgen.rundir import RunDir
from deepgen.trainer import Trainer

SHAPE = (1, 28, 28)


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    "family,options",
    [
        ("vae", {"net": "mlp"}),
        ("gan", {"channels": 8}),
        (
            "gan",
            {
                "net": "mlp",
                "hidden_dim": 32,
                "feature_matching": True,
                "minibatch_kernels": 4,
                "historical_averaging": 0.01,
                "g_ema": 0.9,
            },
        ),
    ],
)
def test_resume_gives_bitwise_the_same_weights(family, options, tiny, tmp_path):
    full = build_model(family, options, SHAPE)
    deepgen.fit(full, tiny, out=tmp_path / "full", epochs=3, batch_size=32, progress=False)
    part = build_model(family, options, SHAPE)
    deepgen.fit(part, tiny, out=tmp_path / "part", epochs=1, batch_size=32, progress=False)
    resumed = deepgen.resume(
        tmp_path / "part", data=tiny, progress=False, log=lambda m: None, epochs=3
    )
    a, b = weights(full), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    metrics = RunDir(tmp_path / "part").metrics()
    assert [r["iteration"] for r in metrics if r["split"] == "valid"] == [8, 16, 24]


def test_two_runs_of_one_seed_write_byte_identical_checkpoints(tiny, tmp_path):
    """Every random stream of a run comes from its seed, the global torch generator too
    (it is saved in optim.safetensors), so the whole checkpoint repeats, not only the weights."""
    for name in ("a", "b"):
        torch.manual_seed(len(name) * 7 + ord(name))  # the caller's global state must not matter
        deepgen.fit(
            build_model("gan", {"channels": 8}, SHAPE),
            tiny,
            out=tmp_path / name,
            epochs=1,
            batch_size=32,
            progress=False,
            log=lambda m: None,
        )
    a, b = (checkpoint_dirs(tmp_path / name)[0] for name in ("a", "b"))
    for file in ("model.safetensors", "optim.safetensors"):
        assert (a / file).read_bytes() == (b / file).read_bytes(), file


def test_length_in_images(tiny):
    trainer = Trainer(
        build_model("vae", {"net": "mlp"}, SHAPE), tiny, TrainConfig(images=1000, batch_size=100)
    )
    assert trainer.total_iterations == 10
    gan = Trainer(
        build_model("gan", {"d_steps": 2}, SHAPE), tiny, TrainConfig(epochs=2, batch_size=32)
    )
    assert (
        gan.iters_per_epoch == 4 and gan.total_iterations == 8
    )  # 8 batches per epoch, 2 per iteration


def test_training_lowers_the_loss():
    # 256 copies of one binary pattern: a VAE should learn it quickly (random pixels
    # could not go below 784 bits = 543 nats).
    from deepgen.data import Dataset, Split

    pattern = (torch.arange(784).view(1, 1, 28, 28) % 7 < 3).to(torch.uint8) * 255
    data = Dataset(
        "pattern",
        {
            s: Split(pattern.repeat(n, 1, 1, 1))
            for s, n in (("train", 256), ("valid", 32), ("test", 32))
        },
    )
    model = build_model("vae", {"net": "mlp"}, SHAPE)
    x, g = model.preprocess(data["valid"].x), torch.Generator().manual_seed(0)
    before = -model.elbo_terms(x, g)["elbo"].mean().item()
    deepgen.fit(model, data, epochs=5, batch_size=32, progress=False)
    after = -model.elbo_terms(x, g)["elbo"].mean().item()
    assert before > 400 and after < 100, (before, after)


def test_divergence_stops_with_a_message_and_keeps_the_last_checkpoint(tiny, tmp_path):
    model = build_model("vae", {"net": "mlp", "lr": 1e3}, SHAPE)
    with pytest.raises(TrainingDiverged, match=r"loss is (nan|inf|-inf) at iteration \d+"):
        deepgen.fit(model, tiny, out=tmp_path / "run", epochs=50, batch_size=32, progress=False)
    for ckpt in checkpoint_dirs(tmp_path / "run"):
        load_checkpoint(ckpt)  # whatever was written verifies


def test_corrupt_checkpoint_falls_back_to_the_previous_one(tiny, tmp_path):
    model = build_model("vae", {"net": "mlp"}, SHAPE)
    deepgen.fit(model, tiny, out=tmp_path / "run", epochs=2, batch_size=32, progress=False)
    newest, older = checkpoint_dirs(tmp_path / "run")
    blob = bytearray((newest / "model.safetensors").read_bytes())
    blob[-10] ^= 0xFF
    (newest / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(newest)
    warnings = []
    assert latest_checkpoint(tmp_path / "run", warn=warnings.append).path == older
    assert "corrupt" in warnings[0]
    (older / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        latest_checkpoint(tmp_path / "run")


def test_checkpoints_are_not_pickles(tiny, tmp_path):
    deepgen.fit(
        build_model("gan", {"channels": 8}, SHAPE),
        tiny,
        out=tmp_path / "run",
        epochs=1,
        batch_size=32,
        progress=False,
    )
    ckpt = checkpoint_dirs(tmp_path / "run")[0]
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "manifest.json",
        "model.safetensors",
        "optim.safetensors",
        "state.json",
    ]
    state = json.loads((ckpt / "state.json").read_text())
    assert set(state["optimizers"]) == {"discriminator", "generator"}


def test_an_existing_run_folder_is_not_overwritten(tiny, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="already exists.*--resume"):
        deepgen.fit(
            build_model("vae", {"net": "mlp"}, SHAPE),
            tiny,
            out=tmp_path / "run",
            epochs=1,
            progress=False,
        )
    assert (tmp_path / "run" / "keep.txt").read_text() == "mine"


def _train_cmd(out, epochs):
    return [
        sys.executable,
        "-m",
        "deepgen",
        "train",
        "vae",
        "--data",
        "fake",
        "--net",
        "mlp",
        "--epochs",
        str(epochs),
        "--batch-size",
        "16",
        "--out",
        str(out),
        "--quiet",
    ]


def _wait_for_checkpoint(out, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if len(checkpoint_dirs(out)) >= 1:
            return
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def _wait_for_progress(out, proc, after: int, timeout=120) -> int:
    """Wait until a checkpoint newer than iteration ``after`` exists; returns its iteration."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        dirs = checkpoint_dirs(out)
        if dirs and int(dirs[0].name.split("-")[1]) > after:
            return int(dirs[0].name.split("-")[1])
        time.sleep(0.02)
    raise AssertionError("the run made no progress")


@pytest.mark.slow
def test_sigkill_then_resume_finishes_and_leaves_nothing_corrupt(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _train_cmd(out, 8), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_for_checkpoint(out, proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    for ckpt in checkpoint_dirs(out):
        load_checkpoint(ckpt)
    done = subprocess.run(
        [sys.executable, "-m", "deepgen", "train", "--resume", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "resuming" in done.stderr
    assert json.loads((out / "results.json").read_text())["iteration"] == 8 * 128
    iterations = [r["iteration"] for r in RunDir(out).metrics() if r["split"] == "valid"]
    assert iterations == sorted(set(iterations))  # no duplicated records after the resume


@pytest.mark.slow
def test_sigint_writes_a_checkpoint_and_says_how_to_resume(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _train_cmd(out, 40), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for_checkpoint(out, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted at iteration" in err and "--resume" in err and "Traceback" not in err
    stopped_at = int(re.search(r"interrupted at iteration (\d+)", err).group(1))
    assert latest_checkpoint(out).iteration == stopped_at  # written at the interruption


@pytest.mark.slow
def test_killed_at_three_random_points_ends_bitwise_equal_to_an_uninterrupted_run(tmp_path):
    import random

    from safetensors.torch import load_file

    def final_weights(out):
        return load_file(checkpoint_dirs(out)[0] / "model.safetensors")

    full = tmp_path / "full"
    assert subprocess.run(_train_cmd(full, 12), capture_output=True, timeout=300).returncode == 0
    out, rng = tmp_path / "killed", random.Random(1234)
    proc = subprocess.Popen(
        _train_cmd(out, 12), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    newest = -1
    for kill in range(3):
        newest = _wait_for_progress(out, proc, newest)  # the (resumed) run has trained on
        time.sleep(rng.uniform(0.0, 0.3))  # then somewhere inside an epoch, or between epochs
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
        for ckpt in checkpoint_dirs(out):
            load_checkpoint(ckpt)  # nothing the kill interrupted is corrupt
        proc = subprocess.Popen(
            [sys.executable, "-m", "deepgen", "train", "--resume", str(out), "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    assert proc.wait(timeout=300) == 0
    a, b = final_weights(full), final_weights(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_rollback_lowers_the_learning_rate_until_training_survives(tiny, tmp_path):
    logs = []
    model = build_model("vae", {"net": "mlp", "lr": 1e3}, SHAPE)
    deepgen.fit(
        model,
        tiny,
        out=tmp_path / "run",
        epochs=2,
        batch_size=32,
        progress=False,
        log=logs.append,
        on_divergence="rollback",
        rollback_lr_factor=1e-3,
        max_rollbacks=3,
    )
    rolled = [line for line in logs if "rolled back to iteration" in line]
    assert rolled and len(rolled) <= 3
    assert (tmp_path / "run" / "results.json").exists()
    state = json.loads((checkpoint_dirs(tmp_path / "run")[0] / "state.json").read_text())
    lr = state["optimizers"]["vae"]["param_groups"][0]["lr"]
    assert lr == pytest.approx(1e3 * 1e-3 ** len(rolled))  # the lowered rate is saved with the run
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_rollbacks_run_out_and_gradient_norms_are_guarded(tiny, tmp_path):
    model = build_model("vae", {"net": "mlp", "lr": 1e3}, SHAPE)
    with pytest.raises(TrainingDiverged, match="after 2 rollbacks"):
        deepgen.fit(
            model,
            tiny,
            out=tmp_path / "a",
            epochs=2,
            batch_size=32,
            progress=False,
            log=lambda m: None,
            on_divergence="rollback",
            rollback_lr_factor=0.9,
            max_rollbacks=2,
        )
    with pytest.raises(
        TrainingDiverged, match=r"gradient norm is .* \(max_grad_norm 1e-06\) at iteration 0"
    ):
        deepgen.fit(
            build_model("vae", {"net": "mlp"}, SHAPE),
            tiny,
            out=tmp_path / "b",
            epochs=1,
            progress=False,
            max_grad_norm=1e-6,
        )


@pytest.mark.slow
@pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::UserWarning"
)  # torch.compile internals
def test_channels_last_and_compile_train_the_same_model(tiny):
    """--channels-last and --compile change how the networks run, not what they learn: a
    few steps end close to the default run, with conv weights held channels-last."""

    def fit(**options):
        model = build_model("vae", {"hidden_dim": 16, "latent_dim": 2}, tiny.data_shape)
        deepgen.fit(
            model, tiny, images=64 * 3, batch_size=64, progress=False, log=lambda m: None, **options
        )
        return model

    reference = fit()
    for options in ({"channels_last": True}, {"compile": True}):
        model = fit(**options)
        for key, value in reference.state_dict().items():
            assert torch.allclose(model.state_dict()[key], value, atol=1e-4), (options, key)
    conv = fit(channels_last=True).encoder.net[2].weight  # (64, 32, 4, 4)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


def _overfitting_data():
    """Train on one binary pattern, validate on a copy with 10% of its pixels flipped: the
    validation loss first falls (outputs move from 0.5 towards the pattern) and then rises
    (outputs saturate, and the flipped pixels cost more and more)."""
    from deepgen.data import Dataset, Split

    pattern = (torch.arange(784).view(1, 1, 28, 28) % 7 < 3).to(torch.uint8) * 255
    flipped = pattern.clone().view(-1)
    flipped[::10] = 255 - flipped[::10]
    flipped = flipped.view(1, 1, 28, 28)
    return Dataset(
        "overfit",
        {
            "train": Split(pattern.repeat(256, 1, 1, 1)),
            "valid": Split(flipped.repeat(32, 1, 1, 1)),
            "test": Split(flipped.repeat(32, 1, 1, 1)),
        },
    )


def _valid_curve(run):
    return [(r["epoch"], r["neg_elbo"]) for r in RunDir(run).metrics() if r["split"] == "valid"]


def test_keep_best_ends_with_the_best_validation_epoch(tmp_path):
    from deepgen.seeds import derive
    from deepgen.validation import evaluate_split

    data = _overfitting_data()
    model = build_model("vae", {"net": "mlp", "lr": 3e-3}, SHAPE)
    deepgen.fit(
        model, data, out=tmp_path / "run", epochs=8, batch_size=32, keep_best=True, progress=False
    )
    curve = _valid_curve(tmp_path / "run")
    best_epoch, best_value = min(curve, key=lambda c: c[1])
    assert best_epoch < curve[-1][0], f"the validation loss should rise again: {curve}"
    selected = RunDir(tmp_path / "run").results()["selected"]["vae"]
    assert selected["epoch"] == best_epoch and selected["value"] == pytest.approx(best_value)
    again = evaluate_split(model, data, "valid", derive(0, "valid"), torch.device("cpu"))[
        "neg_elbo"
    ]["mean"]
    assert again == pytest.approx(best_value, rel=1e-6)  # the model holds the best epoch's weights
    loaded = deepgen.load(tmp_path / "run")  # ... and so does the run folder
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values())
    )


def test_per_epoch_validation_reads_the_first_valid_images(tmp_path):
    from deepgen.data import Dataset, Split
    from deepgen.seeds import derive
    from deepgen.validation import evaluate_split

    data = _overfitting_data()
    blank = torch.zeros(8, 1, 28, 28, dtype=torch.uint8)
    data = Dataset(
        "overfit", {"train": data["train"], "valid": Split(torch.cat([blank, data["valid"].x]))}
    )
    model = build_model("vae", {"net": "mlp"}, SHAPE)
    deepgen.fit(
        model, data, out=tmp_path / "run", epochs=1, batch_size=32, valid_images=8, progress=False
    )
    logged = _valid_curve(tmp_path / "run")[-1][1]
    at = lambda limit: evaluate_split(
        model, data, "valid", derive(0, "valid"), torch.device("cpu"), limit=limit
    )["neg_elbo"]
    assert at(8)["mean"] == pytest.approx(logged, rel=1e-6)
    assert abs(at(0)["mean"] - logged) > 50  # the whole split holds the patterned images too
    assert at(8)["n"] == 8 and at(0)["n"] == 40


def test_runs_saved_before_valid_images_keep_the_whole_split():
    from deepgen.config import RunConfig

    saved = {"family": "vae", "model": {}, "deepgen_version": "0.1.0", "train": {"epochs": 3}}
    assert RunConfig.model_validate(saved).train.valid_images == 0
    assert RunConfig.model_validate(saved | {"deepgen_version": ""}).train.valid_images == 2000
    saved["train"]["valid_images"] = 500
    assert RunConfig.model_validate(saved).train.valid_images == 500


def test_patience_stops_early_and_resume_selects_as_an_uninterrupted_run(tmp_path):
    data = _overfitting_data()
    options = {"net": "mlp", "lr": 3e-3}
    full = build_model("vae", options, SHAPE)
    deepgen.fit(
        full, data, out=tmp_path / "full", epochs=20, batch_size=32, patience=2, progress=False
    )
    curve = _valid_curve(tmp_path / "full")
    best_epoch = min(curve, key=lambda c: c[1])[0]
    assert (
        curve[-1][0] == best_epoch + 2 < 20
    )  # stopped two epochs without improvement after the best
    results = RunDir(tmp_path / "full").results()
    assert results["epochs"] == best_epoch + 2 and results["selected"]["vae"]["epoch"] == best_epoch

    part = build_model("vae", options, SHAPE)
    deepgen.fit(
        part, data, out=tmp_path / "part", epochs=2, batch_size=32, patience=2, progress=False
    )
    resumed = deepgen.resume(
        tmp_path / "part", data=data, progress=False, log=lambda m: None, epochs=20
    )
    assert RunDir(tmp_path / "part").results()["selected"] == results["selected"]
    a, b = weights(full), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_keep_best_needs_a_validation_metric(tiny):
    from deepgen.errors import ConfigError

    with pytest.raises(ConfigError, match="reports none"):
        Trainer(
            build_model("gan", {"channels": 8}, SHAPE), tiny, TrainConfig(epochs=1, keep_best=True)
        )
    no_valid = type(tiny)("novalid", {"train": tiny["train"]})
    with pytest.raises(ConfigError, match="need a validation split"):
        Trainer(
            build_model("vae", {"net": "mlp"}, SHAPE), no_valid, TrainConfig(epochs=1, patience=2)
        )
    quadrants = build_model("cvae-quadrants", {"hidden_dim": 16}, SHAPE)
    assert quadrants.selection() == {"baseline": "baseline_ncll", "cvae": "ncll"}
    assert build_model("vae", {"net": "mlp"}, SHAPE).selection() == {"vae": "neg_elbo"}


def test_metrics_also_go_to_tensorboard_and_read_back_with_its_own_reader(tiny, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = build_model("vae", {"net": "mlp", "hidden_dim": 16, "latent_dim": 2}, (1, 28, 28))
    deepgen.fit(
        model,
        tiny,
        out=tmp_path / "run",
        epochs=2,
        batch_size=32,
        log_every=4,
        progress=False,
        log=lambda m: None,
    )
    records = RunDir(tmp_path / "run").metrics()
    for split in ("train", "valid"):
        events = EventAccumulator(str(tmp_path / "run" / "tensorboard" / split))
        events.Reload()
        logged = events.Scalars("elbo")  # one tag for both splits: TensorBoard overlays them
        ours = [r for r in records if r["split"] == split]
        assert [e.step for e in logged] == [r["iteration"] for r in ours]
        assert [e.value for e in logged] == pytest.approx([r["elbo"] for r in ours])
        assert ("images_per_second" in events.Tags()["scalars"]) == (split == "train")


def test_training_and_validation_records_name_a_quantity_alike(tiny, tmp_path):
    model = build_model("vae", {"net": "mlp", "hidden_dim": 16, "latent_dim": 2}, (1, 28, 28))
    deepgen.fit(model, tiny, out=tmp_path / "run", epochs=1, batch_size=32, progress=False)
    records = RunDir(tmp_path / "run").metrics()
    train = set().union(*(r for r in records if r["split"] == "train"))
    valid = set().union(*(r for r in records if r["split"] == "valid"))
    assert {"elbo", "kl", "recon"} <= train & valid
    assert "vae/loss" in train and not any("/" in k for k in train - {"vae/loss"})


def test_metrics_csv_holds_every_record_even_as_new_names_appear(tiny, tmp_path):
    import csv

    model = build_model("vae", {"net": "mlp", "hidden_dim": 16, "latent_dim": 2}, (1, 28, 28))
    deepgen.fit(
        model, tiny, out=tmp_path / "run", epochs=2, batch_size=32, log_every=3, progress=False
    )
    records = RunDir(tmp_path / "run").metrics()
    with open(tmp_path / "run" / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(records) and {r["split"] for r in rows} == {"train", "valid"}
    for row, record in zip(rows, records, strict=True):
        assert set(row) >= set(record)  # the header grew when validation names appeared
        for key, value in record.items():
            assert row[key] == str(value)
        assert all(row[k] == "" for k in set(row) - set(record))


def test_without_a_terminal_progress_is_a_line_now_and_then(tiny, monkeypatch):
    import deepgen.trainer

    monkeypatch.setattr(deepgen.trainer, "PROGRESS_SECONDS", 0.0)
    lines = []
    model = build_model("vae", {"net": "mlp", "hidden_dim": 16, "latent_dim": 2}, (1, 28, 28))
    deepgen.fit(
        model, tiny, images=256, batch_size=32, log_every=2, progress=True, log=lines.append
    )
    progress = [line for line in lines if line.startswith("iteration ")]
    assert len(progress) == 4, lines  # one per record: iterations 2, 4, 6, 8
    assert progress[-1].startswith("iteration 8/8 (epoch 1)") and progress[-1].endswith("img/s")
    assert "elbo" in progress[-1]
