"""Precision and recall (Kynkaanniemi et al. 2019) and per-class diversity of critdiff.experiments.guide.metrics
against their oracles: identical sets, far-apart sets, and a brute-force float64 loop over points."""

from __future__ import annotations

import math

import numpy as np
import pytest

from critdiff.experiments.guide.metrics import (PR_K, diversity, knn_radii, per_class_diversity,
                                                precision_recall)


def brute_precision_recall(real, fake, k):
    """Loops over points with math.dist: the k-th smallest distance to the other points of a set is the radius."""
    def radii(f):
        return [sorted(math.dist(p, q) for j, q in enumerate(f) if j != i)[k - 1] for i, p in enumerate(f)]

    def cover(points, centres, rad):
        return np.mean([any(math.dist(p, c) <= r for c, r in zip(centres, rad)) for p in points])

    return cover(fake, real, radii(real)), cover(real, fake, radii(fake))


def test_identical_sets_have_precision_and_recall_one():
    f = np.random.default_rng(0).standard_normal((40, 6))
    assert precision_recall(f, f.copy()) == (1.0, 1.0)


def test_far_apart_sets_have_precision_and_recall_zero():
    rng = np.random.default_rng(1)
    real, fake = rng.standard_normal((30, 5)), rng.standard_normal((25, 5)) + 100.0
    assert precision_recall(real, fake) == (0.0, 0.0)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_recall_equal_brute_force(k):
    rng = np.random.default_rng(2)
    real = rng.standard_normal((35, 4))
    fake = 0.7 * rng.standard_normal((28, 4)) + np.array([0.8, 0, 0, 0])  # partly overlapping, narrower
    p, r = precision_recall(real, fake, k)
    bp, br = brute_precision_recall(real.tolist(), fake.tolist(), k)
    assert p == pytest.approx(bp, abs=1e-12) and r == pytest.approx(br, abs=1e-12)
    assert 0 < p < 1 and 0 < r < 1  # the case is not trivial
    np.testing.assert_allclose(precision_recall(real, fake, k, real_radii=knn_radii(real, k)), (p, r), atol=0)


def test_a_collapsed_generator_has_precision_but_no_recall():
    """Mode collapse: all generated samples near one real point -> precision 1, recall small."""
    rng = np.random.default_rng(3)
    real = rng.standard_normal((50, 3))
    fake = real[0] + 1e-3 * rng.standard_normal((20, 3))
    p, r = precision_recall(real, fake, PR_K)
    assert p == 1.0 and r < 0.1


def test_knn_radii_of_a_tiny_set_are_infinite_and_per_class_diversity():
    assert np.isinf(knn_radii(np.zeros((3, 2)), 3)).all()
    f = np.array([[0.0, 0.0], [3.0, 4.0], [10.0, 0.0], [10.0, 1.0]])
    got = per_class_diversity(f, np.array([0, 0, 1, 1]))
    assert got == {0: pytest.approx(5.0), 1: pytest.approx(1.0)}
    assert got[0] == pytest.approx(diversity(f[:2]))
