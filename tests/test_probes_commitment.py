"""The commitment probe (critdiff.probes.commitment) against independent oracles.

Oracle (docs/guidance.md eq. 2.3): two-point data ``+-amp`` (D pixels, 1-D amplitude ``a = amp sqrt(D)``) with the
exact empirical denoiser and the reverse SDE: a continuation from ``x_t`` ends at ``+a`` with probability equal
to the posterior weight ``w(x_t) = sigmoid(2 a x_par / sigma^2)``, so ``phi(sigma) = E[w^2 + (1 - w)^2]`` over
``x_t ~ p_sigma``, computed here by Gauss-Hermite quadrature (no sampling).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from critdiff.data import load
from critdiff.probes.commitment import (MIDPOINT_LEVEL, chance_phi, class_ids, commitment, crossing_logsnr,
                                        decision_midpoint, pair_agreement, phi_level, steepest_rise)
from critdiff.scores.empirical import EmpiricalScore
from critdiff.theory.global_model import speciation


def phi_twopoint(a: float, sigma: float, n_nodes: int = 120) -> float:
    """``E[w^2 + (1 - w)^2]`` for ``x_par = a + sigma z`` (by symmetry the ``-a`` branch gives the same)."""
    z, wq = np.polynomial.hermite_e.hermegauss(n_nodes)
    u = 2 * a * (a + sigma * z) / sigma**2
    w = 0.5 * (1 + np.tanh(0.5 * u))
    return float((wq * (w**2 + (1 - w) ** 2)).sum() / wq.sum())


def test_pair_agreement_equals_brute_force_over_pairs():
    rng = np.random.default_rng(0)
    ends = rng.integers(0, 3, size=(20, 5))
    brute = np.array([np.mean([e[i] == e[j] for i, j in itertools.combinations(range(5), 2)]) for e in ends])
    np.testing.assert_allclose(pair_agreement(ends), brute, rtol=0, atol=1e-12)


def test_pair_agreement_is_unbiased_for_sum_q_squared():
    rng = np.random.default_rng(1)
    q = np.array([0.6, 0.3, 0.1])
    ends = rng.choice(3, size=(40000, 4), p=q)
    assert abs(pair_agreement(ends).mean() - (q**2).sum()) < 4 * pair_agreement(ends).std() / 200


def test_chance_phi_and_level():
    ends = np.array([[0, 1], [1, 1], [2, 2]])  # frequencies 1/6, 3/6, 2/6
    assert chance_phi(ends) == pytest.approx((1 + 9 + 4) / 36)
    assert phi_level(0.5, 0.9) == pytest.approx(0.95)
    assert phi_level(0.5, 0.8, relative=False) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="level"):
        phi_level(0.5, 1.0)


def test_crossing_is_linear_interpolation_and_nan_without_a_crossing():
    lam = np.array([0.0, 1.0, 2.0, 3.0])
    assert crossing_logsnr(lam, np.array([0.5, 0.6, 0.9, 1.0]), 0.75) == pytest.approx(1.5)
    assert math.isnan(crossing_logsnr(lam, np.array([0.5, 0.6, 0.7, 0.7]), 0.75))
    assert math.isnan(crossing_logsnr(lam, np.array([0.8, 0.9, 1.0, 1.0]), 0.75))


def test_class_ids_takes_ids_or_logits():
    x = torch.zeros(3, 1, 2, 2)
    np.testing.assert_array_equal(class_ids(lambda x: torch.tensor([2, 0, 1]), x), [2, 0, 1])
    np.testing.assert_array_equal(class_ids(lambda x: torch.eye(3), x), [0, 1, 2])
    with pytest.raises(ValueError, match="classify"):
        class_ids(lambda x: torch.zeros(2), x)


def _twopoint():
    images, labels = load("twopoint:size=2,n=2,amp=0.5")  # D = 4 pixels, a = 0.5 * 2 = 1
    return images.double(), EmpiricalScore(images.double())


def test_commitment_rejects_bad_input():
    _, model = _twopoint()
    sig = torch.cat([torch.exp(-0.5 * torch.linspace(-4, 4, 9, dtype=torch.float64)), torch.zeros(1)])
    sign = lambda x: (x.mean((1, 2, 3)) > 0).long()  # noqa: E731
    with pytest.raises(ValueError, match="sampler"):
        commitment(model, (4, 1, 2, 2), sig, [1], sign, sampler="heun")
    with pytest.raises(ValueError, match="sampler"):
        commitment(model, (4, 1, 2, 2), sig, [1], sign, sampler="ddim")
    with pytest.raises(ValueError, match="steps"):
        commitment(model, (4, 1, 2, 2), sig, [9], sign)
    with pytest.raises(ValueError, match="k"):
        commitment(model, (4, 1, 2, 2), sig, [1], sign, k=1)


@pytest.mark.slow  # 24 CPU-s on one core (measured); the fast tests above keep phi's contract and resume covered
def test_phi_matches_the_twopoint_posterior_oracle_and_the_speciation_time():
    """The measured phi(t) equals E[w^2 + (1-w)^2] within its bootstrap error (plus the sampler's discretisation
    allowance 0.02), the curve rises from chance 0.5 towards 1, and the speciation time is the closed form
    ``logsnr = -2 log a``."""
    torch.manual_seed(0)
    images, model = _twopoint()
    lam_grid = torch.linspace(-8.0, 8.0, 161, dtype=torch.float64)  # uniform in logsnr, step 0.1
    sig = torch.cat([torch.exp(-0.5 * lam_grid), torch.zeros(1)])
    steps = [40, 60, 70, 80, 90, 100]  # logsnr -4, -2, -1, 0, 1, 2
    res = commitment(model, (160, 1, 2, 2), sig, steps, lambda x: (x.mean((1, 2, 3)) > 0).long(), k=6,
                     sampler="ddpm", seed=3, n_boot=300, dtype=torch.float64)
    exact = np.array([phi_twopoint(1.0, s) for s in res.sigma])
    se = (res.phi_ci[:, 1] - res.phi_ci[:, 0]) / (2 * 1.96)
    assert np.all(np.abs(res.phi - exact) <= 4 * se + 0.02), (res.phi, exact, se)
    assert exact[-1] - exact[0] > 0.3  # the comparison spans the transition
    assert res.chance == pytest.approx(0.5, abs=0.05)
    lam_fine = np.linspace(-4, 2, 601)
    t_exact = crossing_logsnr(lam_fine, [phi_twopoint(1.0, math.exp(-0.5 * v)) for v in lam_fine], res.level)
    lo, hi = res.logsnr_ci
    assert lo - 0.3 <= t_exact <= hi + 0.3, (t_exact, res.commitment_logsnr, res.logsnr_ci)
    # the decision midpoint: half-level crossing and steepest rise of the exact curve (fine grid) inside the
    # bootstrap intervals, widened by the discretisation of the probed steps (spacing 1 in logsnr; on the exact
    # curve the coarse steps move the crossing by 0.02 and the steepest rise by 0.07)
    mid = res.midpoint
    exact_fine = [phi_twopoint(1.0, math.exp(-0.5 * v)) for v in lam_fine]
    half_exact = crossing_logsnr(lam_fine, exact_fine, mid.level)
    assert mid.level == pytest.approx(res.chance + 0.5 * (1 - res.chance))
    assert mid.logsnr_ci[0] - 0.1 <= half_exact <= mid.logsnr_ci[1] + 0.1, (half_exact, mid)
    steep_exact = steepest_rise(lam_fine, exact_fine)
    assert mid.slope_ci[0] - 0.2 <= steep_exact <= mid.slope_ci[1] + 0.2, (steep_exact, mid)
    assert mid.logsnr < res.commitment_logsnr  # half-way comes before 90% of the way
    est = res.estimate("vp-linear")
    assert est.logsnr == pytest.approx(res.commitment_logsnr) and est.logsnr_ci == pytest.approx(tuple(res.logsnr_ci))
    assert est.sigma_over_a == pytest.approx(math.exp(-0.5 * res.commitment_logsnr))
    assert speciation(images).logsnr_c == pytest.approx(-2 * math.log(1.0), abs=1e-9)


def test_commitment_is_reproducible_from_its_seed():
    _, model = _twopoint()
    sig = torch.cat([torch.exp(-0.5 * torch.linspace(-4, 4, 17, dtype=torch.float64)), torch.zeros(1)])
    run = lambda: commitment(model, (6, 1, 2, 2), sig, [4, 8], lambda x: (x.mean((1, 2, 3)) > 0).long(),  # noqa: E731
                             k=3, seed=5, n_boot=20, dtype=torch.float64)
    a, b = run(), run()
    np.testing.assert_array_equal(a.ends, b.ends)


def _logistic_states(lam, lam0, width, chance, B, noise, seed):
    """``phi_state [T, B]``: the logistic ``chance + (1 - chance) sigmoid((lam - lam0) / width)`` plus Gaussian
    noise of standard deviation ``noise`` per state (a closed-form phi sampled with known noise)."""
    rng = np.random.default_rng(seed)
    phi = chance + (1 - chance) / (1 + np.exp(-(lam - lam0) / width))
    return phi, phi[:, None] + noise * rng.standard_normal((lam.size, B))


def test_midpoint_of_a_logistic_is_exact_where_the_grid_is_symmetric_about_it():
    """Noise-free logistic centred half-way between two grid points: linear interpolation of the half level
    and the parabola through the largest slopes are both exact by the curve's point symmetry about lam0."""
    lam = np.linspace(-5.0, 5.0, 11)
    _, ps = _logistic_states(lam, 0.5, 0.8, 0.2, 8, 0.0, 0)
    mid = decision_midpoint(lam, ps, 0.2, n_boot=50)
    assert mid.level == pytest.approx(0.6)
    assert mid.logsnr == pytest.approx(0.5, abs=1e-12)
    assert mid.slope_logsnr == pytest.approx(0.5, abs=1e-12)
    assert mid.slope == pytest.approx(np.max(np.diff(ps[:, 0]) / np.diff(lam)))
    np.testing.assert_allclose(mid.logsnr_ci, [0.5, 0.5], atol=1e-12)


@pytest.mark.parametrize("lam0", [-1.3, 0.0, 2.2])
def test_midpoint_and_steepest_rise_of_a_noisy_logistic_cover_the_closed_form(lam0):
    """Closed-form phi sampled with known noise on an uneven grid: both intervals cover lam0 (up to the linear
    interpolation error of the grid, computed here from the noise-free curve) and shrink with more states."""
    lam = np.sort(np.concatenate([np.linspace(-6, 6, 13), [-0.45, 0.7, 1.6]]))
    phi, ps = _logistic_states(lam, lam0, 1.0, 0.1, 400, 0.15, seed=1)
    grid_err_half = abs(crossing_logsnr(lam, phi, 0.1 + MIDPOINT_LEVEL * 0.9) - lam0)
    grid_err_slope = abs(steepest_rise(lam, phi) - lam0)
    assert grid_err_half < 0.1 and grid_err_slope < 0.5
    mid = decision_midpoint(lam, ps, 0.1, n_boot=400, seed=2)
    assert mid.logsnr_ci[0] - grid_err_half <= lam0 <= mid.logsnr_ci[1] + grid_err_half, mid
    assert mid.slope_ci[0] - grid_err_slope <= lam0 <= mid.slope_ci[1] + grid_err_slope, mid
    _, few = _logistic_states(lam, lam0, 1.0, 0.1, 25, 0.15, seed=1)
    wide = decision_midpoint(lam, few, 0.1, n_boot=400, seed=2)
    assert np.diff(wide.logsnr_ci)[0] > np.diff(mid.logsnr_ci)[0]


def test_midpoint_rejects_bad_input_and_is_nan_without_a_crossing():
    lam = np.linspace(-2, 2, 5)
    with pytest.raises(ValueError, match="phi_state"):
        decision_midpoint(lam, np.zeros((4, 3)), 0.5)
    with pytest.raises(ValueError, match="logsnr"):
        steepest_rise(lam[::-1], np.zeros(5))
    flat = np.full((5, 6), 0.5)
    mid = decision_midpoint(lam, flat, 0.5, n_boot=20)
    assert math.isnan(mid.logsnr) and np.isnan(mid.logsnr_ci).all()
