"""The guidance sensitivity profile (critdiff.probes.guidance_sensitivity, docs/guidance.md eq. 2.6) against
independent oracles:

- a dense float64 computation on exact Gaussian denoisers (affine in ``x``): the deterministic sampler's step
  Jacobians are explicit matrices, so ``dF/d eps_j = grad F(x_end) . M_{N-1} ... M_{j+1} c_j (D_c - D_u)(x_j)``
  with ``c_j = 1 - sigma_{j+1}/sigma_j`` (DDIM eta = 0 in the denoiser frame: ``x' = (s'/s) x + (1 - s'/s) D``);
- central finite differences of single-node pulses sampled with the library's ``Guided`` (another code path),
  on the nonlinear empirical denoiser with the stochastic DDPM sampler (pathwise derivative, same noise).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from critdiff import samplers as SM
from critdiff.probes.guidance_sensitivity import (box_peak, box_response, classifier_logp, half_max_window, pulse_response,
                                                  sensitivity_profile, summarise)
from critdiff.scores.empirical import EmpiricalScore

D_PIX = 4  # images [B, 1, 2, 2]


class AffineGaussian:
    """Exact denoisers of Gaussians ``N(mu_l, S_l)``: ``D = mu + S (S + s^2 I)^-1 (x - mu)``; label None is the
    unconditional Gaussian (mu_u, S_u). ``A(s, l)`` is the (constant) Jacobian ``S (S + s^2 I)^-1``."""

    def __init__(self, seed=0, K=2):
        g = torch.Generator().manual_seed(seed)
        def spd():
            q = torch.randn(D_PIX, D_PIX, generator=g, dtype=torch.float64)
            return q @ q.T / D_PIX + 0.1 * torch.eye(D_PIX, dtype=torch.float64)
        self.mu = [torch.randn(D_PIX, generator=g, dtype=torch.float64) for _ in range(K + 1)]  # last: unconditional
        self.S = [spd() for _ in range(K + 1)]

    def A(self, s, l):
        S = self.S[-1 if l is None else l]
        return S @ torch.linalg.inv(S + s**2 * torch.eye(D_PIX, dtype=torch.float64))

    def one(self, x, s, l):
        mu = self.mu[-1 if l is None else l]
        return mu + self.A(s, l) @ (x - mu)

    def __call__(self, x, sigma, label=None):
        B = x.shape[0]
        s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).expand(B)
        flat = x.reshape(B, D_PIX)
        out = [self.one(flat[b], float(s[b]), None if label is None else int(label[b])) for b in range(B)]
        return torch.stack(out).reshape(x.shape)


class LinearClassifier:
    def __init__(self, seed=1, K=2):
        g = torch.Generator().manual_seed(seed)
        self.W = torch.randn(K, D_PIX, generator=g, dtype=torch.float64)

    def logits(self, x):
        return x.reshape(x.shape[0], -1).to(torch.float64) @ self.W.T


def _grid(n=8):
    lam = torch.linspace(-4.0, 4.0, n, dtype=torch.float64)
    return torch.cat([torch.exp(-0.5 * lam), torch.zeros(1, dtype=torch.float64)])


def dense_profile(model, clf, x0, label, sigmas, baseline):
    """The oracle of the module docstring, one sample at a time, float64 matrices."""
    s = [float(v) for v in sigmas]
    N = len(s) - 1
    out = np.zeros((N, x0.shape[0]))
    for b in range(x0.shape[0]):
        l = int(label[b])
        A_w = lambda sig: model.A(sig, None) + baseline * (model.A(sig, l) - model.A(sig, None))  # noqa: E731
        xs = [x0[b].reshape(D_PIX).clone()]
        for i in range(N):
            d_u, d_c = model.one(xs[-1], s[i], None), model.one(xs[-1], s[i], l)
            xs.append((s[i + 1] / s[i]) * xs[-1] + (1 - s[i + 1] / s[i]) * (d_u + baseline * (d_c - d_u)))
        p = torch.softmax(clf.W @ xs[-1], 0)
        grad = clf.W.T @ (torch.nn.functional.one_hot(torch.tensor(l), clf.W.shape[0]).double() - p)
        for j in range(N):
            v = (1 - s[j + 1] / s[j]) * (model.one(xs[j], s[j], l) - model.one(xs[j], s[j], None))
            for i in range(j + 1, N):
                v = ((s[i + 1] / s[i]) * torch.eye(D_PIX, dtype=torch.float64) + (1 - s[i + 1] / s[i]) * A_w(s[i])) @ v
            out[j, b] = float(grad @ v)
    return out


@pytest.mark.parametrize("baseline", [0.0, 1.0])
@pytest.mark.parametrize("sampler", ["ddim", "euler"])
def test_autograd_profile_equals_the_dense_product_of_step_jacobians(baseline, sampler):
    model, clf = AffineGaussian(), LinearClassifier()
    sig = _grid()
    x = SM.initial_noise((5, 1, 2, 2), sig, SM.seed_generators(0, 5), dtype=torch.float64)
    label = torch.tensor([0, 1, 0, 1, 1])
    r, F, nfe = sensitivity_profile(model, x, sig, label, classifier_logp(clf), sampler=sampler, baseline=baseline)
    oracle = dense_profile(model, clf, x, label, sig, baseline)
    # two float64 routes (autograd vs explicit matrices): rounding only
    np.testing.assert_allclose(r, oracle, rtol=1e-9, atol=1e-12)
    assert np.abs(oracle).max() > 1e-3  # the comparison is not between zeros
    assert (nfe == 2 * (len(sig) - 1)).all()
    assert F.shape == (5,)


def test_autograd_profile_equals_finite_pulses_on_a_nonlinear_model_with_ddpm():
    """Empirical (memorising, nonlinear) conditional denoiser, DDPM with one generator per sample: the pathwise
    derivative by autograd equals central differences of +-delta pulses run through ``Guided`` with the same noise
    (float64; delta = 1e-4 leaves a truncation error ~delta^2 times the third derivative)."""
    g = torch.Generator().manual_seed(3)
    images = torch.randn(8, 1, 2, 2, generator=g, dtype=torch.float64) * 0.5
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    images[labels == 1] += 0.6
    model = EmpiricalScore(images, labels)
    clf = LinearClassifier(seed=4)
    sig = _grid(7)
    x = SM.initial_noise((4, 1, 2, 2), sig, SM.seed_generators(1, 4), dtype=torch.float64)
    label = torch.tensor([0, 1, 1, 0])
    r, _, _ = sensitivity_profile(model, x, sig, label, classifier_logp(clf), sampler="ddpm",
                                  generator=SM.seed_generators(9, 4), baseline=0.0)
    fd = pulse_response(model, x, sig, label, classifier_logp(clf), sampler="ddpm", generator_seed=9, delta=1e-4)
    np.testing.assert_allclose(r, fd, rtol=1e-5, atol=1e-7)
    assert np.abs(r).max() > 1e-2


def test_profile_rejects_bad_input():
    model, clf = AffineGaussian(), LinearClassifier()
    sig = _grid()
    x = torch.zeros(2, 1, 2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="baseline"):
        sensitivity_profile(model, x, sig, torch.tensor([0, 1]), classifier_logp(clf), baseline=0.5)
    with pytest.raises(ValueError, match="label"):
        sensitivity_profile(model, x, sig, None, classifier_logp(clf))
    with pytest.raises(ValueError, match="delta"):
        pulse_response(model, x, sig, torch.tensor([0, 1]), classifier_logp(clf), delta=0.0)


def test_half_max_window_and_box_response():
    lam = np.array([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0])
    r = np.array([0.0, 1.0, 3.0, 4.0, 1.0, 0.5])
    lo, hi = half_max_window(lam, r)
    assert lo == pytest.approx(-2.0 + (2.0 - 1.0) / (3.0 - 1.0))  # r crosses 2 between -2 and -1
    assert hi == pytest.approx(0.0 + (4.0 - 2.0) / (4.0 - 1.0))  # and between 0 and 1
    assert half_max_window(lam, np.array([4.0, 3.5, 3.0, 2.5, 2.2, 2.1])) == (-3.0, 2.0)  # never falls to half
    assert all(math.isnan(v) for v in half_max_window(lam, -np.ones(6)))
    got = box_response(lam, r, np.array([-1.0, 0.5]), 2.0)
    np.testing.assert_allclose(got, [1.0 + 3.0 + 4.0, 4.0 + 1.0])
    # width 1.5 covers one or two nodes; the best pair {-1, 0} (sum 7) for every centre in [-0.75, -0.25]
    assert box_peak(lam, r, 1.5) == pytest.approx(-0.5, abs=0.011)
    assert math.isnan(box_peak(lam, r, 6.0))


def test_summarise_finds_the_peak_and_window_of_a_noisy_gaussian_bump():
    """Per-sample profiles = a Gaussian bump in logsnr (centre 0.3, sd 1) plus noise: the peak interval covers the
    centre (plus the parabola's bias on this grid, computed from the noise-free bump) and the window is the
    half-maximum range +-1.1774 (plus the interpolation error of the grid)."""
    lam = np.linspace(-5, 5, 21)
    bump = np.exp(-0.5 * (lam - 0.3) ** 2)
    rng = np.random.default_rng(0)
    r = bump[:, None] + 0.3 * rng.standard_normal((lam.size, 300))
    prof = summarise(np.exp(-0.5 * lam), r, n_boot=300)
    np.testing.assert_allclose(prof.logsnr, lam)
    from critdiff.probes.bootstrap import curve_peak
    bias = abs(curve_peak(lam, bump) - 0.3)
    assert prof.peak_ci[0] - bias <= 0.3 <= prof.peak_ci[1] + bias
    half = math.sqrt(2 * math.log(2))
    lo_exact, hi_exact = half_max_window(lam, bump)
    assert abs(lo_exact - (0.3 - half)) < 0.05 and abs(hi_exact - (0.3 + half)) < 0.05
    assert prof.window_ci[0, 0] - 0.05 <= 0.3 - half <= prof.window_ci[0, 1] + 0.05
    assert prof.window_ci[1, 0] - 0.05 <= 0.3 + half <= prof.window_ci[1, 1] + 0.05
