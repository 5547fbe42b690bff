"""Figures of the theory (matplotlib, Agg backend): stiffness heatmap, xi(t), bifurcation diagram."""

from __future__ import annotations

import os

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_figures(report, out_dir: str, prefix: str = "theory") -> list[str]:
    """Write the PNGs of a :class:`~critdiff.theory.analysis.TheoryReport` into ``out_dir``; return their paths."""
    plt = _plt()
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    scan, cp = report.scan, report.critical
    # 1. sigma^2 kappa over |k| and logsnr with the zero contour
    fig, ax = plt.subplots(figsize=(5.5, 4))
    K, L = np.meshgrid(report.kabs, scan.logsnr)
    z = report.kappa_radial
    lim = max(1.0, float(np.nanmax(np.abs(z[np.isfinite(z)])))) if np.isfinite(z).any() else 1.0
    pc = ax.pcolormesh(K, L, np.clip(z, -lim, lim), shading="nearest", cmap="RdBu_r", vmin=-1, vmax=1)
    if (z < 0).any() and (z > 0).any():
        ax.contour(K, L, z, levels=[0.0], colors="k", linewidths=1.2)
    if cp.found and cp.logsnr_c is not None:
        ax.axhline(cp.logsnr_c, color="k", ls=":", lw=0.8)
    fig.colorbar(pc, ax=ax, label=r"$\sigma^2\kappa = 1 - c(k)/\sigma^2$ (shell mean)")
    ax.set_xlabel(r"$|k|$ (rad/pixel)")
    ax.set_ylabel("logsnr")
    ax.set_title("stiffness (black: zero contour)")
    p = os.path.join(out_dir, f"{prefix}_stiffness.png")
    fig.tight_layout(); fig.savefig(p, dpi=110); plt.close(fig)
    paths.append(p)
    # 2. xi(t)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(scan.logsnr, np.where(report.xi > 0, report.xi, np.nan), "-")
    if cp.found and cp.logsnr_c is not None:
        ax.axvline(cp.logsnr_c, color="k", ls=":", lw=0.8, label="logsnr_c")
        ax.legend()
    ax.set_xlabel("logsnr")
    ax.set_ylabel(r"$\xi$ (pixels)")
    ax.set_title("correlation length" + ("" if cp.preferred_mode else " (white: xi = 0)"))
    p = os.path.join(out_dir, f"{prefix}_xi.png")
    fig.tight_layout(); fig.savefig(p, dpi=110); plt.close(fig)
    paths.append(p)
    # 3. bifurcation diagram (two-point data)
    if report.bifurcation is not None:
        b = report.bifurcation
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(b.logsnr, b.x_plus, "C0-", label="stable branches")
        ax.plot(b.logsnr, -b.x_plus, "C0-")
        zs = np.where(b.zero_stable, 0.0, np.nan)
        zu = np.where(~b.zero_stable, 0.0, np.nan)
        ax.plot(b.logsnr, zs, "C0-")
        ax.plot(b.logsnr, zu, "C3--", label="x = 0 unstable")
        ax.axvline(b.logsnr_c, color="k", ls=":", lw=0.8)
        ax.set_xlabel("logsnr")
        ax.set_ylabel("fixed point x (along the data direction)")
        ax.legend()
        p = os.path.join(out_dir, f"{prefix}_bifurcation.png")
        fig.tight_layout(); fig.savefig(p, dpi=110); plt.close(fig)
        paths.append(p)
    return paths
