"""The dense spectral route in chunks of directions (``chunk``) and by rows (``backend='reverse'``).

Oracles: the unchunked ``jacfwd`` route, and the closed-form Gaussian Jacobian ``Sigma (Sigma + s^2 I)^-1``
through an explicit DFT sum (independent of ``spectral.py``).
"""

import numpy as np
import pytest
import torch

from critdiff.probes import spectral_probe
from critdiff.scores.gaussian import GaussianScore
from critdiff.scores.patch import PatchScore


pytestmark = pytest.mark.usefixtures("one_thread")


def _gaussian(C=2, H=4, W=4):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(60, C, H, W, generator=g, dtype=torch.float64)
    ramp = torch.linspace(0.3, 2.0, H * W, dtype=torch.float64).reshape(1, 1, H, W)
    y = z * ramp + 0.6 * torch.roll(z, 1, -1) - 0.3 * torch.roll(z, 1, -2)
    return y, GaussianScore(y, covariance="full")


def _oracle(y, sigma):
    n, C, H, W = y.shape
    S = np.cov(y.reshape(n, -1).numpy(), rowvar=False, ddof=1)
    J = (S @ np.linalg.inv(S + sigma**2 * np.eye(S.shape[0]))).reshape(C, H, W, C, H, W)
    ys, xs = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    out = np.zeros((H, W, C, C), dtype=complex)
    for a in range(H):
        for b in range(W):
            e = np.exp(2j * np.pi * (a * ys / H + b * xs / W))
            out[a, b] = np.einsum("hw,dhwcuv,uv->dc", np.conj(e), J, e) / (H * W)
    return out


@pytest.mark.parametrize("backend", ["auto", "reverse"])
@pytest.mark.parametrize("chunk", [1, 5, 32])
def test_chunked_dense_equals_unchunked_and_closed_form(backend, chunk):
    y, model = _gaussian()
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = spectral_probe(model, x, 0.7, method="dense")
    res = spectral_probe(model, x, 0.7, method="dense", backend=backend, chunk=chunk)
    assert res.backend == ("jacrev" if backend == "reverse" else "jacfwd")
    np.testing.assert_allclose(res.jd_blocks, ref.jd_blocks, atol=1e-10, rtol=0)
    np.testing.assert_allclose(res.kappa_radial, ref.kappa_radial, atol=1e-10, rtol=0)
    np.testing.assert_allclose(res.jd_blocks, _oracle(y, 0.7), atol=1e-10, rtol=0)
    assert res.n_jvp == 2 * 2 * 16
    # per state: one denoiser call per chunk of JVPs; the VJP rows reuse one recorded forward call
    assert res.denoiser_calls == 2 * (1 if backend == "reverse" else -(-32 // chunk))


@pytest.mark.parametrize("backend", ["auto", "reverse"])
def test_chunked_dense_patch_model(backend):
    """A nonlinear model (streaming softmax kernel): chunked rows / columns equal the unchunked jacfwd."""
    g = torch.Generator().manual_seed(0)
    y = torch.randn(6, 1, 8, 8, generator=g, dtype=torch.float64).cumsum(-1) * 0.3
    model = PatchScore(y, stencil="square:3", equivariant=True, boundary="periodic", dtype=torch.float64)
    x = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.7
    ref = spectral_probe(model, x, 0.7, method="dense")
    res = spectral_probe(model, x, 0.7, method="dense", backend=backend, chunk=7)
    np.testing.assert_allclose(res.jd_blocks, ref.jd_blocks, atol=1e-10, rtol=0)
    assert np.abs(ref.jd).max() > 1e-2  # a non-trivial Jacobian


def test_dense_chunk_validated():
    _, model = _gaussian()
    x = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="chunk"):
        spectral_probe(model, x, 0.7, method="dense", chunk=0)
