"""Ginzburg-Landau coefficients against autograd derivatives of the patch model; GL denoiser sanity."""

import math

import pytest
import torch

from critdiff.theory.ginzburg_landau import GLDenoiser, gl_coefficients, gl_table, pattern_statistics
from critdiff.theory.pool import patch_pool
from critdiff.theory.spectrum import stiffness_spectrum


def naive_D(train, offs, x, sigma):
    """Independent float64 patch denoiser (periodic, equivariant), differentiable."""
    N, C, H, W = train.shape
    P = torch.stack([torch.roll(train, (-dy, -dx), (2, 3)) for dy, dx in offs], 1)  # [N, S, C, H, W]
    P = P.permute(0, 3, 4, 1, 2).reshape(-1, len(offs) * C)
    cen = train.permute(0, 2, 3, 1).reshape(-1, C)
    Q = torch.stack([torch.roll(x, (-dy, -dx), (1, 2)) for dy, dx in offs], 0).permute(2, 3, 0, 1).reshape(H * W, -1)
    w = torch.softmax(-torch.cdist(Q, P) ** 2 / (2 * sigma**2), dim=1)
    return (w @ cen).T.reshape(C, H, W)


@pytest.mark.parametrize("k_star", [(0.0, 0.0), (0.0, math.pi / 4), (math.pi / 4, -math.pi / 4)])
def test_cubic_coefficient_is_third_derivative(k_star):
    g = torch.Generator().manual_seed(0)
    H = W = 8
    train = torch.randn(3, 1, H, W, generator=g, dtype=torch.float64) * 0.7
    pool = patch_pool(train, "square:3")
    sigma, m = 0.9, 0.15
    co = gl_coefficients(pool, sigma, k_star, m=[m])
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    ph = k_star[0] * yy + k_star[1] * xx
    mode = torch.ones(H, W, dtype=torch.float64) if k_star == (0.0, 0.0) else 2 * torch.cos(ph)

    def proj(A):  # component of the score along e^{i k*.j}
        x = (m + A * mode)[None]
        s = (naive_D(train, pool.stencil.offsets, x, sigma) - x) / sigma**2
        return (s[0] * torch.exp(-1j * torch.as_tensor(ph))).real.mean()

    A = torch.zeros((), dtype=torch.float64, requires_grad=True)
    d1 = torch.autograd.grad(proj(A), A, create_graph=True)[0]
    d2 = torch.autograd.grad(d1, A, create_graph=True)[0]
    d3 = torch.autograd.grad(d2, A)[0]
    # score along the mode: -(r A + v A^2 + u A^3) for k* = 0; -(r A + 3 u A^3) (resonant) for k* != 0
    # (k* with 4 k* = 0 mod 2 pi, e.g. pi/2, adds a lattice umklapp term: not tested here)
    assert math.isclose(float(d1.detach()), -co.r, rel_tol=1e-9)
    if k_star == (0.0, 0.0):
        assert math.isclose(float(d2), -2 * co.v, rel_tol=1e-7, abs_tol=1e-9)
        assert math.isclose(float(d3), -6 * co.u, rel_tol=1e-7)
    else:
        assert math.isclose(float(d3), -18 * co.u, rel_tol=1e-7)


def test_twopoint_quartic_closed_form():
    amp, S = 0.6, 9
    x = torch.tensor([amp, -amp] * 4, dtype=torch.float64)[:, None, None, None].expand(8, 1, 6, 6).clone()
    co = gl_coefficients(patch_pool(x, "square:3"), 1.2, (0.0, 0.0), m=[0.0])
    assert math.isclose(co.u, amp**4 * S**3 / (3 * 1.2**8), rel_tol=1e-12)  # tanh expansion
    assert abs(co.v) < 1e-12
    assert math.isclose(co.r, (1 - S * amp**2 / 1.2**2) / 1.2**2, rel_tol=1e-12)


def test_gl_denoiser_linear_part_matches_theory_near_k_star():
    g = torch.Generator().manual_seed(1)
    u = torch.arange(12, dtype=torch.float64)
    train = torch.cos(2 * math.pi * u / 4 + torch.rand(10, 1, 1, 1, generator=g, dtype=torch.float64) * 6.28).expand(10, 1, 12, 12).clone()
    pool = patch_pool(train, "square:5")
    k_star, sigma = (0.0, math.pi / 2), 2.0
    tab = gl_table(pool, [sigma * 1.01, sigma, sigma * 0.99], k_star, weights="uniform")
    D = GLDenoiser(tab, (12, 12))
    yy, xx = torch.meshgrid(torch.arange(12.0, dtype=torch.float64), torch.arange(12.0, dtype=torch.float64), indexing="ij")
    eps = 1e-6
    field = eps * torch.cos(k_star[1] * xx)[None, None]
    out = D(tab.m[1][0] + field, sigma) - tab.d_hom[1][0]
    spec = stiffness_spectrum(pool, sigma, weights="uniform")
    kappa = float(spec.kappa[0, 3, 0].real)  # kx = 2 pi * 3 / 12 = pi / 2
    assert torch.allclose(out, (1 - sigma**2 * kappa) * field, rtol=1e-6, atol=1e-18)
    phases = torch.rand(16, 1, 1, 1, generator=g, dtype=torch.float64) * 2 * math.pi
    stats = pattern_statistics(torch.cos(k_star[1] * xx + phases)
                               + 0.1 * torch.randn(16, 1, 12, 12, generator=g, dtype=torch.float64))
    assert stats["dominant_wavelength"] == 4.0


@pytest.mark.slow
def test_gl_and_patch_patterns_share_wavelength():
    from critdiff.theory.ginzburg_landau import compare_with_patch_model

    u = torch.arange(8, dtype=torch.float64)
    train = torch.cos(2 * math.pi * u / 4 + torch.arange(16.0, dtype=torch.float64)[:, None, None, None]).expand(16, 1, 8, 8).clone()
    r = compare_with_patch_model(train, "square:5", "ve", n=64, steps=20)
    assert r["ok"] and r["patch"]["finite"] and r["gl"]["finite"]
    assert r["patch"]["dominant_wavelength"] == r["gl"]["dominant_wavelength"] == r["theory_wavelength"] == 4.0
