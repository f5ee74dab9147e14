"""Latent-space tools: interpolation (linear, spherical), traversal, the 2-D manifold grid."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from deepgen.errors import ConfigError
from deepgen.latent import interpolate, lerp, manifold, slerp, traverse
from deepgen.models import build_model

from conftest import run_cli


def test_lerp_and_slerp_start_and_end_at_their_codes():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    t = torch.tensor([0.0, 0.3, 1.0])
    for fn in (lerp, slerp):
        z = fn(a, b, t)
        assert z.shape == (4, 3, 6)
        assert torch.allclose(z[:, 0], a, atol=1e-5) and torch.allclose(z[:, -1], b, atol=1e-5)


def test_slerp_keeps_unit_codes_on_the_sphere_and_halves_the_angle():
    a = torch.tensor([[1.0, 0.0, 0.0]])
    b = torch.tensor([[0.0, 1.0, 0.0]])
    z = slerp(a, b, torch.linspace(0, 1, 7))
    assert torch.allclose(z.norm(dim=2), torch.ones(1, 7), atol=1e-6)
    assert torch.allclose(z[0, 3], torch.tensor([2**-0.5, 2**-0.5, 0.0]), atol=1e-6)
    assert torch.allclose(slerp(a, a, torch.tensor([0.5])), a[:, None])  # parallel: falls back to lerp


@pytest.mark.parametrize("family", ["vae", "ae", "gan"])
def test_tools_give_grids_of_images_for_every_decoder_family(family):
    options = {"net": "mlp", "latent_dim": 2} | ({"hidden_dim": 16} if family != "gan" else {"hidden_dim": 16})
    model = build_model(family, options, (1, 28, 28)).eval()
    images, nrow = interpolate(model, rows=3, steps=5, mode="spherical")
    assert images.shape == (15, 1, 28, 28) and nrow == 5
    images, nrow = traverse(model, steps=4)
    assert images.shape == (2 * 4, 1, 28, 28)  # one row per latent coordinate (2 here)
    images, nrow = manifold(model, n=6)
    assert images.shape == (36, 1, 28, 28) and 0 <= images.min() and images.max() <= 1


def test_traverse_changes_one_coordinate_per_row():
    model = build_model("vae", {"net": "mlp", "latent_dim": 3, "hidden_dim": 8}, (1, 28, 28)).eval()
    seen = []
    model.generate = lambda z: seen.append(z) or torch.zeros(len(z), 1, 28, 28)  # record the codes
    traverse(model, steps=5, span=2.0)
    z = seen[0].view(3, 5, 3)
    for i in range(3):
        varied = (z[i] - z[i, :1]).abs().sum(0) > 0
        assert varied.tolist() == [j == i for j in range(3)]
        assert torch.allclose(z[i, :, i], torch.linspace(-2, 2, 5))


def test_the_manifold_grid_needs_two_latent_dimensions():
    model = build_model("vae", {"net": "mlp", "latent_dim": 3, "hidden_dim": 8}, (1, 28, 28))
    with pytest.raises(ConfigError, match="latent_dim 2"):
        manifold(model)
    with pytest.raises(ConfigError, match="no latent space"):
        interpolate(build_model("gmm", {"components": 2}, (1, 28, 28)))


def test_each_tool_runs_from_the_cli_on_a_trained_mnist_model(mnist, tmp_path):
    model = build_model("vae", {"net": "mlp", "latent_dim": 2}, mnist.image_shape)
    model.fit(mnist, out=tmp_path / "run", epochs=1, progress=False, log=lambda m: None)
    for tool, extra in (("interpolate", ["--mode", "spherical"]), ("traverse", []), ("manifold", [])):
        out = tmp_path / f"{tool}.png"
        done = run_cli("latent", str(tmp_path / "run"), tool, "-o", str(out), *extra)
        assert done.returncode == 0, done.stderr
        with Image.open(out) as img:
            assert img.size[0] > 28
    done = run_cli("latent", str(tmp_path / "run"), "traverse", "--mode", "linear")
    assert done.returncode == 2 and "--mode applies to interpolate" in done.stderr
