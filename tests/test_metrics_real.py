"""Sanity relations of the sample metrics on real MNIST, under the shipped classifier."""

import pytest
import torch

from deepgen.metrics import fid, inception_score, kid, precision_recall
from deepgen.metrics.classifier import accuracy, classifier_outputs, load_classifier

pytestmark = pytest.mark.slow  # real MNIST through the shipped classifiers


@pytest.fixture(scope="module")
def net():
    return load_classifier("mnist")


@pytest.fixture(scope="module")
def feats(mnist, net):
    model, _ = net
    out = {}
    for name, images in (("train", mnist["train"].x[:10000]), ("test", mnist["test"].x)):
        out[name] = classifier_outputs(model, images)
    x = mnist["test"].x.float() / 255
    g = torch.Generator().manual_seed(0)
    noisy = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    blurred = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2)
    ones = mnist["test"].x[mnist["test"].labels == 1].float() / 255
    for name, images in (("noisy", noisy), ("blurred", blurred), ("ones", ones)):
        out[name] = classifier_outputs(model, images)
    return out


def test_shipped_classifier_reaches_its_stated_accuracy(mnist, net):
    model, sha = net
    assert len(sha) == 64
    assert accuracy(model, mnist["test"].x, mnist["test"].labels) >= 0.992


def test_fid_of_real_sets_is_near_zero_and_far_below_damaged_ones(feats):
    real = fid(feats["test"][0], feats["train"][0])
    damaged = {k: fid(feats["test"][0], feats[k][0]) for k in ("noisy", "blurred", "ones")}
    # FID is in squared feature units; "near 0" means small beside damaged sets.
    assert all(v > 20 * real for v in damaged.values()), (real, damaged)


def test_classifier_score_of_the_test_set(feats):
    score, _ = inception_score(feats["test"][1])
    assert score >= 9.8  # the ceiling for 10 balanced classes is 10; published MNIST nets: 9.88
    assert inception_score(feats["ones"][1])[0] < 1.5


def test_kid_of_a_set_against_itself_and_precision_recall(feats):
    g = torch.Generator().manual_seed(0)
    same, spread = kid(
        feats["test"][0], feats["test"][0], subsets=10, subset_size=1000, generator=g
    )
    noisy, _ = kid(feats["test"][0], feats["noisy"][0], subsets=10, subset_size=1000, generator=g)
    assert abs(same) <= 3 * spread and noisy > 30 * spread, (same, spread, noisy)
    p, r = precision_recall(feats["test"][0][:5000], feats["train"][0][:5000])
    assert p > 0.7 and r > 0.7
    _, r1 = precision_recall(feats["test"][0][:5000], feats["ones"][0])
    assert r1 < 0.3  # one class covers little of the real manifold


def test_shipped_fashion_classifier_reaches_its_stated_accuracy(fashion_mnist):
    model, _ = load_classifier("fashion-mnist")
    assert accuracy(model, fashion_mnist["test"].x, fashion_mnist["test"].labels) >= 0.91
