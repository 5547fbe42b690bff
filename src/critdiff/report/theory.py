"""Render a :class:`~critdiff.experiments.theory_section.TheoryResult`: the stiffness heatmap, ``xi(t)`` and the
two-point bifurcation diagram redrawn from its numbers, and a table of the critical point."""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np

from .fmt import num
from .html import Section, table


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_dir: "str | Path", name: str) -> str:
    from .figures import save_figure

    fig.tight_layout()
    path = os.path.join(out_dir, name)
    save_figure(fig, path, dpi=110)
    return path


def _stiffness_figure(plt, r, out_dir, prefix: str) -> str:
    a = r.analysis
    fig, ax = plt.subplots(figsize=(5.5, 4))
    K, L = np.meshgrid(np.array(r.kabs, dtype=float), np.array(a["xi"]["logsnr"], dtype=float))
    z = np.array(r.kappa_radial, dtype=float)
    lim = max(1.0, float(np.nanmax(np.abs(z[np.isfinite(z)])))) if np.isfinite(z).any() else 1.0
    pc = ax.pcolormesh(K, L, np.clip(z, -lim, lim), shading="nearest", cmap="RdBu_r", vmin=-1, vmax=1)
    if (z < 0).any() and (z > 0).any():
        ax.contour(K, L, z, levels=[0.0], colors="k", linewidths=1.2)
    if a["found"] and a["logsnr_c"] is not None:
        ax.axhline(a["logsnr_c"], color="k", ls=":", lw=0.8)
    fig.colorbar(pc, ax=ax, label=r"$\sigma^2\kappa = 1 - c(k)/\sigma^2$ (shell mean)")
    ax.set_xlabel(r"$|k|$ (rad/pixel)")
    ax.set_ylabel("logsnr")
    ax.set_title("stiffness (black: zero contour)")
    return _save(fig, out_dir, f"{prefix}_stiffness.png")


def _xi_figure(plt, r, out_dir, prefix: str) -> str:
    a = r.analysis
    xi = np.array(a["xi"]["xi"], dtype=float)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(np.array(a["xi"]["logsnr"], dtype=float), np.where(xi > 0, xi, np.nan), "-")
    if a["found"] and a["logsnr_c"] is not None:
        ax.axvline(a["logsnr_c"], color="k", ls=":", lw=0.8, label="logsnr_c")
        ax.legend()
    ax.set_xlabel("logsnr")
    ax.set_ylabel(r"$\xi$ (pixels)")
    ax.set_title("correlation length" + ("" if a["preferred_mode"] else " (white: xi = 0)"))
    return _save(fig, out_dir, f"{prefix}_xi.png")


def _bifurcation_figure(plt, b: dict, out_dir, prefix: str) -> str:
    lam, xp, stable = (np.array(b[k], dtype=float) for k in ("logsnr", "x_plus", "zero_stable"))
    stable = stable.astype(bool)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(lam, xp, "C0-", label="stable branches")
    ax.plot(lam, -xp, "C0-")
    ax.plot(lam, np.where(stable, 0.0, np.nan), "C0-")
    ax.plot(lam, np.where(~stable, 0.0, np.nan), "C3--", label="x = 0 unstable")
    ax.axvline(b["logsnr_c"], color="k", ls=":", lw=0.8)
    ax.set_xlabel("logsnr")
    ax.set_ylabel("fixed point x (along the data direction)")
    ax.legend()
    return _save(fig, out_dir, f"{prefix}_bifurcation.png")


def write_figures(result, out_dir: "str | Path", prefix: str = "theory") -> list[str]:
    """Write the theory's PNGs (stiffness map, ``xi(t)``, and the bifurcation diagram of two-point data) into
    ``out_dir``; return their paths."""
    plt = _plt()
    os.makedirs(out_dir, exist_ok=True)
    paths = [_stiffness_figure(plt, result, out_dir, prefix), _xi_figure(plt, result, out_dir, prefix)]
    if result.analysis["bifurcation"] is not None:
        paths.append(_bifurcation_figure(plt, result.analysis["bifurcation"], out_dir, prefix))
    return paths


def findings(result) -> list[str]:
    """One sentence: the critical time and mode, or that there is none."""
    a, data = result.analysis, result.config.data
    if not a["found"]:
        return [f"{data}: no critical point of the patch model ({a['message']})."]
    mode = f", critical mode |k*| = {num(a['k_star_abs'])} rad/pixel" if a["preferred_mode"] else ", at k = 0"
    return [f"{data}: the patch model ({a['stencil']}) turns critical at t_c = {num(a['t_c'])} "
            f"(logsnr {num(a['logsnr_c'])}, sigma/a {num(a['sigma_over_a_c'])}){mode}."]


def render_theory(result, folder: "str | Path" = ".", key: str = "theory", title: str = "", blurb: str = "") -> Section:
    """The theory section; its figures are redrawn into ``folder`` (the section's folder)."""
    a = result.analysis
    figures = write_figures(result, folder)
    rows = [("critical time t_c", a["t_c"]), ("logsnr_c", a["logsnr_c"]), ("sigma/a at t_c", a["sigma_over_a_c"]),
            ("k* (rad/pixel)", a["k_star"]), ("|k*|", a["k_star_abs"]),
            ("global-model speciation logsnr", a["global_speciation"]["logsnr_c"])]
    for name, v in a["critical"]["instability"].items():
        rows.append((f"{name.upper()} sampler instability t (schedule frame)", v.get("t") if v["found"] else v["message"]))
    note = f"<p>{html.escape(a['message'])}</p>" if a["message"] else ""
    imgs = "".join(f'<img src="{html.escape(os.path.basename(p))}" alt="{html.escape(os.path.basename(p))}">'
                   for p in figures)
    frag = ((f"<p>{blurb}</p>" if blurb else "")
            + f"<p>Linear stability of the patch model ({html.escape(a['stencil'])}, {html.escape(a['schedule'])}, "
            f"{html.escape(a['weights'])} weights) around the homogeneous solution.</p>{note}"
            + table([{"quantity": k, "value": v} for k, v in rows]) + imgs)
    return Section(key, title or f"Theory: linear stability of the patch model: {result.config.data}", frag,
                   question="At which time and in which Fourier mode does the patch model's homogeneous solution "
                            "turn unstable?", findings=findings(result))
