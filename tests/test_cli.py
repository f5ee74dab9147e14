"""The command line through a subprocess: the happy path and its error paths."""

import gzip
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import run_cli

import deepgen
from deepgen.data.idx import encode_idx


def assert_one_line_error(proc, pattern):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("deepgen: error: ")
    assert __import__("re").search(pattern, lines[0]), lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    for family, extra in (("vae", ["--net", "mlp", "--keep-best"]), ("gan", ["--channels", "8"])):
        proc = run_cli(
            "train",
            family,
            "--data",
            "fake",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--out",
            str(root / family),
            "--quiet",
            *extra,
        )
        assert proc.returncode == 0, proc.stderr
        assert f"run folder: {root / family}" in proc.stdout
    return root


@pytest.mark.slow
def test_train_writes_a_complete_run_folder(trained):
    vae = trained / "vae"
    assert json.loads((vae / "config.json").read_text())["model"]["latent_dim"] == 20
    assert (vae / "metrics.jsonl").read_text().count("\n") >= 2
    results = json.loads((vae / "results.json").read_text())
    assert results["summary"]["metric"] == "neg_elbo" and results["metrics"]["neg_elbo"]["n"] == 256
    assert results["selected"]["vae"]["epoch"] == 1  # --keep-best: the one epoch there was


@pytest.mark.slow
def test_sample_reconstruct_report(trained, tmp_path):
    from PIL import Image

    proc = run_cli(
        "sample", str(trained / "gan"), "-n", "10", "--nrow", "5", "-o", str(tmp_path / "s.png")
    )
    assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "s.png") as img:
        assert img.size == (2 * (5 * 30 + 2), 2 * (2 * 30 + 2))
    args = ["-n", "10", "--nrow", "5", "--scale", "3", "-o", str(tmp_path / "s3.png")]
    assert run_cli("sample", str(trained / "gan"), *args).returncode == 0
    with Image.open(tmp_path / "s3.png") as img:
        assert img.size == (3 * (5 * 30 + 2), 3 * (2 * 30 + 2))
    proc = run_cli(
        "sample", str(trained / "gan"), "-n", "10", "--drs", "-o", str(tmp_path / "d.png")
    )
    assert proc.returncode == 0 and (tmp_path / "d.png").exists(), proc.stderr
    assert_one_line_error(
        run_cli("sample", str(trained / "vae"), "--drs"),
        "needs DensityRatio; a vae does not have it",
    )
    proc = run_cli("reconstruct", str(trained / "vae"), "-n", "8", "-o", str(tmp_path / "r.png"))
    assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "r.png") as img:  # input row + reconstruction row, labelled
        grid = 2 * (2 * 30 + 2)
        assert img.size[1] == grid + 14 + 4 and img.size[0] > 2 * (8 * 30 + 2) + 60
    (trained / "notes.txt").write_text("not a run")  # a folder of runs may hold other things
    (trained / "junk").mkdir(exist_ok=True)
    (trained / "junk" / "config.json").write_text("{}")
    proc = run_cli("report", str(trained), "-o", str(tmp_path / "r.html"))  # finds the runs below
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "r.html").read_text()
    assert page.count("<section>") == 2 and "data:image/png;base64," in page
    table = page[page.index("<h2>Runs</h2>") : page.index("<section>")]
    assert table.count("<tr>") == 3 and "vae" in table and "gan" in table and "neg_elbo" in table
    assert "junk" not in page and "1 epoch " in page
    assert "neg_elbo" in page and 'alt="Discriminator outputs"' in page
    assert "<figcaption>Discriminator outputs" not in page  # the plot's title says it once
    assert "<th>value ± std. error</th>" in page and "img{max-width:100%" in page
    assert page.count("Latent space") == 2 and page.count("<figcaption>neighbours: samples") == 2
    assert (
        page.count("<figcaption>arithmetic: arithmetic 7 - 1 + 4") == 1
    )  # the VAE's, by its encoder; fake data has no GAN classifier


@pytest.mark.slow
def test_reconstruct_on_a_gan_is_a_clear_error(trained):
    assert_one_line_error(
        run_cli("reconstruct", str(trained / "gan")), "needs Encoder; a gan does not have it"
    )


def test_unknown_dataset(tmp_path):
    proc = run_cli("train", "vae", "--data", "nosuch", "--out", str(tmp_path / "x"))
    known = ", ".join(sorted(deepgen.DATASETS))
    assert_one_line_error(proc, f"unknown dataset 'nosuch'; known: {re.escape(known)}$")
    assert "mnist" in known and "expressions" in known
    assert proc.returncode == 2
    assert not (tmp_path / "x").exists()


def test_negative_epochs(tmp_path):
    proc = run_cli("train", "vae", "--data", "fake", "--epochs", "-1", "--out", str(tmp_path / "x"))
    assert_one_line_error(proc, r"epochs: .*greater than or equal to 1 \(got -1\)")
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_truncated_idx_file(tmp_path):
    d = tmp_path / "data" / "mnist"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (60000, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.zeros(60000, np.uint8),
        "t10k-images-idx3-ubyte": np.zeros((10000, 28, 28), np.uint8),
        "t10k-labels-idx1-ubyte": np.zeros(10000, np.uint8),
    }
    for name, arr in files.items():
        data = encode_idx(arr)
        (d / name).write_bytes(data[:-1000] if name.startswith("train-images") else data)
    proc = run_cli(
        "train", "vae", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "x")
    )
    assert_one_line_error(proc, "train-images-idx3-ubyte is truncated")
    (d / "train-images-idx3-ubyte").unlink()
    raw = gzip.compress(encode_idx(files["train-images-idx3-ubyte"]))
    (d / "train-images-idx3-ubyte.gz").write_bytes(raw[:5000])
    proc = run_cli(
        "train", "vae", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "x")
    )
    assert_one_line_error(proc, "damaged or truncated gzip")


@pytest.mark.slow
def test_option_of_another_family(tmp_path):
    proc = run_cli("train", "vae", "--data", "fake", "--d-steps", "2", "--out", str(tmp_path / "x"))
    assert_one_line_error(proc, "--d-steps does not apply to vae")


@pytest.mark.slow
def test_bad_choice_and_unknown_family(tmp_path):
    assert_one_line_error(run_cli("train", "vae", "--net", "rnn"), "'rnn' is not one of")
    assert_one_line_error(
        run_cli("train", "diffusion", "--data", "fake"), "unknown model family 'diffusion'"
    )


@pytest.mark.slow
def test_sample_from_a_folder_that_is_not_a_run(tmp_path):
    assert_one_line_error(run_cli("sample", str(tmp_path)), "not a deepgen run folder")
    assert_one_line_error(run_cli("sample", str(tmp_path / "nope")), "no run folder at")
    assert_one_line_error(run_cli("report", str(tmp_path)), "holds no deepgen run folder")
    assert_one_line_error(run_cli("report", str(tmp_path / "nope")), "no run folder at")


@pytest.mark.slow
def test_existing_out_folder(trained):
    proc = run_cli("train", "vae", "--data", "fake", "--out", str(trained / "vae"))
    assert_one_line_error(proc, "already exists")


@pytest.mark.slow
def test_data_list_and_help():
    proc = run_cli("data", "list")
    assert proc.returncode == 0 and "fashion-mnist" in proc.stdout and "fake" in proc.stdout
    proc = run_cli("train", "vae", "--help")
    assert proc.returncode == 0 and "--latent-dim" in proc.stdout
    assert "--d-steps" in run_cli("train", "gan", "--help").stdout


@pytest.mark.slow
def test_cuda_asked_for_where_there_is_none(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = run_cli(
        "train", "vae", "--data", "fake", "--device", "cuda", "--out", str(tmp_path / "x")
    )
    assert_one_line_error(proc, "no CUDA device; use --device cpu")
    assert not (tmp_path / "x").exists()


def test_improved_gan_options_are_switches_and_numbers_on_the_command_line(tmp_path):
    out = tmp_path / "fm"
    proc = run_cli(
        "train",
        "gan",
        "--data",
        "ring8",
        "--images",
        "512",
        "--batch-size",
        "64",
        "--feature-matching",
        "--minibatch-kernels",
        "4",
        "--label-smoothing",
        "0.1",
        "--historical-averaging",
        "0.01",
        "--out",
        str(out),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    model = json.loads((out / "config.json").read_text())["model"]
    assert model["feature_matching"] is True and model["minibatch_kernels"] == 4
    assert model["label_smoothing"] == 0.1 and model["historical_averaging"] == 0.01
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("feature_matching" in r for r in records)
    proc = run_cli(
        "train",
        "gan",
        "--data",
        "ring8",
        "--loss",
        "lsgan",
        "--label-smoothing",
        "0.1",
        "--out",
        str(tmp_path / "refused"),
    )
    assert_one_line_error(proc, "label_smoothing applies to the cross-entropy losses")


def test_a_second_run_with_the_default_folder_gets_a_version_suffix(tmp_path):
    args = ("train", "gan", "--data", "ring8", "--images", "256", "--batch-size", "64", "--quiet")
    first = run_cli(*args, cwd=tmp_path)
    second = run_cli(*args, "--lr", "1e-4", cwd=tmp_path)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert "run folder: runs/gan-ring8-s0\n" in first.stdout
    assert "run folder: runs/gan-ring8-s0-v2\n" in second.stdout
    saved = json.loads((tmp_path / "runs/gan-ring8-s0-v2/config.json").read_text())
    assert saved["model"]["lr"] == 1e-4
    taken = run_cli(*args, "--out", "runs/gan-ring8-s0", cwd=tmp_path)  # --out stays exact
    assert_one_line_error(taken, "already exists")


def test_train_help_lists_the_families_or_one_familys_options():
    general = run_cli("train", "--help")
    assert general.returncode == 0
    assert "cyclegan" in general.stdout and "Unpaired image-to-image" in general.stdout
    assert "--cycle-weight" not in general.stdout and "--epochs" in general.stdout
    vae = run_cli("train", "vae", "--help").stdout
    assert "--beta " in vae and "--kl-warmup" in vae and "--epochs" in vae
    assert "--cycle-weight" not in vae and "--labels-per-class" in vae
    assert "vae:" not in vae  # the help is vae's alone, not every family's
    cyclegan = run_cli("train", "cyclegan", "--help").stdout
    assert "--cycle-weight" in cyclegan and "--beta " not in cyclegan


def test_every_option_of_every_command_has_help_and_defaults_read_alike():
    import click

    from deepgen.cli import cli

    def options(command, path):
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from options(sub, [*path, name])
            return
        ctx = click.Context(command, info_name=" ".join(path))
        for param in command.get_params(ctx):
            if isinstance(param, click.Option) and param.name != "help":
                yield " ".join(path), param, param.get_help_record(ctx)[1]

    seen = list(options(cli, ["deepgen"]))
    assert len(seen) > 100  # every command's, and every family's model options
    for where, param, text in seen:
        assert param.help, f"{where} {param.opts[0]} has no help"
        assert "(default " not in text, (
            f"{where} {param.opts[0]}: {text}"
        )  # one style: [default: X]
    assert "[default: 1.0]" in run_cli("train", "vae", "--help").stdout


def test_deepgen_help_starts_without_importing_torch():
    code = (
        "import sys, contextlib, io\n"
        "from deepgen.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    assert main(['--help']) == 0\n"
        "assert 'train' in out.getvalue()\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))[:3])\n"
    )
    command = [sys.executable, "-c", code]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_classifier_train_writes_to_the_user_cache_never_the_package(tmp_path, monkeypatch):
    from deepgen.metrics.classifier import classifier_path, load_classifier, weights_path

    shipped = weights_path("mnist").read_bytes()
    proc = run_cli(
        "classifier", "train", "fake", "--epochs", "1", env={"DEEPGEN_DATA": str(tmp_path)}
    )
    assert proc.returncode == 0, proc.stderr
    written = tmp_path / "classifiers" / "fake-classifier.safetensors"
    assert str(written) in proc.stdout and written.is_file()
    assert not weights_path("fake").exists() and weights_path("mnist").read_bytes() == shipped
    monkeypatch.setenv("DEEPGEN_DATA", str(tmp_path))
    assert classifier_path("fake") == written
    assert classifier_path("mnist") == weights_path("mnist")  # the shipped one comes first
    model, _ = load_classifier("fake")
    assert model.head[2].out_features == 10


def test_sample_writes_a_grid_an_npz_or_one_png_per_image(tmp_path):
    run = tmp_path / "cgan"
    proc = run_cli(
        "train",
        "cgan",
        "--data",
        "fake",
        "--channels",
        "8",
        "--images",
        "64",
        "--out",
        str(run),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    npz = tmp_path / "s.npz"
    assert run_cli("sample", str(run), "-n", "25", "-o", str(npz)).returncode == 0
    arrays = deepgen.load_dataset("arrays", data_dir=npz)
    total = sum(arrays.sizes().values())
    labels = torch.cat([s.labels for s in arrays.splits.values()])
    assert total == 25 and sorted(labels.tolist()) == sorted([i % 10 for i in range(25)])
    assert (
        run_cli("sample", str(run), "-n", "12", "-o", str(tmp_path / "pngs") + "/").returncode == 0
    )
    files = sorted((tmp_path / "pngs").iterdir())
    assert [f.name for f in files][:2] == ["000000.png", "000001.png"] and len(files) == 12
    grid = tmp_path / "grid.png"
    assert run_cli("sample", str(run), "-n", "12", "-o", str(grid)).returncode == 0
    assert grid.read_bytes()[:4] == b"\x89PNG"
    proc = run_cli("sample", str(run), "-n", "4", "-o", str(tmp_path / "s.jpg"))
    assert_one_line_error(proc, "FILE.png .* FILE.npz .* DIR/")
    assert not (tmp_path / "s.jpg").exists()


def test_train_from_a_config_file_with_command_line_overrides(tmp_path):
    first = tmp_path / "first"
    args = ["--data", "fake", "--images", "64", "--batch-size", "32", "--quiet"]
    assert (
        run_cli(
            "train", "vae", "--net", "mlp", "--latent-dim", "2", *args, "--out", str(first)
        ).returncode
        == 0
    )
    again = tmp_path / "again"
    proc = run_cli(
        "train",
        "--config",
        str(first / "config.json"),
        "--latent-dim",
        "3",
        "--seed",
        "5",
        "--out",
        str(again),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    before, after = (json.loads((f / "config.json").read_text()) for f in (first, again))
    assert after["family"] == "vae" and after["model"]["net"] == "mlp"
    assert after["model"]["latent_dim"] == 3 and after["train"]["seed"] == 5
    assert after["train"]["images"] == 64 and after["data"]["name"] == "fake"
    assert after["streams"]["data"]["sha256"] == before["streams"]["data"]["sha256"]
    toml = tmp_path / "run.toml"
    toml.write_text(
        'family = "ae"\n[model]\nnet = "mlp"\nlatent_dim = 4\n[data]\nname = "fake"\n'
        "[train]\nimages = 32\nbatch_size = 32\n"
    )
    proc = run_cli("train", "--config", str(toml), "--out", str(tmp_path / "ae"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "ae" / "config.json").read_text())["model"]["latent_dim"] == 4
    assert_one_line_error(run_cli("train", "gan", "--config", str(toml)), "configures a ae")
    toml.write_text("family = [")
    assert_one_line_error(run_cli("train", "--config", str(toml)), "not valid TOML")
    assert_one_line_error(
        run_cli("train", "--resume", str(first), "--config", str(toml)), "--config"
    )
    yaml = tmp_path / "run.yaml"
    yaml.write_text(
        "family: ae\nmodel: {net: mlp, latent_dim: 5}\ndata: {name: fake}\n"
        "train: {images: 32, batch_size: 32}\n"
    )
    proc = run_cli("train", "--config", str(yaml), "--out", str(tmp_path / "ae5"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "ae5" / "config.json").read_text())["model"]["latent_dim"] == 5
    yaml.write_text("family: [ae\n")
    assert_one_line_error(run_cli("train", "--config", str(yaml)), "is not valid YAML")
    yaml.write_text("- ae\n")
    assert_one_line_error(run_cli("train", "--config", str(yaml)), "holds a list, not a run")


def test_every_shipped_preset_is_a_valid_run_config_of_its_family():
    """Every TOML file in deepgen/presets is named FAMILY-NAME of a registered family, parses
    as that family's run config and builds its model."""
    from importlib import resources

    import deepgen
    from deepgen import presets
    from deepgen.models import build_model

    shipped = {f.name for f in resources.files(presets).iterdir() if f.name.endswith(".toml")}
    loaded = set()
    for family in deepgen.MODELS:
        for name in presets.names(family):
            config = presets.load(family, name)
            assert config.family == family and config.train.epochs is not None
            build_model(family, config.model, (1, 28, 28), seed=0)
            loaded.add(f"{family}-{name}.toml")
    assert loaded == shipped
    assert {"vae-best-30min.toml", "iwae-best-30min.toml"} <= shipped


def test_train_from_a_preset_with_command_line_overrides(tmp_path):
    """The preset's model and schedule reach the run; options given on top override it."""
    from deepgen import presets

    preset = presets.load("vae", "best-30min")
    run = tmp_path / "run"
    args = ["--data", "fake", "--images", "64", "--batch-size", "32", "--hidden-dim", "8"]
    proc = run_cli("train", "vae", "--preset", "best-30min", *args, "--out", str(run), "--quiet")
    assert proc.returncode == 0, proc.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["hidden_layers"] == preset.model["hidden_layers"]
    assert config["model"]["latent_dim"] == preset.model["latent_dim"]
    assert config["model"]["hidden_dim"] == 8 and config["train"]["images"] == 64
    assert config["train"]["lr_decay"] == preset.train.lr_decay and config["data"]["name"] == "fake"
    assert_one_line_error(
        run_cli("train", "vae", "--preset", "nope"), "no preset 'nope'.*best-30min"
    )
    assert_one_line_error(run_cli("train", "gan", "--preset", "best-30min"), "gan has no preset")
    assert_one_line_error(
        run_cli("train", "vae", "--preset", "best-30min", "--config", str(run / "config.json")),
        "--preset or --config, not both",
    )
    assert_one_line_error(run_cli("train", "--preset", "best-30min"), "name the family")


def test_resume_with_a_model_option_says_what_a_resume_may_change(tmp_path):
    run = tmp_path / "vae"
    args = ["--data", "fake", "--images", "32", "--batch-size", "32", "--quiet", "--out", str(run)]
    assert run_cli("train", "vae", "--net", "mlp", *args).returncode == 0
    proc = run_cli("train", "--resume", str(run), "--lr", "3e-4")
    assert_one_line_error(proc, "drop --lr .*a resume may change --epochs, --images")


@pytest.mark.slow
def test_a_report_reuses_the_pictures_of_the_same_checkpoint_and_redraws_for_a_new_one(
    tmp_path,
):
    import base64
    import io

    from PIL import Image

    run = tmp_path / "gan"
    train = ["train", "gan", "--data", "fake", "--net", "mlp", "--batch-size", "64"]
    assert run_cli(*train, "--images", "256", "--out", str(run), "--quiet").returncode == 0
    assert run_cli("report", str(run), "-o", str(tmp_path / "a.html")).returncode == 0
    (kept,) = (run / "report-cache").iterdir()
    marker = io.BytesIO()
    Image.new("L", (3, 3), 77).save(marker, format="PNG")
    (kept / "samples.png").write_bytes(marker.getvalue())  # what a second report must read
    assert run_cli("report", str(run), "-o", str(tmp_path / "b.html")).returncode == 0
    encoded = base64.b64encode(marker.getvalue()).decode()
    assert encoded in (tmp_path / "b.html").read_text()
    more = run_cli("train", "--resume", str(run), "--images", "512", "--quiet")
    assert more.returncode == 0, more.stderr
    assert run_cli("report", str(run), "-o", str(tmp_path / "c.html")).returncode == 0
    assert encoded not in (tmp_path / "c.html").read_text()
    assert [p.name for p in (run / "report-cache").iterdir()] != [kept.name]
    assert len(list((run / "report-cache").iterdir())) == 1  # the old checkpoint's are gone


def test_errors_name_the_flag_on_the_command_line_and_the_argument_in_python(tmp_path):
    import deepgen
    from deepgen.errors import DataError

    data = deepgen.load_dataset("fake", sizes=(64, 16, 16))
    model = deepgen.build_model("vae", {"net": "mlp"}, (1, 28, 28))
    with pytest.raises(DataError, match="lower batch_size$"):
        deepgen.fit(model, data, batch_size=128, progress=False)
    cli = run_cli("train", "vae", "--data", "fake", "--batch-size", "4096", "--out", str(tmp_path))
    assert_one_line_error(cli, "lower --batch-size")
    with pytest.raises(deepgen.ConfigError) as refused:
        deepgen.sample(deepgen.build_model("cgan", {}, (1, 28, 28)), 4, label=10)
    assert str(refused.value) == "label must be a class in [0, 10), not 10"
