"""The theory spectrum against the dense autograd Jacobian of a naive patch denoiser (float64)."""

import math

import numpy as np
import pytest
import torch

from critdiff.stencil import Stencil, parse_stencil
from critdiff.theory.homogeneous import denoise_homogeneous, homogeneous_solution
from critdiff.theory.pool import patch_pool
from critdiff.theory.spectrum import kernel_transform, radial_average, stiffness_spectrum


def naive_patch_denoiser(train: torch.Tensor, stencil: Stencil):
    """Independent oracle: explicit index loops, periodic wrap, equivariant pool, centre value p_0."""
    N, C, H, W = train.shape
    offs = stencil.offsets
    pool, centres = [], []
    for n in range(N):
        for i in range(H):
            for j in range(W):
                pool.append(torch.stack([train[n, :, (i + dy) % H, (j + dx) % W] for dy, dx in offs]).reshape(-1))
                centres.append(train[n, :, i, j])
    pool = torch.stack(pool)  # [M, S*C]
    centres = torch.stack(centres)  # [M, C]

    def D(x, sigma):  # x [C, H, W]
        out = torch.zeros_like(x)
        for i in range(H):
            for j in range(W):
                q = torch.stack([x[:, (i + dy) % H, (j + dx) % W] for dy, dx in offs]).reshape(-1)
                w = torch.softmax(-((q[None] - pool) ** 2).sum(1) / (2 * sigma**2), dim=0)
                out[:, i, j] = w @ centres
        return out

    return D


def dense_score_jacobian(D, x, sigma):
    J = torch.autograd.functional.jacobian(lambda v: D(v.reshape(x.shape), sigma).reshape(-1), x.reshape(-1))
    return (J - torch.eye(J.shape[0], dtype=J.dtype)) / sigma**2


def set_distance(a: np.ndarray, b: np.ndarray) -> float:
    d = np.abs(a[:, None] - b[None, :])
    return max(d.min(1).max(), d.min(0).max())


STENCILS = ["square:3", "cross:1", "dilated:3,2", np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]], bool)]


@pytest.mark.parametrize("stencil", STENCILS, ids=["square3", "cross1", "dilated3_2", "asym_mask"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("weights", ["exact", "uniform"])
def test_spectrum_equals_dense_jacobian(stencil, channels, weights):
    g = torch.Generator().manual_seed(1)
    H = W = 5 if channels == 3 else 6
    train = torch.randn(3, channels, H, W, generator=g, dtype=torch.float64) * 0.6
    st = parse_stencil(stencil)
    pool = patch_pool(train, st)
    sigma = 0.7
    m = np.linspace(-0.2, 0.3, channels)
    spec = stiffness_spectrum(pool, sigma, m, weights=weights)
    if weights == "uniform":
        sigma_eval = 1e6  # weights uniform in the limit: compare the kernel scaled back to sigma
        D = naive_patch_denoiser(train, st)
        x = torch.tensor(m)[:, None, None].expand(channels, H, W).clone()
        J = torch.autograd.functional.jacobian(lambda v: D(v.reshape(x.shape), sigma_eval).reshape(-1), x.reshape(-1))
        ev_dense = np.linalg.eigvals((J * sigma_eval**2 / sigma**2 - torch.eye(J.shape[0], dtype=J.dtype)).numpy()) / sigma**2
        tol = 1e-6  # the sigma -> infinity limit is approached to O(1/sigma^2)
    else:
        D = naive_patch_denoiser(train, st)
        x = torch.tensor(m)[:, None, None].expand(channels, H, W).clone()
        ev_dense = np.linalg.eigvals(dense_score_jacobian(D, x, sigma).numpy())
        tol = 1e-8
    ev_theory = spec.score_jacobian_eigenvalues().numpy()
    scale = max(1.0, np.abs(ev_dense).max())
    assert set_distance(ev_theory, ev_dense) < tol * scale


@pytest.mark.parametrize("channels", [1, 2])
def test_fourier_blocks_diagonalise_dense_jacobian(channels):
    """Stronger than equal eigenvalue sets: F^H J F is block diagonal with the theory's blocks C_w(k)."""
    g = torch.Generator().manual_seed(2)
    H, W = 4, 6
    train = torch.randn(2, channels, H, W, generator=g, dtype=torch.float64)
    st = parse_stencil("dilated:3,1")
    pool = patch_pool(train, st)
    sigma, m = 0.9, np.full(channels, 0.1)
    spec = stiffness_spectrum(pool, sigma, m)
    D = naive_patch_denoiser(train, st)
    x = torch.tensor(m)[:, None, None].expand(channels, H, W).clone()
    JD = torch.autograd.functional.jacobian(lambda v: D(v.reshape(x.shape), sigma).reshape(-1), x.reshape(-1))
    JD = JD.reshape(channels, H, W, channels, H, W)
    ky = torch.fft.fftfreq(H, dtype=torch.float64) * 2 * math.pi
    kx = torch.fft.fftfreq(W, dtype=torch.float64) * 2 * math.pi
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    for a in range(H):
        for b in range(W):
            mode = torch.exp(1j * (ky[a] * yy + kx[b] * xx))  # e^{i k.j}: its DFT sits at k
            out = torch.einsum("cijdkl,kl->cdij", JD.to(torch.complex128), mode)
            block = out[..., 0, 0] / mode[0, 0]
            theory = kernel_transform(spec.kernel, spec.offsets, torch.stack([ky[a], kx[b]])[None])[0] / sigma**2
            assert torch.allclose(block, theory, atol=1e-10)
            assert torch.allclose(out, block[..., None, None] * mode, atol=1e-10)


def test_homogeneous_denoiser_matches_naive():
    g = torch.Generator().manual_seed(3)
    train = torch.randn(3, 2, 5, 5, generator=g, dtype=torch.float64)
    st = parse_stencil("square:3")
    pool = patch_pool(train, st)
    D = naive_patch_denoiser(train, st)
    m = torch.tensor([0.3, -0.4], dtype=torch.float64)
    x = m[:, None, None].expand(2, 5, 5).clone()
    out = D(x, 0.8)
    d = denoise_homogeneous(pool, m, 0.8)
    assert torch.allclose(out, d[:, None, None].expand_as(out), atol=1e-13)


def test_homogeneous_solution_against_brute_force_euler():
    g = torch.Generator().manual_seed(4)
    train = torch.randn(4, 1, 6, 6, generator=g, dtype=torch.float64) * 0.5 + 0.2
    pool = patch_pool(train, "square:3")
    for drift, alpha in (("ode", 1.0), ("sde", 2.0)):
        sol = homogeneous_solution(pool, 5.0, 0.3, drift=drift)
        m, n = 0.0, 20000
        ls = np.linspace(math.log(5.0), math.log(0.3), n + 1)
        for i in range(n):  # explicit Euler in log sigma, small steps
            d = float(denoise_homogeneous(pool, torch.tensor([m]), math.exp(ls[i]))[0])
            m = m + (ls[i + 1] - ls[i]) * alpha * (m - d)
        assert abs(sol(0.3)[0] - m) < 2e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stripes_spectrum_peaks_at_wavelength(dtype):
    L, H = 4, 12
    u = torch.arange(H, dtype=torch.float64)
    phases = torch.linspace(0, 2 * math.pi, 9)[:-1]
    train = torch.cos(2 * math.pi * u[None, None, None, :] / L + phases[:, None, None, None]).expand(8, 1, H, H)
    spec = stiffness_spectrum(patch_pool(train.to(dtype), "square:5"), 1.0, weights="uniform")
    c = spec.cov_eigs[..., 0].real
    i = int(torch.argmax(c))
    assert math.isclose(float(spec.kabs.reshape(-1)[i]), 2 * math.pi / L, rel_tol=1e-9)


def test_radial_average_against_loop():
    H, W = 6, 8
    g = torch.Generator().manual_seed(5)
    v = torch.rand(H, W, generator=g, dtype=torch.float64)
    ky = torch.fft.fftfreq(H, dtype=torch.float64)[:, None].expand(H, W) * 2 * math.pi
    kx = torch.fft.fftfreq(W, dtype=torch.float64)[None, :].expand(H, W) * 2 * math.pi
    k, mean, se, cnt = radial_average(v, ky, kx)
    dk = 2 * math.pi / W
    for kc, mu, n in zip(k, mean, cnt):
        vals = [float(v[a, b]) for a in range(H) for b in range(W)
                if round(math.hypot(float(ky[a, b]), float(kx[a, b])) / dk) == round(kc / dk)]
        assert len(vals) == n and abs(np.mean(vals) - mu) < 1e-14
    assert cnt.sum() == H * W
