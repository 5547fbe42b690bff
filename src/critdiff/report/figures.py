"""Figures of the report (:mod:`critdiff.report`); the drawing primitives live in :mod:`critdiff.figures`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..figures import image_grid, plt, save_figure, trajectory_strip  # noqa: F401 - the renderers' primitives


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
