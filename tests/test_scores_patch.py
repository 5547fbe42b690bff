"""PatchScore against a naive float64 per-pixel loop (DESIGN.md section 2, patch model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from critdiff.scores import PatchScore
from oracles import naive_patch

TOL = {torch.float64: 1e-10, torch.float32: 1e-4}
SIGMAS = [1e-4, 1e-2, 0.3, 1.0, 100.0]
CUSTOM = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 1]], dtype=bool)  # no centre, asymmetric


def nearest_centre(x, y, stencil, boundary):
    """The centre value of the nearest pool patch (the sigma -> 0 limit), ELS pool='all'."""
    return naive_patch(x, y, stencil, equivariant=True, boundary=boundary, sigmas=[1e-9] * x.shape[0])


def data(seed, N=3, C=1, H=6, W=6, B=2):
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(N, C, H, W, generator=g, dtype=torch.float64)
    x = torch.rand(B, C, H, W, generator=g, dtype=torch.float64)
    noise = torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
    return y, x, noise


def check_close(got, want, dtype):
    tol = TOL[dtype]
    err = np.abs(got.detach().to(torch.float64).numpy() - want).max()
    assert np.isfinite(got.detach().numpy()).all()
    assert err <= tol * max(1.0, np.abs(want).max()), f"max abs error {err:.3e} > {tol:.1e}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("stencil", ["square:3", "cross:1", "dilated:3,2", "custom"])
@pytest.mark.parametrize("equivariant", [True, False])
@pytest.mark.parametrize("boundary", ["periodic", "zero"])
def test_patch_matches_naive_loop(dtype, stencil, equivariant, boundary):
    st = CUSTOM if stencil == "custom" else stencil
    y, x0, noise = data(len(stencil) + 10 * equivariant + 100 * (boundary == "zero"), H=5 if stencil == "dilated:3,2" else 6)
    model = PatchScore(y.to(dtype), st, equivariant=equivariant, boundary=boundary)
    for sigma in SIGMAS:
        x = (x0 + min(sigma, 5.0) * noise).to(dtype)
        want = naive_patch(x, y.to(dtype), st, equivariant=equivariant, boundary=boundary, sigmas=[sigma] * 2)
        check_close(model(x, sigma), want, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("boundary", ["periodic", "zero"])
def test_small_sigma_returns_nearest_patch_centre(dtype, boundary):
    y, x0, noise = data(7, N=4)
    x = (x0 + 0.05 * noise).to(dtype)
    model = PatchScore(y.to(dtype), "square:3", boundary=boundary)
    got = model(x, 1e-4)
    want = nearest_centre(x, y.to(dtype), "square:3", boundary)
    check_close(got, want, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("boundary", ["periodic", "zero"])
def test_pool_valid(dtype, boundary):
    y, x0, noise = data(11, N=3, H=7, W=6)
    model = PatchScore(y.to(dtype), "square:3", boundary=boundary, pool="valid")
    assert model.n_pool == 3 * 5 * 4
    for sigma in [1e-3, 0.2, 2.0]:
        x = (x0 + sigma * noise).to(dtype)
        want = naive_patch(x, y.to(dtype), "square:3", equivariant=True, boundary=boundary, pool="valid", sigmas=[sigma] * 2)
        check_close(model(x, sigma), want, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("equivariant", [True, False])
def test_three_channels_and_per_sample_sigma(dtype, equivariant):
    y, x0, noise = data(3, N=3, C=3, H=5, W=5, B=3)
    sig = torch.tensor([1e-3, 0.25, 4.0], dtype=torch.float64)
    x = (x0 + sig.reshape(3, 1, 1, 1) * noise).to(dtype)
    model = PatchScore(y.to(dtype), "cross:1", equivariant=equivariant)
    want = naive_patch(x, y.to(dtype), "cross:1", equivariant=equivariant, boundary="periodic", sigmas=sig.tolist())
    check_close(model(x, sig.to(dtype)), want, dtype)
    # per-sample sigma == one call per sample
    for b in range(3):
        check_close(model(x[b : b + 1], float(sig[b])), want[b : b + 1], dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("equivariant", [True, False])
def test_class_conditional(dtype, equivariant):
    y, x0, noise = data(5, N=5, B=3)
    ylab = torch.tensor([1, 0, 1, 2, 0])
    model = PatchScore(y.to(dtype), "square:3", equivariant=equivariant, labels=ylab)
    assert model.n_classes == 3
    x = (x0 + 0.3 * noise).to(dtype)
    lab = torch.tensor([2, 0, 1])
    want = naive_patch(x, y.to(dtype), "square:3", equivariant=equivariant, boundary="periodic", sigmas=[0.3] * 3,
                       y_labels=ylab.tolist(), labels=lab.tolist())
    check_close(model(x, 0.3, label=lab), want, dtype)
    want1 = naive_patch(x, y.to(dtype), "square:3", equivariant=equivariant, boundary="periodic", sigmas=[0.3] * 3,
                        y_labels=ylab.tolist(), labels=[1, 1, 1])
    check_close(model(x, 0.3, label=1), want1, dtype)
    want_all = naive_patch(x, y.to(dtype), "square:3", equivariant=equivariant, boundary="periodic", sigmas=[0.3] * 3)
    check_close(model(x, 0.3), want_all, dtype)


@pytest.mark.parametrize("equivariant", [True, False])
def test_chunk_size_and_cache_do_not_change_results(equivariant):
    y, x0, noise = data(9, N=6)
    x = x0 + 0.2 * noise
    ref = PatchScore(y, "square:3", equivariant=equivariant)(x, 0.2)
    for chunk in [1, 7, 40, 100000]:
        for cache in [0, 1 << 30]:
            got = PatchScore(y, "square:3", equivariant=equivariant, chunk_size=chunk, cache_bytes=cache)(x, 0.2)
            assert torch.allclose(got, ref, rtol=0, atol=1e-13)


def test_autograd_matches_finite_differences():
    y, x0, noise = data(13, N=2, H=4, W=4, B=1)
    for equivariant in (True, False):
        model = PatchScore(y, "square:3", equivariant=equivariant)
        x = (x0 + 0.3 * noise).requires_grad_(True)
        assert torch.autograd.gradcheck(lambda z: model(z, 0.3), (x,), eps=1e-6, atol=1e-7)


def test_attributes_and_config():
    y, _, _ = data(1, N=3, C=3)
    m = PatchScore(y, "square:3", equivariant=False, boundary="zero")
    assert m.stencil.size == 9 and m.patch_dim == 27 and m.n_pool == 3 and m.n_images == 3
    cfg = m.config()
    assert cfg["stencil"] == "square:3" and cfg["equivariant"] is False and cfg["boundary"] == "zero"
    import json
    json.dumps(cfg)


def test_float32_input_gives_float32_output():
    m0 = PatchScore(data(2)[0].float(), "square:3")
    assert m0.compute_dtypes(data(2)[1].float(), torch.tensor([1e-3, 1.0])) == [torch.float64, torch.float32]
    y, x, _ = data(2)
    m = PatchScore(y.float(), "square:3")
    assert m(x.float(), 0.01).dtype == torch.float32
    assert m(x, 0.01).dtype == torch.float64


@pytest.mark.parametrize(
    "kwargs, call, match",
    [
        ({}, lambda m, x: m(x[:, :, :5], 1.0), "x: expected images of size"),
        ({}, lambda m, x: m(x[0], 1.0), "x: expected a tensor of rank 4"),
        ({}, lambda m, x: m(torch.cat([x, x], 1), 1.0), "x: expected 1 channel"),
        ({}, lambda m, x: m(x * float("nan"), 1.0), "x: contains non-finite"),
        ({}, lambda m, x: m(x, 0.0), "sigma"),
        ({}, lambda m, x: m(x, -1.0), "sigma"),
        ({}, lambda m, x: m(x, float("inf")), "sigma"),
        ({}, lambda m, x: m(x, torch.ones(3)), "sigma"),
        ({}, lambda m, x: m(x, 1.0, label=0), "label: this model was built without labels"),
        ({"labels": torch.tensor([0, 1, 1])}, lambda m, x: m(x, 1.0, label=2), "label: class 2"),
        ({"labels": torch.tensor([0, 2, 2])}, lambda m, x: m(x, 1.0, label=1), "label: class 1"),
        ({"labels": torch.tensor([0, 1, 1])}, lambda m, x: m(x, 1.0, label=-1), "label: expected an int >= 0"),
    ],
)
def test_invalid_calls_raise_one_line(kwargs, call, match):
    y, x, _ = data(4)
    m = PatchScore(y, "square:3", **kwargs)
    with pytest.raises((ValueError, TypeError), match=match) as exc:
        call(m, x)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"stencil": np.zeros((3, 3), bool)}, "stencil"),
        ({"stencil": "square:9"}, "stencil: 'square:9' spans 9x9"),
        ({"boundary": "reflect"}, "boundary"),
        ({"pool": "some"}, "pool"),
        ({"pool": "valid", "equivariant": False}, "pool: 'valid' requires equivariant=True"),
        ({"pool": "valid", "boundary": "zero", "stencil": "square:9"}, "pool: 'valid' keeps no patch"),
        ({"labels": torch.tensor([0, 1])}, "labels: expected shape"),
        ({"labels": torch.tensor([0.0, 1.0, 1.0])}, "labels: expected an integer"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"dtype": torch.int32}, "dtype"),
    ],
)
def test_invalid_construction_raises_one_line(kwargs, match):
    y, _, _ = data(4)
    with pytest.raises((ValueError, TypeError), match=match) as exc:
        PatchScore(y, **kwargs)
    assert "\n" not in str(exc.value)


def test_invalid_images():
    with pytest.raises(ValueError, match="images"):
        PatchScore(torch.rand(3, 6, 6), "square:3")
    with pytest.raises(ValueError, match="images"):
        PatchScore(torch.full((2, 1, 6, 6), float("nan")), "square:3")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("stencil", ["square:3", "cross:1", "custom"])
@pytest.mark.parametrize("boundary", ["periodic", "zero"])
def test_ls_window_kernel_equals_gemm_kernel(dtype, stencil, boundary, monkeypatch):
    """LS: the window kernel (the default) and the patch GEMM kernel compute one function; tiny tiles force
    the online softmax across many chunks."""
    from critdiff.scores import _window

    st = CUSTOM if stencil == "custom" else stencil
    y, x0, noise = data(21, N=7, C=2, B=3)
    monkeypatch.setattr(_window, "TILE_ELEMS", 64)
    win = PatchScore(y.to(dtype), st, equivariant=False, boundary=boundary)
    gemm = PatchScore(y.to(dtype), st, equivariant=False, boundary=boundary, kernel="stream")
    assert win.kernel == "window" and gemm.kernel == "stream"
    for sigma in [1e-3, 0.3, 3.0]:
        x = (x0 + sigma * noise).to(dtype)
        check_close(win(x, sigma), gemm(x, sigma).to(torch.float64).numpy(), dtype)


def test_ls_stencil_covering_the_frame_is_the_empirical_model():
    """LS with zero boundary and a stencil that sees the whole frame from every pixel (K >= 2 H - 1) weighs
    training image n by exp(-|x - y_n|^2 / (2 sigma^2)) at every pixel: the global empirical model."""
    from critdiff.scores import EmpiricalScore

    y, x0, noise = data(23, N=5, C=1, H=6, W=6, B=2)
    ls = PatchScore(y, "square:11", equivariant=False, boundary="zero")
    for sigma in [0.05, 0.4, 2.0]:
        x = x0 + sigma * noise
        assert torch.allclose(ls(x, sigma), EmpiricalScore(y)(x, sigma), rtol=0, atol=1e-12)


def test_window_kernel_is_ls_only():
    y, _, _ = data(1)
    with pytest.raises(ValueError, match="kernel: 'window' is the LS kernel"):
        PatchScore(y, "square:3", kernel="window")
