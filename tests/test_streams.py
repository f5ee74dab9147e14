"""Data streams and provenance: labelled subsets, the data a run records, and resume,
report and eval on exactly that data (or a clear refusal)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import deepgen
from deepgen.config import DataConfig, RunConfig, TrainConfig, validate
from deepgen.data import take_part
from deepgen.data.streams import labelled_indices
from deepgen.errors import ConfigError, DataError
from deepgen.models import (
    MODELS,
    ExactDensity,
    GenerativeModel,
    ModelConfig,
    Player,
    register_model,
)
from deepgen.rundir import RunDir


def quiet(msg):
    pass


def test_a_labelled_subset_is_balanced_seeded_and_disjoint_from_the_rest(tiny):
    labels = tiny["train"].labels
    chosen = labelled_indices(labels, 3, seed=4)
    assert torch.bincount(labels[chosen], minlength=10).tolist() == [3] * 10
    assert torch.equal(chosen, labelled_indices(labels, 3, seed=4))
    assert not torch.equal(chosen, labelled_indices(labels, 3, seed=5))
    labelled, unlabelled = take_part(tiny, "labelled", 3, 4), take_part(tiny, "unlabelled", 3, 4)
    assert len(labelled["train"]) == 30 and len(unlabelled["train"]) == len(tiny["train"]) - 30
    assert unlabelled["train"].labels is None and labelled["train"].labels is not None
    rows = {tuple(r.flatten().tolist()) for r in labelled["train"].x}
    assert not rows & {tuple(r.flatten().tolist()) for r in unlabelled["train"].x}
    assert torch.equal(labelled["valid"].x, tiny["valid"].x)  # validation and test are kept whole
    with pytest.raises(DataError, match="fewer than the 1000 labels per class"):
        labelled_indices(labels, 1000, 0)
    with pytest.raises(ConfigError, match="part labelled needs labels_per_class"):
        validate(DataConfig, {"name": "mnist", "part": "labelled"})


def _three_hundred():
    g = torch.Generator().manual_seed(0)
    return deepgen.from_tensors(
        torch.randint(0, 256, (300, 1, 28, 28), dtype=torch.uint8, generator=g),
        torch.randint(0, 10, (300,), generator=g),
    )


@pytest.mark.slow
def test_data_built_in_memory_is_stored_with_the_run_and_used_again(tmp_path):
    """300 in-memory images: resume, report and eval use those, never the 2,048-image
    default of the fake dataset or anything else."""
    out = tmp_path / "run"
    data = _three_hundred()
    model = deepgen.build_model("vae", {"net": "mlp", "hidden_dim": 16}, data.data_shape)
    deepgen.fit(model, data, out=out, epochs=1, batch_size=30, progress=False, log=quiet)
    recorded = RunDir(out).config().streams["data"]
    assert recorded.name == "stored" and recorded.sizes == {"train": 270, "valid": 15, "test": 15}
    assert recorded.sha256 == data.content_sha256()
    again = deepgen.run_data(out)["data"]
    assert all(
        torch.equal(again[s].x, data[s].x) and torch.equal(again[s].labels, data[s].labels)
        for s in ("train", "valid", "test")
    )
    deepgen.resume(out, epochs=2, progress=False, log=quiet)
    results = RunDir(out).results()
    assert results["metrics"]["neg_elbo"]["n"] == 15 and results["images_seen"] == 2 * 9 * 30
    from deepgen.report import write_report

    page = write_report([out], tmp_path / "report.html").read_text()
    assert "Data not loaded" not in page and "test images (odd rows)" in page


def test_data_that_changed_since_training_is_refused_in_one_line(tmp_path):
    out = tmp_path / "run"
    data = _three_hundred()
    model = deepgen.build_model("vae", {"net": "mlp", "hidden_dim": 16}, data.data_shape)
    deepgen.fit(model, data, out=out, epochs=1, batch_size=30, progress=False, log=quiet)
    stored = out / "data" / "data.npz"
    with np.load(stored) as arrays:
        changed = {k: arrays[k].copy() for k in arrays.files}
    changed["train/x"][0, 0, 0, 0] ^= 1
    np.savez(stored, **changed)
    for call in (
        lambda: deepgen.resume(out, epochs=2, progress=False, log=quiet),
        lambda: deepgen.run_data(out),
    ):
        with pytest.raises(
            DataError, match=r"stream 'data' .* content sha256 .* the data changed since training"
        ):
            call()
    with pytest.raises(
        DataError,
        match=r"stream .data. \(fake, generated\) has 2,048/256/256 \(train/valid/test\) examples, but the run was trained on 270/15/15",
    ):
        deepgen.resume(out, data=deepgen.load_dataset("fake"), progress=False, log=quiet)


def test_a_named_dataset_is_recorded_by_name_options_and_hash(tmp_path):
    out = tmp_path / "run"
    config = RunConfig(
        family="vae",
        model={"net": "mlp", "hidden_dim": 8},
        data=DataConfig(name="fake", options={"sizes": (64, 16, 16)}),
        train=TrainConfig(epochs=1, batch_size=16),
    )
    deepgen.train(config, out, progress=False, log=quiet)
    saved = json.loads((out / "config.json").read_text())
    stream = saved["streams"]["data"]
    assert stream["name"] == "fake" and stream["options"]["sizes"] == [64, 16, 16]
    assert stream["options"]["shape"] == [1, 28, 28] and stream["sizes"] == {
        "test": 16,
        "train": 64,
        "valid": 16,
    }
    assert not (out / "data").exists()  # a named dataset is loaded again, not copied
    stream["sha256"] = "0" * 64
    (out / "config.json").write_text(json.dumps(saved))
    with pytest.raises(DataError, match="the data changed since training"):
        deepgen.run_data(out)


def test_legacy_configs_load(tmp_path):
    legacy = {
        "family": "cvae",
        "model": {
            "condition": "quadrants",
            "quadrants": 2,
            "num_classes": 10,
            "image_shape": [1, 28, 28],
        },
        "data": {
            "name": "mnist",
            "data_dir": None,
            "image_size": 64,
            "image_channels": 3,
            "on_bad_file": "stop",
        },
    }
    config = RunConfig.model_validate(legacy)
    assert config.family == "cvae-quadrants" and config.data.options == {}
    model = deepgen.build_model(config.family, config.model)
    assert model.data_shape == (1, 28, 28) and model.config.quadrants == 2


def test_a_stream_a_family_does_not_have_is_refused(tmp_path):
    config = RunConfig(
        family="vae",
        model={"net": "mlp"},
        data=DataConfig(name="fake"),
        streams={"target": DataConfig(name="fake")},
        train=TrainConfig(epochs=1),
    )
    with pytest.raises(ConfigError, match="a vae trains on the streams data; unknown target"):
        deepgen.train(config, tmp_path / "run", progress=False, log=quiet)
    assert not (tmp_path / "run").exists()


class Unigram(ExactDensity, GenerativeModel):
    """Token sequences under one categorical distribution per token: reads ``lengths``."""

    family = "toy-unigram"
    Config = ModelConfig
    reads = ("sequences",)

    def __init__(self, config):
        super().__init__(config)
        self.logits = torch.nn.Parameter(torch.zeros(4))

    def log_density(self, x, lengths=None):
        lengths = torch.full((len(x),), x.shape[1]) if lengths is None else lengths
        valid = torch.arange(x.shape[1]) < lengths[:, None]
        return (torch.log_softmax(self.logits, 0)[x] * valid).sum(1)

    def players(self):
        loss = lambda b, g: {"loss": -self.log_density(b.x, b.lengths)}  # noqa: E731
        return [Player("unigram", self, loss, lambda p: torch.optim.SGD(p, lr=0.5))]

    def evaluate(self, batch, generator):
        return {"nll": -self.log_density(batch.x, batch.lengths)}


if "toy-unigram" not in MODELS:
    register_model(Unigram)


def test_token_sequences_train_resume_and_are_stored_with_their_lengths(tmp_path):
    """Token ids with lengths are a stream like images: the padding after each end is
    never read, the run stores the sequences and their vocabulary, resume uses them."""
    g = torch.Generator().manual_seed(0)
    seqs = [
        [1] * int(n) + [2] for n in torch.randint(1, 7, (200,), generator=g)
    ]  # padding is token 0
    data = deepgen.data.from_sequences(seqs, ["a", "b", "c", "d"])
    assert (
        data.kind == "sequences" and data.data_shape == (7,) and data["train"].lengths is not None
    )
    model = deepgen.build_model("toy-unigram", {}, data.data_shape)
    deepgen.fit(
        model, data, out=tmp_path / "run", epochs=1, batch_size=10, progress=False, log=quiet
    )
    deepgen.resume(tmp_path / "run", epochs=3, progress=False, log=quiet)
    again = deepgen.run_data(tmp_path / "run")["data"]
    assert again.vocabulary == ("a", "b", "c", "d") and torch.equal(
        again["train"].lengths, data["train"].lengths
    )
    probs = torch.softmax(deepgen.load(tmp_path / "run").logits.detach(), 0)
    share = sum(len(s) - 1 for s in seqs) / sum(
        len(s) for s in seqs
    )  # token 1's share of real tokens
    assert (
        abs(float(probs[1]) - share) < 0.05 and float(probs[0]) < 0.05
    )  # the padding was not read
    with pytest.raises(DataError, match="sequence 0 must hold 1 to 7 token ids in"):
        deepgen.data.from_sequences([[9]], ["a"], max_length=7)
