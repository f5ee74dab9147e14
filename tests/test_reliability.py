"""What a hostile or unlucky user found (issue 21): each finding as a test that failed
before the fix. Checkpoints are edited and re-signed so that the checks behind the hash
are what is tested."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch
from conftest import run_cli
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

import deepgen
from deepgen.checkpoint import checkpoint_dirs, latest_checkpoint, load_checkpoint
from deepgen.errors import CheckpointError, ConfigError, TrainingDiverged
from deepgen.fileio import sha256_bytes
from deepgen.metrics.evaluate import evaluate_run
from deepgen.models import build_model
from deepgen.report import write_report
from deepgen.rundir import RunDir

SHAPE = (1, 28, 28)
SMALL = {"net": "mlp", "hidden_dim": 8, "latent_dim": 2}
FILES = ("model.safetensors", "optim.safetensors", "state.json")
TRAIN_FAKE = [
    "train",
    "vae",
    "--data",
    "fake",
    "--net",
    "mlp",
    "--epochs",
    "1",
]  # a 1-epoch MLP VAE


@pytest.fixture(scope="module")
def base_run(tiny, tmp_path_factory):
    """A 2-epoch VAE run (8 iterations, checkpoints at 4 and 8) on the stored tiny data."""
    out = tmp_path_factory.mktemp("reliability") / "run"
    fit_small(tiny, out, epochs=2)
    return out


def fit_small(tiny, out, epochs: int, log=lambda m: None, **options) -> None:
    """Train a small MLP VAE (with model ``options``) on the tiny data into ``out``."""
    model = build_model("vae", SMALL | options, SHAPE)
    deepgen.fit(model, tiny, out=out, epochs=epochs, batch_size=64, progress=False, log=log)


@pytest.fixture
def run(base_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(base_run, copy)
    return copy


def resign(ckpt, **replace: bytes) -> None:
    """Replace files of a checkpoint and write a manifest that matches them."""
    for name, blob in replace.items():
        (ckpt / name.replace("_", ".", 1)).write_bytes(blob)
    manifest = {n: sha256_bytes((ckpt / n).read_bytes()) for n in FILES}
    (ckpt / "manifest.json").write_text(json.dumps(manifest))


def edit_weights(ckpt, change) -> None:
    model = st_load((ckpt / "model.safetensors").read_bytes())
    change(model)
    resign(ckpt, model_safetensors=st_save(model))


def edit_state(ckpt, **values) -> None:
    state = json.loads((ckpt / "state.json").read_text()) | values
    resign(ckpt, state_json=json.dumps(state).encode())


# --- 1, 9, 6: which checkpoint a number came from; checkpoints that do not fit ------------
def test_eval_and_report_say_when_an_older_checkpoint_is_used_and_record_it(run, tmp_path):
    newest, older = checkpoint_dirs(run)
    (newest / "manifest.json").write_text("{}")
    said = []
    results = evaluate_run(run, ["nll"], n=16, k=2, log=said.append)
    assert any("using the older checkpoint ckpt-000000004" in line for line in said)
    cited = results["metrics"]["nll"]["checkpoint"]
    assert cited["iteration"] == 4 and cited["newest"] is False
    assert cited["manifest_sha256"] == sha256_bytes((older / "manifest.json").read_bytes())
    page = write_report([run], tmp_path / "r.html").read_text()
    assert "using the older checkpoint" in page and "computed at iteration 8" in page


@pytest.mark.parametrize(
    "change,why",
    [
        (lambda m: m.update({k: v[:1] for k, v in list(m.items())[:1]}), "has shape"),
        (lambda m: m.pop(next(iter(m))), "missing"),
        (lambda m: m.update({k: v.double() for k, v in m.items()}), "is float64"),
        (lambda m: m.update({k: v.to(torch.int8) for k, v in m.items()}), "is int8"),
        (lambda m: next(iter(m.values())).view(-1)[0].fill_(float("nan")), "NaN"),
    ],
)
def test_a_checkpoint_that_verifies_but_does_not_fit_is_skipped_with_a_reason(run, change, why):
    newest, _ = checkpoint_dirs(run)
    edit_weights(newest, change)
    said = []
    model = deepgen.load(run, warn=said.append)
    assert why in said[0] and "using the older checkpoint" in said[1]
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_checkpoint_of_another_family_is_skipped(run):
    edit_state(checkpoint_dirs(run)[0], family="gan")
    said = []
    deepgen.load(run, warn=said.append)
    assert "is a gan checkpoint, not a vae one" in said[0]


@pytest.mark.parametrize("iteration", [-5, 1.5, "abc", [], None, True])
def test_a_state_with_an_impossible_iteration_is_refused(run, iteration):
    newest, older = checkpoint_dirs(run)
    edit_state(newest, iteration=iteration)
    with pytest.raises(CheckpointError, match="iteration must be a whole number"):
        load_checkpoint(newest)
    assert latest_checkpoint(run).path == older


def test_a_state_whose_iteration_is_not_its_folder_is_refused(run):
    newest, _ = checkpoint_dirs(run)
    edit_state(newest, iteration=3)
    with pytest.raises(CheckpointError, match="says iteration 3, but the folder is ckpt-000000008"):
        load_checkpoint(newest)


# --- tracebacks where a line belongs: files that are not what they seem ------------------
@pytest.mark.parametrize("what", ["fifo", "dev-zero", "deep-manifest", "huge-manifest"])
def test_checkpoint_files_that_are_not_regular_or_sane_are_refused_without_reading(run, what):
    newest = checkpoint_dirs(run)[0]
    if what == "fifo":
        (newest / "model.safetensors").unlink()
        os.mkfifo(newest / "model.safetensors")
        match = "not a regular file"
    elif what == "dev-zero":
        (newest / "optim.safetensors").unlink()
        (newest / "optim.safetensors").symlink_to("/dev/zero")
        match = "not a regular file"
    elif what == "deep-manifest":
        (newest / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
        match = "nested too deeply"
    else:
        (newest / "manifest.json").write_bytes(b" " * (2 << 20))
        match = "more than the"
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(newest)
    said = []
    deepgen.load(run, warn=said.append)  # falls back to the older one
    assert match in said[0]


def test_a_checkpoint_file_larger_than_its_manifest_says_is_not_read(run):
    newest = checkpoint_dirs(run)[0]
    manifest = json.loads((newest / "manifest.json").read_text())
    assert manifest["bytes"]["model.safetensors"] == (newest / "model.safetensors").stat().st_size
    with open(newest / "model.safetensors", "ab") as fh:
        fh.write(b"\0" * 1000)
    with pytest.raises(CheckpointError, match="more than the"):
        load_checkpoint(newest)


def test_metrics_lines_that_are_not_records_are_ignored_by_resume_and_report(run, tmp_path):
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write(
            '[1, 2]\n"text"\n42\n{"no": "iteration"}\n{"iteration": "x"}\n' + "[" * 50_000 + "\n"
        )
    records = RunDir(run).metrics()
    assert records and all(isinstance(r["iteration"], int) for r in records)
    write_report([run], tmp_path / "r.html")
    deepgen.resume(run, epochs=3, progress=False, log=lambda m: None)
    assert RunDir(run).results()["iteration"] == 12


# --- 3: one writer per run folder ---------------------------------------------------------
def test_a_second_writer_is_refused_with_the_holders_pid(run):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import fcntl, os, sys, time\n"
                f"fd = os.open({str(run / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
                "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode())\n"
                "print('locked', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = (run / "config.json").read_bytes()
        with pytest.raises(
            CheckpointError, match=f"being written by another process \\(PID {holder.pid}\\)"
        ):
            deepgen.resume(run, epochs=3, progress=False)
        assert (run / "config.json").read_bytes() == before
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    deepgen.resume(run, epochs=3, progress=False, log=lambda m: None)  # the kernel released it


def test_a_run_in_progress_holds_its_folder_until_it_ends(tiny, tmp_path):
    out, refused = tmp_path / "run", []

    def log(line):  # called by the training itself, while it writes the folder
        if line.startswith("epoch 1/2"):
            with pytest.raises(CheckpointError, match=f"PID {os.getpid()}") as err:
                deepgen.resume(out, progress=False)
            refused.append(str(err.value))

    fit_small(tiny, out, epochs=2, log=log)
    assert len(refused) == 1 and RunDir(out).results()["iteration"] == 8
    deepgen.resume(
        out, epochs=3, progress=False, log=lambda m: None
    )  # released when training ended


# --- 4: what a resume may change -----------------------------------------------------------
def test_a_resume_cannot_shorten_a_run_or_change_what_it_computes(run):
    before = (run / "config.json").read_bytes()
    with pytest.raises(
        ConfigError, match="has trained 8 iterations .2 epochs.; a resume cannot shorten it"
    ):
        deepgen.resume(run, epochs=1, progress=False)
    with pytest.raises(ConfigError, match="cannot change batch_size, seed"):  # Python's names
        deepgen.resume(run, batch_size=32, seed=3, progress=False)
    assert (run / "config.json").read_bytes() == before


def test_a_resume_records_each_change_and_later_plain_resumes_keep_it(run):
    deepgen.resume(run, epochs=3, max_grad_norm=1e6, progress=False, log=lambda m: None)
    deepgen.resume(run, progress=False, log=lambda m: None)  # a plain resume after it
    deepgen.resume(run, epochs=4, progress=False, log=lambda m: None)
    config = RunDir(run).config()
    assert config.train.epochs == 4 and config.train.max_grad_norm == 1e6
    assert [h["iteration"] for h in config.history] == [8, 12]
    assert config.history[0]["changes"] == {"epochs": [2, 3], "max_grad_norm": [None, 1e6]}
    assert RunDir(run).results()["iteration"] == 16


# --- 7: a run that failed before its first checkpoint -------------------------------------
def test_a_run_that_diverged_before_any_checkpoint_can_be_resumed_from_the_start(tiny, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="no checkpoint was written yet") as err:
        fit_small(tiny, out, epochs=1, lr=1e6)
    assert "last checkpoint is kept" not in str(err.value)
    assert checkpoint_dirs(out) == []
    said = []
    with pytest.raises(TrainingDiverged):  # the same maths diverges again, from iteration 0
        deepgen.resume(out, progress=False, log=said.append)
    assert "training from iteration 0" in said[0]


@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_resumes_from_the_start(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deepgen",
            *TRAIN_FAKE,
            "--batch-size",
            "16",
            "--quiet",
            "--out",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while not (out / "config.json").exists() and time.time() < deadline:
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    if checkpoint_dirs(out):
        pytest.skip("the run wrote its checkpoint before it could be killed")
    done = run_cli("train", "--resume", str(out), "--quiet")
    assert done.returncode == 0, done.stderr
    assert "training from iteration 0" in done.stderr
    assert RunDir(out).results()["iteration"] == 2048 // 16


# --- bad values that must be one line -------------------------------------------------------
@pytest.mark.parametrize(
    "args,match",
    [
        (["--seed", str(10**20)], "--seed"),
        (["--seed", "-1"], "--seed"),
        (["--device", "meta"], "cannot train or run a model"),
    ],
)
def test_bad_training_values_are_one_line(tmp_path, args, match, capsys):
    from deepgen.cli import main

    rc = main([*TRAIN_FAKE, "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err
    assert rc != 0 and "Traceback" not in err
    assert match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_a_model_too_big_for_the_machine_is_refused_before_allocating():
    with pytest.raises(
        ConfigError, match=r"would hold [\d,]+ parameters \(12.8 GB\), .*DEEPGEN_MAX_MODEL_BYTES"
    ):
        build_model("vae", {"net": "mlp"}, (1, 2000, 2000))


# --- 10 and signals -------------------------------------------------------------------------
def test_a_stop_signal_during_the_last_iteration_is_reported_and_resume_finishes(tiny, tmp_path):
    import signal

    from deepgen.errors import Interrupted

    out = tmp_path / "run"

    def log(line):
        if line.startswith("epoch 1/1"):  # the last iteration's epoch end, before its checkpoint
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(
        Interrupted, match="during the last iteration .4., whose checkpoint is complete"
    ):
        fit_small(tiny, out, epochs=1, log=log)
    assert latest_checkpoint(out).iteration == 4 and not (out / "results.json").exists()
    deepgen.resume(out, progress=False, log=lambda m: None)
    assert RunDir(out).results()["iteration"] == 4


@pytest.mark.parametrize(
    "command", [[sys.executable, "-m", "deepgen"], [shutil.which("deepgen") or "deepgen"]]
)
def test_ctrl_c_during_start_up_is_one_line(tmp_path, command):
    import signal

    proc = subprocess.Popen(
        [*command, "train", "vae", "--data", "fake", "--out", str(tmp_path / "r")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a suite started in the background (`cmd &` without job control) ignores SIGINT,
        # and children inherit that: give the child the default disposition
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(0.3)  # importing torch for the command takes longer than this
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    # The shell shows 130 for both: Python 3.11 ends by its own SIGINT (-2 here) when the
    # interrupt first surfaced inside a string exec (dataclasses build methods that way)
    assert proc.returncode in (130, -signal.SIGINT) and err.strip() == "deepgen: interrupted"


@pytest.mark.parametrize("delay", [0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5])
def test_ctrl_c_while_torch_loads_is_never_lost(tmp_path, delay):
    """torch's C++ start-up swallowed a KeyboardInterrupt raised while it imported numpy: the
    run went on to the end and exited 0. The window moves with the machine's speed, so the
    test presses Ctrl-C at several moments of the import."""
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-m", "deepgen", "train", "vae", "--data", "fake", "--epochs", "1"]
        + ["--out", str(tmp_path / "r")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (130, -signal.SIGINT), err[-400:]
    assert "Traceback" not in err and not (tmp_path / "r" / "results.json").exists()


# --- the machine refuses a write ------------------------------------------------------------
@pytest.mark.slow
def test_a_full_disk_at_a_checkpoint_is_one_line_and_keeps_the_older_ones(run):
    import resource
    import signal

    limit = 100_000  # bytes per file: more than a sample grid or the weights, less than the optimiser state
    newest = checkpoint_dirs(run)[0]
    assert (
        (newest / "optim.safetensors").stat().st_size
        > limit
        > (newest / "model.safetensors").stat().st_size
    )

    def small_files():  # a write past the limit fails with EFBIG, as one on a full disk with ENOSPC
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    before = [p.name for p in checkpoint_dirs(run)]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "deepgen",
            "train",
            "--resume",
            str(run),
            "--epochs",
            "3",
            "--quiet",
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        preexec_fn=small_files,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("deepgen: error: File too large")
    assert "the checkpoints written before are intact" in done.stderr
    assert [p.name for p in checkpoint_dirs(run)] == before
    for ckpt in checkpoint_dirs(run):
        load_checkpoint(ckpt)
    assert not list((run / "checkpoints").glob(".tmp-*"))
    deepgen.resume(run, epochs=3, progress=False, log=lambda m: None)  # once there is room again


@pytest.mark.slow
def test_a_place_the_system_will_not_let_us_write_is_one_line(run, tmp_path):
    target = "/sys/deepgen-test.png"
    if os.access("/sys", os.W_OK) and not os.path.ismount("/sys"):
        pytest.skip("/sys is writable here")
    done = run_cli("sample", str(run), "-n", "4", "-o", target)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "cannot write there" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "command", [["sample", "-n", "2"], ["eval", "--metrics", "nll", "--n", "4", "--k", "2"]]
)
def test_a_seed_too_large_for_a_generator_is_one_line(run, command, capsys):
    from deepgen.cli import main

    rc = main([command[0], str(run), *command[1:], "--seed", str(10**20)])
    err = capsys.readouterr().err
    assert rc == 2 and "--seed" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("where", ["file/sub", "/proc/deepgen-x", "/sys/deepgen-x"])
def test_an_out_folder_that_cannot_be_made_is_one_line(tmp_path, where, capsys):
    from deepgen.cli import main

    (tmp_path / "file").write_text("mine")
    out = where if where.startswith("/") else str(tmp_path / where)
    rc = main([*TRAIN_FAKE, "--out", out])
    err = capsys.readouterr().err
    assert (
        rc == 1
        and err.startswith("deepgen: error: cannot make the run folder")
        and err.count("\n") == 1
    )
    assert (tmp_path / "file").read_text() == "mine"


def test_a_report_to_a_place_that_cannot_be_written_is_one_line(run, capsys):
    from deepgen.cli import main

    rc = main(["report", str(run), "-o", "/sys/deepgen-report.html"])
    err = capsys.readouterr().err
    assert rc == 1 and "cannot write there" in err and err.count("\n") == 1


def test_a_refused_out_folder_is_left_exactly_as_it_was(tiny, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="already exists"):
        fit_small(tiny, out, epochs=1)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_resuming_a_read_only_run_folder_is_one_line(run, tmp_path, capsys):
    """A read-only bind mount (root's chmod would not stop root); skipped where the test
    may not mount."""
    from deepgen.cli import main

    view = tmp_path / "read-only"
    view.mkdir()
    mounted = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(run), str(view)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip("cannot bind-mount read-only here (needs root)")
    try:
        before = sorted(p.name for p in run.rglob("*"))
        rc = main(["train", "--resume", str(view), "--epochs", "3", "--quiet"])
        err = capsys.readouterr().err
        assert rc == 1 and "cannot write in the run folder" in err and "Read-only" in err, err
        assert err.count("\n") == 1 and sorted(p.name for p in run.rglob("*")) == before
    finally:
        subprocess.run(["umount", str(view)], check=False)


def test_a_model_saved_outside_a_run_folder_loads_exactly_and_refuses_damage(tiny, tmp_path):
    from deepgen.models import build_model

    model = build_model("vae", {"net": "mlp", "hidden_dim": 16, "latent_dim": 2}, (1, 28, 28))
    deepgen.fit(model, tiny, images=128, batch_size=32, progress=False, log=lambda m: None)
    path = model.save(tmp_path / "saved")
    assert sorted(p.name for p in path.iterdir()) == ["model.json", "model.safetensors"]
    loaded = deepgen.load(path, device="cpu")
    assert loaded.family == "vae" and not loaded.training
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(model.eval().sample(4, generator=g()), loaded.sample(4, generator=g()))
    with pytest.raises(deepgen.CheckpointError, match="exists"):
        deepgen.save(model, path)
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    with pytest.raises(deepgen.CheckpointError, match="sha256"):
        deepgen.load(path)
    assert not list(tmp_path.glob(".saved.*"))  # no temporary folder left behind
