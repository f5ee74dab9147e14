"""Each lab, run in its fast setting (the same code path), must meet its stated tolerances."""

import json

import pytest
from conftest import run_cli

from deepgen.labs import LABS, run_lab

pytestmark = pytest.mark.slow  # each lab trains its networks to a tolerance


@pytest.mark.parametrize("name", list(LABS))
def test_lab_meets_its_tolerances(name, tmp_path, request):
    if name == "elbo-gap":
        request.getfixturevalue("mnist")  # fitted on real MNIST
    numbers = run_lab(name, tmp_path, fast=True)
    failed = {k: v for k, v in numbers["checks"].items() if not v["passed"]}
    assert not failed, failed
    assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    assert json.loads((tmp_path / f"{name}.json").read_text())["checks"] == numbers["checks"]


def test_labs_cite_their_source_and_equation():
    for name, lab in LABS.items():
        assert lab.source and lab.title
        doc = __import__(lab.run.__module__, fromlist=["x"]).__doc__
        assert doc and ("eq." in doc or "Algorithm" in doc or "Example" in doc or "sec." in doc), (
            name
        )


def test_lab_cli_list_and_run(tmp_path):
    proc = run_cli("lab", "--list")
    assert proc.returncode == 0
    assert all(name in proc.stdout for name in LABS)
    proc = run_cli("lab", "reparameterisation", "--fast", "-o", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert (
        "ok   min variance ratio" in proc.stdout and (tmp_path / "reparameterisation.png").exists()
    )
    bad = run_cli("lab", "nosuch")
    assert bad.returncode == 2 and "unknown lab 'nosuch'" in bad.stderr
