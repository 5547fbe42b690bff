"""Windowed-distance kernel of the local (LS) patch model: cost independent of the stencil's size.

DESIGN.md section 2, ``equivariant=False``. The pool at pixel ``i`` holds one patch per training image
``y_n`` (the patch at ``i``), so the logit of image ``n`` at pixel ``i`` is a windowed sum of one squared
difference image:

    L_n(i) = -sum_{o in S} d_n(i + o) / (2 sigma^2),    d_n(k) = sum_c (x_c(k) - y_{n,c}(k))^2,

with ``d_n`` read as 0 outside the frame for the ``'zero'`` boundary (query and training image are both
padded with zeros there, so their difference is 0) and wrapped for ``'periodic'``. The window sum is a
cross-correlation of ``d_n`` with the stencil's mask; for a full rectangle (``square:K``) it is separable
into a row and a column box sum (running sums: ``O(1)`` per pixel whatever ``K``). Then ``D_i(x) = sum_n softmax_n(L_n(i)) y_n(i)``, streamed over chunks of
training images with an online softmax (running max per pixel).

Cost per query image and training image: ``C H W`` for ``d_n`` plus a few per pixel for a rectangular
window (``H W |S|`` otherwise, a convolution with the mask), against ``2 H W |S| C`` for the patch GEMM; and no patch is ever unfolded.
The logits are sums of non-negative terms (no cancellation), so their float32 error is ~``eps32 |L|``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..stencil import Stencil

TILE_ELEMS = 1 << 22  # padded difference-image entries per chunk (16 MB in float32)


def _box_sum(d: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """Sums of ``width`` consecutive entries along ``dim`` (length ``n`` -> ``n - width + 1``), by a float64
    running sum (its rounding is relative to a row's total, so it is kept in float64 for float32 inputs)."""
    c = F.pad(d.to(torch.float64).cumsum(dim), (1, 0) if dim == -1 else (0, 0, 1, 0))
    n = c.shape[dim]
    return (c.narrow(dim, width, n - width) - c.narrow(dim, 0, n - width)).to(d.dtype)


def _window_sum(d: torch.Tensor, stencil: Stencil, boundary: str) -> torch.Tensor:
    """``d [M, H, W] -> [M, H, W]``: ``out(i) = sum_{o in S} d(i + o)`` (zero outside, or wrapped)."""
    ry, rx = stencil.radius
    mask = torch.as_tensor(stencil.mask(), dtype=d.dtype, device=d.device)
    d = F.pad(d.unsqueeze(1), (rx, rx, ry, ry), mode="circular" if boundary == "periodic" else "constant")
    if bool(mask.all()):  # a full rectangle: row box sum, then column box sum
        return _box_sum(_box_sum(d.squeeze(1), 2 * rx + 1, -1), 2 * ry + 1, -2)
    return F.conv2d(d, mask[None, None]).squeeze(1)


def window_average(x: torch.Tensor, y: torch.Tensor, inv_s2: torch.Tensor, stencil: Stencil,
                   boundary: str) -> torch.Tensor:
    """LS patch denoiser (module docstring): ``x [B, C, H, W]``, training images ``y [N, C, H, W]``,
    ``inv_s2 [B]`` = ``1 / sigma^2`` per query -> ``[B, C, H, W]``. Computes in the dtype of ``x``."""
    B, C, H, W = x.shape
    ry, rx = stencil.radius
    step = max(1, TILE_ELEMS // (B * (H + 2 * ry) * (W + 2 * rx)))
    scale = (-0.5 * inv_s2).to(x.dtype).reshape(B, 1, 1, 1)
    m = torch.full((B, H, W), -torch.inf, dtype=x.dtype, device=x.device)
    den = torch.zeros((B, H, W), dtype=x.dtype, device=x.device)
    num = torch.zeros((B, C, H, W), dtype=x.dtype, device=x.device)
    for a in range(0, y.shape[0], step):
        yc = y[a:a + step].to(device=x.device, dtype=x.dtype)
        d = (x[:, None] - yc[None]).pow(2).sum(2)  # [B, n, H, W]
        logit = _window_sum(d.reshape(-1, H, W), stencil, boundary).reshape(B, -1, H, W) * scale
        m_new = torch.maximum(m, logit.amax(1))
        alpha = torch.exp(m - m_new)
        e = torch.exp(logit - m_new[:, None])
        den = den * alpha + e.sum(1)
        num = num * alpha[:, None] + torch.einsum("bnhw,nchw->bchw", e, yc)
        m = m_new
    return num / den[:, None]
