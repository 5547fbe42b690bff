"""Render a :class:`~critdiff.experiments.probe.ProbeResult`: the comparison table, the stiffness map, the
signals, the branch's linear response, and the prose. Figures are redrawn from the result's numbers
(``stiffness.png``, ``signals.png``, ``linear_response.png`` in ``out_dir``); only ``snapshots.png`` (the
states near ``t_c``) is an artefact of the run."""

from __future__ import annotations

import html as _html
from pathlib import Path

import numpy as np

from ..probes.theory_compare import comparison_rows
from .figures import save_figure
from .fmt import interval, num
from .html import Section, table

import matplotlib.pyplot as plt  # noqa: E402  (report.figures selected the Agg backend)


def _arr(values) -> np.ndarray:
    """A JSON list (None for a missing number) as a float array with NaN."""
    return np.array([np.nan if v is None else v for v in np.ravel(np.array(values, dtype=object))],
                    dtype=np.float64).reshape(np.shape(np.array(values, dtype=object)))


def _marker(result):
    """A function drawing the ensemble estimates, the combined interval and the theory's t_c on an axis."""
    cur, th = result.curves, result.theory or {}

    def mark(ax):
        for i, (k, v) in enumerate(cur["marks"].items()):
            ax.axvline(v, ls=":", color=f"C{i + 1}", label=f"t_c ({k})")
        if cur["ensemble_ci"] is not None:
            ax.axvspan(*_arr(cur["ensemble_ci"]), color="0.85", zorder=-1, label="combined 95% CI")
        if th.get("logsnr_c") is not None:
            ax.axvline(th["logsnr_c"], color="k", lw=1.5, label="theory t_c")

    return mark


def stiffness_figure(result, path) -> Path:
    """Radially averaged ``sigma^2 kappa`` (|k| against logsnr) with the theory's and the homogeneous probe's
    ``kappa = 0`` contours."""
    sm, cur = result.curves["stiffness_map"], result.curves
    lam, k, Z = _arr(sm["logsnr"]), _arr(sm["k"]), _arr(sm["sigma2_kappa"])
    fig, ax = plt.subplots(figsize=(6, 4))
    vmax = float(np.nanmax(np.abs(Z))) or 1.0
    pc = ax.pcolormesh(lam, k, Z.T, cmap="RdBu_r", vmin=-vmax, vmax=vmax, shading="nearest")
    fig.colorbar(pc, ax=ax, label="sigma^2 kappa (measured, trajectories)")
    if cur["theory_map"] is not None:
        tz = _arr(cur["theory_map"]["sigma2_kappa"])
        if np.nanmin(tz) < 0 < np.nanmax(tz):
            ax.contour(_arr(cur["theory_map"]["logsnr"]), k, tz.T, levels=[0.0], colors="k", linewidths=1.5)
            ax.plot([], [], "k-", label="theory kappa = 0")
    if cur["homogeneous_map"] is not None:
        H = _arr(cur["homogeneous_map"]["sigma2_kappa"])
        if np.nanmin(H) < 0 < np.nanmax(H):
            ax.contour(_arr(result.homogeneous["logsnr"]), _arr(cur["homogeneous_map"]["k"]), H.T, levels=[0.0],
                       colors="g", linewidths=1, linestyles="--")
            ax.plot([], [], "g--", label="probe at m(sigma)1: kappa = 0")
    ax.set_xlabel("logsnr")
    ax.set_ylabel("|k| (rad/pixel)")
    ax.set_xlim(lam.min(), lam.max())
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left")
    ax.set_title("stiffness of each |k| shell")
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def signals_figure(result, path) -> Path:
    """``sigma^2 min_k kappa``, the correlation lengths and ``chi`` along the trajectories, with the estimates."""
    rec, chi, mark = result.recorded, result.curves["chi"], _marker(result)
    o = np.argsort(_arr(rec["logsnr"]))
    lam = _arr(rec["logsnr"])[o]
    fig, axes = plt.subplots(1, 3 if chi is not None else 2, figsize=(13 if chi is not None else 9, 3.4))
    ax = axes[0]
    ax.plot(lam, _arr(rec["sigma2_kappa_min"])[o], "o-", label="trajectories")
    if result.homogeneous is not None:
        ax.plot(result.homogeneous["logsnr"], result.homogeneous["sigma2_kappa_min"], "g--", label="homogeneous m(sigma)1")
    ax.axhline(0, color="0.5", lw=0.8)
    mark(ax)
    ax.set_xlabel("logsnr")
    ax.set_ylabel("sigma^2 min_k kappa")
    ax.legend(fontsize=6)
    ax = axes[1]
    ax.plot(lam, _arr(rec["xi_zero"])[o], "o-", label="xi_zero (states, about k = 0)")
    ax.plot(lam, _arr(rec["xi_oz"])[o], "s-", label="xi (Ornstein-Zernike)")
    mark(ax)
    ax.set_xlabel("logsnr")
    ax.set_ylabel("xi (pixels)")
    ax.legend(fontsize=6)
    if chi is not None:
        ax = axes[2]
        cl, so = _arr(chi["logsnr"]), np.argsort(_arr(chi["logsnr"]))
        ci = _arr(chi["ci"])
        ax.plot(cl[so], _arr(chi["mean"])[so], "o-", label="chi (mean)")
        ax.fill_between(cl[so], ci[so, 0], ci[so, 1], alpha=0.3, label="95% CI")
        mark(ax)
        ax.set_xlabel("logsnr")
        ax.set_ylabel("chi")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def _scan_axis(ax, result) -> None:
    """Growth onset against the fluctuation amplitude (the branch's own eps first)."""
    lr, lin, th = result.linear_response, result.curves["linear"], result.theory or {}
    ok = [v for v in lr["amplitude_scan"] if v["logsnr_c"] is not None]
    g, (glo, ghi) = lin["growth_logsnr"], lin["growth_ci"]
    e = [lr["eps"]] + [v["eps"] for v in ok]
    lam = [g] + [v["logsnr_c"] for v in ok]
    err = [[g - glo] + [v["logsnr_c"] - (v["logsnr_ci"][0] or v["logsnr_c"]) for v in ok],
           [ghi - g] + [(v["logsnr_ci"][1] or v["logsnr_c"]) - v["logsnr_c"] for v in ok]]
    ax.errorbar(e, lam, yerr=np.abs(np.array(err, dtype=np.float64)), fmt="o-", capsize=3, label="growth onset")
    if th.get("logsnr_c") is not None:
        ax.axhline(th["logsnr_c"], color="k", lw=1, label="theory t_c")
    ax.set_xscale("log")
    ax.set_xlabel("fluctuation amplitude eps (1 = the sampler's ensemble)")
    ax.set_ylabel("logsnr")
    ax.set_title("growth onset vs fluctuation amplitude")
    ax.legend(fontsize=7)


def linear_response_figure(result, path) -> Path:
    """Growth stiffness of the branch (extrapolated, fine, coarse), the JVP stiffness there, the theory's curve,
    and the amplitude scan ``t(eps)``."""
    lr, lin, th = result.linear_response, result.curves["linear"], result.theory or {}
    scan = lr["amplitude_scan"]
    fig, axes = plt.subplots(1, 2 if scan else 1, figsize=(11 if scan else 6, 3.6), squeeze=False)
    ax = axes[0, 0]
    n = lin["coarse_steps"]
    ax.plot(lr["logsnr"], _arr(lr["g_min"]), "o-", ms=3, label="growth (Richardson)")
    ax.plot(lr["logsnr"], _arr(lr["g_min_fine"]), ":", lw=1, label=f"growth, {2 * n} steps")
    ax.plot(lr["logsnr"], _arr(lr["g_min_coarse"]), ":", lw=1, label=f"growth, {n} steps")
    bs = lr["branch_stiffness"]
    ax.plot(bs["logsnr"], _arr(bs["sigma2_kappa_min"]), "s", ms=5, mfc="none", label="JVP probe at the branch")
    if result.curves["theory_min"] is not None:
        tm = result.curves["theory_min"]
        ax.plot(tm["logsnr"], _arr(tm["sigma2_kappa_min"]), "k-", lw=1, label="theory")
        if th.get("logsnr_c") is not None:
            ax.axvline(th["logsnr_c"], color="k", lw=0.8)
    ax.axhline(0, color="0.5", lw=0.8)
    lo = min(float(np.nanmin(_arr(lr["g_min"]))), float(np.nanmin(_arr(bs["sigma2_kappa_min"]))))
    ax.set_ylim(max(lo, -1.5) - 0.05, 1.05)
    ax.set_xlabel("logsnr")
    ax.set_ylabel("sigma^2 min_k kappa")
    ax.set_title("symmetric branch: linear response")
    ax.legend(fontsize=6)
    if scan:
        _scan_axis(axes[0, 1], result)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def _theory_text(th: dict) -> str:
    if th.get("logsnr_c") is not None:
        return num(th["logsnr_c"])
    return f"{num(th.get('logsnr_c'))} (no crossing; softest at {num((th.get('softest') or {}).get('logsnr'))})"


def _findings(result) -> list[str]:
    """Plain sentences with numbers for the report's summary."""
    c, e, th = result.combined, result.ensemble_combined, result.theory or {}
    cfg = result.config
    out = [f"{cfg.model} on {cfg.data}: measured critical logsnr {num(c['logsnr_c'])} (t_c {num(c['t_c'])}), "
           f"95% interval {interval(*c['logsnr_ci'])}, from {c.get('source', 'the probes')}."]
    if result.theory is not None:
        ref = th.get("logsnr_c")
        verdict = ""
        if ref is not None and c["logsnr_c"] is not None:
            agree = [r["agrees"] for r in comparison_rows(result.to_dict()) if r["signal"] == "combined"][0]
            verdict = f"; they {'agree' if agree else 'do not agree'} (difference {num(c['logsnr_c'] - ref)})"
        out.append(f"The linear-stability theory predicts logsnr {_theory_text(th)} with critical mode "
                   f"|k*| {num(th.get('k_star_abs'))} rad/pixel{verdict}.")
    when = "" if e["logsnr_c"] is None or c["logsnr_c"] is None else \
        (" later" if e["logsnr_c"] > c["logsnr_c"] else " earlier")  # logsnr grows as sampling proceeds
    out.append(f"The sampler's own ensemble turns critical{when}, at logsnr {num(e['logsnr_c'])} "
               f"(95% interval {interval(*e['logsnr_ci'])}); cost {num(result.nfe['total_per_sample'])} denoiser "
               f"evaluations per sample.")
    return out


def _prose(result) -> str:
    c, e, th, cfg = result.combined, result.ensemble_combined, result.theory or {}, result.config
    scan = result.linear_response["amplitude_scan"] if result.linear_response else []
    scan_txt = "" if not scan else (" Growth onset against the fluctuation amplitude eps: " + ", ".join(
        f"eps {num(v['eps'])}: {num(v['logsnr_c'])}" for v in scan) + " (eps = 1 is the sampler's own ensemble).")
    return (f"<p>Critical time of the equivariant patch model on <code>{_html.escape(str(cfg.data))}</code> "
            f"({_html.escape(cfg.stencil)}): the linear-stability theory beside the probes. "
            f"<b>Measured t_c (combined)</b>: logsnr {num(c['logsnr_c'])}, 95% interval {interval(*c['logsnr_ci'])}, "
            f"against the theory's {_theory_text(th)}. "
            f"It comes from the linear response of the sampler's symmetric branch: 'linear_growth' is the onset "
            f"of growth of small fluctuations (forward evaluations only, two nested Euler grids, Richardson "
            f"extrapolated), 'linear_stiffness' the JVP stiffness at those states; their intervals include the "
            f"discretisation error. 'homogeneous' probes by JVPs at the theory's own homogeneous states. "
            f"The rows 'stiffness', 'xi_zero', 'xi_oz', 'chi' and 'ensemble_combined' (logsnr {num(e['logsnr_c'])}) "
            f"measure along the sampler's own trajectories, whose fluctuations are as large as the noise: "
            f"there the transition is shifted later, away from the linear regime the theory describes."
            f"{scan_txt} Cost: {num(result.nfe['total_per_sample'])} denoiser evaluations per sample.</p>")


def _table_rows(result) -> list[dict]:
    """:func:`comparison_rows` with each 95% interval shown with 4 significant digits."""
    records = {**result.signals, "combined": result.combined, "ensemble_combined": result.ensemble_combined}
    rows = comparison_rows(result.to_dict())
    for r in rows[1:]:
        ci = records[r["signal"]].get("logsnr_ci") or [None, None]
        r["95% CI (logsnr)"] = "" if ci[0] is None else interval(*ci)
    return rows


def render_probe(result, folder: "str | Path" = ".", key: str = "", title: str = "") -> Section:
    """The section of a probe run; draws its figures into ``folder`` (the run's folder, where ``snapshots.png``
    is) and references them by name."""
    out = Path(folder)
    cfg = result.config
    figures = [stiffness_figure(result, out / "stiffness.png").name, signals_figure(result, out / "signals.png").name]
    if result.linear_response is not None:
        figures.append(linear_response_figure(result, out / "linear_response.png").name)
    html = (_prose(result) + table(_table_rows(result))
            + ('<p><img src="linear_response.png"></p>' if "linear_response.png" in figures else "")
            + '<p><img src="stiffness.png"> <img src="signals.png"></p>'
            + ('<p><img src="snapshots.png"></p>' if "snapshots.png" in result.files else ""))
    if not key:
        from ..spec import parse_spec

        key = f"probe-{parse_spec(cfg.data, 'data').name}" if cfg.data else "probe"
    return Section(key, title or f"Probes vs theory: {cfg.data or cfg.model}", html,
                   question="When does the model turn critical, measured by every probe, and does the theory predict it?",
                   findings=_findings(result))
