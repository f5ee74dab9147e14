"""Latent-space tools: interpolation (linear, spherical), traversal, the 2-D manifold grid,
arithmetic, completion by optimising z, nearest training neighbours."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image

import deepgen
from deepgen.errors import ConfigError
from deepgen.latent import interpolate, lerp, manifold, slerp, traverse
from deepgen.latent_data import (
    arithmetic,
    complete_by_optimisation,
    concept_codes,
    nearest_neighbours,
    region_mask,
)
from deepgen.models import build_model


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
    assert torch.allclose(
        slerp(a, a, torch.tensor([0.5])), a[:, None]
    )  # parallel: falls back to lerp


@pytest.mark.parametrize("family", ["vae", "ae", "gan"])
def test_tools_give_grids_of_images_for_every_decoder_family(family):
    options = {"net": "mlp", "latent_dim": 2} | (
        {"hidden_dim": 16} if family != "gan" else {"hidden_dim": 16}
    )
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


def test_traverse_varies_the_coordinates_it_is_given_in_their_order():
    model = build_model("vae", {"net": "mlp", "latent_dim": 3, "hidden_dim": 8}, (1, 28, 28)).eval()
    first_three, _ = traverse(model, rows=3, steps=5, seed=2)
    chosen, steps = traverse(model, steps=5, seed=2, dims=(2, 0))
    rows = first_three.view(3, 5, 1, 28, 28)
    # the same codes decoded in batches of another size: equal up to BLAS's blocking
    assert steps == 5 and torch.allclose(chosen.view(2, 5, 1, 28, 28), rows[[2, 0]], atol=1e-6)
    with pytest.raises(ConfigError, match=r"run from 0 to 2, not \[3, -1\]"):
        traverse(model, dims=(0, 3, -1))


def test_the_manifold_grid_needs_two_latent_dimensions():
    model = build_model("vae", {"net": "mlp", "latent_dim": 3, "hidden_dim": 8}, (1, 28, 28))
    with pytest.raises(ConfigError, match="latent_dim 2"):
        manifold(model)
    with pytest.raises(ConfigError, match="needs LatentSpace; a gmm does not have it"):
        interpolate(build_model("gmm", {"components": 2}, (1, 28, 28)))


@pytest.mark.slow
def test_each_tool_runs_from_the_cli_on_a_trained_mnist_model(mnist, tmp_path):
    model = build_model("vae", {"net": "mlp", "latent_dim": 2}, mnist.data_shape)
    deepgen.fit(model, mnist, out=tmp_path / "run", epochs=1, progress=False, log=lambda m: None)
    for tool, extra in (
        ("interpolate", ["--mode", "spherical"]),
        ("traverse", []),
        ("manifold", []),
        ("arithmetic", ["--concepts", "7,1,4"]),
        ("complete", ["--mask", "left"]),
        ("neighbours", []),
    ):
        out = tmp_path / f"{tool}.png"
        done = run_cli("latent", str(tmp_path / "run"), tool, "-o", str(out), *extra)
        assert done.returncode == 0, done.stderr
        with Image.open(out) as img:
            assert img.size[0] > 28
    bare = (2 * (28 + 2) + 2) * 2  # two rows of 28 pixels, padded, at scale 2
    out = tmp_path / "dims.png"
    args = ["--dims", "1,0", "--span", "2", "--steps", "7", "-o", str(out)]
    assert run_cli("latent", str(tmp_path / "run"), "traverse", *args).returncode == 0
    with Image.open(out) as img:  # a title and column values above, z1/z0 to the left
        assert img.size[1] > bare and img.size[0] > (7 * 30 + 2) * 2
        header = np.asarray(img.convert("L"))[:20]
        assert (header < 128).sum() > 50  # text was drawn
    for args, message in (
        (["traverse", "--mode", "linear"], "--mode does not apply to traverse"),
        (["manifold", "--rows", "3"], "--rows does not apply to manifold"),
        (["traverse", "--dims", "5"], "latent coordinates run from 0 to 1, not [5]"),
        (["neighbours", "--span", "1"], "--span does not apply to neighbours"),
    ):
        done = run_cli("latent", str(tmp_path / "run"), *args)
        assert done.returncode == 2 and message in done.stderr, done.stderr
    done = run_cli("latent", str(tmp_path / "run"), "arithmetic", "--concepts", "7,x")
    assert done.returncode == 2 and "comma-separated integers" in done.stderr


def test_nearest_neighbours_match_brute_force_across_chunks():
    g = torch.Generator().manual_seed(0)
    pool, queries = torch.randn(257, 5, generator=g), torch.randn(4, 5, generator=g)
    queries[1] = pool[200]  # an exact copy is its own nearest neighbour at distance 0
    d, i = nearest_neighbours(queries, pool, k=3, chunk=50)
    ref_d, ref_i = torch.cdist(queries.double(), pool.double()).topk(3, largest=False)
    assert torch.equal(i, ref_i) and torch.allclose(d, ref_d)
    assert i[1, 0] == 200 and d[1, 0] == 0


def test_region_masks_hide_what_they_say():
    shape = (1, 28, 28)
    assert (
        region_mask("center", shape)[0, 7:21, 7:21].sum() == 0
        and region_mask("center", shape).sum() == 784 - 196
    )
    assert (
        region_mask("left", shape)[0, :, :14].sum() == 0
        and region_mask("left", shape)[0, :, 14:].all()
    )
    assert (
        region_mask("bottom", shape)[0, 14:].sum() == 0
        and region_mask("bottom", shape)[0, :14].all()
    )
    with pytest.raises(ConfigError, match="center, left"):
        region_mask("diagonal", shape)


@pytest.mark.slow
def test_completion_keeps_the_known_pixels_and_fits_them_better_than_its_start(mnist):
    """A decoder whose images *can* match: a trained-for-one-epoch VAE; completion must keep
    the given pixels exactly and lower the contextual (known-pixel) error below that of the
    prior draw it starts from, without touching the weights."""
    model = build_model("vae", {"net": "mlp", "latent_dim": 8}, mnist.data_shape, seed=0)
    deepgen.fit(model, mnist, epochs=1, progress=False, log=lambda m: None)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = mnist["test"].x[:16].float() / 255
    known = region_mask("bottom", (1, 28, 28))
    start = model.generate(model.latent_prior(16, torch.Generator().manual_seed(0))).detach()
    filled = complete_by_optimisation(model, x, known, steps=150, seed=0)
    assert torch.equal(filled * known, x * known)
    decoded = model.generate(
        model.latent_prior(16, torch.Generator().manual_seed(0))
    )  # same start draw
    assert torch.equal(decoded.detach(), start)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    hidden = 1 - known
    truth_err = ((filled - x).abs() * hidden).flatten(1).sum(1).mean()
    start_err = ((start - x).abs() * hidden).flatten(1).sum(1).mean()
    assert truth_err < start_err, (truth_err, start_err)  # the hidden half moved towards the truth


def test_arithmetic_of_an_encoder_model_averages_three_exemplar_codes(tiny):
    model = build_model("ae", {"net": "mlp", "latent_dim": 3, "hidden_dim": 16}, (1, 28, 28)).eval()
    labels = tiny["train"].labels
    codes = concept_codes(model, tiny, int(labels[0]))
    idx = (labels == labels[0]).nonzero().flatten()[:3]
    assert torch.allclose(codes, model.encode(model.preprocess(tiny["train"].x[idx])))
    images, nrow = arithmetic(model, tiny, (int(labels[0]), int(labels[1]), int(labels[2])))
    assert images.shape == (16, 1, 28, 28) and nrow == 4
    a, b, c = (concept_codes(model, tiny, int(labels[i]), seed=i).mean(0) for i in range(3))
    assert torch.allclose(images[12], model.generate((a - b + c)[None])[0], atol=1e-6)
