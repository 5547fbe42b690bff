"""Matplotlib figures shared by the CLI and the report. Every function writes one PNG and returns its path.

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
    from ..io import atomic_path

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


def calibration_figure(cal: dict, path) -> Path:
    """A patch-size calibration (``Calibration.to_dict()``): each candidate's relative L2 distance to the
    network over logsnr (ELS solid, LS ``ls:`` dashed) and the winning candidate's size (LS in red)."""
    lam = np.asarray(cal["logsnr"], dtype=np.float64)
    rel = np.asarray(cal["rel_l2"], dtype=np.float64)
    size = np.asarray(cal["best_size"], dtype=np.float64)
    local = np.array([s.startswith("ls:") for s in cal["best_stencil"]], dtype=bool)
    fig, axs = plt.subplots(1, 2, figsize=(9, 4.2))
    for j, s in enumerate(cal["stencils"]):
        axs[0].plot(lam, rel[:, j], "o--" if s.startswith("ls:") else "o-", ms=3, label=s)
    axs[0].set_xlabel("logsnr"); axs[0].set_ylabel(r"$|D_{net} - D_S| / |D_{net}|$")
    axs[0].legend(fontsize=6, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.17))
    axs[0].set_title("network vs patch model")
    axs[1].step(lam, size, where="mid", color="k")
    axs[1].plot(lam[~local], size[~local], "ko", label="ELS (equivariant)")
    if local.any():
        axs[1].plot(lam[local], size[local], "o", color="C3", label="LS (position-specific)")
    axs[1].set_xlabel("logsnr"); axs[1].set_ylabel("best stencil size"); axs[1].set_title("effective locality")
    axs[1].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
