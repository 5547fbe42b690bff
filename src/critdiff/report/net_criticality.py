"""Render a :class:`~critdiff.experiments.net_criticality.NetCriticalityResult`: figures redrawn from its numbers
(stiffness map, xi and chi curves, calibration) and the prose of the trained-net section."""

from __future__ import annotations

import html as _html
import math
from pathlib import Path

import numpy as np

from .fmt import interval, num
from .html import Section, table

FIGURES = ("net_stiffness.png", "net_xi_chi.png", "net_calibration.png")
_OTHER_COLOURS = ("C2", "C4", "C5")
# table order of the signals and branch runs (a result's dicts come back from JSON with sorted keys)
_SIGNALS = ("stiffness", "xi_zero", "xi_oz", "chi")
_BRANCH = ("linear", "ensemble")


def _ordered(d: dict, order: tuple) -> list:
    return [d[k] for k in order if k in d] + [d[k] for k in sorted(d) if k not in order]


def _arr(v) -> np.ndarray:
    """A JSON list (None for non-finite) as a float array with NaN."""
    return np.array(v, dtype=np.float64)


def _theory_lines(r, plot) -> None:
    """Call ``plot(logsnr, colour, style, label)`` for the patch theory's t_c and each other stencil's."""
    th = r.theory
    if th["logsnr"] is not None:
        plot(th["logsnr"], "k", ":", f"patch theory t_c ({th['stencil']})")
    for o, c in zip(r.theory_others, _OTHER_COLOURS):
        if o["logsnr"] is not None:
            plot(o["logsnr"], c, ":", f"patch theory t_c ({o['stencil']})")


def _stiffness_figure(r, plt, path: Path) -> None:
    from .figures import save_figure

    s2k, lam, kabs = _arr(r.sigma2_kappa_radial), _arr(r.probe_logsnr), _arr(r.k)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    K, L = np.meshgrid(kabs, lam)
    pc = ax.pcolormesh(K, L, np.clip(s2k, -1.5, 1.5), shading="nearest", cmap="RdBu_r", vmin=-1.5, vmax=1.5)
    if (s2k < 0).any() and (s2k > 0).any():
        ax.contour(K, L, s2k, levels=[0.0], colors="k", linewidths=1.0)
    ax.axhline(r.stiffness_low_k["contrast_logsnr"], color="g", ls="--", lw=0.8, label="largest low-|k| softening")
    if r.t_c["logsnr"] is not None:
        ax.axhline(r.t_c["logsnr"], color="k", ls="--", lw=0.8, label="measured t_c")
    _theory_lines(r, lambda v, c, ls, label: ax.axhline(v, color=c, ls=ls, lw=1.0, label=label))
    fig.colorbar(pc, ax=ax, label=r"$\sigma^2\kappa = 1 - \mathrm{Re}\,\hat J_D(k)$")
    ax.set_xlabel(r"$|k|$ (rad/pixel)"); ax.set_ylabel("logsnr"); ax.legend(fontsize=7)
    ax.set_title("trained network: stiffness (shell means)")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def _xi_chi_figure(r, plt, path: Path) -> None:
    from .figures import save_figure

    lam, xi2, xi_oz = _arr(r.probe_logsnr), _arr(r.xi_zero), _arr(r.xi_oz)
    cl, cm, cci = _arr(r.chi_logsnr), _arr(r.chi_mean), _arr(r.chi_ci)
    fig, axs = plt.subplots(1, 2, figsize=(9, 3.5))
    axs[0].plot(lam, xi2, "o-", label=r"$\xi_0$ (states, about k = 0)")
    axs[0].plot(lam, xi_oz, "s--", label=r"$\xi$ (OZ fit of $\kappa$)")
    axs[0].set_xlabel("logsnr"); axs[0].set_ylabel("pixels"); axs[0].set_title("correlation length")
    fin = np.r_[xi2, xi_oz][np.isfinite(np.r_[xi2, xi_oz])]
    axs[0].set_ylim(0, 1.1 * float(fin.max()) if fin.size and fin.max() > 0 else 1.0)
    axs[1].plot(cl, cm, "o-", color="C3")
    axs[1].fill_between(cl, cci[:, 0], cci[:, 1], color="C3", alpha=0.25)
    axs[1].set_xlabel("logsnr"); axs[1].set_ylabel(r"$\chi$"); axs[1].set_title("susceptibility")
    for a in axs:
        if r.t_c["logsnr"] is not None and math.isfinite(r.t_c["logsnr"]):
            a.axvline(r.t_c["logsnr"], color="k", ls="--", lw=0.8, label="measured t_c")
        _theory_lines(r, lambda v, c, ls, label: a.axvline(v, color=c, ls=ls, lw=1.0, label=label))
    axs[0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def _calibration_figure(r, plt, path: Path) -> None:
    from .figures import calibration_figure

    calibration_figure(r.calibration, path)


def write_figures(r, out_dir: "str | Path") -> tuple[str, ...]:
    """Redraw the section's three PNGs from the result's numbers into ``out_dir``; return their names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    for draw, name in zip((_stiffness_figure, _xi_chi_figure, _calibration_figure), FIGURES):
        draw(r, plt, out / name)
    return FIGURES


def _stiffness_text(r) -> str:
    st, es = r.stiffness_low_k, r.estimates["stiffness"]
    if st["weakens"]:
        s = (f"The low-|k| stiffness weakens relative to short wavelengths: the contrast sigma^2 kappa(|k| = "
             f"{num(st['k_high'])}) - sigma^2 kappa(|k| = {num(st['k_low'])}) is largest, {num(st['contrast_max'])} "
             f"(standard error {num(st['contrast_se'])}), at logsnr {num(st['contrast_logsnr'])}, where the low shell is "
             f"at {num(st['low_at_contrast'])} and the high shell at {num(st['high_at_contrast'])}. The softening sets in "
             f"(contrast above 2 standard errors and above {num(r.onset_threshold)}) at logsnr {num(st['onset_logsnr'])}.")
    else:
        s = (f"No low-|k| weakening: the contrast sigma^2 kappa(|k| = {num(st['k_high'])}) - sigma^2 kappa(|k| = "
             f"{num(st['k_low'])}) never exceeds twice its standard error (largest {num(st['contrast_max'])} +- "
             f"{num(st['contrast_se'])} at logsnr {num(st['contrast_logsnr'])}).")
    s += (f" At |k| = {num(st['k_low'])}, sigma^2 kappa goes from {num(st['start'])} (logsnr {num(st['start_logsnr'])}) "
          f"to its minimum {num(st['min'])} at logsnr {num(st['min_logsnr'])}.")
    s += (f" This shell mean crosses zero at logsnr {num(st['crossing_logsnr'])}." if st["crossing_logsnr"] is not None
          else " This shell mean never crosses zero.")
    s += (f" The softest single Fourier mode (minimum over k of the ensemble-mean kappa) crosses zero, i.e. turns "
          f"unstable, at logsnr {num(es['logsnr'])} {interval(*es['logsnr_ci'])}."
          if es["method"] == "zero-crossing" else
          " No single Fourier mode's ensemble-mean stiffness crosses zero: no mode turns unstable on average.")
    return s


def _peaks_text(r) -> str:
    xp, xo, cp = r.xi_zero_peak, r.xi_oz_peak, r.chi_peak
    s = ("xi_zero (the second-moment length about k = 0) of the states is 0 at every recorded time (the connected structure factor S(0) never exceeds "
         "S(k_min): the ensemble's correlations peak at nonzero |k|), so it has no peak." if xp["all_zero"] else
         f"xi_zero of the states peaks inside the recorded range at logsnr {num(xp['logsnr'])} ({num(xp['value'])} pixels)."
         if xp["interior"] else f"xi_zero of the states has no interior peak: its largest value ({num(xp['value'])} "
         f"pixels) is at the end of the recorded range (logsnr {num(xp['logsnr'])}).")
    s += (f" The Ornstein-Zernike xi of the measured stiffness peaks inside the range at logsnr {num(xo['logsnr'])} "
          f"({num(xo['value'])} pixels)." if xo["interior"] else
          " The Ornstein-Zernike xi of the measured stiffness has no interior peak.")
    s += (f" chi peaks at logsnr {num(cp['logsnr'])} ({num(cp['value'])})." if cp["interior"] else
          f" chi has no interior peak (largest {num(cp['value'])} at logsnr {num(cp['logsnr'])}, an end of the range).")
    return s


def _agreement(r) -> str:
    """Where the patch theory's t_c lies relative to the measured interval (empty when either is missing)."""
    th, tc = r.theory, r.t_c
    if not th["found"] or tc["logsnr"] is None:
        return ""
    lo, hi = tc["logsnr_ci"]
    inside = lo is not None and lo <= th["logsnr"] <= hi
    return f"{'inside' if inside else 'outside'} the measured interval (difference {num(th['logsnr'] - tc['logsnr'])} in logsnr)"


def _tc_text(r) -> str:
    th, tc, e = r.theory, r.t_c, _html.escape
    s = (f"Combined measured t_c: logsnr {num(tc['logsnr'])} {interval(*tc['logsnr_ci'])} (t = {num(tc['t'])}), from "
         f"{', '.join(tc['signals'])} (signals whose feature is a zero crossing or an interior extremum; the others end "
         f"at an end of the recorded range and are left out)." if tc["logsnr"] is not None else
         "No measured t_c: no signal has a zero crossing or an interior extremum.")
    head = f" Patch theory ({e(th['stencil'])}, {th['n_train']} images, periodic): "
    if th["found"]:
        agree = _agreement(r)
        s += head + f"t_c at logsnr {num(th['logsnr'])} (t = {num(th['t'])})" + (f", {agree}." if agree else ".")
    else:
        s += head + f"no critical point ({e(th['message'])})."
    for o in r.theory_others:
        s += (f" For comparison, {e(o['stencil'])} (calibrated at other times): "
              + (f"t_c at logsnr {num(o['logsnr'])} (t = {num(o['t'])})." if o["found"] else
                 f"no critical point ({e(o['message'])})."))
    if r.branch_growth:
        li, en = r.branch_growth["linear"], r.branch_growth["ensemble"]
        how = "turns unstable" if li["method"] == "zero-crossing" else "is softest (no crossing)"
        s += (f" <b>Linear response of the symmetric branch</b> (the sampler started from the mean of its noise, "
              f"fluctuations of 1% of the noise; growth of the Euler steps, Richardson-extrapolated): the branch "
              f"{how} at logsnr {num(li['logsnr'])} {interval(*li['logsnr_ci'])} in the mode |k| = "
              f"{num(li['k_star_abs'])} (wavelength {num(li['wavelength'])} pixels). With fluctuations as large as the "
              f"noise (the sampler's own ensemble) growth starts at logsnr {num(en['logsnr'])} "
              f"{interval(*en['logsnr_ci'])}.")
    return s


def _row(signal, method, v, lo, hi, boot, feature=None) -> dict:
    row = {"signal": signal, "method": method, "logsnr": v["logsnr"], "CI low": lo, "CI high": hi, "t": v["t"],
           "sigma/a": v["sigma_over_a"], "valid/boot": boot}
    return row if feature is None else {**row, "feature": feature}


def _estimate_rows(r) -> list[dict]:
    rows = [_row(v["signal"], v["method"], v, *v["logsnr_ci"], f"{v['n_valid']}/{v['n_boot']}",
                 "yes" if v["feature"] else "no (range end)") for v in _ordered(r.estimates, _SIGNALS)]
    rows += [_row(v["signal"], v["method"], v, *v["logsnr_ci"], f"{v['n_valid']}/{v['n_boot']}",
                  f"branch, eps {num(v['eps'])}") for v in _ordered(r.branch_growth, _BRANCH)]
    rows.append(_row("combined", "inverse-variance", r.t_c, *r.t_c["logsnr_ci"], ""))
    th = r.theory
    rows.append(_row(f"patch theory {th['stencil']}", "linear stability", th, None, None, "",
                     "crossing" if th["found"] else "no crossing"))
    rows += [_row(f"patch theory {o['stencil']} (also calibrated)", "linear stability", o, None, None, "",
                  "crossing" if o["found"] else "no crossing") for o in r.theory_others]
    return rows


def _calibration_rows(cal: dict) -> list[dict]:
    return [{"logsnr": cal["logsnr"][i], "best stencil": cal["best_stencil"][i], "margin": cal["margin"][i],
             **{f"rel L2 {s}": cal["rel_l2"][i][j] for j, s in enumerate(cal["stencils"])},
             **{f"cos {s}": cal["cosine"][i][j] for j, s in enumerate(cal["stencils"])}}
            for i in range(len(cal["logsnr"]))]


def findings(r) -> list[str]:
    """Plain sentences for the report's summary: the measured t_c, the theory's, and whether they agree."""
    tc, th = r.t_c, r.theory
    out = [f"measured critical time of the trained network: logsnr {num(tc['logsnr'])} {interval(*tc['logsnr_ci'])} "
           f"(t = {num(tc['t'])}), from {', '.join(tc['signals'])}." if tc["logsnr"] is not None else
           "no measured critical time: no signal has a zero crossing or an interior extremum."]
    lin = (r.branch_growth or {}).get("linear") or {}
    if lin.get("logsnr") is not None:
        how = "turns unstable" if lin.get("method") == "zero-crossing" else "is softest (no crossing)"
        out.append(f"its symmetric branch (linear response: the critical point) {how} at logsnr "
                   f"{num(lin['logsnr'])} {interval(*lin['logsnr_ci'])} in mode |k| = {num(lin.get('k_star_abs'))} "
                   "rad/pixel; the trajectory signals see the sampler's finite-amplitude ensemble instead.")
    if th["found"]:
        agree = _agreement(r)
        out.append(f"patch theory of the calibrated stencil {th['stencil']}: t_c at logsnr {num(th['logsnr'])}"
                   + (f", {agree}." if agree else "."))
    else:
        out.append(f"patch theory of the calibrated stencil {th['stencil']}: no critical point.")
    return out


def render_net_criticality(result, folder: "str | Path" = ".", key: str = "net_criticality",
                           title: str = "Criticality of the trained network") -> Section:
    """The trained-net section; its three figures are redrawn into ``folder`` (the section's folder)."""
    r, e = result, _html.escape
    write_figures(r, folder)
    cfg, cal = r.config, r.calibration
    html = (f"<p>Unconditional Heun trajectories of the network ({cfg.batch} samples, {cfg.steps} steps uniform in "
            f"logsnr, {e(r.schedule)}); spectral probe with {cfg.n_probes} random probes per state.</p>"
            f"<p>{_stiffness_text(r)}</p><p>{_peaks_text(r)}</p><p>{_tc_text(r)}</p>{table(_estimate_rows(r))}"
            f'<p><img src="{FIGURES[0]}"> <img src="{FIGURES[1]}"></p>'
            f"<p>Patch-size calibration on the same states (patch models with zero boundary, {cal['n_train']} "
            f"training images): the stencil with the smallest relative L2 distance to the network's denoiser; margin: "
            f"the runner-up's relative L2 minus the best one's.</p>"
            f'{table(_calibration_rows(cal))}<p><img src="{FIGURES[2]}"></p>')
    return Section(key, title, html, question="When does the trained network turn critical, by which signals, "
                   "and does the patch theory of its calibrated stencil predict that time?", findings=findings(r))
