"""Tests of critdiff.scores.boundary (ELS inside, LS near the frame; docs/theory.md section 14)."""

import numpy as np
import pytest
import torch

from critdiff.probes.calibration import CalibratedPatchScore, calibrate_patch_size, candidate_model
from critdiff.scores.boundary import BoundaryPatchScore
from critdiff.scores.patch import PatchScore
from critdiff.stencil import parse_stencil


def _images(n=12, size=7, seed=0, channels=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, size, size, generator=g, dtype=torch.float64) * 2 - 1


def brute_force_partition(x, images, stencil, sigma, labels=None, label=None):
    """Eq. (14.1) by its definition, float64 loops: the pixels are partitioned into the interior (window inside
    the frame: one class) and one class per band pixel; pixel i's pool holds every training image's zero-padded
    patch at every position of i's class; softmax over that pool of -|x_{i+S} - p|^2 / 2 sigma^2."""
    x = x.double().numpy()
    y = images.double().numpy()
    if labels is not None and label is not None:
        y = y[labels.numpy() == label]
    B, C, H, W = x.shape
    offs = parse_stencil(stencil).offsets

    def patch(img, i, j):  # [|S| C], zero outside the frame
        return np.concatenate([img[:, i + dy, j + dx] if 0 <= i + dy < H and 0 <= j + dx < W else np.zeros(C)
                               for dy, dx in offs])

    inside = lambda i, j: all(0 <= i + dy < H and 0 <= j + dx < W for dy, dx in offs)  # noqa: E731
    interior = [(i, j) for i in range(H) for j in range(W) if inside(i, j)]
    out = np.zeros_like(x)
    for b in range(B):
        for i in range(H):
            for j in range(W):
                cls = interior if inside(i, j) else [(i, j)]
                pool = [(patch(yn, a, c), yn[:, a, c]) for yn in y for a, c in cls]
                q = patch(x[b], i, j)
                logit = np.array([-np.sum((q - p) ** 2) / (2 * sigma ** 2) for p, _ in pool])
                w = np.exp(logit - logit.max())
                w /= w.sum()
                out[b, :, i, j] = sum(wk * v for wk, (_, v) in zip(w, pool))
    return out


@pytest.mark.parametrize("stencil", ["square:3", "square:5", "cross:1"])
@pytest.mark.parametrize("sigma", [0.3, 1.5])
def test_boundary_model_equals_brute_force_partition_pools(stencil, sigma):
    imgs = _images()
    x = _images(n=2, seed=1) * 1.3
    model = BoundaryPatchScore(imgs, stencil, tol=0.0)
    got = model(x, sigma).numpy()
    np.testing.assert_allclose(got, brute_force_partition(x, imgs, stencil, sigma), rtol=0, atol=1e-12)
    # it differs from both pure families (otherwise the test could not tell them apart)
    els = PatchScore(imgs, stencil, boundary="zero", pool="valid", tol=0.0)(x, sigma).numpy()
    ls = PatchScore(imgs, stencil, equivariant=False, boundary="zero")(x, sigma).numpy()
    assert np.abs(got - els).max() > 1e-3 and np.abs(got - ls).max() > 1e-3


def test_class_pools_and_three_channels():
    imgs = _images(n=10, channels=3)
    labels = torch.tensor([0, 1] * 5)
    x = _images(n=2, seed=2, channels=3)
    model = BoundaryPatchScore(imgs, "square:3", labels=labels, tol=0.0)
    for k in (0, 1):
        np.testing.assert_allclose(model(x, 0.5, k).numpy(), brute_force_partition(x, imgs, "square:3", 0.5, labels, k),
                                   rtol=0, atol=1e-12)


def test_float32_matches_float64():
    imgs = _images()
    x = _images(n=2, seed=3)
    m64 = BoundaryPatchScore(imgs, "square:3", tol=0.0)
    m32 = BoundaryPatchScore(imgs.float(), "square:3", tol=0.0)
    # float32 GEMM / window kernels against float64: rounding of logits ~1e-7 relative
    np.testing.assert_allclose(m32(x.float(), 0.4).double().numpy(), m64(x, 0.4).numpy(), atol=1e-5)


def test_candidate_spelling_and_shared_parts():
    imgs = _images()
    x = _images(n=2, seed=4)
    m = candidate_model(imgs, "b:square:3", pool="valid", boundary="zero", tol=0.0)
    assert isinstance(m, BoundaryPatchScore) and m.config()["model"] == "patch-boundary"
    cal = CalibratedPatchScore(imgs, [1.0, 0.1], ["b:square:3", "square:3"], boundary="zero", pool="valid", tol=0.0)
    assert cal.models["b:square:3"].els is cal.models["square:3"]  # the ELS pool is built once
    torch.testing.assert_close(cal(x, 1.0), m(x, 1.0), rtol=0, atol=0)  # the same computation
    with pytest.raises(ValueError, match="boundary"):
        BoundaryPatchScore(imgs, "square:3", boundary="periodic")
    with pytest.raises(ValueError, match="els"):
        BoundaryPatchScore(imgs, "square:3", els=PatchScore(imgs, "square:3", boundary="zero", pool="all"))


def test_calibration_recovers_the_boundary_model():
    imgs = _images(n=16, size=8)
    oracle = BoundaryPatchScore(imgs, "square:3", tol=0.0)
    x = _images(n=3, size=8, seed=5)
    cal = calibrate_patch_size(oracle, imgs, stencils=("square:3", "ls:square:3", "b:square:3"),
                               states=[(0.8, x), (0.3, x)], pool="valid", dtype=torch.float64)
    assert cal.best_stencil == ["b:square:3", "b:square:3"]
    np.testing.assert_allclose(cal.rel_l2[:, 2], 0.0, atol=1e-12)
