"""Spectral probe against independent oracles: closed-form Gaussian Jacobians through an explicit DFT matrix."""

import math

import numpy as np
import pytest
import torch

from critdiff.probes import spectral_probe
from critdiff.probes._lattice import shell_mean, shells
from critdiff.scores.gaussian import GaussianScore



pytestmark = pytest.mark.usefixtures("one_thread")


TOL = {torch.float32: 2e-4, torch.float64: 1e-10}


def _nonstationary(n=60, C=1, H=4, W=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, C, H, W, generator=g, dtype=torch.float64)
    ramp = torch.linspace(0.3, 2.0, H * W, dtype=torch.float64).reshape(1, 1, H, W)
    return z * ramp + 0.6 * torch.roll(z, 1, -1) - 0.3 * torch.roll(z, 1, -2)


def _fourier_diag_oracle(y: torch.Tensor, sigma: float) -> np.ndarray:
    """Closed-form ``J_D = Sigma (Sigma + s^2 I)^-1`` and ``(F J F^-1)`` diagonal blocks by explicit DFT sums."""
    n, C, H, W = y.shape
    Y = y.reshape(n, -1).numpy()
    S = np.cov(Y, rowvar=False, ddof=1)
    J = S @ np.linalg.inv(S + sigma**2 * np.eye(S.shape[0]))
    J = J.reshape(C, H, W, C, H, W)
    out = np.zeros((C, C, H, W), dtype=complex)
    ys, xs = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    for a in range(H):
        for b in range(W):
            e = np.exp(2j * np.pi * (a * ys / H + b * xs / W))  # e^{i k.x}
            for d in range(C):
                for c in range(C):
                    out[d, c, a, b] = np.sum(np.conj(e)[:, :, None, None] * J[d, :, :, c] * e[None, None]) / (H * W)
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("C", [1, 2])
def test_dense_matches_closed_form(dtype, C):
    y = _nonstationary(C=C)
    model = GaussianScore(y.to(dtype), covariance="full")
    x = torch.randn(2, C, 4, 4, dtype=dtype, generator=torch.Generator().manual_seed(1))
    res = spectral_probe(model, x, 0.7, method="dense")
    oracle = _fourier_diag_oracle(y, 0.7)
    np.testing.assert_allclose(np.moveaxis(res.jd_blocks, (2, 3), (0, 1)), oracle, atol=TOL[dtype] * 10)
    diag = np.stack([oracle[c, c] for c in range(C)])
    np.testing.assert_allclose(res.kappa, (1 - diag.real) / 0.49, atol=TOL[dtype] * 100)


@pytest.mark.parametrize("probe,dtype", [("rademacher", torch.float64), ("gaussian", torch.float32),
                                         ("phase", torch.float64)])
def test_random_probe_converges_like_inverse_sqrt_m(dtype, probe):
    y = _nonstationary(H=6, W=6)
    model = GaussianScore(y.to(dtype), covariance="full")
    x = torch.randn(1, 1, 6, 6, dtype=dtype, generator=torch.Generator().manual_seed(2))
    ref = spectral_probe(model, x, 0.8, method="dense").jd
    Ms = [4, 8, 16, 32, 64, 128, 256]
    err = []
    for M in Ms:
        e = [np.sqrt(np.mean(np.abs(spectral_probe(model, x, 0.8, n_probes=M, probe=probe, seed=s).jd - ref) ** 2))
             for s in range(5)]
        err.append(np.sqrt(np.mean(np.square(e))))
    slope = np.polyfit(np.log(Ms), np.log(err), 1)[0]
    assert -0.62 < slope < -0.38, slope


def test_standard_errors_are_calibrated():
    y = _nonstationary(H=6, W=6)
    model = GaussianScore(y, covariance="full")
    x = torch.randn(3, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    ref = spectral_probe(model, x, 0.7, method="dense").jd.real
    z = np.concatenate([((spectral_probe(model, x, 0.7, n_probes=16, probe="gaussian", seed=s).jd.real - ref)
                         / spectral_probe(model, x, 0.7, n_probes=16, probe="gaussian", seed=s).jd_se).ravel()
                        for s in range(10)])
    assert 0.8 < z.std() < 1.3
    assert abs(z.mean()) < 0.25


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("C", [1, 3])
def test_impulse_is_exact_for_circulant_jacobian(dtype, C):
    g = torch.Generator().manual_seed(4)
    y = torch.randn(50, C, 6, 6, generator=g, dtype=torch.float64).cumsum(-1) * 0.4
    if C == 3:
        y[:, 1] += 0.5 * y[:, 0]
    model = GaussianScore(y.to(dtype), covariance="stationary")
    x = torch.randn(2, C, 6, 6, dtype=dtype, generator=g)
    dense = spectral_probe(model, x, 0.6, method="dense")
    for site in [(0, 0), (2, 5)]:
        imp = spectral_probe(model, x, 0.6, method="impulse", site=site)
        np.testing.assert_allclose(imp.jd_blocks, dense.jd_blocks, atol=TOL[dtype])
        assert imp.n_jvp == 2 * C
    # closed form: blocks P (P + s^2 I)^-1, stiffness eigenvalues of -(J_s + J_s^H)/2 with J_s = (J_D - I)/s^2
    yh = torch.fft.fft2(y - y.mean((0, 2, 3), keepdim=True))
    P = torch.einsum("nchw,ndhw->hwcd", yh, yh.conj()).numpy() / (49 * 36)
    Jd = P @ np.linalg.inv(P + 0.36 * np.eye(C))
    Js = (Jd - np.eye(C)) / 0.36
    eig = np.linalg.eigvalsh(-(Js + np.conj(np.swapaxes(Js, -1, -2))) / 2)
    np.testing.assert_allclose(dense.kappa_eig, eig, atol=TOL[dtype] * 1e3)
    if C == 1:  # one phase probe is exact for a single-channel circulant Jacobian (|zhat|^2 = HW)
        ph = spectral_probe(model, x, 0.6, n_probes=1, probe="phase")
        np.testing.assert_allclose(ph.jd, dense.jd, atol=TOL[dtype] * 10)


def test_impulse_is_not_the_diagonal_for_a_non_circulant_jacobian():
    model = GaussianScore(_nonstationary(), covariance="full")
    x = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    dense = spectral_probe(model, x, 0.7, method="dense")
    imp = spectral_probe(model, x, 0.7, method="impulse")
    assert np.abs(imp.jd - dense.jd).max() > 1e-3


@pytest.mark.parametrize("backend", ["forward", "reverse", "fd"])
def test_backends_agree(backend):
    model = GaussianScore(_nonstationary(), covariance="full")
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    ref = spectral_probe(model, x, 0.5, n_probes=4, backend="forward", seed=7)
    res = spectral_probe(model, x, 0.5, n_probes=4, backend=backend, seed=7)
    assert res.backend == backend
    np.testing.assert_allclose(res.jd, ref.jd, atol=1e-6 if backend == "fd" else 1e-12)


def test_reverse_fallback_for_a_denoiser_forward_mode_cannot_run():
    class NoForwardAD(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return 0.5 * x

        @staticmethod
        def backward(ctx, g):
            return 0.5 * g

    den = lambda x, sigma, label=None: NoForwardAD.apply(x)  # noqa: E731
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    res = spectral_probe(den, x, 1.0, n_probes=2)
    assert res.backend == "reverse"
    np.testing.assert_allclose(res.jd.real, 0.5, atol=1e-12)  # J = I/2, exact with phase probes
    np.testing.assert_allclose(res.kappa, 0.5, atol=1e-12)


def test_counts_radial_average_and_chunking():
    model = GaussianScore(_nonstationary(H=6, W=6), covariance="full")
    x = torch.randn(3, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    res = spectral_probe(model, x, 0.9, n_probes=5)
    assert (res.denoiser_calls, res.denoiser_evaluations, res.n_jvp) == (1, 15, 15)
    chunked = spectral_probe(model, x, 0.9, n_probes=5, chunk=4)
    assert chunked.denoiser_calls == 4
    np.testing.assert_allclose(chunked.jd, res.jd, atol=1e-12)
    idx, k, count = shells(6, 6)
    manual = np.array([res.kappa_mode[idx == j].mean() for j in range(len(k))])
    np.testing.assert_allclose(res.kappa_radial, manual, atol=1e-12)
    np.testing.assert_allclose(shell_mean(res.kappa_mode, idx), manual, atol=1e-12)
    assert k[0] == 0 and math.isclose(k[1], 2 * math.pi / 6)
    assert res.to_dict()["n_jvp"] == 15


def test_per_state_sigma_and_errors():
    model = GaussianScore(_nonstationary(), covariance="full")
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    both = spectral_probe(model, x, torch.tensor([0.5, 1.0], dtype=torch.float64), method="dense")
    one = spectral_probe(model, x[:1], 0.5, method="dense")
    np.testing.assert_allclose(both.kappa_state[0], one.kappa_state[0], atol=1e-12)
    with pytest.raises(ValueError, match="method"):
        spectral_probe(model, x, 0.5, method="exact")
    with pytest.raises(ValueError, match="probe"):
        spectral_probe(model, x, 0.5, probe="uniform")
    with pytest.raises(ValueError, match="n_probes"):
        spectral_probe(model, x, 0.5, n_probes=0)
