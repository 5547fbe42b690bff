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
from critdiff.probes.commitment import (chance_phi, class_ids, commitment, crossing_logsnr, pair_agreement,
                                        phi_level)
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
