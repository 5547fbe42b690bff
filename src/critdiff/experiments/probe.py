"""The ``probe`` experiment: measure the critical time of ANY denoiser and, for the equivariant periodic
patch model, set it beside the theory (DESIGN.md sections 3-4).

An ensemble of ``n`` samples ``[n, C, H, W]`` runs through the sampler; at ``times`` step indices spread
over the grid the :class:`~critdiff.probes.TrajectoryProbe` records the spectral probe (``probes`` random
phase probes per state), ``S(k)``, ``xi_2`` and the Ornstein-Zernike ``xi``; :func:`~critdiff.probes.susceptibility`
measures ``chi`` at the same steps (bump kicks). ``t_c`` is estimated from every signal with a bootstrap
interval and combined (:mod:`critdiff.probes.critical_time`) into ``ensemble_combined``: the effective
critical time of the sampler's own ensemble, whose fluctuations are as large as the noise.

The **linear-response run** (:mod:`critdiff.probes.linear_response`, ``linear`` > 0) measures the critical
point itself: the sampler's symmetric branch (started from the mean of its initial noise) with ``linear_n``
members perturbed by ``linear_eps`` of the noise; the growth of their fluctuations (``linear_growth``) and the
JVP stiffness at their states (``linear_stiffness``) give ``t_c`` as the branch's instability, which is what
the theory defines; ``combined`` merges these two. ``eps_scan`` repeats the growth run at larger amplitudes
(``eps = 1`` is the sampler's own ensemble), tracing the shift from the critical point to the ensemble's
effective transition. For the patch model the stiffness is also
probed at the homogeneous states ``m(sigma) 1`` of the theory (``homogeneous`` signal): there the probe
measures exactly what the theory defines, so its zero crossing is the theory's ``t_c`` measured by JVPs.

Times are reported as the schedule's ``t``, ``logsnr`` and ``sigma/a``; costs as denoiser evaluations per
sample (JVPs included). The record is written atomically to ``OUT/probe.json``; figures are PNGs in ``OUT``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .. import samplers as SM
from .. import schedules as S
from ..config import arg
from ..errors import check_int, check_positive
from ..io import save_json
from .config import RunConfig
from .models import load_model

@dataclass(frozen=True)
class ProbeConfig(RunConfig):
    """A probe run: :class:`RunConfig` (with probe-sized defaults) plus the probes' own settings."""

    sampler: str = arg("ddim", "sampler: heun | euler | euler-maruyama | ddpm | ddim[:eta=E]")
    steps: int = arg(16, "number of sampler steps")
    n: int = arg(8, "number of samples in the ensemble")
    label: Optional[int] = arg(None, "class label for a class-conditional model")
    times: int = arg(6, "number of probed steps spread over the grid")
    probes: int = arg(1, "random phase probes per state")
    n_boot: int = arg(200, "bootstrap replicates")
    homogeneous: int = arg(41, "logsnr points of the probe at the homogeneous states (patch model; 0 = off)")
    chi: bool = arg(True, "skip the susceptibility (it reruns the sampler once per probed step)")
    linear: int = arg(24, "coarse logsnr steps of the symmetric branch's linear-response run (a 2x finer run is "
                          "added for Richardson extrapolation; 0 = off)")
    linear_n: int = arg(4, "ensemble members of the linear-response run")
    linear_eps: float = arg(0.01, "their fluctuation amplitude relative to the noise")
    window: Optional[int] = arg(None, "receptive-field radius R of the model (patch model: the stencil's radius): "
                                      "random probes keep only lags |output - input| <= R, unbiased when the "
                                      "Jacobian is that local and about HW/(2R+1)^2 times less variance "
                                      "(default: all lags)")
    eps_scan: tuple[float, ...] = arg((), "comma-separated further amplitudes for the growth-onset scan t(eps), "
                                          "e.g. 0.1,0.3,1 (1 = the sampler's own ensemble)")

    def validate(self) -> "ProbeConfig":
        super().validate()
        check_int("steps", self.steps, 2)
        check_int("n", self.n, 2)
        check_int("times", self.times, 3)
        check_int("probes", self.probes, 1)
        check_int("n_boot", self.n_boot, 10)
        check_int("homogeneous", self.homogeneous, 0)
        if self.linear:
            check_int("linear", self.linear, 3)
        check_int("linear_n", self.linear_n, 2)
        if self.window is not None:
            check_int("window", self.window, 0)
        check_positive("linear_eps", self.linear_eps)
        for e in self.eps_scan:
            check_positive("eps_scan", e)
        if self.times > self.steps:
            raise ValueError(f"times: expected at most --steps ({self.steps}) probe times, got {self.times}")
        return self


def probe_steps(n_steps: int, n_times: int) -> list[int]:
    """``n_times`` step indices spread evenly over ``[1, n_steps - 1]`` (the pure-noise step 0 carries no signal)."""
    return sorted({int(round(v)) for v in np.linspace(1, n_steps - 1, n_times)})


def _times(ct, schedule) -> dict:
    """One critical-time estimate as JSON: t, logsnr, sigma/a with the logsnr interval."""
    if ct is None or not math.isfinite(ct.logsnr):
        return {"t_c": None, "logsnr_c": None, "sigma_over_a_c": None, "ci_logsnr": [None, None], "found": False}
    tt = ct.times(schedule)
    ci = [float(v) if math.isfinite(v) else None for v in ct.logsnr_ci]
    d = {"t_c": tt["estimate"]["t"], "logsnr_c": tt["estimate"]["logsnr"], "sigma_over_a_c": tt["estimate"]["sigma_over_a"],
         "ci_logsnr": ci, "ci_t": tt["ci"]["t"], "logsnr_se": ct.logsnr_se if math.isfinite(ct.logsnr_se) else None,
         "found": True}
    for k in ("signal", "method", "n_boot", "n_valid"):
        if hasattr(ct, k):
            d[k] = getattr(ct, k)
    return d


def _probe_at(model, hom, shape, sigma: float, dtype=torch.float64):
    from ..probes import spectral_probe

    C, H, W = shape
    m = hom(sigma)
    x = torch.as_tensor(m, dtype=dtype).reshape(1, C, 1, 1).expand(1, C, H, W).contiguous()
    with torch.enable_grad():
        return spectral_probe(model, x, sigma, method="impulse", backend="auto"), m


def homogeneous_probe(model, images: torch.Tensor, stencil: str, schedule, logsnr: np.ndarray, *,
                      refine: int = 40, tie_tol: float = 1e-6) -> dict:
    """Spectral probe (impulse route: exact for the circulant Jacobian there) at the theory's homogeneous
    states ``m(sigma) 1`` on a ``logsnr`` grid (ascending), in the dtype of ``images`` (the model's). Returns ``sigma2_kappa_min [T]`` (``sigma^2 min_k
    kappa``), ``k_star [T, 2]``, ``kappa_radial [T, nk]`` on ``k_radial``, ``logsnr``, ``nfe``, and the first
    zero crossing of ``sigma2_kappa_min`` refined by bisection in logsnr (``crossing``: ``logsnr``, the softest
    mode ``k_star`` there, ``kappa`` map ``sigma^2 kappa [H, W]`` for tie checks), or ``crossing = None``."""
    from ..probes import zero_crossing
    from ..theory.homogeneous import homogeneous_solution
    from ..theory.pool import patch_pool

    sch = S.get(schedule)
    pool = patch_pool(images.to(torch.float64), stencil)
    hom = homogeneous_solution(pool, sch.sigma_max, sch.sigma_min)
    shape, dtype = tuple(images.shape[1:]), images.dtype
    out = {"logsnr": np.asarray(logsnr, dtype=np.float64), "sigma2_kappa_min": [], "k_star": [], "kappa_radial": []}
    evals = 0
    for lam in out["logsnr"]:
        sigma = math.exp(-0.5 * lam)
        pr, _ = _probe_at(model, hom, shape, sigma, dtype)
        out["sigma2_kappa_min"].append(pr.kappa_min * sigma**2)
        out["k_star"].append(pr.k_star)
        out["kappa_radial"].append(pr.kappa_radial * sigma**2)
        out["k_radial"] = pr.k_radial
        evals += pr.denoiser_evaluations
    out = {k: np.asarray(v) for k, v in out.items()}
    out["crossing"] = None
    lam0 = zero_crossing(out["logsnr"], out["sigma2_kappa_min"])
    if lam0 is not None:
        j = int(np.searchsorted(out["logsnr"], lam0))
        lo, hi = float(out["logsnr"][j - 1]), float(out["logsnr"][j])  # g(lo) > 0 >= g(hi)
        for _ in range(refine):
            mid = 0.5 * (lo + hi)
            s = math.exp(-0.5 * mid)
            pr, _ = _probe_at(model, hom, shape, s, dtype)
            evals += pr.denoiser_evaluations
            if pr.kappa_min * s * s > 0:
                lo = mid
            else:
                hi = mid
        lam = 0.5 * (lo + hi)
        s = math.exp(-0.5 * lam)
        pr, _ = _probe_at(model, hom, shape, s, dtype)
        kap = pr.kappa_mode * s * s
        out["crossing"] = {"logsnr": lam, "k_star": list(pr.k_star), "k_star_abs": math.hypot(*pr.k_star),
                           "kappa": kap, "tie_tol": tie_tol}
    out["nfe"] = evals
    return out


def k_star_matches(kappa: np.ndarray, k_star, tol: float = 1e-6) -> bool:
    """Whether the mode ``k_star`` ``(ky, kx)`` is (within ``tol``, or its sign partner) a softest mode of
    ``kappa [H, W]`` (``sigma^2 kappa`` on the ``fft2`` grid): symmetry partners tie exactly."""
    from ..probes._lattice import k_grid

    H, W = kappa.shape
    ky, kx = k_grid(H, W)
    wrap = lambda a: (a + math.pi) % (2 * math.pi) - math.pi  # noqa: E731
    d = np.hypot(wrap(ky - k_star[0]), wrap(kx - k_star[1]))
    dm = np.hypot(wrap(ky + k_star[0]), wrap(kx + k_star[1]))
    j = np.unravel_index(int(np.argmin(np.minimum(d, dm))), (H, W))
    return bool(kappa[j] <= kappa.min() + tol * max(1.0, abs(kappa.min())))


def _combine(estimates, schedule):
    """``(CombinedCriticalTime or None, JSON)`` of the estimates (see :func:`critdiff.probes.combine`)."""
    from ..probes import combine

    try:
        comb = combine(estimates)
    except ValueError as exc:
        return None, {**_times(None, schedule), "message": str(exc)}
    d = _times(comb, schedule)
    d["components"] = [c.signal for c in comb.components]
    return comb, d


def _linear(model, cfg: "ProbeConfig", shape, schedule, dtype, log, kw) -> dict:
    """The branch linear-response run (:mod:`critdiff.probes.linear_response`): growth stiffness on nested grids,
    JVP stiffness at the extrapolated branch states near its estimate, and the optional amplitude scan."""
    from ..probes.linear_response import (branch_stiffness, from_branch_stiffness, from_growth, linear_response,
                                          softest_mode)

    t0 = time.perf_counter()
    log(f"[probe] linear response of the symmetric branch: {cfg.linear_n} members, eps {cfg.linear_eps:g}, "
        f"{cfg.linear} + {2 * cfg.linear} Euler steps")
    lr = linear_response(model, shape, schedule, steps=cfg.linear, eps=cfg.linear_eps, n=cfg.linear_n,
                         label=cfg.label, seed=cfg.seed + 3, dtype=dtype)
    growth, gmap = from_growth(lr, signal="linear_growth", return_map=True, **kw)
    bs = branch_stiffness(model, lr, growth.logsnr if math.isfinite(growth.logsnr) else float(lr.logsnr.mean()),
                          label=cfg.label, n_probes=cfg.probes, seed=cfg.seed + 4, dtype=dtype, window=cfg.window)
    stiff, smap = from_branch_stiffness(bs, signal="linear_stiffness", return_map=True, **kw)
    # the critical mode of each estimate: argmin of the per-mode log-gain interpolated at its t_c
    ks = {name: {"k_star": softest_mode(kmap), "kappa_map": kmap}
          for name, ct, kmap in (("linear_growth", growth, gmap), ("linear_stiffness", stiff, smap))
          if math.isfinite(ct.logsnr)}
    scan = []
    for e in cfg.eps_scan:
        log(f"[probe] amplitude scan: eps {e:g}")
        lr_e = linear_response(model, shape, schedule, steps=cfg.linear, eps=e, n=cfg.linear_n, label=cfg.label,
                               seed=cfg.seed + 3, dtype=dtype, keep_states=False)
        ct = from_growth(lr_e, signal=f"growth(eps={e:g})", **kw)
        scan.append({"eps": e, **_times(ct, schedule), "g_min": lr_e.g_min.tolist(), "nfe_per_sample": lr_e.nfe})
    return {"lr": lr, "bs": bs, "estimates": {"linear_growth": growth, "linear_stiffness": stiff}, "k_star": ks,
            "scan": scan, "nfe": lr.nfe + bs["nfe"] + sum(v["nfe_per_sample"] for v in scan),
            "seconds": time.perf_counter() - t0}


def theory_softest(rep) -> dict:
    """Where the theory's homogeneous state is softest: ``logsnr`` of the minimum of ``sigma^2 min_k kappa =
    1 - max_k c / sigma^2`` over its scan (parabolic vertex), and that minimum."""
    from ..probes import extremum
    from ..probes.linear_response import softest_mode

    sc = rep.scan
    h = 1.0 - sc.c.reshape(len(sc.t), -1).max(1) / sc.sigma**2
    o = np.argsort(sc.logsnr)
    lam, interior = extremum(sc.logsnr[o], h[o], "min")
    j = int(np.argmin(h))
    kk = softest_mode(1.0 - sc.c[j] / sc.sigma[j] ** 2)
    return {"logsnr": lam, "sigma2_kappa_min": float(h.min()), "interior": interior, **kk}


def run_probe(cfg: ProbeConfig, out_dir: "str | Path", progress: bool = True) -> dict:
    """Run the probe experiment; return (and write to ``out_dir/probe.json``) its record."""
    from ..probes import from_chi, from_stiffness, from_xi, probe_trajectory, susceptibility

    cfg.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dtype = cfg.torch_dtype
    loaded = load_model(cfg)
    model, images, labels, shape = loaded.model, loaded.images, loaded.labels, loaded.shape
    schedule = S.get(cfg.schedule)
    sigmas = S.sigma_grid(schedule, cfg.steps, cfg.spacing)
    steps = probe_steps(cfg.steps, cfg.times)
    x = SM.initial_noise((cfg.n, *shape), sigmas, SM.seed_generators(cfg.seed, cfg.n), dtype=dtype)
    log = (lambda s: print(s, flush=True)) if progress else (lambda s: None)
    t0 = time.perf_counter()
    log(f"[probe] trajectory: {cfg.n} samples, {cfg.steps} steps, probes at {len(steps)} steps")
    traj = probe_trajectory(model, x, sigmas, sampler=cfg.sampler, steps=steps, label=cfg.label,
                            generator=SM.seed_generators(cfg.seed + 1, cfg.n),
                            spectral={"n_probes": cfg.probes, "probe": "phase", "window": cfg.window}, seed=cfg.seed)
    t_traj = time.perf_counter() - t0
    kw = {"n_boot": cfg.n_boot, "seed": cfg.seed}
    est = {"stiffness": from_stiffness(traj, scale="sigma2", **kw), "xi_2": from_xi(traj, which="xi_2", **kw),
           "xi_oz": from_xi(traj, which="oz", **kw)}
    susc = None
    if cfg.chi:
        log("[probe] susceptibility (bump kicks)")
        t1 = time.perf_counter()
        susc = susceptibility(model, x, sigmas, steps, sampler=cfg.sampler, label=cfg.label, kick="bump",
                              seed=cfg.seed + 2, n_boot=cfg.n_boot)
        t_chi = time.perf_counter() - t1
        est["chi"] = from_chi(susc, **kw)
    signals = {k: _times(v, schedule) for k, v in est.items()}
    # a peak or minimum sitting on the first or last probed step is no feature of the curve: it is reported
    # (at_grid_edge) but left out of the combination
    ends = (float(traj.logsnr.min()), float(traj.logsnr.max()))
    if susc is not None:
        ends += (float(susc.logsnr.min()), float(susc.logsnr.max()))
    use = []
    for k, v in est.items():
        edge = v.method != "zero-crossing" and any(abs(v.logsnr - e) < 1e-9 for e in ends)
        signals[k]["at_grid_edge"] = bool(edge)
        if not edge:
            use.append(v)
    ens_comb, ensemble_combined = _combine(use, schedule)
    lin = _linear(model, cfg, shape, schedule, dtype, log, kw) if cfg.linear else None
    if lin is not None:
        for k, v in lin["estimates"].items():
            kk = lin["k_star"].get(k, {})
            signals[k] = {**_times(v, schedule), "at_grid_edge": False, **(kk.get("k_star") or {})}
        _, combined = _combine(list(lin["estimates"].values()), schedule)
        combined["source"] = "linear response of the symmetric branch (linear_growth, linear_stiffness)"
    else:
        combined = dict(ensemble_combined)
        combined["source"] = "sampler ensemble (no linear-response run)"

    theory = None
    hom = None
    if cfg.analytic_patch and images is not None:
        from ..theory.analysis import analyze

        log("[probe] theory and the homogeneous-state probe")
        rep = analyze(images.to(torch.float64), cfg.stencil, cfg.schedule)
        cp = rep.critical
        theory = {"t_c": cp.t_c, "logsnr_c": cp.logsnr_c, "sigma_over_a_c": cp.sigma_over_a_c,
                  "k_star": None if cp.k_star is None else list(cp.k_star), "k_star_abs": cp.k_star_abs,
                  "found": cp.found, "message": cp.message, "softest": theory_softest(rep)}
        ref_k = cp.k_star if cp.k_star is not None else theory["softest"]["k_star"]  # no crossing: the softest mode
        if lin is not None and ref_k is not None:
            for k, v in lin["k_star"].items():
                signals[k]["theory_k_star_is_softest"] = k_star_matches(v["kappa_map"], ref_k, tol=1e-3)
        if cfg.homogeneous:
            lam_grid = np.linspace(float(rep.scan.logsnr.min()), float(rep.scan.logsnr.max()), cfg.homogeneous)
            hom = homogeneous_probe(model, images, cfg.stencil, schedule, lam_grid)
            cr = hom["crossing"]
            tt = None if cr is None else schedule.times(schedule.t_of_logsnr(torch.tensor(cr["logsnr"])).item())
            match = None if cr is None or cp.k_star is None else k_star_matches(cr["kappa"], cp.k_star)
            signals["homogeneous"] = {"t_c": None if tt is None else tt["t"], "logsnr_c": None if cr is None else cr["logsnr"],
                                      "sigma_over_a_c": None if tt is None else tt["sigma_over_a"],
                                      "ci_logsnr": [None, None], "found": cr is not None,
                                      "k_star": None if cr is None else cr["k_star"],
                                      "k_star_abs": None if cr is None else cr["k_star_abs"],
                                      "theory_k_star_is_softest": match,
                                      "method": "zero crossing of sigma^2 min_k kappa at m(sigma) 1 (impulse JVP, exact; bisection)"}
        theory["_report"] = rep
    # the measured softest mode along trajectories at the step nearest the ensemble's combined estimate
    k_meas = None
    if ens_comb is not None and traj.k_star is not None:
        j = int(np.argmin(np.abs(traj.logsnr - ens_comb.logsnr)))
        k_meas = [float(v) for v in traj.k_star[j]]
    seconds = time.perf_counter() - t0
    nfe = {"sampler_per_sample": traj.nfe_sampler, "trajectory_probes_per_sample": traj.nfe_probe,
           "susceptibility_per_sample": None if susc is None else susc.nfe,
           "homogeneous_probe": None if hom is None else hom["nfe"],
           "linear_response_per_member": None if lin is None else lin["nfe"],
           "total_per_sample": traj.nfe_sampler + traj.nfe_probe + (0 if susc is None else susc.nfe)
           + (0 if lin is None else lin["nfe"]),
           "note": "denoiser evaluations (a JVP counts as the evaluations it ran)"}
    files = _figures(out, cfg, traj, susc, est, ens_comb, theory, hom, schedule)
    if lin is not None:
        files += _linear_figure(out, lin, theory, hom)
    rep = theory.pop("_report") if theory else None
    del rep
    record = {"signals": signals, "combined": combined, "ensemble_combined": ensemble_combined, "nfe": nfe,
              "theory": theory, "k_star_trajectory": k_meas, "steps": steps,
              "linear_response": None if lin is None else {
                  **lin["lr"].to_dict(), "branch_stiffness": {"logsnr": lin["bs"]["logsnr"].tolist(),
                                                              "sigma2_kappa_min": lin["bs"]["kappa_state"].mean(1).reshape(
                                                                  len(lin["bs"]["logsnr"]), -1).min(1).tolist()},
                  "amplitude_scan": lin["scan"], "seconds": lin["seconds"]},
              "recorded": {"t": traj.times(schedule)["t"].tolist(), "logsnr": traj.logsnr.tolist(),
                           "xi_2": traj.xi_2.tolist(), "xi_oz": [None if not math.isfinite(v) else v for v in traj.xi_oz],
                           "sigma2_kappa_min": (traj.kappa_min * traj.sigma**2).tolist(),
                           "chi": None if susc is None else susc.chi_mean.tolist()},
              "homogeneous": None if hom is None else {"logsnr": hom["logsnr"].tolist(),
                                                       "sigma2_kappa_min": hom["sigma2_kappa_min"].tolist(),
                                                       "k_star": hom["k_star"].tolist()},
              "config": cfg.to_dict(), "shape": list(shape), "schedule": schedule.config(),
              "n_train": None if images is None else int(images.shape[0]),
              "seconds": {"total": seconds, "trajectory": t_traj, "susceptibility": t_chi if susc is not None else None,
                          "linear_response": None if lin is None else lin["seconds"]},
              "files": files}
    save_json(out / "probe.json", record)
    return record


def _figures(out: Path, cfg, traj, susc, est, comb, theory, hom, schedule) -> list[str]:
    from ..report.figures import save_figure  # selects the Agg backend before pyplot loads

    import matplotlib.pyplot as plt

    files = []
    o = np.argsort(traj.logsnr)
    lam = traj.logsnr[o]
    marks = {k: v.logsnr for k, v in est.items() if math.isfinite(v.logsnr)}

    def mark(ax):
        for i, (k, v) in enumerate(marks.items()):
            ax.axvline(v, ls=":", color=f"C{i + 1}", label=f"t_c ({k})")
        if comb is not None:
            ax.axvspan(*comb.logsnr_ci, color="0.85", zorder=-1, label="combined 95% CI")
        if theory and theory.get("logsnr_c") is not None:
            ax.axvline(theory["logsnr_c"], color="k", lw=1.5, label="theory t_c")

    # stiffness heatmap: radially averaged sigma^2 kappa, |k| vs logsnr
    fig, ax = plt.subplots(figsize=(6, 4))
    Z = traj.kappa_radial[o] * (traj.sigma[o] ** 2)[:, None]
    vmax = float(np.nanmax(np.abs(Z))) or 1.0
    pc = ax.pcolormesh(lam, traj.k, Z.T, cmap="RdBu_r", vmin=-vmax, vmax=vmax, shading="nearest")
    fig.colorbar(pc, ax=ax, label="sigma^2 kappa (measured, trajectories)")
    if theory and theory.get("_report") is not None:
        rep = theory["_report"]
        tz = np.array([[np.interp(k, rep.kabs, row) for k in traj.k] for row in rep.kappa_radial])
        if np.nanmin(tz) < 0 < np.nanmax(tz):
            ax.contour(rep.scan.logsnr, traj.k, tz.T, levels=[0.0], colors="k", linewidths=1.5)
            ax.plot([], [], "k-", label="theory kappa = 0")
    if hom is not None:
        H = hom["kappa_radial"]
        if np.nanmin(H) < 0 < np.nanmax(H):
            ax.contour(hom["logsnr"], hom["k_radial"], H.T, levels=[0.0], colors="g", linewidths=1, linestyles="--")
            ax.plot([], [], "g--", label="probe at m(sigma)1: kappa = 0")
    ax.set_xlabel("logsnr")
    ax.set_ylabel("|k| (rad/pixel)")
    ax.set_xlim(lam.min(), lam.max())
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left")
    ax.set_title("stiffness of each |k| shell")
    fig.tight_layout()
    files.append(save_figure(fig, out / "stiffness.png", dpi=90).name)

    fig, axes = plt.subplots(1, 3 if susc is not None else 2, figsize=(13 if susc is not None else 9, 3.4))
    ax = axes[0]
    ax.plot(lam, (traj.kappa_min * traj.sigma**2)[o], "o-", label="trajectories")
    if hom is not None:
        ax.plot(hom["logsnr"], hom["sigma2_kappa_min"], "g--", label="homogeneous m(sigma)1")
    ax.axhline(0, color="0.5", lw=0.8)
    mark(ax)
    ax.set_xlabel("logsnr")
    ax.set_ylabel("sigma^2 min_k kappa")
    ax.legend(fontsize=6)
    ax = axes[1]
    ax.plot(lam, traj.xi_2[o], "o-", label="xi_2 (states)")
    ax.plot(lam, traj.xi_oz[o], "s-", label="xi (Ornstein-Zernike)")
    mark(ax)
    ax.set_xlabel("logsnr")
    ax.set_ylabel("xi (pixels)")
    ax.legend(fontsize=6)
    if susc is not None:
        ax = axes[2]
        so = np.argsort(susc.logsnr)
        ax.plot(susc.logsnr[so], susc.chi_mean[so], "o-", label="chi (mean)")
        ax.fill_between(susc.logsnr[so], susc.chi_ci[so, 0], susc.chi_ci[so, 1], alpha=0.3, label="95% CI")
        mark(ax)
        ax.set_xlabel("logsnr")
        ax.set_ylabel("chi")
        ax.legend(fontsize=6)
    fig.tight_layout()
    files.append(save_figure(fig, out / "signals.png", dpi=90).name)

    if comb is not None and traj.states is not None:
        from ..report.figures import image_grid

        j = int(np.argmin(np.abs(traj.logsnr - comb.logsnr)))
        image_grid(torch.from_numpy(traj.states[j][:16]).float(), out / "snapshots.png",
                   title=f"states at the recorded step nearest t_c (logsnr {traj.logsnr[j]:.2f})")
        files.append("snapshots.png")
    return files


def _linear_figure(out: Path, lin: dict, theory, hom) -> list[str]:
    """Growth stiffness of the branch (extrapolated, fine, coarse), the JVP stiffness there, the theory's curve,
    and the amplitude scan ``t(eps)``."""
    from ..report.figures import save_figure  # selects the Agg backend before pyplot loads

    import matplotlib.pyplot as plt

    lr, bs, scan = lin["lr"], lin["bs"], lin["scan"]
    fig, axes = plt.subplots(1, 2 if scan else 1, figsize=(11 if scan else 6, 3.6), squeeze=False)
    ax = axes[0, 0]
    n = len(lr.logsnr)
    ax.plot(lr.logsnr, lr.g_min, "o-", ms=3, label="growth (Richardson)")
    ax.plot(lr.logsnr, lr.g_fine.reshape(n, -1).min(1), ":", lw=1, label=f"growth, {2 * (len(lr.coarse.sigma) - 1)} steps")
    ax.plot(lr.logsnr, lr.g_coarse.reshape(n, -1).min(1), ":", lw=1, label=f"growth, {len(lr.coarse.sigma) - 1} steps")
    ks = bs["kappa_state"].mean(1).reshape(len(bs["logsnr"]), -1).min(1)
    ax.plot(bs["logsnr"], ks, "s", ms=5, mfc="none", label="JVP probe at the branch")
    if theory and theory.get("_report") is not None:
        sc = theory["_report"].scan
        o = np.argsort(sc.logsnr)
        ax.plot(sc.logsnr[o], (1 - sc.c.reshape(len(sc.t), -1).max(1) / sc.sigma**2)[o], "k-", lw=1, label="theory")
        if theory.get("logsnr_c") is not None:
            ax.axvline(theory["logsnr_c"], color="k", lw=0.8)
    ax.axhline(0, color="0.5", lw=0.8)
    lo = min(float(np.nanmin(lr.g_min)), float(np.nanmin(ks)))
    ax.set_ylim(max(lo, -1.5) - 0.05, 1.05)
    ax.set_xlabel("logsnr")
    ax.set_ylabel("sigma^2 min_k kappa")
    ax.set_title("symmetric branch: linear response")
    ax.legend(fontsize=6)
    if scan:
        ax = axes[0, 1]
        ok = [v for v in scan if v["logsnr_c"] is not None]
        est = lin["estimates"]["linear_growth"]
        e = [lr.eps] + [v["eps"] for v in ok]
        lam = [est.logsnr] + [v["logsnr_c"] for v in ok]
        err = [[est.logsnr - est.logsnr_ci[0]] + [v["logsnr_c"] - (v["ci_logsnr"][0] or v["logsnr_c"]) for v in ok],
               [est.logsnr_ci[1] - est.logsnr] + [(v["ci_logsnr"][1] or v["logsnr_c"]) - v["logsnr_c"] for v in ok]]
        ax.errorbar(e, lam, yerr=np.abs(np.array(err)), fmt="o-", capsize=3, label="growth onset")
        if theory and theory.get("logsnr_c") is not None:
            ax.axhline(theory["logsnr_c"], color="k", lw=1, label="theory t_c")
        ax.set_xscale("log")
        ax.set_xlabel("fluctuation amplitude eps (1 = the sampler's ensemble)")
        ax.set_ylabel("logsnr")
        ax.set_title("growth onset vs fluctuation amplitude")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return [save_figure(fig, out / "linear_response.png", dpi=90).name]


def probe_section(data_spec: str, stencil: str, folder=None, quick: bool = False, eps_scan: tuple = ()):
    """Demo section: theory and measurement side by side on the equivariant periodic patch model.

    Returns ``(config_dict, build)`` with ``build(folder) -> Section`` (the pattern of ``demo.sampling_section``;
    section key ``probe-<data name>``). ``folder`` is unused (the demo passes the cached folder to ``build``).
    ``eps_scan``: amplitudes of the growth-onset scan (:class:`ProbeConfig`).
    """
    cfg = ProbeConfig(model="patch", data=data_spec, stencil=stencil, eps_scan=eps_scan) if not quick else \
        ProbeConfig(model="patch", data=data_spec, stencil=stencil, n=6, steps=12, times=5, n_boot=100, homogeneous=21,
                    linear=12, linear_n=3, eps_scan=eps_scan[-1:])

    def build(folder: Path):
        import html as _html

        from ..report.html import Section, table

        rec = run_probe(cfg, folder, progress=True)
        rows = comparison_rows(rec)
        c, e = rec["combined"], rec["ensemble_combined"]
        th = rec["theory"] or {}
        fmt = lambda v: "none" if v is None else f"{v:.2f}"  # noqa: E731
        scan = rec["linear_response"]["amplitude_scan"] if rec.get("linear_response") else []
        scan_txt = "" if not scan else (" Growth onset against the fluctuation amplitude eps: " + ", ".join(
            f"eps {v['eps']:g}: {fmt(v['logsnr_c'])}" for v in scan) + " (eps = 1 is the sampler's own ensemble).")
        body = (f"<p>Critical time of the equivariant patch model on <code>{_html.escape(data_spec)}</code> "
                f"({_html.escape(stencil)}): the linear-stability theory beside the probes. "
                f"<b>Measured t_c (combined)</b>: logsnr {fmt(c['logsnr_c'])}, 95% interval "
                f"[{fmt(c['ci_logsnr'][0])}, {fmt(c['ci_logsnr'][1])}], against the theory's "
                f"{fmt(th.get('logsnr_c'))}{'' if th.get('logsnr_c') is not None else ' (no crossing; softest at ' + fmt((th.get('softest') or {}).get('logsnr')) + ')'}. "
                f"It comes from the linear response of the sampler's symmetric branch: 'linear_growth' is the onset "
                f"of growth of small fluctuations (forward evaluations only, two nested Euler grids, Richardson "
                f"extrapolated), 'linear_stiffness' the JVP stiffness at those states; their intervals include the "
                f"discretisation error. 'homogeneous' probes by JVPs at the theory's own homogeneous states. "
                f"The rows 'stiffness', 'xi_2', 'xi_oz', 'chi' and 'ensemble_combined' (logsnr {fmt(e['logsnr_c'])}) "
                f"measure along the sampler's own trajectories, whose fluctuations are as large as the noise: "
                f"there the transition is shifted later, away from the linear regime the theory describes."
                f"{scan_txt} Cost: {rec['nfe']['total_per_sample']:.0f} denoiser evaluations per sample.</p>"
                + table(rows) + ('<p><img src="linear_response.png"></p>' if "linear_response.png" in rec["files"] else "")
                + '<p><img src="stiffness.png"> <img src="signals.png"></p>'
                + ('<p><img src="snapshots.png"></p>' if "snapshots.png" in rec["files"] else ""))
        from ..spec import parse_spec

        key = f"probe-{parse_spec(data_spec, 'data').name}"
        return Section(key, f"Probes vs theory: {data_spec}", body, {"rows": rows, **rec})

    return {"kind": "probe", **cfg.to_dict(), "version": 2}, build


def comparison_rows(rec: dict) -> list[dict]:
    """Table rows: per signal ``logsnr_c`` with CI and its difference from the theory's; ``agrees``: theory
    inside the interval or ``|d logsnr| <= 0.25`` (``'edge'`` for a peak on the first or last probed step).

    When the theory finds no crossing, its reference is the time where the homogeneous state is softest
    (``theory.softest``): a measured minimum is compared with it, a measured crossing disagrees.
    """
    th = rec.get("theory") or {}
    lt = th.get("logsnr_c")
    soft = (th.get("softest") or {}).get("logsnr") if lt is None else None
    ref = lt if lt is not None else soft
    rows = [{"signal": "theory" if lt is not None else "theory (softest, no crossing)", "t_c": th.get("t_c"),
             "logsnr_c": ref, "95% CI (logsnr)": "",
             "k*": th.get("k_star") if lt is not None else (th.get("softest") or {}).get("k_star"),
             "d logsnr": "", "agrees": ""}]
    items = list(rec["signals"].items()) + [("combined", rec["combined"])]
    if "ensemble_combined" in rec:
        items.append(("ensemble_combined", rec["ensemble_combined"]))
    for name, s in items:
        lam = s.get("logsnr_c")
        ci = s.get("ci_logsnr") or [None, None]
        d = None if lam is None or ref is None else lam - ref
        ok = None
        if s.get("at_grid_edge"):
            ok = "edge"  # the 'peak' sits on the first or last probed step: no estimate
        elif soft is not None and lam is not None and s.get("method") == "zero-crossing":
            ok = False  # a crossing where the theory has none
        elif d is not None:
            inside = ci[0] is not None and ci[1] is not None and ci[0] <= ref <= ci[1]
            ok = bool(inside or abs(d) <= 0.25)
        kstar = s.get("k_star", rec.get("k_star_trajectory") if name == "ensemble_combined" else "")
        rows.append({"signal": name, "t_c": s.get("t_c"), "logsnr_c": lam,
                     "95% CI (logsnr)": "" if ci[0] is None else f"[{ci[0]:.3g}, {ci[1]:.3g}]",
                     "k*": kstar, "theory k* softest": s.get("theory_k_star_is_softest", ""),
                     "d logsnr": d, "agrees": ok})
    return rows
