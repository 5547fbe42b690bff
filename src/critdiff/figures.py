"""Matplotlib drawing primitives (the Agg backend): :func:`save_figure` and the image grids that a run writes
beside its results (``samples.png``, ``trajectory.png``) and the report reuses. Every function writes one PNG
and returns its path. A leaf of the foundations: it imports nothing of critdiff but :mod:`critdiff.io`.

Images are ``[N, C, H, W]`` tensors in ``[-1, 1]``; one channel is shown in gray, three as RGB.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .io import atomic_path  # noqa: E402


def _to_display(img: torch.Tensor) -> np.ndarray:
    """``[C, H, W]`` in [-1, 1] -> ``[H, W]`` or ``[H, W, 3]`` in [0, 1] (clipped for display only)."""
    a = ((img.detach().cpu().to(torch.float32) + 1) / 2).clamp(0, 1).numpy()
    if a.shape[0] == 1:
        return a[0]
    if a.shape[0] == 3:
        return a.transpose(1, 2, 0)
    return a.mean(0)


def save_figure(fig, path, dpi: int = 110) -> Path:
    """Write ``fig`` to the PNG ``path`` atomically (cropped to its content) and close it."""
    path = Path(path)
    try:
        with atomic_path(path, suffix=".tmp.png") as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def image_grid(images: torch.Tensor, path, nrow: int | None = None, title: str | None = None,
               labels: Sequence[str] | None = None) -> Path:
    """A grid of images (optionally captioned) saved as PNG."""
    n = images.shape[0]
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    ncol_rows = int(math.ceil(n / nrow))
    fig, axes = plt.subplots(ncol_rows, nrow, figsize=(1.3 * nrow, 1.3 * ncol_rows + (0.4 if title else 0)), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(_to_display(images[k]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if labels is not None:
                ax.set_title(str(labels[k]), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def trajectory_strip(sigmas: Sequence[float], xs: torch.Tensor, x0s: torch.Tensor, path, title: str | None = None) -> Path:
    """One trajectory over time: the state ``x_t`` (top row, shown as ``x / sqrt(1 + sigma^2)``, the VP
    state) and the denoiser's ``x0_hat`` (bottom row) at the given noise levels. ``xs, x0s: [T, C, H, W]``."""
    T = xs.shape[0]
    fig, axes = plt.subplots(2, T, figsize=(1.25 * T, 2.9), squeeze=False)
    for j in range(T):
        s = float(sigmas[j])
        z = xs[j] / math.sqrt(1 + s * s)
        for row, img in enumerate((z, x0s[j])):
            ax = axes[row, j]
            ax.imshow(_to_display(img), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, j].set_title(f"logsnr {-2 * math.log(s):.1f}" if s > 0 else "final", fontsize=7)
    axes[0, 0].set_ylabel("x_t (VP)", fontsize=8)
    axes[1, 0].set_ylabel("x0_hat", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
