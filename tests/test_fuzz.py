"""Fuzzed inputs (hypothesis): the checkpoint loader and config parsing fail only with our
own error types, never a bare library exception, and never run code. With the IDX
reader's fuzz tests these are over 10,000 cases."""

import json
import pickle
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deepgen
from deepgen.checkpoint import checkpoint_dirs, load_checkpoint
from deepgen.config import RunConfig
from deepgen.errors import CheckpointError, ConfigError, DeepgenError
from deepgen.fileio import sha256_bytes
from deepgen.models import build_model

pytestmark = pytest.mark.slow  # thousands of hypothesis cases

FUZZ = settings(
    max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def good_run(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz") / "run"
    model = build_model("vae", {"net": "mlp", "hidden_dim": 8, "latent_dim": 2}, (1, 28, 28))
    deepgen.fit(model, tiny, out=out, epochs=1, batch_size=64, progress=False, log=lambda m: None)
    return out


def _resign(ckpt):
    names = ("model.safetensors", "optim.safetensors", "state.json")
    manifest = {n: sha256_bytes((ckpt / n).read_bytes()) for n in names}
    (ckpt / "manifest.json").write_text(json.dumps(manifest))


def _mutated_run(good_run, tmp_path, name: str, blob: bytes):
    run = tmp_path / "run"
    if run.exists():
        shutil.rmtree(run)
    shutil.copytree(good_run, run)
    ckpt = checkpoint_dirs(run)[0]
    (ckpt / name).write_bytes(blob)
    _resign(ckpt)  # so the parsers behind the hash check are reached
    return run, ckpt


@settings(
    max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(["model.safetensors", "optim.safetensors", "state.json"]),
    cut=st.integers(0, 4000),
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=4),
    junk=st.binary(max_size=64),
)
def test_mutated_checkpoints_fail_with_our_errors(good_run, tmp_path, name, cut, flips, junk):
    original = (checkpoint_dirs(good_run)[0] / name).read_bytes()
    blob = bytearray(original[: max(0, len(original) - cut)] + junk)
    for pos, xor in flips:
        if blob:
            blob[pos % len(blob)] ^= xor
    run, _ = _mutated_run(good_run, tmp_path, name, bytes(blob))
    try:
        deepgen.load(run)  # parses, then fits the weights into the model
        load_checkpoint(checkpoint_dirs(run)[0])
    except DeepgenError:
        pass


@FUZZ
@given(
    st.text(max_size=200)
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=12,
    ).map(json.dumps)
)
def test_fuzzed_config_text_gives_config_errors(text):
    try:
        RunConfig.from_json(text)
    except ConfigError:
        pass


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "net",
                "latent_dim",
                "hidden_dim",
                "likelihood",
                "lr",
                "preprocess",
                "data_shape",
                "loss",
                "d_steps",
                "channels",
                "components",
            ]
        ),
        st.none()
        | st.integers(-5, 10**6)
        | st.floats()
        | st.text(max_size=6)
        | st.lists(st.integers(-2, 40), max_size=4),
        max_size=5,
    ),
    st.sampled_from(["vae", "gan", "gmm"]),
)
def test_fuzzed_model_configs_give_config_errors(values, family):
    values.setdefault("data_shape", [1, 28, 28])
    if family != "gmm" and isinstance(values.get("hidden_dim"), int):
        values["hidden_dim"] = min(values["hidden_dim"], 64)
    try:
        build_model(
            family,
            {k: v for k, v in values.items() if k in deepgen.MODELS[family].Config.model_fields},
        )
    except ConfigError:
        pass


def test_a_pickle_payload_as_weights_is_never_executed(good_run, tmp_path):
    marker = tmp_path / "owned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    run, _ = _mutated_run(good_run, tmp_path, "model.safetensors", pickle.dumps(Payload()))
    with pytest.raises(CheckpointError):
        deepgen.load(run)
    assert not marker.exists()


@pytest.mark.parametrize("shape", [[-1], [0, 28, 28], [1, 28], [1, 100000, 100000], []])
def test_bad_image_shapes_are_config_errors(shape):
    # Found by the fuzz test above in CI: data_shape [-1] reached torch.zeros.
    with pytest.raises(ConfigError, match="data_shape"):
        build_model("gmm", {"data_shape": shape})


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**12) | st.floats() | st.text(max_size=10),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=10,
)
RUN_FILES = [
    "state.json",
    "manifest.json",
    "config.json",
    "metrics.jsonl",
    "results.json",
    "eval.json",
]


def _damaged_run(good_run, tmp_path, name: str, key: str, value, text: str):
    """A copy of ``good_run`` with one file damaged: a JSON file's ``key`` set to ``value``
    (or the whole file replaced by ``text`` when key is empty); metrics.jsonl gets ``text``
    appended. Checkpoint files are re-signed so the parsers behind the hash are reached."""
    run = tmp_path / "run"
    if run.exists():
        shutil.rmtree(run)
    shutil.copytree(good_run, run)
    ckpt = checkpoint_dirs(run)[0]
    path = (ckpt if name in ("state.json", "manifest.json") else run) / name
    if name == "metrics.jsonl":
        with open(path, "a") as fh:
            fh.write(text + "\n")
        return run
    if not key:
        path.write_text(text)
    else:
        data = json.loads(path.read_text()) if path.exists() else {}
        data[key] = value
        path.write_text(json.dumps(data))
    if name == "state.json":
        _resign(ckpt)
    return run


def _drive(tool: str, run) -> None:
    from deepgen.metrics.evaluate import evaluate_run
    from deepgen.report import write_report

    quiet = lambda m: None
    if tool == "resume":
        deepgen.resume(run, progress=False, log=quiet)
    elif tool == "eval":
        evaluate_run(run, ["nll"], n=4, k=2, log=quiet)
    else:
        write_report([run], run.parent / "report.html")


def _fuzz_damaged_runs(tools: list[str], examples: int):
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        name=st.sampled_from(RUN_FILES),
        key=st.sampled_from(
            ["", "iteration", "family", "train", "model", "metrics", "bytes", "summary", "best"]
        ),
        value=JSON_VALUES,
        text=st.text(max_size=60) | JSON_VALUES.map(json.dumps),
        tool=st.sampled_from(tools),
    )
    def check(good_run, tmp_path, name, key, value, text, tool):
        run = _damaged_run(good_run, tmp_path, name, key, value, text)
        try:
            _drive(tool, run)
        except DeepgenError:
            pass

    return check


# resume and eval cost about 0.1 s a case, a report about 1 s
test_damaged_run_folders_give_our_errors_in_resume_and_eval = _fuzz_damaged_runs(
    ["resume", "eval"], 300
)
test_damaged_run_folders_give_our_errors_in_report = _fuzz_damaged_runs(["report"], 8)
