"""EmpiricalScore against a brute-force float64 loop over training images (DESIGN.md section 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from critdiff.scores import EmpiricalScore
from oracles import naive_empirical

TOL = {torch.float64: 1e-10, torch.float32: 1e-4}


def data(seed, N=7, C=1, H=5, W=4, B=3):
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(N, C, H, W, generator=g, dtype=torch.float64)
    x = y[:B] + 0.1 * torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
    noise = torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
    return y, x, noise


def check_close(got, want, dtype):
    err = np.abs(got.detach().to(torch.float64).numpy() - want).max()
    assert np.isfinite(got.detach().numpy()).all()
    assert err <= TOL[dtype] * max(1.0, np.abs(want).max()), f"max abs error {err:.3e}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("C", [1, 3])
@pytest.mark.parametrize("sigma", [1e-4, 1e-2, 0.3, 1.0, 1e3])
def test_matches_brute_force(dtype, C, sigma):
    y, x0, noise = data(C, C=C)
    x = (x0 + min(sigma, 5.0) * noise).to(dtype)
    got = EmpiricalScore(y.to(dtype))(x, sigma)
    check_close(got, naive_empirical(x, y.to(dtype), [sigma] * 3), dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_small_sigma_is_nearest_image(dtype):
    y, x0, _ = data(5, N=9)
    x = x0.to(dtype)
    got = EmpiricalScore(y.to(dtype))(x, 1e-4)
    d2 = ((x.double()[:, None] - y.to(dtype).double()[None]) ** 2).sum((2, 3, 4))
    want = y.to(dtype).double()[d2.argmin(1)].numpy()
    check_close(got, want, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_per_sample_sigma_and_labels(dtype):
    y, x0, noise = data(8, N=8, B=3)
    ylab = torch.tensor([0, 1, 2, 0, 1, 2, 2, 0])
    sig = torch.tensor([1e-3, 0.3, 3.0], dtype=torch.float64)
    x = (x0 + sig.reshape(3, 1, 1, 1) * noise).to(dtype)
    m = EmpiricalScore(y.to(dtype), labels=ylab)
    check_close(m(x, sig), naive_empirical(x, y.to(dtype), sig.tolist()), dtype)
    lab = torch.tensor([2, 0, 1])
    check_close(m(x, sig, label=lab), naive_empirical(x, y.to(dtype), sig.tolist(), ylab.tolist(), lab.tolist()), dtype)
    check_close(m(x, sig, label=1), naive_empirical(x, y.to(dtype), sig.tolist(), ylab.tolist(), [1, 1, 1]), dtype)


def test_chunk_size_does_not_change_results():
    y, x0, noise = data(2, N=11)
    x = x0 + 0.2 * noise
    ref = EmpiricalScore(y)(x, 0.2)
    for chunk in [1, 3, 100]:
        assert torch.allclose(EmpiricalScore(y, chunk_size=chunk)(x, 0.2), ref, rtol=0, atol=1e-13)


def test_autograd_matches_finite_differences():
    y, x0, noise = data(4, N=4, H=3, W=3, B=2)
    m = EmpiricalScore(y)
    x = (x0 + 0.3 * noise).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: m(z, 0.3), (x,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m, x: m(x[:, :, :4], 1.0), "x: expected images of size"),
        (lambda m, x: m(torch.cat([x, x], 1), 1.0), "x: expected 1 channel"),
        (lambda m, x: m(x * float("inf"), 1.0), "x: contains non-finite"),
        (lambda m, x: m(x, 0.0), "sigma"),
        (lambda m, x: m(x, float("nan")), "sigma"),
        (lambda m, x: m(x, 1.0, label=0), "label: this model was built without labels"),
    ],
)
def test_invalid_calls_raise_one_line(call, match):
    y, x, _ = data(1)
    with pytest.raises((ValueError, TypeError), match=match) as exc:
        call(EmpiricalScore(y), x)
    assert "\n" not in str(exc.value)


def test_invalid_labels():
    y, x, _ = data(1)
    with pytest.raises(ValueError, match="labels: expected shape"):
        EmpiricalScore(y, labels=torch.tensor([0, 1]))
    m = EmpiricalScore(y, labels=torch.zeros(7, dtype=torch.long))
    with pytest.raises(ValueError, match="label: class 3"):
        m(x, 1.0, label=3)
