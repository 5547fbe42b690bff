"""GaussianScore against direct linear algebra (solve with Sigma + sigma^2 I) and its stationary form."""

import pytest
import torch

from critdiff.scores.gaussian import GaussianScore
from oracles import assert_paths_close


def _stationary_fields(n=400, C=1, H=6, W=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, C, H, W, generator=g, dtype=torch.float64)
    k = torch.tensor([[0.2, 0.5, 0.2], [0.5, 1.0, 0.5], [0.2, 0.5, 0.2]], dtype=torch.float64)
    zp = torch.nn.functional.pad(z, (1, 1, 1, 1), mode="circular")
    out = torch.nn.functional.conv2d(zp.reshape(n * C, 1, H + 2, W + 2), k.reshape(1, 1, 3, 3)).reshape(n, C, H, W)
    if C > 1:
        mix = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.2, 0.0, 1.0]], dtype=torch.float64)[:C, :C]
        out = torch.einsum("dc,nchw->ndhw", mix, out)
    return out + 0.1


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-4), (torch.float64, 1e-10)])
def test_full_matches_direct_solve(dtype, tol):
    y = _stationary_fields()
    model = GaussianScore(y.to(dtype))
    flat = y.reshape(y.shape[0], -1)
    mu = flat.mean(0)
    cov = torch.cov(flat.T)
    x = torch.randn(3, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for sigma in (1e-4, 0.3, 10.0):
        want = mu + (cov @ torch.linalg.solve(cov + sigma**2 * torch.eye(36, dtype=torch.float64), (x.reshape(3, -1) - mu).T)).T
        got = model(x.to(dtype), sigma).to(torch.float64).reshape(3, -1)
        assert torch.allclose(got, want, rtol=tol, atol=tol * 10), sigma


@pytest.mark.parametrize("C", [1, 3])
def test_stationary_equals_full_on_circulant_covariance(C):
    """With a covariance symmetrised over translations, the full fit equals the Fourier-space fit."""
    y = _stationary_fields(C=C, n=60)
    # augment with every translation so the empirical covariance is exactly circulant
    shifts = [torch.roll(y, (a, b), (2, 3)) for a in range(6) for b in range(6)]
    ya = torch.cat(shifts)
    full, stat = GaussianScore(ya, covariance="full"), GaussianScore(ya, covariance="stationary")
    x = torch.randn(2, C, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    # the stationary fit normalises by (n-1) over fields, same as the full one
    for sigma in (0.05, 1.0):
        assert torch.allclose(full(x, sigma), stat(x, sigma), atol=1e-8)


def test_class_conditional_and_errors():
    y = _stationary_fields(n=40)
    labels = torch.arange(40) % 2
    m = GaussianScore(y, labels=labels)
    x = torch.zeros(2, 1, 6, 6, dtype=torch.float64)
    out = m(x, 1e3, torch.tensor([0, 1]))
    assert torch.allclose(out[0], y[labels == 0].mean(0), atol=1e-3)
    assert torch.allclose(out[1], y[labels == 1].mean(0), atol=1e-3)
    with pytest.raises(ValueError, match="label"):
        m(x, 1.0, 5)
    with pytest.raises(ValueError, match="x: expected images of shape"):
        m(torch.zeros(1, 1, 5, 5, dtype=torch.float64), 1.0)
    with pytest.raises(ValueError, match="covariance"):
        GaussianScore(y, covariance="diag")


# ---- device plumbing ------------------------------------------------------------------------
@pytest.mark.parametrize("covariance", ["full", "stationary"])
def test_device_argument(covariance):
    g = torch.Generator().manual_seed(3)
    y = torch.randn(30, 1, 6, 6, generator=g, dtype=torch.float64)
    labels = torch.arange(30) % 3
    x = torch.randn(4, 1, 6, 6, generator=g, dtype=torch.float64)
    ref = GaussianScore(y, labels=labels, covariance=covariance)
    on_cpu = GaussianScore(y, labels=labels, covariance=covariance, device="cpu")
    for label in (None, torch.tensor([0, 1, 2, 0])):
        # two instances (their fits are two eigendecompositions): float64 precision, not bits
        assert_paths_close(on_cpu(x, 0.5, label), ref(x, 0.5, label), ulps=1e3)
    with pytest.raises(ValueError, match="^device:"):
        GaussianScore(y, covariance=covariance, device="nonsense")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            GaussianScore(y, covariance=covariance, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("covariance", ["full", "stationary"])
def test_gaussian_on_cuda_matches_cpu(covariance):
    g = torch.Generator().manual_seed(4)
    y = torch.randn(30, 1, 6, 6, generator=g, dtype=torch.float64)
    x = torch.randn(4, 1, 6, 6, generator=g, dtype=torch.float64)
    cpu = GaussianScore(y, covariance=covariance)(x, [0.1, 0.5, 1.0, 3.0])
    gpu = GaussianScore(y, covariance=covariance, device="cuda")(x.cuda(), [0.1, 0.5, 1.0, 3.0])
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-10, atol=1e-10)
