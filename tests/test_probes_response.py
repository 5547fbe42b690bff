"""Susceptibility, decision entropy, trajectory observer and critical-time estimators against closed forms."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from critdiff.probes import (EDGE_RTOL, at_grid_edge, combine, decision_time, entropy, estimate, extremum,
                             from_samples, from_stiffness, gaussian_logits, mean_ci, probe_trajectory, response_spread, steepest_drop,
                             structure_factor, susceptibility, zero_crossing, EntropyRecorder)
from critdiff.probes.susceptibility import kick_fields
from critdiff.seeding import derive
from critdiff.samplers import sample_heun
from critdiff.schedules import sigma_grid
from critdiff.scores.gaussian import GaussianScore


pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n=50, H=4, W=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 1, H, W, generator=g, dtype=torch.float64)
    ramp = torch.linspace(0.3, 2.0, H * W, dtype=torch.float64).reshape(1, 1, H, W)
    return z * ramp + 0.6 * torch.roll(z, 1, -1)


def _propagator(y, sigmas, i, sampler):
    """Closed-form linear map of the deviation from step i to the end (Gaussian D = mu + A(s)(x - mu))."""
    Y = y.reshape(y.shape[0], -1).numpy()
    S = np.cov(Y, rowvar=False, ddof=1)
    I = np.eye(S.shape[0])
    P = I
    s = [float(v) for v in sigmas]
    for j in range(i, len(s) - 1):
        A = S @ np.linalg.inv(S + s[j] ** 2 * I)
        if s[j + 1] == 0:
            M = A
        elif sampler == "euler":
            M = I + (s[j + 1] - s[j]) / s[j] * (I - A)
        else:  # ddpm: x' = (1 - r) D + r x + noise
            r = s[j + 1] ** 2 / s[j] ** 2
            M = (1 - r) * A + r * I
        P = M @ P
    return P


@pytest.mark.parametrize("sampler", ["euler", "ddpm"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_chi_equals_closed_form_linear_response(sampler, dtype):
    y = _data()
    model = GaussianScore(y.to(dtype), covariance="full")
    sigmas = sigma_grid("vp-linear", 12)
    x = (torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * sigmas[0]).to(dtype)
    kicks = [0, 5, 9, 11]
    eps = 1e-3 if dtype == torch.float64 else 3e-2
    res = susceptibility(model, x, sigmas, kicks, sampler=sampler, eps=eps, seed=3, n_boot=200)
    z = kick_fields(tuple(x.shape), "white", seed=derive(3, "kick")).reshape(6, -1).numpy()
    for t, i in enumerate(kicks):
        P = _propagator(y, sigmas, i, sampler)
        expected = np.linalg.norm(z @ P.T, axis=1) / np.linalg.norm(z, axis=1)
        np.testing.assert_allclose(res.chi[t], expected, rtol=1e-7 if dtype == torch.float64 else 2e-3)
    assert (res.chi_ci[:, 0] <= res.chi_mean).all() and (res.chi_mean <= res.chi_ci[:, 1]).all()
    assert res.nfe > 12


def test_response_spread_of_a_gaussian_bump():
    H = W = 41
    ry = np.arange(H)[:, None] - 20
    rx = np.arange(W)[None, :] - 20
    for w in (1.5, 3.0):
        dx = torch.as_tensor(np.exp(-(ry**2 + rx**2) / (2 * w**2)))[None, None]
        # |dx|^2 ~ exp(-r^2 / w^2): <r^2> = w^2 in two dimensions
        assert response_spread(dx, "bump", site=(20, 20))[0] == pytest.approx(w, rel=1e-6)
    # white kick: the spread is xi_zero of |dx_hat|^2; a delta response has xi_zero = 0
    delta = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    delta[0, 0, 3, 3] = 1
    assert response_spread(delta, "white")[0] == pytest.approx(0.0, abs=1e-12)


def test_bootstrap_interval_covers_the_true_mean():
    rng = np.random.default_rng(0)
    cover = 0
    for s in range(150):
        lo, hi = mean_ci(rng.exponential(2.0, 40), n_boot=300, seed=s)
        cover += lo <= 2.0 <= hi
    assert 0.85 <= cover / 150 <= 0.99


def test_zero_crossing_and_extremum_are_exact_on_simple_curves():
    lam = np.array([-6.0, -4.5, -2.0, -1.0, 0.5, 3.0])
    assert zero_crossing(lam, 1.3 * (-0.7 - lam)) == pytest.approx(-0.7, abs=1e-12)
    assert zero_crossing(lam, 1.0 + lam**2) is None
    vertex, interior = extremum(lam, -2.0 * (lam + 1.3) ** 2 + 5, "max")
    assert interior and vertex == pytest.approx(-1.3, abs=1e-12)
    assert extremum(lam, lam, "max") == (3.0, False)


@pytest.mark.parametrize("shift", [-9.0, -1.3, 2.9, 9.0])
@pytest.mark.parametrize("kind", ["min", "max"])
def test_edge_rule_agrees_with_the_extremum_index(shift, kind):
    """at_grid_edge on peaks/minima against the independent index test of extremum (first or last point)."""
    lam = np.array([-6.0, -4.5, -2.0, -1.0, 0.5, 3.0])
    sign = 1.0 if kind == "min" else -1.0
    curve = sign * (lam - shift) ** 2
    est = from_samples("s", lam, np.repeat(curve[:, None], 4, 1), kind, n_boot=20)
    assert at_grid_edge(est, lam) == (not extremum(lam, curve, kind)[1])
    assert EDGE_RTOL * (lam.max() - lam.min()) < 1e-6  # the one tolerance is rounding-sized


def test_edge_rule_spares_crossings_and_missing_estimates():
    lam = np.linspace(-3.0, 3.0, 7)
    cross = from_samples("s", lam, np.repeat((3.0 - lam)[:, None], 3, 1), "crossing-or-min", n_boot=20)
    assert cross.method == "zero-crossing" and cross.logsnr == pytest.approx(3.0)
    assert not at_grid_edge(cross, lam)  # a zero crossing on the last point is still a crossing
    none = from_samples("s", lam, np.ones((7, 3)), "crossing", n_boot=20)
    assert math.isnan(none.logsnr) and not at_grid_edge(none, lam)


def test_critical_time_estimators_on_synthetic_curves():
    rng = np.random.default_rng(1)
    lam = np.linspace(-8, 8, 17)
    B = 60
    # stiffness-like: per-sample lines through (lam_c, 0) with noisy slopes -> crossing at lam_c
    lam_c = 1.37
    kappa = (lam_c - lam)[:, None] * rng.uniform(0.5, 1.5, B)[None] + 0.05 * rng.standard_normal((17, B))
    est = from_samples("stiffness", lam, kappa, "crossing-or-min", n_boot=300)
    assert est.method == "zero-crossing"
    assert est.logsnr == pytest.approx(lam_c, abs=0.1)
    assert est.logsnr_ci[0] <= lam_c <= est.logsnr_ci[1]
    assert est.sigma == pytest.approx(math.exp(-est.logsnr / 2))
    # never crossing: the minimum is located
    est2 = from_samples("stiffness", lam, 0.5 + (lam - 2.0)[:, None] ** 2 + 0 * kappa, "crossing-or-min", n_boot=50)
    assert est2.method == "minimum" and est2.logsnr == pytest.approx(2.0, abs=1e-9)
    # chi-like peak at lam_p
    lam_p = -2.3
    chi = np.exp(-((lam - lam_p) ** 2) / 8)[:, None] * rng.uniform(0.8, 1.2, B)[None]
    peak = from_samples("chi", lam, chi, "max", n_boot=300)
    assert peak.logsnr == pytest.approx(lam_p, abs=0.15) and peak.logsnr_ci[0] - 0.15 <= lam_p <= peak.logsnr_ci[1] + 0.15
    comb = combine([est, peak])
    w = np.array([1 / est.logsnr_se**2, 1 / peak.logsnr_se**2])
    assert comb.logsnr == pytest.approx((w @ [est.logsnr, peak.logsnr]) / w.sum())
    assert comb.logsnr_ci[0] <= min(est.logsnr, peak.logsnr) and comb.logsnr_ci[1] >= max(est.logsnr, peak.logsnr)
    t = comb.estimate("vp-linear")
    assert t.logsnr == pytest.approx(comb.logsnr) and t.logsnr_ci == pytest.approx(tuple(comb.logsnr_ci))
    with pytest.raises(ValueError, match="how"):
        estimate("x", lam, lambda idx: lam, 3, "peak")


class _Unstable:
    """Linear denoiser D(x) = (s_c / sigma) x: stiffness (1 - s_c/sigma)/sigma^2 crosses 0 at sigma = s_c."""

    def __init__(self, s_c):
        self.s_c = s_c

    def __call__(self, x, sigma, label=None):
        s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1)
        return self.s_c / s * x


def test_trajectory_records_and_stiffness_crossing():
    sigmas = torch.cat([torch.exp(torch.linspace(math.log(20), math.log(0.05), 25, dtype=torch.float64)),
                        torch.zeros(1, dtype=torch.float64)])
    x = torch.randn(8, 1, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.1
    tr = probe_trajectory(_Unstable(0.8), x, sigmas, sampler="euler", steps=range(0, 24), spectral={"n_probes": 1})
    np.testing.assert_allclose(tr.sigma, sigmas[:24].numpy())
    np.testing.assert_allclose(tr.logsnr, -2 * np.log(tr.sigma))
    np.testing.assert_allclose(tr.S[3], structure_factor(torch.as_tensor(tr.states[3])).S)
    assert tr.nfe_sampler == 25 and tr.nfe_probe == 24
    np.testing.assert_allclose(tr.kappa_min, (1 - 0.8 / tr.sigma) / tr.sigma**2, rtol=1e-10, atol=1e-12)
    est = from_stiffness(tr, n_boot=50)
    assert est.method == "zero-crossing"
    grid = np.diff(tr.logsnr).max()
    assert abs(est.logsnr - (-2 * math.log(0.8))) < grid
    assert est.to_dict("ve")["estimate"]["logsnr"] == pytest.approx(est.logsnr)
    assert not tr.oz_preferred.any()  # a multiple of the identity: flat spectrum


def test_gaussian_logits_are_exact_log_densities():
    g = torch.Generator().manual_seed(5)
    y = torch.randn(60, 1, 3, 3, generator=g, dtype=torch.float64).cumsum(-1)
    lab = torch.arange(60) % 3
    y = y + lab.reshape(-1, 1, 1, 1).double()
    x = torch.randn(4, 1, 3, 3, generator=g, dtype=torch.float64)
    s = 0.7
    full = gaussian_logits(GaussianScore(y, lab, covariance="full"))(x, torch.full((4,), s, dtype=torch.float64), None)
    stat = gaussian_logits(GaussianScore(y, lab, covariance="stationary"))(x, torch.full((4,), s, dtype=torch.float64), None)
    for k in range(3):
        yk = y[lab == k].reshape(-1, 9).numpy()
        mu, cov = yk.mean(0), np.cov(yk, rowvar=False)
        np.testing.assert_allclose(full[:, k], multivariate_normal(mu, cov + s**2 * np.eye(9)).logpdf(x.reshape(4, -1)), rtol=1e-10)
        # stationary fit: constant mean, circulant covariance built from the spectrum by brute force
        yk4 = y[lab == k]
        m = float(yk4.mean())
        d = (yk4 - m).numpy()[:, 0]
        Cr = np.array([[np.sum(d * np.roll(d, (-a, -b), (1, 2))) / (9 * (len(d) - 1)) for b in range(3)] for a in range(3)])
        idx = [(i, j) for i in range(3) for j in range(3)]
        Sig = np.array([[Cr[(p[0] - q[0]) % 3, (p[1] - q[1]) % 3] for q in idx] for p in idx])
        np.testing.assert_allclose(stat[:, k], multivariate_normal(np.full(9, m), Sig + s**2 * np.eye(9)).logpdf(
            x.reshape(4, -1)), rtol=1e-9)


def test_entropy_and_decision_time():
    assert float(entropy(torch.zeros(1, 5))) == pytest.approx(math.log(5))
    lam = np.linspace(-6, 6, 25)
    H = math.log(3) * (1 - 1 / (1 + np.exp(-(lam - 1.1) * 3)))
    assert steepest_drop(lam, H) == pytest.approx(1.0, abs=0.26)
    dec = decision_time(np.exp(-lam / 2), np.repeat(H[:, None], 5, 1), n_boot=20)
    assert dec.decision_logsnr == steepest_drop(lam, H)
    g = torch.Generator().manual_seed(0)
    y = torch.randn(60, 1, 4, 4, generator=g, dtype=torch.float64) + 2.0 * (torch.arange(60) % 2).reshape(-1, 1, 1, 1)
    model = GaussianScore(y, torch.arange(60) % 2)
    sigmas = sigma_grid("vp-linear", 20)
    rec = EntropyRecorder(gaussian_logits(model))
    sample_heun(model, torch.randn(6, 1, 4, 4, generator=g, dtype=torch.float64) * sigmas[0], sigmas, callback=rec)
    d = rec.result(n_boot=50)
    assert d.entropy_mean[0] == pytest.approx(math.log(2), abs=1e-3) and d.entropy_mean[-1] < 0.2
    assert d.logsnr[0] < d.decision_logsnr < d.logsnr[-1]
