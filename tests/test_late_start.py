"""Gaussian late start (critdiff.late_start) and the grids that start late or follow a measured density
(critdiff.schedules.sigma_grid), against closed forms and independent computations.

Statistical tests: a sample covariance entry of n Gaussian draws has standard error
sqrt((C_ii C_jj + C_ij^2) / n); the tests allow 5 standard errors per entry (a false alarm over the <= 100
entries checked is < 1e-4), with fixed seeds.
"""

import math

import numpy as np
import pytest
import torch

from critdiff import samplers as SM
from critdiff import schedules as S
from critdiff.late_start import (cut_grid, fit_class_moments, fit_moments, parse_late_start, start_state,
                                 start_state_labelled, start_state_vp)
from critdiff.scores.gaussian import GaussianScore

pytestmark = pytest.mark.usefixtures("one_thread")


def _circulant_fields(n, C=1, H=6, W=6, seed=0):
    """Stationary Gaussian fields: white noise convolved (periodically) with a 3x3 kernel, plus 0.1."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, C, H, W, generator=g, dtype=torch.float64)
    k = torch.tensor([[0.2, 0.5, 0.2], [0.5, 1.0, 0.5], [0.2, 0.5, 0.2]], dtype=torch.float64)
    zp = torch.nn.functional.pad(z, (1, 1, 1, 1), mode="circular")
    return torch.nn.functional.conv2d(zp.reshape(n * C, 1, H + 2, W + 2), k.reshape(1, 1, 3, 3)).reshape(n, C, H, W) + 0.1


def _true_circulant_cov(H=6, W=6):
    """The exact covariance of :func:`_circulant_fields` (C = 1): K K^T with K the periodic convolution matrix."""
    D = H * W
    eye = torch.eye(D, dtype=torch.float64).reshape(D, 1, H, W)
    k = torch.tensor([[0.2, 0.5, 0.2], [0.5, 1.0, 0.5], [0.2, 0.5, 0.2]], dtype=torch.float64)
    K = torch.nn.functional.conv2d(torch.nn.functional.pad(eye, (1, 1, 1, 1), mode="circular"), k.reshape(1, 1, 3, 3))
    K = K.reshape(D, D).T  # column j = K e_j
    return K @ K.T


def _assert_cov_close(x, cov, mean, k=5.0):
    """Sample mean and covariance of ``x [n, D]`` within ``k`` standard errors of ``mean``, ``cov``."""
    n = x.shape[0]
    m = x.mean(0)
    se_m = torch.sqrt(torch.diagonal(cov) / n)
    assert bool((torch.abs(m - mean) <= k * se_m).all()), float((torch.abs(m - mean) / se_m).max())
    c = torch.cov(x.T)
    d = torch.diagonal(cov)
    se = torch.sqrt((d[:, None] * d[None, :] + cov**2) / n)
    z = torch.abs(c - cov) / se
    assert float(z.max()) <= k, float(z.max())


def _gaussian_data(n=3000, D=6, seed=0):
    """Non-stationary Gaussian data on a 1 x 2 x 3 image: a fixed mixing matrix A, mean ramp."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(D, D, generator=g, dtype=torch.float64) * 0.6 + torch.eye(D, dtype=torch.float64) * 0.4
    mu = torch.linspace(-0.5, 0.7, D, dtype=torch.float64)
    y = torch.randn(n, D, generator=g, dtype=torch.float64) @ A.T + mu
    return y.reshape(n, 1, 2, 3), mu, A @ A.T


# --- moments ------------------------------------------------------------------------------------
def test_full_moments_equal_torch_cov():
    y, _, _ = _gaussian_data(n=50)
    m = fit_moments(y, "full")
    flat = y.reshape(50, -1)
    assert torch.allclose(m.mu.reshape(-1), flat.mean(0), atol=1e-12)
    assert torch.allclose(m.dense_covariance(), torch.cov(flat.T), atol=1e-10)


@pytest.mark.parametrize("C", [1, 2])
def test_stationary_moments_equal_full_fit_of_shift_augmented_data(C):
    """Averaging the full covariance over every cyclic shift gives a circulant matrix: the stationary fit."""
    y = _circulant_fields(30, C=C, H=4, W=5)
    if C == 2:
        y = torch.cat([y[:, :1], 0.5 * y[:, :1] + y[:, 1:]], 1)
    aug = torch.cat([torch.roll(y, (a, b), (2, 3)) for a in range(4) for b in range(5)])
    full, stat = fit_moments(aug, "full"), fit_moments(y, "stationary")
    # the full fit of the augmented set normalises by (20 n - 1), the stationary one by (n - 1); undo that
    scale = (aug.shape[0] - 1) / (20 * (y.shape[0] - 1))
    # same mean: the channel means (every shift is in the augmented set)
    assert torch.allclose(full.mu, stat.mu, atol=1e-12)
    # the augmented covariance includes the spread of the per-image position means; with mu per channel
    # both are covariances about the same mean, so they agree up to the normalisation
    assert torch.allclose(full.dense_covariance() * scale, stat.dense_covariance(), atol=1e-10)


def test_moments_round_trip_and_lambda_max():
    y = _circulant_fields(20)
    for cov in ("full", "stationary"):
        m = fit_moments(y, cov)
        m2 = type(m).from_tensors(m.tensors())
        # U read back is contiguous, eigh's is not: the matmuls may round differently in the last bits
        assert torch.allclose(m2.dense_covariance(), m.dense_covariance(), rtol=1e-12, atol=1e-14)
        assert math.isclose(m.lambda_max(), float(torch.linalg.eigvalsh(m.dense_covariance()).max()), rel_tol=1e-9)


def test_bad_input():
    y = _circulant_fields(5)
    with pytest.raises(ValueError, match="covariance"):
        fit_moments(y, "diag")
    with pytest.raises(ValueError, match="at least 2"):
        fit_moments(y[:1])
    m = fit_moments(y)
    with pytest.raises(ValueError, match="sigma"):
        start_state(m, 0.0, 4)
    with pytest.raises(ValueError, match="n:"):
        start_state(m, 1.0, 0)
    assert parse_late_start("off") is None and parse_late_start(None) is None
    assert parse_late_start("auto") == "auto" and parse_late_start("-1.5") == -1.5
    with pytest.raises(ValueError, match="late_start"):
        parse_late_start("soon")


# --- the draw ----------------------------------------------------------------------------------
@pytest.mark.parametrize("sigma", [0.3, 2.0])
def test_start_state_full_has_the_matching_moments(sigma):
    """eq. LS.1: x ~ N(mu, Sigma + sigma^2 I), with the fitted moments."""
    y, _, _ = _gaussian_data(n=200)
    m = fit_moments(y, "full")
    x = start_state(m, sigma, 4000, torch.Generator().manual_seed(1), dtype=torch.float64).reshape(4000, -1)
    _assert_cov_close(x, m.dense_covariance() + sigma**2 * torch.eye(6, dtype=torch.float64), m.mu.reshape(-1))


@pytest.mark.parametrize("sigma", [0.3, 2.0])
def test_start_state_stationary_has_the_matching_moments(sigma):
    y = _circulant_fields(40, H=4, W=4)
    m = fit_moments(y, "stationary")
    x = start_state(m, sigma, 4000, torch.Generator().manual_seed(2), dtype=torch.float64)
    assert x.dtype == torch.float64 and x.shape == (4000, 1, 4, 4)
    _assert_cov_close(x.reshape(4000, -1), m.dense_covariance() + sigma**2 * torch.eye(16, dtype=torch.float64),
                      m.mu.reshape(-1))


def test_start_state_vp_is_the_scaled_denoiser_frame_draw():
    """eq. LS.2: z = a x with x drawn at sigma = s / a, so z ~ N(a mu, a^2 Sigma + s^2 I)."""
    y, _, _ = _gaussian_data(n=100)
    m = fit_moments(y, "full")
    a, s = 0.6, 0.8
    z = start_state_vp(m, a, s, 4000, torch.Generator().manual_seed(3), dtype=torch.float64).reshape(4000, -1)
    _assert_cov_close(z, a**2 * m.dense_covariance() + s**2 * torch.eye(6, dtype=torch.float64), a * m.mu.reshape(-1))


def test_start_state_per_sample_generators_do_not_depend_on_the_batch():
    m = fit_moments(_circulant_fields(20, H=4, W=4), "stationary")
    gens = SM.seed_generators(7, 5)
    full = start_state(m, 0.5, 5, gens, dtype=torch.float64)
    one = start_state(m, 0.5, 1, SM.seed_generators(7, 5)[3:4], dtype=torch.float64)
    # one sample's draw through the same FFT path but a batch of 1: equal up to float64 rounding
    assert torch.allclose(full[3:4], one, atol=1e-12)


def _images_4x5(n=200, classes=3, seed=6):
    """``[n, 1, 4, 5]`` images (20 pixels: torch draws a float32 and a float64 normal tensor of 16 or more
    entries by different routines, so only such sizes tell the two draws apart) and labels ``j mod classes``."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    y = labels.to(torch.float64).reshape(n, 1, 1, 1) + 0.5 * torch.randn(n, 1, 4, 5, generator=g, dtype=torch.float64)
    return y, labels


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_start_state_tends_to_the_full_range_start_at_high_noise(dtype):
    """The symmetric root: (Sigma + sigma^2 I)^{1/2} z -> sigma z as sigma grows, with the SAME z as the full-range
    start samplers.initial_noise draws from the same generators in the same dtype (paired noise). A float64 draw
    from a float32 run's generators is another z (correlation about 0): in float32 this test catches that."""
    m = fit_moments(_images_4x5()[0], "full")
    sigma = 1e4
    full = SM.initial_noise((8, 1, 4, 5), [sigma, 0.0], SM.seed_generators(4, 8), dtype=dtype)
    x = start_state(m, sigma, 8, SM.seed_generators(4, 8), dtype=dtype)
    assert x.dtype == dtype
    # |mu|, |Sigma| ~ 1: x / sigma - z = mu / sigma + O(|Sigma| / sigma^2) < 1e-3; the dtype's rounding is smaller
    assert torch.allclose(x / sigma, full / sigma, atol=1e-3, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_start_state_labelled_shares_z_with_the_full_range_start(dtype):
    """Each labelled draw uses its own generator's z, the one initial_noise draws for that sample."""
    y, labels = _images_4x5()
    cm = fit_class_moments(y, labels)
    sigma, lab = 1e4, torch.tensor([2, 0, 1, 1, 0])
    full = SM.initial_noise((5, 1, 4, 5), [sigma, 0.0], SM.seed_generators(9, 5), dtype=dtype)
    x = start_state_labelled(cm, sigma, lab, SM.seed_generators(9, 5), dtype=dtype)
    assert torch.allclose(x / sigma, full / sigma, atol=1e-3, rtol=0)


def _labelled_data(n=300, seed=5):
    """Three classes with different means (and a common 2x3 covariance), labels 0, 1, 2 in turn."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    means = torch.tensor([[-1.0] * 6, [0.0] * 6, [2.0, 1, 0, -1, 0, 1]], dtype=torch.float64)
    A = torch.randn(6, 6, generator=g, dtype=torch.float64) * 0.4
    y = means[labels] + torch.randn(n, 6, generator=g, dtype=torch.float64) @ A.T
    return y.reshape(n, 1, 2, 3), labels


def test_class_moments_are_class_means_with_the_pooled_within_class_covariance():
    """Oracle: per-class means by a loop and numpy's covariance of the residuals x - mu_{y(x)}."""
    y, labels = _labelled_data()
    cm = fit_class_moments(y, labels)
    assert sorted(cm) == [0, 1, 2]
    flat = y.reshape(len(y), -1).numpy()
    res = flat.copy()
    for c in range(3):
        mu = flat[labels.numpy() == c].mean(0)
        np.testing.assert_allclose(cm[c].mu.reshape(-1).numpy(), mu, atol=1e-12)
        res[labels.numpy() == c] -= mu
        assert cm[c].n == 100
    want = np.cov(res, rowvar=False)  # 1/(N-1), as fit_moments
    for c in range(3):
        np.testing.assert_allclose(cm[c].dense_covariance().numpy(), want, atol=1e-10)
    with pytest.raises(ValueError, match="labels"):
        fit_class_moments(y, labels[:-1])


def test_start_state_labelled_draws_each_class_gaussian_and_does_not_depend_on_the_batch():
    y, labels = _labelled_data()
    cm = fit_class_moments(y, labels)
    n, sigma = 6000, 0.7
    lab = torch.arange(n) % 3
    x = start_state_labelled(cm, sigma, lab, SM.seed_generators(9, n), dtype=torch.float64).reshape(n, -1)
    for c in range(3):  # eq. LS.1 per class
        _assert_cov_close(x[lab == c], cm[c].dense_covariance() + sigma**2 * torch.eye(6, dtype=torch.float64),
                          cm[c].mu.reshape(-1))
    # sample 4 alone (its own generator, class 1): equal up to float64 rounding of a batch of 1 vs a class batch
    one = start_state(cm[1], sigma, 1, SM.seed_generators(9, n)[4:5], dtype=torch.float64).reshape(1, -1)
    assert torch.allclose(x[4:5], one, atol=1e-12)
    with pytest.raises(ValueError, match="generators"):
        start_state_labelled(cm, sigma, lab[:3], SM.seed_generators(9, 2))
    with pytest.raises(ValueError, match="no moments"):
        start_state_labelled(cm, sigma, torch.tensor([0, 5]), SM.seed_generators(9, 2))


# --- the oracle: Gaussian data with its exact denoiser ---------------------------------------------
@pytest.mark.parametrize("sigma_start", [0.2, 1.0, 5.0])
def test_late_start_is_exact_for_gaussian_data(sigma_start):
    """Start at any level from N(mu, Sigma + s^2 I) and follow the exact probability-flow ODE (closed form per
    eigenmode, y(0) = y(s) sqrt(lam / (lam + s^2)), docs/samplers.md): the samples have the data's moments."""
    y, _, _ = _gaussian_data(n=400)
    m = fit_moments(y, "full")
    x = start_state(m, sigma_start, 4000, torch.Generator().manual_seed(5), dtype=torch.float64).reshape(4000, -1)
    U, lam, mu = m.U, m.lam, m.mu.reshape(-1)
    x0 = mu + ((x - mu) @ U * torch.sqrt(lam / (lam + sigma_start**2))) @ U.T
    _assert_cov_close(x0, m.dense_covariance(), mu)


@pytest.mark.parametrize("covariance", ["full", "stationary"])
def test_late_start_with_a_sampler_recovers_the_data_covariance(covariance):
    """The same with a real sampler (DPM-Solver++(2M), 40 steps from the start level): the exact Gaussian
    denoiser, the late-start state, and the truncated grid together return the data's covariance."""
    y = _circulant_fields(300, H=4, W=4)
    model = GaussianScore(y, covariance=covariance)
    m = fit_moments(y, covariance)
    sch = S.get("vp-linear")
    sigmas = S.sigma_grid(sch, 40, "logsnr", sigma_max=1.5)
    assert math.isclose(float(sigmas[0]), 1.5, rel_tol=1e-12) and math.isclose(float(sigmas[-2]), sch.sigma_min)
    x = start_state(m, float(sigmas[0]), 3000, SM.seed_generators(6, 3000), dtype=torch.float64)
    out = SM.sample_dpmpp_2m(model, x, sigmas).reshape(3000, -1)
    # the sampler ends with x = D(x, sigma_min): the covariance shrinks by lam / (lam + sigma_min^2) per mode,
    # below 1e-5 here; the 2M discretisation error at 40 steps is far below the 5-standard-error tolerance
    _assert_cov_close(out, m.dense_covariance(), m.mu.reshape(-1))


def test_stationary_moments_need_fewer_samples_on_stationary_data():
    """With 12 samples of 36-pixel stationary fields, the full fit is rank-deficient (rank <= 11) while the
    stationary one averages 36 positions: its covariance error (Frobenius, against the exact K K^T) is smaller."""
    true = _true_circulant_cov()
    errs = {"full": [], "stationary": []}
    for seed in range(5):
        y = _circulant_fields(12, seed=seed)
        for cov in errs:
            errs[cov].append(float(torch.linalg.norm(fit_moments(y, cov).dense_covariance() - true)))
    ratio = np.mean(errs["stationary"]) / np.mean(errs["full"])
    assert ratio < 0.5, (errs, ratio)


# --- grids -------------------------------------------------------------------------------------
@pytest.mark.parametrize("spacing", ["t", "logsnr", "karras"])
def test_sigma_grid_started_late_keeps_the_rule(spacing):
    sch = S.get("vp-linear")
    full = S.sigma_grid(sch, 12, spacing)
    late = S.sigma_grid(sch, 12, spacing, sigma_max=2.0)
    assert late.shape == full.shape and float(late[-1]) == 0.0
    assert math.isclose(float(late[0]), 2.0, rel_tol=1e-12) and math.isclose(float(late[-2]), sch.sigma_min, rel_tol=1e-9)
    assert bool((late[1:] < late[:-1]).all())
    # started at the schedule's own sigma_max the grid is the full one
    assert torch.allclose(S.sigma_grid(sch, 12, spacing, sigma_max=sch.sigma_max), full, rtol=1e-12)
    if spacing == "logsnr":
        lam = -2 * torch.log(late[:-1])
        assert torch.allclose(lam[1:] - lam[:-1], (lam[-1] - lam[0]) / 11 * torch.ones(11, dtype=torch.float64))
    with pytest.raises(ValueError, match="sigma_max"):
        S.sigma_grid(sch, 12, spacing, sigma_max=sch.sigma_min / 2)


def test_cut_grid_keeps_the_levels_below_the_start():
    sig = S.sigma_grid("vp-linear", 10, "logsnr")
    cut = cut_grid(sig, 1.0)
    assert float(cut[0]) == 1.0 and torch.equal(cut[1:], sig[sig < 1.0])
    with pytest.raises(ValueError, match="sigma_start"):
        cut_grid(sig, float(sig[0]) * 2)


def test_critical_grid_uniform_density_is_the_logsnr_grid():
    dens = S.StepDensity((-10.0, 10.0), (1.0, 1.0), floor=0.3)
    a = S.sigma_grid("vp-linear", 9, "critical", density=dens)
    b = S.sigma_grid("vp-linear", 9, "logsnr")
    assert torch.allclose(a, b, rtol=1e-9)


def test_critical_grid_places_equal_mass_per_step():
    """Each step of a 'critical' grid covers 1/(n-1) of the density of eq. CG.1 (checked by scipy quadrature)."""
    from scipy.integrate import quad

    lam_p = np.linspace(-8, 8, 33)
    rate = np.exp(-0.5 * (lam_p - 1.0) ** 2 / 0.7**2)
    dens = S.StepDensity(tuple(lam_p), tuple(rate), floor=0.25)
    sch = S.get("vp-linear")
    n = 12
    lam = (-2 * torch.log(S.sigma_grid(sch, n, "critical", density=dens)[:-1])).numpy()
    lo, hi = sch.logsnr_min, sch.logsnr_max
    v = lambda u: float(np.interp(u, lam_p, rate))  # noqa: E731 - linear interpolation, held at the ends
    total = quad(v, lo, hi, points=list(lam_p[(lam_p > lo) & (lam_p < hi)]), limit=200)[0]
    mass = [0.25 * (b - a) / (hi - lo) + 0.75 * quad(v, a, b, points=list(lam_p[(lam_p > a) & (lam_p < b)]),
                                                       limit=200)[0] / total for a, b in zip(lam[:-1], lam[1:])]
    assert np.allclose(mass, 1 / (n - 1), atol=2e-4), mass
    # denser inside the bump than outside
    steps = np.diff(lam)
    inside = (lam[:-1] > 0) & (lam[1:] < 2)
    assert steps[inside].max() < steps[~inside].min()


def test_critical_grid_bad_input():
    with pytest.raises(ValueError, match="density"):
        S.sigma_grid("vp-linear", 5, "critical")
    with pytest.raises(ValueError, match="density"):
        S.sigma_grid("vp-linear", 5, "logsnr", density=S.StepDensity((0.0, 1.0), (1.0, 1.0)))
    with pytest.raises(ValueError, match="density"):
        S.StepDensity((0.0, 0.0), (1.0, 1.0))
    with pytest.raises(ValueError, match="density"):
        S.StepDensity((0.0, 1.0), (1.0, -1.0))


# --- the measured step density (critdiff.probes.step_density) ---------------------------------------
def test_denoiser_speed_matches_the_gaussian_closed_form():
    """eq. CG.2 measured on Gaussian data with the exact denoiser against eq. CG.3. Differences: the DDIM
    discretisation (O(h), h = 0.12 in logsnr) and the sampling error of an rms over 1000 x 6 values (~1%)."""
    from critdiff.probes.step_density import denoiser_speed, gaussian_speed, peak_logsnr

    y, _, _ = _gaussian_data(n=400)
    model = GaussianScore(y)
    dens = denoiser_speed(model, (1, 2, 3), "vp-linear", steps=200, n=1000, dtype=torch.float64)
    lam = np.array(dens.logsnr)
    want = gaussian_speed(fit_moments(y).lam.numpy(), lam)
    got = np.array(dens.rate)
    big = want > 0.2 * want.max()  # where the profile matters (relative errors of a vanishing rate are noise)
    assert np.allclose(got[big], want[big], rtol=0.06), np.abs(got[big] / want[big] - 1).max()
    # one eigenvalue l: the peak sits at sigma^2 = 2 l, i.e. logsnr = -log(2 l)
    one = torch.randn(400, 1, 1, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.5
    d1 = denoiser_speed(GaussianScore(one), (1, 1, 1), "vp-linear", steps=200, n=2000, dtype=torch.float64)
    l1 = float(fit_moments(one).lam[0])
    assert abs(peak_logsnr(d1) + math.log(2 * l1)) < 0.3


# --- the start error on data with a known p_t (critdiff.theory.gaussian_start) ----------------------
def _mc_kl(points, weights, sigma, n=200_000, seed=0):
    """Independent Monte Carlo estimate of KL(p || q) = E_p[log p - log q] and its standard error."""
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(seed)
    y, w = np.atleast_2d(points).astype(float), np.asarray(weights, float) / np.sum(weights)
    d = y.shape[1]
    k = rng.choice(len(w), size=n, p=w)
    x = y[k] + sigma * rng.standard_normal((n, d))
    logp = logsumexp(-((x[:, None] - y[None]) ** 2).sum(-1) / (2 * sigma**2), axis=1, b=w) - 0.5 * d * np.log(2 * np.pi * sigma**2)
    mu = w @ y
    cov = ((y - mu).T * w) @ (y - mu) + sigma**2 * np.eye(d)
    logq = multivariate_normal(mu, cov).logpdf(x)
    f = logp - logq
    return f.mean(), f.std() / np.sqrt(n)


@pytest.mark.parametrize("case", ["twopoint", "ring", "unbalanced"])
def test_start_kl_against_monte_carlo(case):
    from critdiff.theory.gaussian_start import start_kl

    if case == "twopoint":
        pts, w, sig = np.array([[-1.0], [1.0]]), np.array([0.5, 0.5]), 0.5
    elif case == "unbalanced":
        pts, w, sig = np.array([[-1.0], [1.0]]), np.array([0.2, 0.8]), 0.7
    else:
        th = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        pts, w, sig = np.stack([np.cos(th), np.sin(th)], 1), np.ones(24), 0.4
    got = start_kl(pts, w, sig, mesh=801 if pts.shape[1] == 1 else 301)
    mc, se = _mc_kl(pts, w, sig)
    assert abs(got - mc) < 5 * se + 1e-6, (got, mc, se)


def test_start_kl_small_separation_and_exact_cases():
    """Balanced two points +-m: the Edgeworth leading term KL ~ m^8 / (12 (m^2 + s^2)^4) (excess kurtosis
    -2 m^4 / (m^2 + s^2)^2; the next order is O((m/s)^2) relative); one point: KL = 0."""
    from critdiff.theory.gaussian_start import start_kl

    m, s = 0.1, 1.0
    lead = m**8 / (12 * (m**2 + s**2) ** 4)
    assert math.isclose(start_kl(np.array([[-m], [m]]), np.array([0.5, 0.5]), s, mesh=4001), lead, rel_tol=0.05)
    assert abs(start_kl(np.array([[0.3]]), np.array([1.0]), 0.5)) < 1e-10


def test_twopoint_class_error():
    """Zero for balanced data; for w = 0.8 it vanishes at high noise and approaches |Phi-tail - w| at low noise,
    where q's class split is the Gaussian mass above x* -> 0 (the boundary sits between the points)."""
    from scipy.stats import norm

    from critdiff.theory.gaussian_start import twopoint_class_error

    assert twopoint_class_error(0.5, 1.0, 0.3) < 1e-12
    assert twopoint_class_error(0.8, 1.0, 100.0) < 1e-4
    lo = twopoint_class_error(0.8, 1.0, 1e-3)
    mean, sd = 0.6, math.sqrt(4 * 0.16)
    assert math.isclose(lo, abs(norm.sf(0.0, mean, sd) - 0.8), abs_tol=1e-3)
