"""The one bootstrap: intervals against the normal-theory closed form, seeding, stratification, degenerate data."""

import math

import numpy as np
import pytest

from critdiff.probes import bootstrap as B
from critdiff.probes.bootstrap import (mean_ci, mean_interval, paired_mean_diff, paired_stat_diff, percentile_ci,
                                       replicates, stratified_indices)


@pytest.mark.parametrize("method", ["percentile", "BCa"])
def test_mean_interval_matches_normal_theory(method):
    """For n = 2000 normal samples the bootstrap interval of the mean is mean +- z s / sqrt(n) (s: plug-in sd)."""
    x = np.random.default_rng(5).normal(1.0, 2.0, 2000)
    half = 1.959963984540054 * x.std() / math.sqrt(x.size)
    r = mean_interval(x, n_boot=4000, seed=2, method=method)
    assert r["diff"] == pytest.approx(x.mean(), rel=1e-12)
    assert r["lo"] == pytest.approx(x.mean() - half, abs=0.06 * half)
    assert r["hi"] == pytest.approx(x.mean() + half, abs=0.06 * half)
    lo, hi = mean_ci(x, n_boot=4000, seed=2, method=method)
    assert (lo, hi) == (r["lo"], r["hi"])


def test_paired_difference_and_seeding():
    rng = np.random.default_rng(0)
    a = rng.normal(size=300)
    b = a - 0.3 + 0.05 * rng.normal(size=300)
    r = paired_mean_diff(a, b, n_boot=1000, seed=1)
    half = 1.959963984540054 * (a - b).std() / math.sqrt(300)
    assert r["hi"] - r["lo"] == pytest.approx(2 * half, rel=0.15)  # the paired (small) spread, not that of a
    assert r == paired_mean_diff(a, b, n_boot=1000, seed=1) and r != paired_mean_diff(a, b, n_boot=1000, seed=2)
    assert r["p_two_sided"] == 0.0 and paired_mean_diff(a, a + 0.0, n_boot=50)["p_two_sided"] == 1.0


def test_vectorised_mean_ci_equals_per_row():
    v = np.random.default_rng(3).exponential(size=(3, 50))
    both = mean_ci(v, n_boot=500, seed=4)
    assert both.shape == (3, 2) and np.all(both[:, 0] < v.mean(1)) and np.all(v.mean(1) < both[:, 1])


def test_degenerate_samples_give_the_point():
    assert mean_interval(np.full(7, 2.5))["lo"] == mean_interval(np.full(7, 2.5))["hi"] == 2.5
    assert mean_interval(np.array([4.0]))["lo"] == 4.0


def test_set_level_resampling():
    groups = np.repeat([0, 1, 2], [5, 9, 2])
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = stratified_indices(groups, rng)
        assert np.array_equal(np.bincount(groups[idx]), [5, 9, 2])  # every class keeps its size
    x = np.random.default_rng(1).normal(size=groups.size)
    s = paired_stat_diff(lambda i: float(x[i].mean()), groups, n_boot=300, seed=0)
    assert s["diff"] == pytest.approx(x.mean()) and s["lo"] < s["diff"] < s["hi"]
    reps = replicates(lambda i: x[i].mean(), x.size, n_boot=300, seed=0)
    assert np.allclose(percentile_ci(reps, 0.5), np.quantile(reps, [0.25, 0.75]))


def test_errors():
    with pytest.raises(ValueError, match="ci"):
        percentile_ci(np.zeros(3), 1.5)
    with pytest.raises(ValueError, match="method"):
        mean_interval(np.arange(4.0), method="basic")
    with pytest.raises(ValueError, match="a, b"):
        paired_mean_diff(np.zeros(3), np.zeros(4))


# --- the peak of a pulse-centre sweep -------------------------------------------------------------------------------

def test_curve_peak_is_the_vertex_of_a_sampled_parabola_on_an_uneven_grid():
    x = np.array([-3.0, -1.0, 0.5, 1.0, 4.0])
    for true in (-0.4, 0.7, 0.9):
        y = 2.0 - 1.5 * (x - true) ** 2
        assert B.curve_peak(x, y) == pytest.approx(true, abs=1e-12)


def test_curve_peak_at_an_edge_is_the_grid_point_and_a_tie_splits_the_pair():
    x = np.linspace(0, 4, 5)
    assert B.curve_peak(x, -x) == 0.0
    assert B.curve_peak(x, x) == 4.0
    assert B.curve_peak(x, np.array([0.0, 1.0, 1.0, 1.0, 0.0])) == 1.5  # parabola through (0, 0), (1, 1), (2, 1)
    with pytest.raises(ValueError, match="x:"):
        B.curve_peak(x[::-1], x)


def test_peak_interval_covers_the_true_peak_and_shrinks_with_n():
    rng = np.random.default_rng(3)
    x = np.linspace(-4, 4, 9)
    true = 0.6
    widths = []
    for n in (100, 1600):
        shared = rng.normal(size=n)  # a per-sample offset common to all centres: pairing removes it
        vals = (-(x[:, None] - true) ** 2 / 8 + shared[None] + 0.5 * rng.normal(size=(9, n)))
        r = B.peak_interval(x, vals, n_boot=400, seed=1)
        assert r["lo"] <= true <= r["hi"]
        assert r["argmax"] in (0.0, 1.0)
        widths.append(r["hi"] - r["lo"])
    assert widths[1] < widths[0] / 2
    with pytest.raises(ValueError, match="values:"):
        B.peak_interval(x, np.zeros((8, 3)))
