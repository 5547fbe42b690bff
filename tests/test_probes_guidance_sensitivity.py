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


@pytest.mark.parametrize("recompute", [False, True])
def test_autograd_profile_equals_finite_pulses_on_a_nonlinear_model_with_ddpm(recompute):
    """Empirical (memorising, nonlinear) conditional denoiser, DDPM with one generator per sample: the pathwise
    derivative by autograd equals central differences of +-delta pulses run through ``Guided`` with the same noise
    (float64; delta = 1e-4 leaves a truncation error ~delta^2 times the third derivative); also when every
    evaluation is recomputed in the backward pass instead of kept (``recompute``)."""
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
                                  generator=SM.seed_generators(9, 4), baseline=0.0, recompute=recompute)
    fd = pulse_response(model, x, sig, label, classifier_logp(clf), sampler="ddpm", generator_seed=9, delta=1e-4)
    np.testing.assert_allclose(r, fd, rtol=1e-5, atol=1e-7)
    assert np.abs(r).max() > 1e-2


def test_recomputed_profile_of_the_patch_model_equals_the_kept_one():
    """The analytic patch model (the models the estimators recompute, SENS_RECOMPUTE): recomputing each evaluation
    in the backward pass gives the profile of the kept graph (the same operations again: rounding only)."""
    from critdiff.scores.patch import PatchScore

    g = torch.Generator().manual_seed(5)
    images = torch.rand(12, 1, 6, 6, generator=g, dtype=torch.float64)
    labels = torch.arange(12) % 3
    model = PatchScore(images, "square:3", boundary="zero", labels=labels)
    clf = torch.nn.Linear(36, 3).double()
    torch.nn.init.normal_(clf.weight, generator=g)
    clf.logits = lambda x: clf(x.reshape(x.shape[0], -1))
    sig = _grid(6)
    x = SM.initial_noise((3, 1, 6, 6), sig, SM.seed_generators(2, 3), dtype=torch.float64)
    label = torch.tensor([0, 1, 2])
    kept, F0, n0 = sensitivity_profile(model, x, sig, label, classifier_logp(clf), sampler="ddpm",
                                       generator=SM.seed_generators(7, 3))
    again, F1, n1 = sensitivity_profile(model, x, sig, label, classifier_logp(clf), sampler="ddpm",
                                        generator=SM.seed_generators(7, 3), recompute=True)
    np.testing.assert_allclose(again, kept, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(F1, F0, rtol=1e-12)
    assert np.abs(kept).max() > 1e-3 and (n0 == n1).all()


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


def _mixture():
    """A mixture of two isotropic Gaussians ``N(mu_c, v I)`` with equal weights and its exact denoisers
    (tests/oracles.py): the implicit classifier is the closed form ``p_s(c | y) = softmax_c(-|y - mu_c|^2 /
    (2 (v + s^2)))``."""
    from oracles import MixtureDenoiser

    g = torch.Generator().manual_seed(5)
    images = torch.randn(6, 1, 2, 2, generator=g, dtype=torch.float64) * 0.3
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    images[labels == 1] += 0.8
    return MixtureDenoiser(images, labels, v=0.2)


def exact_implicit_logp(model, sigma_eval, draws, seed):
    """``F(x, c) = mean_m log p_{s_e}(c | x + s_e n_m)`` of the mixture in closed form (differentiable)."""
    from critdiff.probes.guidance_sensitivity import implicit_draws

    def outcome(x, label):
        n = implicit_draws(tuple(x.shape[1:]), draws, seed)
        y = x.to(torch.float64)[None] + sigma_eval * n[:, None]  # [M, B, C, H, W]
        d2 = ((y[:, :, None] - model.mu.to(torch.float64)[None, None]) ** 2).flatten(3).sum(-1)  # [M, B, K]
        lp = torch.log_softmax(-d2 / (2 * (model.v + sigma_eval**2)), -1)
        return lp.gather(2, label.long()[None, :, None].expand(draws, -1, 1))[..., 0].mean(0)

    return outcome


def test_implicit_classifier_gradient_is_the_closed_form_of_a_gaussian_mixture():
    """Eq. 2.7: the gradient of the implicit outcome ((D_c - D_u) / s_e^2 averaged over the draws) equals autograd of
    the mixture's exact ``log p_s(c | y)``; its value is the first-order part (0 at the point)."""
    from critdiff.probes.guidance_sensitivity import implicit_logp

    model = _mixture()
    x = torch.randn(5, 1, 2, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64).requires_grad_(True)
    label = torch.tensor([0, 1, 1, 0, 1])
    imp = implicit_logp(model, 0.6, draws=3, seed=7)
    F = imp(x, label)
    (g_imp,) = torch.autograd.grad(F.sum(), x)
    (g_exact,) = torch.autograd.grad(exact_implicit_logp(model, 0.6, 3, 7)(x, label).sum(), x)
    # two float64 routes (denoiser difference / s^2 vs autograd of the log-softmax): rounding only
    torch.testing.assert_close(g_imp, g_exact, rtol=1e-10, atol=1e-12)
    assert float(g_exact.abs().max()) > 1e-2
    assert float(F.detach().abs().max()) == 0.0
    assert imp.nfe == 2 * 3 * 5
    with pytest.raises(ValueError, match="sigma_eval"):
        implicit_logp(model, 0.0)
    with pytest.raises(ValueError, match="draws"):
        implicit_logp(model, 0.5, draws=0)


@pytest.mark.parametrize("baseline", [0.0, 1.0])
def test_profile_with_the_implicit_classifier_equals_the_exact_mixture_classifier(baseline):
    """The profile with the implicit outcome equals (a) the autograd profile with the mixture's closed-form classifier
    as the outcome and (b) central differences of +-delta pulses through ``Guided`` with that closed-form classifier
    (DDPM, same noise): the implicit classifier is exact on the mixture."""
    from critdiff.probes.guidance_sensitivity import implicit_logp

    model = _mixture()
    sig = _grid(7)
    x = SM.initial_noise((4, 1, 2, 2), sig, SM.seed_generators(1, 4), dtype=torch.float64)
    label = torch.tensor([0, 1, 1, 0])
    exact = exact_implicit_logp(model, 0.5, 4, 3)
    kw = dict(sampler="ddpm", baseline=baseline)
    r_imp, _, _ = sensitivity_profile(model, x, sig, label, implicit_logp(model, 0.5, draws=4, seed=3),
                                      generator=SM.seed_generators(9, 4), **kw)
    r_ex, _, _ = sensitivity_profile(model, x, sig, label, exact, generator=SM.seed_generators(9, 4), **kw)
    np.testing.assert_allclose(r_imp, r_ex, rtol=1e-9, atol=1e-12)  # float64 routes, rounding only
    fd = pulse_response(model, x, sig, label, exact, generator_seed=9, delta=1e-4, **kw)
    np.testing.assert_allclose(r_imp, fd, rtol=1e-5, atol=1e-7)  # truncation ~ delta^2
    assert np.abs(r_imp).max() > 1e-2
