"""Render a :class:`~critdiff.experiments.structure_section.StructureResult`: the largest ``|z|`` between the
predicted and the measured structure factor over time, per sampler, and the time they part."""

from __future__ import annotations

import math
from pathlib import Path

from .fmt import num
from .html import Section, table

FIGURE = "structure_factor_z.png"


def write_figure(result, out_dir: "str | Path") -> str:
    """Redraw ``max |z|`` over time per sampler (capped at 1e4) with the theory's ``logsnr_c``; return its name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .figures import save_figure

    cp, thr = result.critical, result.config.z_threshold
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, s in result.samplers.items():
        z = [math.nan if v is None else min(v, 1e4) for v in s["z_max_per_time"]]
        ax.semilogy(s["logsnr"], z, marker=".", label=f"{name} ({s['discretisation']})")
    if cp["found"]:
        ax.axvline(cp["logsnr_c"], color="k", ls="--", lw=1, label="theory logsnr_c")
    ax.axhline(thr, color="gray", ls=":", lw=1, label=f"|z| = {num(thr)}")
    ax.set_xlabel("logsnr")
    ax.set_ylabel("max |z| over |k| shells")
    ax.set_title("predicted S(k,t) vs nonlinear ensemble")
    ax.legend(fontsize=7)
    save_figure(fig, Path(out_dir) / FIGURE, dpi=110)
    return FIGURE


def _rows(result) -> list[dict]:
    rows = []
    for name, s in result.samplers.items():
        dep = s["departs_at_sigma"]
        rows.append({"sampler": f"{name} ({s['discretisation']})", "max |z| before 1.2 sigma_c": s["max_z_before_tc"],
                     "departs at sigma": dep, "departs at logsnr": None if dep is None else -2 * math.log(dep)})
    return rows


def findings(result) -> list[str]:
    """Per sampler: the agreement before t_c and the time from which the nonlinearity takes over."""
    out = []
    for name, s in result.samplers.items():
        dep = s["departs_at_sigma"]
        where = ("never departs" if dep is None else
                 f"departs from the linear prediction at logsnr {num(-2 * math.log(dep))} (sigma {num(dep)})")
        out.append(f"{name} sampler: largest |z| before 1.2 sigma_c is {num(s['max_z_before_tc'])}; the ensemble {where}.")
    return out


def render_structure(result, folder: "str | Path" = ".", key: str = "structure-factor",
                     title: str = "Theory vs ensemble: structure factor S(k, t)") -> Section:
    """The structure-factor section; its figure is redrawn into ``folder`` (the section's folder)."""
    cfg, cp = result.config, result.critical
    write_figure(result, folder)
    html = (f"<p>{cfg.data}, equivariant patch model {cfg.stencil}, {cfg.schedule} schedule, {cfg.steps} steps uniform "
            f"in logsnr, {cfg.ensemble} samples. The linear theory's structure factor, propagated through each sampler's "
            f"own step, against the ensemble of the full nonlinear model: |z| is the largest standardised difference "
            f"over radial shells. Theory critical point: logsnr_c = {num(cp['logsnr_c']) if cp['found'] else 'none'}, "
            f"sigma_c = {num(cp['sigma_over_a_c']) if cp['found'] else 'none'}. Before t_c the two agree within the "
            f"ensemble's error; from the listed time on the nonlinearity takes over.</p>"
            f'{table(_rows(result))}<p><img src="{FIGURE}"></p>')
    return Section(key, title, html, question="Does the linear theory's predicted structure factor match the "
                   "nonlinear patch model's ensemble, and from which time does it stop matching?",
                   findings=findings(result))
