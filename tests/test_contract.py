"""The contract: a family defined here, outside src/, with two streams and two players,
goes through every tool it declares a capability for, with no change to the library; a
family without a latent space is refused by every latent tool, in one line."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from pydantic import Field
from torch import nn

import deepgen
from deepgen.checkpoint import checkpoint_dirs
from deepgen.config import DataConfig, RunConfig, TrainConfig
from deepgen.latent import LATENT_TOOLS
from deepgen.models import (
    MODELS,
    Classifier,
    ClosedForm,
    ExactDensity,
    GenerativeModel,
    LatentSpace,
    MissingCapability,
    ModelConfig,
    Player,
    Translator,
    register_model,
)
from deepgen.models.base import adam

SOURCE = {"shape": (1, 8, 8), "sizes": (96, 32, 32), "seed": 1}
TARGET = {"shape": (1, 8, 8), "sizes": (64, 32, 32), "seed": 2}


class ToyPairConfig(ModelConfig):
    latent_dim: int = Field(2, ge=1, description="size of z")
    lr: float = Field(1e-2, gt=0, description="Adam learning rate")


class ToyPair(LatentSpace, Classifier, Translator, GenerativeModel):
    """Two streams, two players: a classifier of the source stream (two steps per
    iteration) and a linear autoencoder of the target stream, whose decoder is the latent
    space and which translates source images by encoding and decoding them."""

    family = "toy-pair"
    Config = ToyPairConfig
    streams = ("source", "target")
    directions = ("source-to-target",)
    num_classes = 10
    summary = ("target/recon", "squared error per image")
    units = {"recon": "squared pixel units per image", "cross_entropy": "nats"}

    def __init__(self, config: ToyPairConfig):
        super().__init__(config)
        d = math.prod(self.shape("target"))
        self.latent_dim = config.latent_dim
        self.classifier = nn.Linear(math.prod(self.shape("source")), 10)
        self.encoder = nn.Linear(d, config.latent_dim)
        self.decoder = nn.Linear(config.latent_dim, d)

    def class_logits(self, x):
        return self.classifier(x.flatten(1))

    def generate(self, z):
        return torch.sigmoid(self.decoder(z)).view(len(z), *self.shape("target"))

    def translate(self, x, direction):
        self.direction_streams(direction)
        return self.generate(self.encoder(x.flatten(1)))

    def _recon(self, x):
        return (self.generate(self.encoder(x.flatten(1))) - x).pow(2).flatten(1).sum(1)

    def players(self):
        lr = self.config.lr
        autoencoder = nn.ModuleList([self.encoder, self.decoder])
        return [
            Player(
                "classifier",
                self.classifier,
                lambda b, g: {
                    "loss": nn.functional.cross_entropy(
                        self.class_logits(b["source"].x), b["source"].y, reduction="none"
                    )
                },
                lambda p: adam(p, lr),
                steps=2,
                streams=("source",),
            ),
            Player(
                "autoencoder",
                autoencoder,
                lambda b, g: {"loss": self._recon(b["target"].x)},
                lambda p: adam(p, lr),
                streams=("target",),
            ),
        ]

    def evaluate(self, batch, generator):
        if "target" in batch.streams:
            return {"recon": self._recon(batch.x)}
        return {
            "cross_entropy": nn.functional.cross_entropy(
                self.class_logits(batch.x), batch.y, reduction="none"
            )
        }


class ToyDensity(ExactDensity, ClosedForm, GenerativeModel):
    """A diagonal Gaussian of the pixels, fitted in closed form: a likelihood, nothing else."""

    family = "toy-density"
    Config = ModelConfig

    def __init__(self, config):
        super().__init__(config)
        self.register_buffer("mean", torch.zeros(math.prod(self.data_shape)))
        self.register_buffer("var", torch.ones(math.prod(self.data_shape)))

    def players(self):
        return []

    def fit_closed_form(self, x, seed=0):
        self.mean.copy_(x.flatten(1).mean(0))
        self.var.copy_(x.flatten(1).var(0) + 1e-2)
        return ""

    def log_density(self, x):
        return deepgen.losses.gaussian_log_likelihood(x.flatten(1), self.mean, 0.5 * self.var.log())


for _cls in (ToyPair, ToyDensity):
    if _cls.family not in MODELS:
        register_model(_cls)


def toy_config(epochs: int) -> RunConfig:
    return RunConfig(
        family="toy-pair",
        model={},
        data=DataConfig(name="fake", options=SOURCE),
        streams={"target": DataConfig(name="fake", options=TARGET)},
        train=TrainConfig(epochs=epochs, batch_size=16, seed=1, log_every=1),
    )


def quiet(msg):
    pass


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


# A child process that imports this file (so the family is registered there too) and trains.
CHILD = """
import sys
sys.path.insert(0, {tests!r})
import deepgen, test_contract
deepgen.train(test_contract.toy_config({epochs}), {out!r}, progress=False, log=test_contract.quiet)
"""


def _killed_after_first_checkpoint(out: Path, epochs: int) -> None:
    code = CHILD.format(tests=str(Path(__file__).parent), epochs=epochs, out=str(out))
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not checkpoint_dirs(out):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert checkpoint_dirs(out), f"the child wrote no checkpoint: {err.decode()[-2000:]}"


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy") / "run"
    model = deepgen.train(toy_config(3), out, progress=False, log=quiet)
    return out, model


def test_two_streams_are_drawn_each_at_its_own_pace(toy_run):
    from deepgen.checkpoint import latest_checkpoint
    from deepgen.rundir import RunDir

    out, _ = toy_run
    run = RunDir.open(out)
    config = run.config()
    assert set(config.streams) == {"source", "target"}
    assert config.streams["source"].sizes == {"test": 32, "train": 96, "valid": 32}
    assert config.streams["target"].sha256 and config.streams["target"].options["seed"] == 2
    state = latest_checkpoint(out).state
    # source: 96 // 16 = 6 batches a pass, drawn twice per iteration -> 3 iterations an epoch;
    # target: 64 // 16 = 4 batches, once per iteration -> a pass every 4 iterations.
    assert state["iteration"] == 9 and state["streams"] == {
        "source": {"pass": 3, "batch": 0},
        "target": {"pass": 2, "batch": 1},
    }
    results = run.results()
    assert set(results["metrics"]) == {"source/cross_entropy", "target/recon"}
    assert results["metrics"]["target/recon"]["n"] == 32


def test_a_killed_two_stream_run_resumes_to_the_same_weights(toy_run, tmp_path):
    out, full = toy_run
    part = tmp_path / "part"
    _killed_after_first_checkpoint(part, 3)
    resumed = deepgen.resume(part, progress=False, log=quiet)
    a, b = weights(full), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_load_sample_eval_report_and_latent_tools_work_on_the_toy_family(toy_run, tmp_path):
    from deepgen.metrics.evaluate import evaluate_run
    from deepgen.report import write_report

    out, trained = toy_run
    model = deepgen.load(out)
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), trained.state_dict().values())
    )
    assert deepgen.sample(model, 5).shape == (5, 1, 8, 8)
    results = evaluate_run(out, ["accuracy", "parzen"], n=32, log=quiet)
    accuracy = results["metrics"]["accuracy"]
    assert accuracy["stream"] == "source" and 0 <= accuracy["mean"] <= 1 and accuracy["n"] == 32
    data = deepgen.run_data(out)
    for name in ("interpolate", "traverse", "manifold", "complete", "neighbours"):
        entry = LATENT_TOOLS[name]
        images, nrow = entry.fn(model, **({"dataset": data["source"]} if entry.reads_data else {}))
        assert (
            images.dim() == 4
            and images.shape[1:] == (1, 8, 8)
            and 0 <= images.min() <= images.max() <= 1
        )
    page = write_report([out], tmp_path / "report.html").read_text()
    for text in (
        "source-to-target: test images",
        "interpolate:",
        "samples (seed 0)",
        "target/recon",
    ):
        assert text in page
    assert "Data not loaded" not in page and "No samples" not in page


def test_translate_on_the_command_line_asks_for_the_capability(toy_run, tmp_path, capsys):
    from deepgen.cli import main

    out, _ = toy_run
    assert main(["translate", str(out), "-n", "4", "-o", str(tmp_path / "t.png")]) == 0
    assert (tmp_path / "t.png").stat().st_size > 0
    assert main(["translate", str(out), "--direction", "target-to-source"]) == 2
    assert "translates source-to-target, not 'target-to-source'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def density_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("density") / "run"
    data = deepgen.load_dataset("fake", shape=(1, 8, 8), sizes=(64, 16, 16))
    model = deepgen.build_model("toy-density", {}, data.data_shape)
    deepgen.fit(model, data, out=out, progress=False, log=quiet)
    return out


def test_without_a_latent_space_every_latent_tool_names_what_is_missing(density_run):
    model = deepgen.load(density_run)
    data = deepgen.run_data(density_run)["data"]
    for name, entry in LATENT_TOOLS.items():
        needed = entry.needs if isinstance(entry.needs, type) else LatentSpace
        with pytest.raises(MissingCapability) as caught:
            entry.fn(model, **({"dataset": data} if entry.reads_data else {}))
        message = str(caught.value)
        assert f"needs {needed.__name__}; a toy-density does not have it" in message, (
            name,
            message,
        )
        assert "\n" not in message and "families with" in message
    with pytest.raises(MissingCapability, match="needs Sampler"):
        deepgen.sample(model, 2)


def test_a_family_with_only_a_likelihood_is_measured_by_it(density_run):
    from deepgen.metrics.evaluate import default_metrics, evaluate_run

    model = deepgen.load(density_run)
    assert default_metrics(model, "images") == []
    nll = evaluate_run(density_run, ["nll"], n=16, log=quiet)["metrics"]["nll"]
    assert "exact" in nll["protocol"] and math.isfinite(nll["nll"]["mean"])


def test_the_command_line_names_the_streams_a_family_needs(tmp_path, capsys):
    from deepgen.cli import main
    from deepgen.rundir import RunDir

    args = [
        "train",
        "toy-pair",
        "--data",
        "fake",
        "--epochs",
        "1",
        "--batch-size",
        "256",
        "--quiet",
    ]
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    assert (
        "a toy-pair trains on the streams source, target; missing target" in capsys.readouterr().err
    )
    assert not (tmp_path / "a").exists()
    assert main([*args, "--stream", "target", "--out", str(tmp_path / "b")]) == 2
    assert "--stream takes NAME=DATASET" in capsys.readouterr().err
    assert main([*args, "--stream", "target=fake", "--out", str(tmp_path / "c")]) == 0
    config = RunDir.open(tmp_path / "c").config()
    assert [config.streams[s].name for s in ("source", "target")] == ["fake", "fake"]
