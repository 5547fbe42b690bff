"""Linear response of the symmetric branch (critdiff.probes.linear_response).

Oracles: a linear circulant denoiser ``D(x) = ifft(A(k) / sigma^2 * fft(x))`` whose gain is known in closed form
(so the growth stiffness is ``1 - A(k)/sigma^2`` and the crossing ``logsnr = -log max A`` exactly), and the
linear-stability theory (critdiff.theory.analyze, closed-form patch-pool covariances at the exact homogeneous
solution) for the periodic equivariant patch model.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from critdiff.probes.linear_response import (branch_stiffness, from_branch_stiffness, from_growth, growth_run,
                                             linear_response, log_gain, logsnr_grid)

pytestmark = pytest.mark.usefixtures("one_thread")

H = W = 8


def _gain(H, W, a0=3.0, width=1.5):
    ky = 2 * np.pi * np.fft.fftfreq(H)[:, None]
    kx = 2 * np.pi * np.fft.fftfreq(W)[None, :]
    bump = lambda k0: np.exp(-(ky**2 + (kx - k0) ** 2) / width)  # noqa: E731
    return a0 * 0.5 * (bump(np.pi / 2) + bump(-np.pi / 2))  # A(k) = A(-k): a real denoiser; softest (0, +-pi/2)


class LinearCirculant:
    """``D(x) = F^-1 [A(k) / sigma^2] F x``: circulant, exactly linear; ``J_D(k) = A(k)/sigma^2``."""

    def __init__(self, A):
        self.A = torch.as_tensor(A)

    def __call__(self, x, sigma, label=None):
        s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1) if torch.is_tensor(sigma) else float(sigma)
        xh = torch.fft.fft2(x)
        return torch.fft.ifft2(xh * self.A.to(xh.dtype) / s**2).real.to(x.dtype)


def test_growth_stiffness_is_one_minus_the_gain_exactly():
    A = _gain(H, W)
    model = LinearCirculant(A)
    sig = logsnr_grid("vp-linear", 12)
    run = growth_run(model, (1, H, W), sig, eps=0.3, n=3, dtype=torch.float64)
    want = 1.0 - A[None] / sig[:-1, None, None] ** 2
    np.testing.assert_allclose(run.stiffness()[:-2], want[:-2], rtol=1e-9, atol=1e-9)
    # the last steps divide by modes already amplified ~1e6 times beside others: float64 roundoff shows
    np.testing.assert_allclose(run.stiffness(), want, rtol=1e-4, atol=1e-9)
    assert run.num.shape == (12, 3, H, W)


def test_growth_crossing_and_mode_from_a_closed_form():
    A = _gain(H, W)
    lr = linear_response(LinearCirculant(A), (1, H, W), "vp-linear", steps=10, eps=1e-2, n=3, dtype=torch.float64)
    ct = from_growth(lr, n_boot=50)
    assert ct.method == "zero-crossing"
    # log-gain is exactly linear in logsnr here, so interpolation is exact: crossing at sigma^2 = max A
    assert abs(ct.logsnr - (-math.log(A.max()))) < 1e-8
    np.testing.assert_allclose(lr.g[:-2], lr.g_fine[:-2], rtol=1e-9, atol=1e-9)  # no branch error in a linear model
    j = int(np.argmin(np.abs(lr.logsnr - ct.logsnr)))
    np.testing.assert_allclose(np.abs(lr.k_star[j]), [0.0, math.pi / 2])
    # the interval is an interval (finite, contains the estimate)
    assert ct.logsnr_ci[0] <= ct.logsnr <= ct.logsnr_ci[1]


def test_branch_stiffness_by_jvp_matches_the_closed_form():
    A = _gain(H, W)
    model = LinearCirculant(A)
    lr = linear_response(model, (1, H, W), "vp-linear", steps=10, n=2, dtype=torch.float64)
    bs = branch_stiffness(model, lr, -math.log(A.max()), width=2, dtype=torch.float64)
    sig = np.exp(-0.5 * bs["logsnr"])
    want = 1.0 - A[None] / sig[:, None, None] ** 2
    np.testing.assert_allclose(bs["kappa_state"].mean(1), want, rtol=1e-8, atol=1e-8)
    ct = from_branch_stiffness(bs, n_boot=30)
    assert abs(ct.logsnr - (-math.log(A.max()))) < 1e-8


def test_log_gain_sign_matches_stiffness_sign():
    g = np.array([0.9, 0.1, 0.0, -0.3, 1.5])
    lg = log_gain(g)
    assert (lg[:2] > 0).all() and lg[2] == 0 and lg[3] < 0 and lg[4] > 100


@pytest.mark.parametrize("kw, word", [({"eps": 0.0}, "eps"), ({"n": 1}, "n")])
def test_bad_arguments_name_themselves(kw, word):
    with pytest.raises(ValueError, match=word):
        growth_run(LinearCirculant(_gain(H, W)), (1, H, W), logsnr_grid("vp-linear", 4), **kw)


def test_sigmas_must_decrease():
    with pytest.raises(ValueError, match="sigmas"):
        growth_run(LinearCirculant(_gain(H, W)), (1, H, W), [1.0, 2.0, 0.5])


def test_seed_reproduces_and_runs_are_paired_across_grids():
    model = LinearCirculant(_gain(H, W))
    a = growth_run(model, (1, H, W), logsnr_grid("vp-linear", 6), n=2, seed=5, dtype=torch.float64, keep_states=True)
    b = growth_run(model, (1, H, W), logsnr_grid("vp-linear", 6), n=2, seed=5, dtype=torch.float64, keep_states=True)
    c = growth_run(model, (1, H, W), logsnr_grid("vp-linear", 12), n=2, seed=5, dtype=torch.float64, keep_states=True)
    np.testing.assert_array_equal(a.states, b.states)
    np.testing.assert_array_equal(a.states[0], c.states[0])  # same initial fluctuations on both grids


def test_nested_grids():
    c, f = logsnr_grid("vp-linear", 8), logsnr_grid("vp-linear", 16)
    np.testing.assert_allclose(f[::2], c, rtol=1e-12)


@pytest.mark.parametrize("data, stencil", [("stripes:size=8,wavelength=4,n=12", "square:5"),
                                           ("textures:size=12,per_class=4", "square:3")])
def test_patch_model_growth_onset_is_the_theory_critical_time(data, stencil):
    """The measured instability of the sampler's symmetric branch agrees with the linear theory."""
    from critdiff.data import load
    from critdiff.probes.homogeneous import k_star_matches
    from critdiff.scores.patch import PatchScore
    from critdiff.theory.analysis import analyze

    images, _ = load(data, seed=0)
    images = images.double()
    cp = analyze(images, stencil, "vp-linear").critical
    assert cp.found
    model = PatchScore(images, stencil=stencil, equivariant=True, boundary="periodic")
    lr = linear_response(model, tuple(images.shape[1:]), "vp-linear", steps=24, n=2, dtype=torch.float64)
    ct = from_growth(lr, n_boot=30)
    assert ct.method == "zero-crossing"
    assert abs(ct.logsnr - cp.logsnr_c) < 0.15, (ct.logsnr, cp.logsnr_c)
    j = int(np.argmin(np.abs(lr.logsnr - ct.logsnr)))
    assert k_star_matches(lr.g[j], cp.k_star, tol=1e-3)


def test_mode_feature_takes_the_earliest_per_mode_crossing():
    from critdiff.probes.linear_response import mode_feature

    lam = np.array([-2.0, 0.0, 2.0, 4.0])
    G = np.zeros((4, 1, 2))
    G[:, 0, 0] = 1.0 - lam  # crosses at 1.0
    G[:, 0, 1] = 0.5 - 0.2 * lam  # crosses at 2.5; softest at lam = 0, so min_k switches modes in [0, 2]
    t, method, kmap = mode_feature(lam, G)
    assert method == "zero-crossing" and abs(t - 1.0) < 1e-12
    assert np.argmin(kmap) == 0 and abs(kmap[0, 0]) < 1e-12
    t, method, _ = mode_feature(lam, G + 10.0)  # never crosses
    assert method == "minimum"
