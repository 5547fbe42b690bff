"""Structure factor, C(r), xi_zero / xi_peak and the Ornstein-Zernike fit against closed forms and brute-force sums."""

import math

import numpy as np
import pytest
import torch

from critdiff.probes import correlation_function, ornstein_zernike, structure_factor, xi_peak, xi_zero
from critdiff.probes._lattice import k_grid, min_image


def _grf(P: np.ndarray, n: int, C: int = 1, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """Gaussian random fields with spectrum ``P [H, W]`` (E|xhat|^2 / HW = P), made here from white noise."""
    g = torch.Generator().manual_seed(seed)
    H, W = P.shape
    w = torch.randn(n, C, H, W, generator=g, dtype=torch.float64)
    x = torch.fft.ifft2(torch.fft.fft2(w) * torch.as_tensor(np.sqrt(P))).real
    return x.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_white_noise_is_flat(dtype):
    x = 1.7 * torch.randn(800, 2, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 3.0
    sf = structure_factor(x.to(dtype))
    z = (sf.S - 2 * 1.7**2) / sf.S_se  # channels summed
    assert np.abs(z).max() < 5 and abs(z.mean()) < 0.5
    Cr = correlation_function(sf.S)
    assert abs(Cr[0, 0] - 2 * 1.7**2) < 0.1 and np.abs(Cr.ravel()[1:]).max() < 0.15
    # xi_zero of white noise is 0 up to noise: S(0)/S(k_min) - 1 = O(1/sqrt(N)), times 1/(2 sin(pi/8)) = 1.3
    assert sf.xi_zero < 1.3 * math.sqrt(6 / math.sqrt(800))


def test_grf_recovers_its_spectrum():
    ky, kx = k_grid(12, 12)
    P = 1.0 / (0.3 + 4 * np.sin(ky / 2) ** 2 + 4 * np.sin(kx / 2) ** 2) + 0.05 * np.cos(kx)
    sf = structure_factor(_grf(P, 600))
    z = (sf.S - P) / sf.S_se
    assert np.abs(z).max() < 5 and abs(z.mean()) < 0.3
    np.testing.assert_allclose(sf.S_channels[0], sf.S)


def test_structure_factor_and_correlation_against_brute_force():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 2, 3, 4, generator=g, dtype=torch.float64)
    N, C, H, W = x.shape
    d = (x - x.mean(0)).numpy()
    S = np.zeros((H, W))
    for a in range(H):
        for b in range(W):
            e = np.exp(-2j * np.pi * (a * np.arange(H)[:, None] / H + b * np.arange(W)[None, :] / W))
            S[a, b] = sum(abs((d[n, c] * e).sum()) ** 2 for n in range(N) for c in range(C)) / (H * W) / (N - 1)
    sf = structure_factor(x)
    np.testing.assert_allclose(sf.S, S, atol=1e-12)
    Cr = np.zeros((H, W))
    for a in range(H):
        for b in range(W):
            Cr[a, b] = (d * np.roll(d, (-a, -b), axis=(2, 3))).sum((1,)).mean((1, 2)).sum() / (N - 1)
    np.testing.assert_allclose(correlation_function(sf.S), Cr, atol=1e-12)
    assert sf.C_radial[0] == pytest.approx(Cr[0, 0])


@pytest.mark.parametrize("H,W,m", [(8, 8, 0.5), (16, 16, 0.2), (32, 32, 1.3), (12, 20, 0.4), (1, 16, 0.3)])
def test_xi_zero_of_lattice_ornstein_zernike_spectrum_is_one_over_m(H, W, m):
    ky, kx = k_grid(H, W)
    S = 1.0 / (m**2 + 4 * np.sin(ky / 2) ** 2 + 4 * np.sin(kx / 2) ** 2)
    assert xi_zero(S) == pytest.approx(1 / m, rel=1e-12)
    assert xi_peak(S) == pytest.approx(1 / m, rel=1e-12)  # the peak is at k = 0: the same length


@pytest.mark.parametrize("H,W,p,m", [(16, 16, (3, 5), 0.25), (12, 20, (-2, 4), 0.6), (16, 16, (8, 0), 1.1)])
def test_xi_peak_of_shifted_lattice_oz(H, W, p, m):
    """A lattice OZ spectrum centred on the lattice point p (width m): xi_peak = 1/m exactly."""
    ky, kx = k_grid(H, W)
    py, px = 2 * math.pi * p[0] / H, 2 * math.pi * p[1] / W
    S = 1.0 / (m**2 + 4 * np.sin((ky - py) / 2) ** 2 + 4 * np.sin((kx - px) / 2) ** 2)
    assert xi_peak(S) == pytest.approx(1 / m, rel=1e-12)
    assert xi_peak(S, (p[0] % H, p[1] % W)) == pytest.approx(1 / m, rel=1e-12)
    if p[0] % H and p[1] % W:
        assert xi_zero(S) == 0.0  # k = 0 is no maximum along either axis: S(0) is below its neighbours
    else:
        assert 0 < xi_zero(S) < xi_peak(S)
    assert xi_peak(np.full((H, W), 3.0)) == 0.0


def test_xi_zero_and_xi_peak_on_noisy_stripes():
    """Stripes A cos(k0 x + phi) (random phase) plus white noise s: S(0) and the neighbours of k0 are the noise
    s^2, S(k0) = A^2 HW / 4 + s^2, so xi_peak^2 = (A^2 HW / (4 s^2)) / (2 sin(pi/L))^2 and xi_zero = 0."""
    L, N, A, s = 16, 400, 1.0, 0.5
    g = torch.Generator().manual_seed(4)
    phi = 2 * math.pi * torch.rand(N, 1, 1, 1, generator=g, dtype=torch.float64)
    xx = torch.arange(L, dtype=torch.float64).reshape(1, 1, 1, L)
    x = A * torch.cos(2 * math.pi * 4 / L * xx + phi) + s * torch.randn(N, 1, L, L, generator=g, dtype=torch.float64)
    sf = structure_factor(x)
    want = math.sqrt(A**2 * L * L / (4 * s**2)) / (2 * math.sin(math.pi / L))
    assert sf.xi_peak == pytest.approx(want, rel=0.1)
    assert sf.xi_zero < 2.6 * math.sqrt(6 / math.sqrt(N))  # noise only, as for white noise above


@pytest.mark.parametrize("rho", [0.3, 0.7])
def test_xi_zero_of_exponentially_correlated_field(rho):
    """Separable OU field, C(r) = rho^(|ry| + |rx|) summed over periodic images: xi_zero = sqrt(rho) / (1 - rho)."""
    L = 24
    r = np.arange(L)
    c1 = sum(rho ** np.abs(r + n * L).astype(float) for n in range(-30, 31))  # periodic images, brute force
    S = np.fft.fft2(c1[:, None] * c1[None, :]).real
    assert xi_zero(S) == pytest.approx(math.sqrt(rho) / (1 - rho), rel=1e-10)
    sf = structure_factor(_grf(S, 3000, seed=3))  # an ensemble with that covariance
    assert sf.xi_zero == pytest.approx(math.sqrt(rho) / (1 - rho), rel=0.12)
    Cr = correlation_function(sf.S)
    assert Cr[0, 1] / Cr[0, 0] == pytest.approx(c1[1] / c1[0], abs=0.05)


@pytest.mark.parametrize("k_star", [(0.0, 0.0), (0.0, 2 * math.pi * 3 / 16), (-2 * math.pi * 2 / 16, 2 * math.pi / 16)])
@pytest.mark.parametrize("r", [0.4, -0.25])
def test_oz_fit_recovers_r_and_c(k_star, r):
    ky, kx = k_grid(16, 16)
    q2 = min_image(ky - k_star[0]) ** 2 + min_image(kx - k_star[1]) ** 2
    kappa = r + 1.7 * q2
    fit = ornstein_zernike(kappa)
    assert fit.preferred_mode and fit.reason == "ok"
    assert fit.k_star == pytest.approx(k_star)
    assert fit.r == pytest.approx(r, abs=1e-12) and fit.c == pytest.approx(1.7, rel=1e-12)
    assert fit.xi == pytest.approx(math.sqrt(1.7 / abs(r)), rel=1e-12)
    se = np.full_like(kappa, 0.01)
    assert ornstein_zernike(kappa, se).c == pytest.approx(1.7, rel=1e-12)
    zero = ornstein_zernike(1.7 * q2)
    assert zero.xi == math.inf and zero.reason == "r = 0: xi diverges" and zero.to_dict()["xi"] is None


def test_flat_spectrum_has_no_preferred_mode():
    flat = np.full((8, 8), 2.5)
    fit = ornstein_zernike(flat)
    assert not fit.preferred_mode and fit.reason == "no preferred mode" and fit.k_star is None and fit.xi is None
    noisy = 2.5 + 0.01 * np.random.default_rng(0).standard_normal((16, 16))
    assert not ornstein_zernike(noisy, np.full((16, 16), 0.01)).preferred_mode
    assert ornstein_zernike(noisy).preferred_mode  # without errors any dip counts


def test_oz_fit_with_no_quadratic_minimum():
    ky, kx = k_grid(16, 16)
    q2 = (ky**2 + kx**2) / (2 * math.pi / 16) ** 2
    kappa = np.where(q2 == 0, 0.0, np.where(np.isclose(q2, 1), 5.0, 0.1))
    fit = ornstein_zernike(kappa)
    assert fit.preferred_mode and fit.c <= 0 and fit.xi is None and "c <= 0" in fit.reason


def test_errors():
    with pytest.raises(ValueError, match="x"):
        structure_factor(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="kappa"):
        ornstein_zernike(np.zeros(4))
    with pytest.raises(ValueError, match="S"):
        xi_zero(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="S"):
        xi_peak(np.zeros((1, 1)))
    with pytest.raises(ValueError, match="k_peak"):
        xi_peak(np.ones((4, 4)), (4, 0))
