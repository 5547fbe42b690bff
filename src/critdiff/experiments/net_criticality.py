"""Criticality of a trained network: the probes of DESIGN.md section 4 on ``D_net``, beside the patch theory.

:func:`net_criticality_section` loads a checkpoint (:func:`critdiff.nets.load_net`) and its data, runs an
ensemble of ``B`` unconditional (``label=None``) Heun trajectories ``x [B, C, H, W]`` on a logsnr-uniform grid of
the network's training schedule, and records along them

- the stiffness ``sigma^2 kappa(|k|) = 1 - Re Jhat_D(k)`` (spectral probe, random phase probes; shell means),
- the second-moment correlation length ``xi_2`` of the states and the Ornstein-Zernike ``xi`` of the stiffness,
- the susceptibility ``chi(t)`` (white kicks, common random numbers),

and estimates ``t_c`` from each signal with bootstrap intervals (:mod:`critdiff.probes.critical_time`). The
patch-size calibration (:mod:`.calibration`) on the same states gives the effective stencil; the patch theory
(:func:`critdiff.theory.analysis.analyze`, periodic boundaries, exact weights) of that stencil on the training
images gives the theory's ``t_c``. Every number shown is in the section's ``results`` (times as ``t`` of the
training schedule, ``logsnr`` and ``sigma/a``). Absent signatures are reported as absent.

:func:`train_demo_model` trains (or reuses) the small digits model of the demo.
"""

from __future__ import annotations

import html as _html
import math
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..data import load as load_data
from ..report.html import Section, table
from ..samplers import initial_noise, seed_generators
from ..schedules import get as get_schedule
from ..schedules import sigma_grid
from .calibration import DEFAULT_STENCILS, calibrate_patch_size

FULL = dict(batch=16, steps=24, probe_every=2, n_probes=4, kicks=6, n_cal_times=8, n_cal_train=128,
            n_theory=300, n_boot=200, stencils=DEFAULT_STENCILS)
ONSET = 0.05  # low-|k| softening onset: contrast above 2 standard errors and above this (sigma^2 kappa is 1 at high noise)
QUICK = dict(batch=6, steps=10, probe_every=1, n_probes=2, kicks=4, n_cal_times=4, n_cal_train=64,
             n_theory=64, n_boot=50, stencils=("square:3", "square:5", "square:7"))


def _threads(n: int):
    class _T:
        def __enter__(self):
            self.old = torch.get_num_threads()
            torch.set_num_threads(n)

        def __exit__(self, *a):
            torch.set_num_threads(self.old)

    return _T()


def train_demo_model(folder: "str | Path", quick: bool = False, progress: bool = False) -> str:
    """Train the demo's conditional digits UNet into ``folder`` (1 thread), or reuse a finished checkpoint.

    Full: ``digits:size=16``, width 32, 300 steps, batch 64, cond-drop 0.1 (~2-3 min on one core). Quick:
    ``digits:size=8``, width 16, 20 steps, batch 16. An interrupted run is resumed (resume semantics of
    :func:`critdiff.experiments.train.run_train`); a folder holding a different run is refused. Returns ``folder``.
    """
    from ..nets import checkpoint as ckpt
    from .train import resolve_config, run_train

    out = Path(folder)
    given = (dict(data="digits:size=8", width=16, steps=20, batch=16, cond_drop=0.1, warmup=5, checkpoint_every=20,
                  grid_steps=8)
             if quick else dict(data="digits:size=16", width=32, steps=300, batch=64, cond_drop=0.1,
                                checkpoint_every=100, grid_steps=20))
    has = ckpt.has_checkpoint(out)
    cfg = resolve_config(out, given, resume=has)
    if has and int(ckpt.read_config(out).get("step", 0)) >= cfg.steps:
        return str(out)
    with _threads(1):
        run_train(cfg, out, resume=has, progress=progress)
    return str(out)


def _f(v) -> Optional[float]:
    """JSON-able float (None for NaN/inf/None)."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _times(schedule, logsnr) -> dict:
    """``{'t', 'logsnr', 'sigma_over_a'}`` of one logsnr (None when undefined)."""
    if logsnr is None or not math.isfinite(logsnr):
        return {"t": None, "logsnr": None, "sigma_over_a": None}
    sch = get_schedule(schedule)
    return {"t": _f(sch.t_of_logsnr(torch.tensor(float(logsnr), dtype=torch.float64))), "logsnr": float(logsnr),
            "sigma_over_a": math.exp(-0.5 * float(logsnr))}


def _est(e, schedule) -> dict:
    d = {"signal": e.signal, "method": e.method, **_times(schedule, e.logsnr),
         "logsnr_ci": [_f(v) for v in e.logsnr_ci], "logsnr_se": _f(e.logsnr_se), "n_valid": e.n_valid,
         "n_boot": e.n_boot}
    d["t_ci"] = [_times(schedule, v)["t"] for v in e.logsnr_ci]
    return d


def _has_feature(e, logsnr_range) -> bool:
    """A zero crossing, or an extremum strictly inside the recorded range (an end of the range is no feature)."""
    if not math.isfinite(e.logsnr):
        return False
    if e.method == "zero-crossing":
        return True
    lo, hi = float(np.min(logsnr_range)), float(np.max(logsnr_range))
    tol = 1e-9 * max(1.0, hi - lo)
    return lo + tol < e.logsnr < hi - tol


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, folder: Path, name: str) -> str:
    from ..report.figures import save_figure

    fig.tight_layout()
    return save_figure(fig, folder / name, dpi=100).name


def _vline(ax, x, **kw):
    if x is not None and math.isfinite(x):
        ax.axvline(x, **kw)


def net_criticality_section(model_dir: "str | Path", data_spec: Optional[str], folder: "str | Path", quick: bool = False,
                            *, seed: int = 0) -> Section:
    """Probes, critical-time estimates and calibrated patch theory of the network in ``model_dir`` (module docstring).

    ``data_spec``: the training data (e.g. ``'digits:size=16'``, see the checkpoint's ``config.json``); PNG
    figures are written into ``folder`` and referenced by file name. ``data_spec=None`` reads the checkpoint's.
    """
    from ..nets import load_net
    from ..nets import checkpoint as ckpt
    from ..probes import combine, from_chi, from_stiffness, from_xi, probe_trajectory, susceptibility, zero_crossing
    from ..theory.analysis import analyze

    t_start = time.perf_counter()
    P = QUICK if quick else FULL
    folder = Path(folder)
    net = load_net(model_dir)
    stored = ckpt.read_config(model_dir).get("train", {})
    schedule = stored.get("schedule", "vp-cosine")
    if data_spec is None:
        if "data" not in stored:
            raise ValueError(f"data_spec: {str(model_dir)!r} records no training data; pass a data spec")
        data_spec = stored["data"]
    images, _ = load_data(data_spec)
    if tuple(images.shape[1:]) != tuple(net.sample_shape):
        raise ValueError(f"data_spec: {data_spec!r} gives images {list(images.shape[1:])}, the network takes "
                         f"{list(net.sample_shape)}")
    B, n_steps = P["batch"], P["steps"]
    sigmas = sigma_grid(get_schedule(schedule), n_steps, "logsnr")
    x = initial_noise((B, *net.sample_shape), sigmas, seed_generators(seed, B))
    probe_steps = list(range(0, n_steps, P["probe_every"]))
    timing = {}

    # 1. trajectories with the spectral probe, correlations and states
    t0 = time.perf_counter()
    with torch.no_grad():
        traj = probe_trajectory(net, x, sigmas, sampler="heun", steps=probe_steps,
                                spectral={"n_probes": P["n_probes"]}, keep_states=True, seed=seed)
    timing["trajectories_s"] = time.perf_counter() - t0
    o = np.argsort(-traj.sigma)  # sampling direction: logsnr ascending
    lam = traj.logsnr[o]
    kabs = traj.k
    s2k = traj.kappa_radial[o] * (traj.sigma[o] ** 2)[:, None]  # [T, nk] sigma^2 kappa = 1 - Re Jhat_D
    s2k_se = traj.kappa_radial_se[o] * (traj.sigma[o] ** 2)[:, None]

    # 2. susceptibility
    t0 = time.perf_counter()
    kick_steps = sorted(set(np.round(np.linspace(0, n_steps - 2, P["kicks"])).astype(int).tolist()))
    with torch.no_grad():
        susc = susceptibility(net, x, sigmas, kick_steps, sampler="heun", seed=seed, n_boot=P["n_boot"])
    timing["susceptibility_s"] = time.perf_counter() - t0

    # 3. critical-time estimates
    t0 = time.perf_counter()
    kw = dict(n_boot=P["n_boot"], seed=seed)
    ests = {"stiffness": from_stiffness(traj, **kw), "xi_2": from_xi(traj, which="xi_2", **kw),
            "xi_oz": from_xi(traj, which="oz", **kw), "chi": from_chi(susc, **kw)}
    ranges = {"stiffness": traj.logsnr, "xi_2": traj.logsnr, "xi_oz": traj.logsnr, "chi": susc.logsnr}
    feature = {k: _has_feature(e, ranges[k]) for k, e in ests.items()}
    use = [e for k, e in ests.items() if feature[k]]
    try:
        comb = combine(use)
        combined = {**_times(schedule, comb.logsnr), "logsnr_ci": [_f(v) for v in comb.logsnr_ci],
                    "t_ci": [_times(schedule, v)["t"] for v in comb.logsnr_ci],
                    "signals": [c.signal for c in comb.components]}
    except ValueError:
        combined = {**_times(schedule, None), "logsnr_ci": [None, None], "t_ci": [None, None], "signals": [],
                    "message": "no signal has a zero crossing or an interior extremum with a bootstrap variance"}
    timing["estimators_s"] = time.perf_counter() - t0

    # 3b. linear response of the symmetric branch (critdiff.probes.linear_response): the critical point itself,
    # beside the growth onset of the sampler's own ensemble (fluctuations as large as the noise, eps = 1)
    t0 = time.perf_counter()
    from ..probes.linear_response import from_growth, linear_response, softest_mode

    branch = {}
    for name, eps in (("linear", 0.01), ("ensemble", 1.0)):
        with torch.no_grad():
            lr = linear_response(net, tuple(net.sample_shape), schedule, steps=P["steps"], eps=eps, n=max(4, B // 2),
                                 seed=seed + 7, keep_states=False)
        ct, kmap = from_growth(lr, signal=f"growth ({name})", n_boot=P["n_boot"], seed=seed, return_map=True)
        km = softest_mode(kmap)
        branch[name] = {**_est(ct, schedule), "eps": eps, **km, "logsnr_grid": lr.logsnr.tolist(),
                        "wavelength": 2 * math.pi / km["k_star_abs"] if km["k_star_abs"] > 0 else None,
                        "g_min": lr.g_min.tolist(), "nfe_per_member": lr.nfe}
    timing["linear_response_s"] = time.perf_counter() - t0

    # 4. low-|k| stiffness against the highest shell: d(t) = sigma^2 kappa(|k|_max) - sigma^2 kappa(|k|_low)
    i_low = int(np.argmax(kabs > 1e-12)) if (kabs > 1e-12).any() else 0
    low, high = s2k[:, i_low], s2k[:, -1]
    d = high - low
    d_se = np.hypot(s2k_se[:, i_low], s2k_se[:, -1])
    j_d = int(np.nanargmax(d))
    j_min = int(np.nanargmin(low))
    cross = zero_crossing(lam, low)
    stiff = {"k_low": float(kabs[i_low]), "k_high": float(kabs[-1]), "start": float(low[0]),
             "start_logsnr": float(lam[0]), "min": float(low[j_min]), "min_logsnr": float(lam[j_min]),
             "contrast_max": float(d[j_d]), "contrast_se": float(d_se[j_d]), "contrast_logsnr": float(lam[j_d]),
             "low_at_contrast": float(low[j_d]), "high_at_contrast": float(high[j_d]),
             "crossing_logsnr": _f(cross), "weakens": bool(d[j_d] > 2 * d_se[j_d]),
             "onset_logsnr": _f(next((lam[j] for j in range(len(d)) if d[j] > max(2 * d_se[j], ONSET)), None)),
             "softest_k": [float(np.hypot(*ks)) for ks in traj.k_star[o]]}

    # 5. xi and chi curves
    xi2 = traj.xi_2[o]
    xi_oz = traj.xi_oz[o]
    chi_m, chi_ci = susc.chi_mean, susc.chi_ci
    oc = np.argsort(-susc.sigma)
    j_xi = int(np.nanargmax(xi2))
    xi_peak_interior = 0 < j_xi < len(xi2) - 1
    j_chi = int(np.nanargmax(chi_m[oc]))

    # 6. calibration on the probe states
    t0 = time.perf_counter()
    idx = np.unique(np.round(np.linspace(0, len(o) - 1, P["n_cal_times"])).astype(int))
    states = [(float(traj.sigma[o][i]), torch.from_numpy(traj.states[o][i]).to(torch.float32)) for i in idx]
    g = torch.Generator().manual_seed(seed)
    pool_idx = torch.randperm(images.shape[0], generator=g)
    cal = calibrate_patch_size(net, images[pool_idx[:P["n_cal_train"]]], stencils=P["stencils"], states=states)
    timing["calibration_s"] = time.perf_counter() - t0
    lam_ref = combined["logsnr"] if combined["logsnr"] is not None else None
    stencil = cal.stencil_at(lam_ref) if lam_ref is not None else cal.modal_stencil()

    # 7. patch theory for the calibrated stencil
    t0 = time.perf_counter()
    theory_imgs = images[pool_idx[:P["n_theory"]]]

    def run_theory(st: str) -> dict:
        cp = analyze(theory_imgs, st, schedule, n_t=61 if quick else 121).critical
        return {"stencil": st, "found": bool(cp.found), "message": cp.message,
                **_times(schedule, cp.logsnr_c if cp.found else None), "k_star_abs": _f(cp.k_star_abs),
                "n_train": int(theory_imgs.shape[0]), "boundary": "periodic", "weights": cp.weights}

    theory = {**run_theory(stencil), "stencil_rule": "calibrated at the time nearest the measured t_c"
              if lam_ref is not None else "calibrated at most recorded times"}
    # the patch theory of every other stencil calibrated at some recorded time, for comparison
    theory_others = [run_theory(st) for st in dict.fromkeys(cal.best_stencil) if st != stencil]
    timing["theory_s"] = time.perf_counter() - t0

    # 8. figures
    plt = _plt()
    figs = []
    fig, ax = plt.subplots(figsize=(5.5, 4))
    K, L = np.meshgrid(kabs, lam)
    pc = ax.pcolormesh(K, L, np.clip(s2k, -1.5, 1.5), shading="nearest", cmap="RdBu_r", vmin=-1.5, vmax=1.5)
    if (s2k < 0).any() and (s2k > 0).any():
        ax.contour(K, L, s2k, levels=[0.0], colors="k", linewidths=1.0)
    ax.axhline(lam[j_d], color="g", ls="--", lw=0.8, label="largest low-|k| softening")
    if combined["logsnr"] is not None:
        ax.axhline(combined["logsnr"], color="k", ls="--", lw=0.8, label="measured t_c")
    if theory["logsnr"] is not None:
        ax.axhline(theory["logsnr"], color="k", ls=":", lw=1.0, label=f"patch theory t_c ({stencil})")
    for th_o, c in zip(theory_others, ("C2", "C4", "C5")):
        if th_o["logsnr"] is not None:
            ax.axhline(th_o["logsnr"], color=c, ls=":", lw=1.0, label=f"patch theory t_c ({th_o['stencil']})")
    fig.colorbar(pc, ax=ax, label=r"$\sigma^2\kappa = 1 - \mathrm{Re}\,\hat J_D(k)$")
    ax.set_xlabel(r"$|k|$ (rad/pixel)"); ax.set_ylabel("logsnr"); ax.legend(fontsize=7)
    ax.set_title("trained network: stiffness (shell means)")
    figs.append(_save(fig, folder, "net_stiffness.png"))

    fig, axs = plt.subplots(1, 2, figsize=(9, 3.5))
    axs[0].plot(lam, xi2, "o-", label=r"$\xi_2$ (states)")
    axs[0].plot(lam, xi_oz, "s--", label=r"$\xi$ (OZ fit of $\kappa$)")
    axs[0].set_xlabel("logsnr"); axs[0].set_ylabel("pixels"); axs[0].set_title("correlation length")
    fin = np.r_[xi2, xi_oz][np.isfinite(np.r_[xi2, xi_oz])]
    axs[0].set_ylim(0, 1.1 * float(fin.max()) if fin.size and fin.max() > 0 else 1.0)
    axs[1].plot(susc.logsnr[oc], chi_m[oc], "o-", color="C3")
    axs[1].fill_between(susc.logsnr[oc], chi_ci[oc, 0], chi_ci[oc, 1], color="C3", alpha=0.25)
    axs[1].set_xlabel("logsnr"); axs[1].set_ylabel(r"$\chi$"); axs[1].set_title("susceptibility")
    for a in axs:
        _vline(a, combined["logsnr"], color="k", ls="--", lw=0.8, label="measured t_c")
        _vline(a, theory["logsnr"], color="k", ls=":", lw=1.0, label=f"patch theory t_c ({stencil})")
        for th_o, c in zip(theory_others, ("C2", "C4", "C5")):
            _vline(a, th_o["logsnr"], color=c, ls=":", lw=1.0, label=f"patch theory t_c ({th_o['stencil']})")
    axs[0].legend(fontsize=7)
    figs.append(_save(fig, folder, "net_xi_chi.png"))

    fig, axs = plt.subplots(1, 2, figsize=(9, 3.5))
    for j, s in enumerate(cal.stencils):
        axs[0].plot(cal.logsnr, cal.rel_l2[:, j], "o-", label=s)
    axs[0].set_xlabel("logsnr"); axs[0].set_ylabel(r"$|D_{net} - D_S| / |D_{net}|$"); axs[0].legend(fontsize=7)
    axs[0].set_title("network vs patch model")
    axs[1].step(cal.logsnr, cal.best_size, where="mid", color="k")
    axs[1].plot(cal.logsnr, cal.best_size, "ko")
    axs[1].set_xlabel("logsnr"); axs[1].set_ylabel("best stencil size"); axs[1].set_title("effective locality")
    figs.append(_save(fig, folder, "net_calibration.png"))

    # 9. results and html
    res = {
        "model_dir": str(model_dir), "data": data_spec, "schedule": schedule, "quick": bool(quick), "batch": B,
        "sampler": "heun", "grid_steps": n_steps, "n_probes": P["n_probes"], "label": None,
        "probe_logsnr": lam.tolist(), "k": kabs.tolist(), "sigma2_kappa_radial": s2k.tolist(),
        "xi_2": [_f(v) for v in xi2], "xi_oz": [_f(v) for v in xi_oz],
        "chi_logsnr": susc.logsnr[oc].tolist(), "chi_mean": chi_m[oc].tolist(), "chi_ci": chi_ci[oc].tolist(),
        "stiffness_low_k": stiff,
        "xi_2_peak": {"logsnr": float(lam[j_xi]), "value": float(xi2[j_xi]), "interior": bool(xi_peak_interior),
                      "all_zero": bool(np.all(xi2 == 0))},
        "xi_oz_peak": {"logsnr": ests["xi_oz"].logsnr, "interior": bool(feature["xi_oz"]),
                       "value": _f(np.nanmax(np.where(np.isfinite(xi_oz), xi_oz, np.nan))) if np.isfinite(xi_oz).any() else None},
        "chi_peak": {"logsnr": float(susc.logsnr[oc][j_chi]), "value": float(chi_m[oc][j_chi]),
                     "interior": bool(0 < j_chi < len(oc) - 1)},
        "estimates": {k: {**_est(e, schedule), "feature": feature[k]} for k, e in ests.items()}, "t_c": combined,
        "branch_growth": branch,
        "onset_threshold": ONSET, "calibration": cal.to_dict(), "theory": theory, "theory_others": theory_others, "timing": timing, "figures": figs,
    }
    res["timing"]["total_s"] = time.perf_counter() - t_start
    return Section("net_criticality", "Criticality of the trained network", _html_of(res), res)


def _html_of(r: dict) -> str:
    st, th, tc = r["stiffness_low_k"], r["theory"], r["t_c"]
    xp, cp = r["xi_2_peak"], r["chi_peak"]
    e = _html.escape
    if st["weakens"]:
        s1 = (f"The low-|k| stiffness weakens relative to short wavelengths: the contrast sigma^2 kappa(|k| = "
              f"{_fmt(st['k_high'])}) - sigma^2 kappa(|k| = {_fmt(st['k_low'])}) is largest, {_fmt(st['contrast_max'])} "
              f"(standard error {_fmt(st['contrast_se'])}), at logsnr {_fmt(st['contrast_logsnr'])}, where the low shell is at "
              f"{_fmt(st['low_at_contrast'])} and the high shell at {_fmt(st['high_at_contrast'])}. The softening sets in "
              f"(contrast above 2 standard errors and above {_fmt(r['onset_threshold'])}) at logsnr {_fmt(st['onset_logsnr'])}.")
    else:
        s1 = (f"No low-|k| weakening: the contrast sigma^2 kappa(|k| = {_fmt(st['k_high'])}) - sigma^2 kappa(|k| = "
              f"{_fmt(st['k_low'])}) never exceeds twice its standard error (largest {_fmt(st['contrast_max'])} +- "
              f"{_fmt(st['contrast_se'])} at logsnr {_fmt(st['contrast_logsnr'])}).")
    s1 += (f" At |k| = {_fmt(st['k_low'])}, sigma^2 kappa goes from {_fmt(st['start'])} (logsnr {_fmt(st['start_logsnr'])}) "
           f"to its minimum {_fmt(st['min'])} at logsnr {_fmt(st['min_logsnr'])}.")
    s1 += (f" This shell mean crosses zero at logsnr {_fmt(st['crossing_logsnr'])}." if st["crossing_logsnr"] is not None
           else " This shell mean never crosses zero.")
    es = r["estimates"]["stiffness"]
    s1 += (f" The softest single Fourier mode (minimum over k of the ensemble-mean kappa) crosses zero, i.e. turns "
           f"unstable, at logsnr {_fmt(es['logsnr'])} [{_fmt(es['logsnr_ci'][0])}, {_fmt(es['logsnr_ci'][1])}]."
           if es["method"] == "zero-crossing" else
           " No single Fourier mode's ensemble-mean stiffness crosses zero: no mode turns unstable on average.")
    xo = r["xi_oz_peak"]
    s2 = (f"xi_2 of the states is 0 at every recorded time (the connected structure factor S(0) never exceeds "
          f"S(k_min): the ensemble's correlations peak at nonzero |k|), so it has no peak." if xp["all_zero"] else
          f"xi_2 of the states peaks inside the recorded range at logsnr {_fmt(xp['logsnr'])} ({_fmt(xp['value'])} pixels)."
          if xp["interior"] else f"xi_2 of the states has no interior peak: its largest value ({_fmt(xp['value'])} pixels) "
          f"is at the end of the recorded range (logsnr {_fmt(xp['logsnr'])}).")
    s2 += (f" The Ornstein-Zernike xi of the measured stiffness peaks inside the range at logsnr {_fmt(xo['logsnr'])} "
           f"({_fmt(xo['value'])} pixels)." if xo["interior"] else
           f" The Ornstein-Zernike xi of the measured stiffness has no interior peak.")
    s2 += (f" chi peaks at logsnr {_fmt(cp['logsnr'])} ({_fmt(cp['value'])})." if cp["interior"] else
           f" chi has no interior peak (largest {_fmt(cp['value'])} at logsnr {_fmt(cp['logsnr'])}, an end of the range).")
    if tc["logsnr"] is not None:
        s3 = (f"Combined measured t_c: logsnr {_fmt(tc['logsnr'])} [{_fmt(tc['logsnr_ci'][0])}, {_fmt(tc['logsnr_ci'][1])}] "
              f"(t = {_fmt(tc['t'])}), from {', '.join(tc['signals'])} (signals whose feature is a zero crossing or an "
              f"interior extremum; the others end at an end of the recorded range and are left out).")
    else:
        s3 = "No measured t_c: no signal has a zero crossing or an interior extremum."
    if th["found"]:
        s3 += f" Patch theory ({e(th['stencil'])}, {th['n_train']} images, periodic): t_c at logsnr {_fmt(th['logsnr'])} (t = {_fmt(th['t'])})"
        if tc["logsnr"] is not None:
            inside = tc["logsnr_ci"][0] is not None and tc["logsnr_ci"][0] <= th["logsnr"] <= tc["logsnr_ci"][1]
            s3 += (f", {'inside' if inside else 'outside'} the measured interval (difference "
                   f"{_fmt(th['logsnr'] - tc['logsnr'])} in logsnr).")
        else:
            s3 += "."
    else:
        s3 += f" Patch theory ({e(th['stencil'])}, {th['n_train']} images, periodic): no critical point ({e(th['message'])})."
    for o in r["theory_others"]:
        s3 += (f" For comparison, {e(o['stencil'])} (calibrated at other times): "
               + (f"t_c at logsnr {_fmt(o['logsnr'])} (t = {_fmt(o['t'])})." if o["found"] else
                  f"no critical point ({e(o['message'])})."))
    bl = r.get("branch_growth") or {}
    if bl:
        li, en = bl["linear"], bl["ensemble"]
        kind = lambda v: "turns unstable" if v["method"] == "zero-crossing" else "is softest (no crossing)"  # noqa: E731
        s3 += (f" <b>Linear response of the symmetric branch</b> (the sampler started from the mean of its noise, "
               f"fluctuations of 1% of the noise; growth of the Euler steps, Richardson-extrapolated): the branch "
               f"{kind(li)} at logsnr {_fmt(li['logsnr'])} [{_fmt(li['logsnr_ci'][0])}, {_fmt(li['logsnr_ci'][1])}] "
               f"in the mode |k| = {_fmt(li['k_star_abs'])} (wavelength {_fmt(li['wavelength'])} "
               f"pixels). With fluctuations as large as the noise (the sampler's own ensemble) growth starts at logsnr "
               f"{_fmt(en['logsnr'])} [{_fmt(en['logsnr_ci'][0])}, {_fmt(en['logsnr_ci'][1])}].")
    rows = [{"signal": v["signal"], "method": v["method"], "logsnr": v["logsnr"], "CI low": v["logsnr_ci"][0],
             "CI high": v["logsnr_ci"][1], "t": v["t"], "sigma/a": v["sigma_over_a"],
             "valid/boot": f"{v['n_valid']}/{v['n_boot']}", "feature": "yes" if v["feature"] else "no (range end)"}
            for v in r["estimates"].values()]
    for v in bl.values():
        rows.append({"signal": v["signal"], "method": v["method"], "logsnr": v["logsnr"], "CI low": v["logsnr_ci"][0],
                     "CI high": v["logsnr_ci"][1], "t": v["t"], "sigma/a": v["sigma_over_a"],
                     "valid/boot": f"{v['n_valid']}/{v['n_boot']}", "feature": f"branch, eps {v['eps']:g}"})
    rows.append({"signal": "combined", "method": "inverse-variance", "logsnr": tc["logsnr"], "CI low": tc["logsnr_ci"][0],
                 "CI high": tc["logsnr_ci"][1], "t": tc["t"], "sigma/a": tc["sigma_over_a"], "valid/boot": ""})
    rows.append({"signal": f"patch theory {th['stencil']}", "method": "linear stability", "logsnr": th["logsnr"],
                 "CI low": None, "CI high": None, "t": th["t"], "sigma/a": th["sigma_over_a"], "valid/boot": ""})
    for o in r["theory_others"]:
        rows.append({"signal": f"patch theory {o['stencil']} (also calibrated)", "method": "linear stability",
                     "logsnr": o["logsnr"], "CI low": None, "CI high": None, "t": o["t"], "sigma/a": o["sigma_over_a"],
                     "valid/boot": "", "feature": "crossing" if o["found"] else "no crossing"})
    rows[-1 - len(r["theory_others"])]["feature"] = "crossing" if th["found"] else "no crossing"
    cal = r["calibration"]
    crow = [{"logsnr": cal["logsnr"][i], "best stencil": cal["best_stencil"][i], "margin": cal["margin"][i],
             **{f"rel L2 {s}": cal["rel_l2"][i][j] for j, s in enumerate(cal["stencils"])},
             **{f"cos {s}": cal["cosine"][i][j] for j, s in enumerate(cal["stencils"])}} for i in range(len(cal["logsnr"]))]
    return (f"<p>Unconditional Heun trajectories of the network ({r['batch']} samples, {r['grid_steps']} steps uniform in "
            f"logsnr, {e(r['schedule'])}); spectral probe with {r['n_probes']} random probes per state.</p>"
            f"<p>{s1}</p><p>{s2}</p><p>{s3}</p>{table(rows)}"
            f'<p><img src="net_stiffness.png"> <img src="net_xi_chi.png"></p>'
            f"<p>Patch-size calibration on the same states (patch models with zero boundary, {cal['n_train']} "
            f"training images): the stencil with the smallest relative L2 distance to the network's denoiser; margin: the "
            f"runner-up's relative L2 minus the best one's.</p>"
            f'{table(crow)}<p><img src="net_calibration.png"></p>')
