"""Render a :class:`~critdiff.experiments.net_criticality.NetCriticalityResult`: figures redrawn from its numbers
(stiffness map, xi and chi curves, calibration) and the prose of the trained-net section."""

from __future__ import annotations

import html as _html
from pathlib import Path

import numpy as np

from ..times import TimeEstimate
from .fmt import interval, num
from .html import Section, table

FIGURES = ("net_stiffness.png", "net_xi_chi.png", "net_calibration.png")
_OTHER_COLOURS = ("C2", "C4", "C5")
# table order of the signals and branch runs (a result's dicts come back from JSON with sorted keys)
_SIGNALS = ("stiffness", "xi_zero", "xi_oz", "chi")
_BRANCH = ("linear", "ensemble")


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


def _estimate(rec: "dict | None") -> "TimeEstimate | None":
    """The :class:`~critdiff.times.TimeEstimate` stored under ``rec['estimate']`` (None without one)."""
    d = (rec or {}).get("estimate")
    return None if d is None else TimeEstimate.from_dict(d)


def _ci(est: "TimeEstimate | None") -> tuple:
    """The estimate's interval in logsnr, ``(None, None)`` without one."""
    return (None, None) if est is None or est.logsnr_ci is None else est.logsnr_ci


def _branch(r, name: str) -> "TimeEstimate | None":
    return _estimate((r.branch_growth or {}).get(name))


def _critical_lines(r, plot) -> None:
    """Call ``plot`` for the network's critical time (branch instability) and, labelled as such, the combination
    of the trajectory signals."""
    li = _branch(r, "linear")
    if li is not None:
        plot(li.logsnr, "k", "--", "critical time (branch instability)")
    if r.t_c is not None:
        plot(r.t_c.logsnr, "0.55", "-.", "trajectory signals combined")


def _stiffness_figure(r, plt, path: Path) -> None:
    from .figures import save_figure

    s2k, lam, kabs = _arr(r.sigma2_kappa_radial), _arr(r.probe_logsnr), _arr(r.k)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    K, L = np.meshgrid(kabs, lam)
    pc = ax.pcolormesh(K, L, np.clip(s2k, -1.5, 1.5), shading="nearest", cmap="RdBu_r", vmin=-1.5, vmax=1.5)
    if (s2k < 0).any() and (s2k > 0).any():
        ax.contour(K, L, s2k, levels=[0.0], colors="k", linewidths=1.0)
    ax.axhline(r.stiffness_low_k["contrast_logsnr"], color="g", ls="--", lw=0.8, label="largest low-|k| softening")
    _critical_lines(r, lambda v, c, ls, label: ax.axhline(v, color=c, ls=ls, lw=1.0, label=label))
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
        _critical_lines(r, lambda v, c, ls, label: a.axvline(v, color=c, ls=ls, lw=1.0, label=label))
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
    st, es = r.stiffness_low_k, _estimate(r.estimates["stiffness"])
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
          f"unstable, at logsnr {num(es.logsnr)} {interval(*_ci(es))}."
          if es is not None and es.extras.get("method") == "zero-crossing" else
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
    """Where the patch theory's t_c lies relative to the critical time's interval (empty when either is missing)."""
    th, li = r.theory, _branch(r, "linear")
    if not th["found"] or li is None:
        return ""
    lo, hi = _ci(li)
    inside = lo is not None and hi is not None and lo <= th["logsnr"] <= hi
    return (f"{'inside' if inside else 'outside'} the critical time's interval (difference "
            f"{num(th['logsnr'] - li.logsnr)} in logsnr)")


def _critical_text(r) -> str:
    """The network's critical time (one meaning: the branch instability) and the patch theory beside it."""
    th, e = r.theory, _html.escape
    li, rec = _branch(r, "linear"), (r.branch_growth or {}).get("linear") or {}
    if li is not None:
        how = "turns unstable" if li.extras.get("method") == "zero-crossing" else "is softest (no crossing)"
        s = (f"<b>The network's critical time</b> (in this report: the instability of its symmetric branch, measured "
             f"by linear response: the sampler started from the mean of its noise with fluctuations of 1% of the "
             f"noise, growth of the Euler steps, Richardson-extrapolated): the branch {how} at logsnr "
             f"{num(li.logsnr)} {interval(*_ci(li))} (t = {num(li.t)}) in the mode |k| = "
             f"{num(rec['k_star_abs'])} (wavelength {num(rec['wavelength'])} pixels).")
    else:
        s = "<b>The network's critical time</b> (the instability of its symmetric branch): not found on this grid."
    head = f" Patch theory of the stencil calibrated nearest it ({e(th['stencil'])}, {th['n_train']} images, periodic): "
    if th["found"]:
        agree = _agreement(r)
        s += head + f"t_c at logsnr {num(th['logsnr'])} (t = {num(th['t'])})" + (f", {agree}." if agree else ".")
    else:
        s += head + f"no critical point ({e(th['message'])})."
    for o in r.theory_others:
        s += (f" For comparison, {e(o['stencil'])} (calibrated at other times): "
              + (f"t_c at logsnr {num(o['logsnr'])}." if o["found"] else f"no critical point ({e(o['message'])})."))
    return s


def _other_signals_text(r) -> str:
    """The other times, each named by its signal (none of them is called the critical time)."""
    tc, parts = r.t_c, []
    en = _branch(r, "ensemble")
    if en is not None:
        parts.append(f"growth onset of the sampler's own ensemble (fluctuations as large as the noise) at logsnr "
                     f"{num(en.logsnr)} {interval(*_ci(en))}")
    if tc is not None:
        parts.append(f"inverse-variance combination of the trajectory signals ({', '.join(tc.extras['components'])}) "
                     f"at logsnr {num(tc.logsnr)} {interval(*_ci(tc))}")
    for name in ("xi_zero", "xi_oz"):  # a fixed order: the result's dicts come back from JSON with sorted keys
        g = (r.xi_growth or {}).get(name) or {}
        if g.get("logsnr") is not None:
            parts.append(f"steepest growth of {name} at logsnr {num(g['logsnr'])} ({num(g['slope'])} px per unit logsnr)")
    return ("Other times, named by their signal: " + "; ".join(parts) + ".") if parts else ""


def _growth_text(r) -> str:
    out = []
    for name, what in (("xi_zero", "xi_0 of the states"), ("xi_oz", "the Ornstein-Zernike xi of the stiffness")):
        g = (r.xi_growth or {}).get(name)
        if g and "error" not in g:
            out.append(f"{what} goes from {num(g['from']['value'])} px at logsnr {num(g['from']['logsnr'])} to "
                       f"{num(g['to']['value'])} px at {num(g['to']['logsnr'])}")
    return ("Correlation growth: " + "; ".join(out) + ".") if out else ""


def _row(signal, method, v, lo, hi, boot, feature=None) -> dict:
    row = {"signal": signal, "method": method, "logsnr": v["logsnr"], "CI low": lo, "CI high": hi, "t": v["t"],
           "sigma/a": v["sigma_over_a"], "valid/boot": boot}
    return row if feature is None else {**row, "feature": feature}


def _estimate_row(name: str, est: "TimeEstimate | None", feature: str) -> dict:
    """A table row of an estimate (its source names the signal; its extras hold method and replicates)."""
    if est is None:
        return _row(name, "no finite estimate", {"logsnr": None, "t": None, "sigma_over_a": None}, None, None, "",
                    feature)
    x = est.extras
    boot = f"{x['n_valid']}/{x['n_boot']}" if "n_valid" in x else ""
    return _row(est.source, x.get("method", "inverse-variance"), est.to_dict(), *_ci(est), boot, feature)


def _estimate_rows(r) -> list[dict]:
    rows = [_estimate_row(k, _estimate(r.estimates[k]), "yes" if r.estimates[k]["feature"] else "no (range end)")
            for k in [k for k in _SIGNALS if k in r.estimates] + sorted(k for k in r.estimates if k not in _SIGNALS)]
    branch = [k for k in _BRANCH if k in r.branch_growth] + sorted(k for k in r.branch_growth if k not in _BRANCH)
    rows += [_estimate_row(f"growth ({k})", _estimate(r.branch_growth[k]),
                           "the critical time" if k == "linear" else f"branch, eps {num(r.branch_growth[k]['eps'])}")
             for k in branch]
    rows.append({**_estimate_row("trajectory signals combined", r.t_c, ""), "signal": "trajectory signals combined"})
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
    """Plain sentences for the section: the critical time (branch instability), the theory beside it, the
    softening and the correlation growth."""
    out = [_critical_text(r).replace("<b>", "").replace("</b>", "")]
    st = r.stiffness_low_k
    out.append(f"low-|k| softening: contrast up to {num(st['contrast_max'])} (standard error {num(st['contrast_se'])}) "
               f"at logsnr {num(st['contrast_logsnr'])}" + ("." if st["weakens"] else "; not above its noise."))
    growth = _growth_text(r)
    if growth:
        out.append(growth)
    return out


def render_net_criticality(result, folder: "str | Path" = ".", key: str = "net_criticality",
                           title: str = "Criticality of the trained network") -> Section:
    """The trained-net section; its three figures are redrawn into ``folder`` (the section's folder)."""
    r, e = result, _html.escape
    write_figures(r, folder)
    cfg, cal = r.config, r.calibration
    html = (f"<p>Unconditional Heun trajectories of the network ({cfg.batch} samples, {cfg.steps} steps uniform in "
            f"logsnr, {e(r.schedule)}); spectral probe with {cfg.n_probes} random probes per state.</p>"
            f"<p>{_critical_text(r)}</p><p>{_stiffness_text(r)}</p><p>{_growth_text(r)} {_peaks_text(r)}</p>"
            f"<p>{_other_signals_text(r)}</p>{table(_estimate_rows(r))}"
            f'<p><img src="{FIGURES[0]}"> <img src="{FIGURES[1]}"></p>'
            f"<p>Patch-size calibration on the same states (patch models with zero boundary, {cal['n_train']} "
            f"training images): the stencil with the smallest relative L2 distance to the network's denoiser; margin: "
            f"the runner-up's relative L2 minus the best one's.</p>"
            f'{table(_calibration_rows(cal))}<p><img src="{FIGURES[2]}"></p>')
    return Section(key, title, html, question="Do the trained network's low-|k| modes soften and its correlations "
                   "grow, when does it turn critical (its symmetric branch's instability), and does the patch theory "
                   "of its calibrated stencil predict that time?", findings=findings(r))
