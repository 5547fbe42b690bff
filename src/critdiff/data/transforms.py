"""Shared transforms for data sets: value scaling to ``[-1, 1]``, resizing, subsets.

Shapes: images ``x`` are ``[N, C, H, W]`` float tensors, labels ``[N]`` int64 or ``None``.
Every loader ends with images in ``[-1, 1]`` (float32); see DESIGN.md section 6.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .options import fail


def from_levels(x: torch.Tensor, levels: float) -> torch.Tensor:
    """Map integer grey levels ``0..levels`` linearly onto ``[-1, 1]``."""
    return x.to(torch.float32) * (2.0 / levels) - 1.0


def rescale_minmax(x: torch.Tensor) -> torch.Tensor:
    """Map the global min/max of ``x`` onto ``[-1, 1]`` (a constant array maps to 0), float32.

    Computed in float64 so that large integer arrays do not lose precision.
    """
    x64 = x.to(torch.float64)
    if x64.numel() == 0:
        return x64.to(torch.float32)
    lo, hi = x64.min(), x64.max()
    if not bool(torch.isfinite(lo) & torch.isfinite(hi)):
        raise fail("array contains non-finite values (nan or inf)")
    if hi == lo:
        return torch.zeros_like(x64, dtype=torch.float32)
    return ((x64 - lo) * (2.0 / (hi - lo)) - 1.0).clamp(-1.0, 1.0).to(torch.float32)


def resize(x: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Resize ``[N, C, H, W]`` to ``[N, C, size, size]``.

    Upsampling interpolates (``bilinear`` or ``bicubic``, ``align_corners=False``);
    downsampling uses the antialiased filter of ``torch.nn.functional.interpolate``.
    Bilinear weights are non-negative, so values stay inside the input's range;
    bicubic can overshoot and is clamped back to ``[-1, 1]``.
    """
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    shrink = size < h or size < w
    y = F.interpolate(x, size=(size, size), mode=mode, align_corners=False, antialias=shrink)
    return y.clamp(-1.0, 1.0) if mode == "bicubic" else y


def area_downscale(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Average non-overlapping ``factor x factor`` blocks (exact area averaging), ``[N, C, H//f, W//f]``."""
    return x if factor == 1 else F.avg_pool2d(x, factor)


def subset_indices(n_total: int, n: int, labels: torch.Tensor | None,
                   generator: torch.Generator) -> torch.Tensor:
    """Choose ``n`` of ``n_total`` items at random, stratified by ``labels`` when given.

    Stratification: within each class the items are put in random order and item ``r`` of a
    class of size ``m`` gets the key ``(r + 1/2) / m``; the ``n`` smallest keys (ties in random
    order) are kept, so every class contributes ``n * m / n_total`` items up to rounding.
    The chosen indices are returned in increasing order (the data's own order).
    """
    if n > n_total:
        raise fail(f"option 'n' asks for {n} items but the data set has only {n_total}")
    perm = torch.randperm(n_total, generator=generator)
    if labels is None or n == n_total:
        chosen = perm[:n]
    else:
        lab = labels[perm]
        key = torch.empty(n_total, dtype=torch.float64)
        for c in torch.unique(lab):
            where = (lab == c).nonzero().flatten()
            key[where] = (torch.arange(len(where), dtype=torch.float64) + 0.5) / len(where)
        chosen = perm[torch.argsort(key, stable=True)[:n]]
    return torch.sort(chosen).values


def subset(x: torch.Tensor, labels: torch.Tensor | None, n: int | None,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Keep a deterministic (stratified) random subset of ``n`` items; ``n=None`` keeps all."""
    if n is None:
        return x, labels
    idx = subset_indices(x.shape[0], n, labels, generator)
    return x[idx], (None if labels is None else labels[idx])


def select_classes(x: torch.Tensor, labels: torch.Tensor, classes: list[int]
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the listed classes and relabel them ``0..len(classes)-1`` in the listed order."""
    keep = torch.zeros_like(labels, dtype=torch.bool)
    new = torch.full_like(labels, -1)
    for i, c in enumerate(classes):
        hit = labels == c
        keep |= hit
        new[hit] = i
    return x[keep], new[keep]
