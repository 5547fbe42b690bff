"""The ``probe`` experiment: measure the critical time of ANY denoiser and, for the equivariant periodic
patch model, set it beside the theory (DESIGN.md sections 3-4).

An ensemble of ``n`` samples ``[n, C, H, W]`` runs through the sampler; at ``times`` step indices spread
over the grid the :class:`~critdiff.probes.TrajectoryProbe` records the spectral probe (``probes`` random
phase probes per state), ``S(k)``, ``xi_zero`` and ``xi_peak`` (second-moment lengths about k = 0 and about the
peak) and the Ornstein-Zernike ``xi``; :func:`~critdiff.probes.susceptibility` measures ``chi`` at the same
steps (bump kicks). ``t_c`` is estimated from every signal with a bootstrap interval and combined into
``ensemble_combined``: the effective critical time of the sampler's own ensemble.

The **linear-response run** (:mod:`critdiff.probes.linear_response`, ``linear`` > 0) measures the critical
point itself: the sampler's symmetric branch (started from the mean of its initial noise) with ``linear_n``
members perturbed by ``linear_eps`` of the noise; the growth of their fluctuations (``linear_growth``) and the
JVP stiffness at their states (``linear_stiffness``) give ``t_c`` as the branch's instability, which is what
the theory defines; ``combined`` merges these two. ``eps_scan`` repeats the growth run at larger amplitudes
(``eps = 1`` is the sampler's own ensemble), tracing the shift from the critical point to the ensemble's
effective transition. For the patch model the stiffness is also probed at the theory's homogeneous states
``m(sigma) 1`` (``homogeneous`` signal), where it is what the theory defines: its zero crossing is ``t_c`` by JVPs.

Times are reported as the schedule's ``t``, ``logsnr`` and ``sigma/a``; costs as denoiser evaluations per sample
(JVPs included). ``run_probe(cfg, ctx) -> ProbeResult``: the result (every number the report shows and the curves
its figures plot) is written atomically to ``OUT/result.json``, the states nearest the ensemble's ``t_c`` to
``OUT/snapshots.png``; :func:`critdiff.report.probe.render_probe` draws the figures and the prose. Measurements
live in :mod:`critdiff.probes` (``ensemble``, ``branch``, ``homogeneous``, ``theory_compare``).
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
from ..errors import check_int, check_ints, check_positive
from ..probes.branch import branch_response
from ..probes.ensemble import ensemble_probe, ensemble_signals
from ..probes.estimates import combine_record, estimate_record
from ..probes.homogeneous import homogeneous_probe, k_star_matches
from ..probes.theory_compare import homogeneous_signal, theory_record
from ..seeding import derive
from .config import RunConfig
from .finite import FiniteGuard
from .models import load_model
from .context import ContextLike, as_context
from .result import Result

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
        check_ints(self, steps=2, n=2, times=3, probes=1, n_boot=10, homogeneous=0, linear_n=2)
        if self.linear:
            check_int("linear", self.linear, 3)
        if self.window is not None:
            check_int("window", self.window, 0)
        check_positive("linear_eps", self.linear_eps)
        for e in self.eps_scan:
            check_positive("eps_scan", e)
        if self.times > self.steps:
            raise ValueError(f"times: expected at most --steps ({self.steps}) probe times, got {self.times}")
        return self


@dataclass(frozen=True)
class ProbeResult(Result):
    """What a probe run measured: the record in ``result.json`` (``signals``, ``combined``, ``ensemble_combined``,
    ``nfe``, ``theory``, ...) plus ``curves``, the data the report's figures plot (module docstring)."""

    kind = "probe"
    config: ProbeConfig
    signals: dict
    combined: dict
    ensemble_combined: dict
    nfe: dict
    theory: Optional[dict]
    k_star_trajectory: Optional[tuple[float, ...]]
    steps: tuple[int, ...]
    linear_response: Optional[dict]
    recorded: dict
    homogeneous: Optional[dict]
    shape: tuple[int, ...]
    schedule: dict
    n_train: Optional[int]
    seconds: dict
    files: tuple[str, ...]
    curves: dict


def probe_steps(n_steps: int, n_times: int) -> list[int]:
    """``n_times`` step indices spread evenly over ``[1, n_steps - 1]`` (the pure-noise step 0 carries no signal)."""
    return sorted({int(round(v)) for v in np.linspace(1, n_steps - 1, n_times)})


def _phase_units(cfg: ProbeConfig, n_steps: int) -> int:
    """Units of the progress bar: sampler steps, one per kicked step, one per branch run, one for the theory."""
    return cfg.steps + (n_steps if cfg.chi else 0) + ((1 + len(cfg.eps_scan)) if cfg.linear else 0) + \
        (1 if cfg.analytic_patch else 0)


def _theory(model, cfg: ProbeConfig, images, schedule, signals: dict, lin, bar) -> tuple:
    """The theory's record and report, and the homogeneous-state probe (patch model only)."""
    bar.set_postfix_str("theory and the homogeneous-state probe")
    theory, rep = theory_record(images, cfg.stencil, cfg.schedule, device=cfg.torch_device)
    ref_k = theory["k_star"] if theory["k_star"] is not None else theory["softest"]["k_star"]
    if lin is not None and ref_k is not None:  # no crossing: compare with the softest mode
        for k, v in lin["k_star"].items():
            signals[k]["theory_k_star_is_softest"] = k_star_matches(v["kappa_map"], ref_k, tol=1e-3)
    hom = None
    if cfg.homogeneous:
        lam_grid = np.linspace(float(rep.scan.logsnr.min()), float(rep.scan.logsnr.max()), cfg.homogeneous)
        hom = homogeneous_probe(model, images, cfg.stencil, schedule, lam_grid, device=cfg.torch_device)
        signals["homogeneous"] = homogeneous_signal(hom, schedule, rep.critical.k_star)
    bar.update(1)
    return theory, rep, hom


def _curves(ens: dict, ens_comb, lin, rep, hom) -> dict:
    """The data the report's figures plot that ``result.json`` does not hold otherwise."""
    traj, susc = ens["traj"], ens["susc"]
    o = np.argsort(traj.logsnr)
    curves = {"stiffness_map": {"logsnr": traj.logsnr[o], "k": traj.k,
                                "sigma2_kappa": traj.kappa_radial[o] * (traj.sigma[o] ** 2)[:, None]},
              "marks": {k: v.logsnr for k, v in ens["est"].items() if math.isfinite(v.logsnr)},
              "ensemble_ci": None if ens_comb is None else ens_comb.logsnr_ci,
              "chi": None if susc is None else {"logsnr": susc.logsnr, "mean": susc.chi_mean, "ci": susc.chi_ci},
              "theory_map": None, "theory_min": None, "homogeneous_map": None, "linear": None}
    if rep is not None:
        sc = rep.scan
        so = np.argsort(sc.logsnr)
        tz = np.array([[np.interp(k, rep.kabs, row) for k in traj.k] for row in rep.kappa_radial])
        curves["theory_map"] = {"logsnr": sc.logsnr, "sigma2_kappa": tz}
        curves["theory_min"] = {"logsnr": sc.logsnr[so],
                                "sigma2_kappa_min": (1 - sc.c.reshape(len(sc.t), -1).max(1) / sc.sigma**2)[so]}
    if hom is not None:
        curves["homogeneous_map"] = {"k": hom["k_radial"], "sigma2_kappa": hom["kappa_radial"]}
    if lin is not None:
        g = lin["estimates"]["linear_growth"]
        curves["linear"] = {"coarse_steps": len(lin["lr"].coarse.sigma) - 1, "growth_logsnr": g.logsnr,
                            "growth_ci": g.logsnr_ci}
    return curves


def _nfe(ens: dict, lin, hom) -> dict:
    traj, susc = ens["traj"], ens["susc"]
    return {"sampler_per_sample": traj.nfe_sampler, "trajectory_probes_per_sample": traj.nfe_probe,
            "susceptibility_per_sample": None if susc is None else susc.nfe,
            "homogeneous_probe": None if hom is None else hom["nfe"],
            "linear_response_per_member": None if lin is None else lin["nfe"],
            "total_per_sample": traj.nfe_sampler + traj.nfe_probe + (0 if susc is None else susc.nfe)
            + (0 if lin is None else lin["nfe"]),
            "note": "denoiser evaluations (a JVP counts as the evaluations it ran)"}


def _linear_record(lin) -> Optional[dict]:
    if lin is None:
        return None
    bs = lin["bs"]
    return {**lin["lr"].to_dict(),
            "branch_stiffness": {"logsnr": bs["logsnr"].tolist(),
                                 "sigma2_kappa_min": bs["kappa_state"].mean(1).reshape(len(bs["logsnr"]), -1).min(1).tolist()},
            "amplitude_scan": lin["scan"], "seconds": lin["seconds"]}


def _snapshots(out: Path, traj, ens_comb) -> tuple[str, ...]:
    """The recorded states nearest the ensemble's ``t_c`` as an image grid (the only image artefact)."""
    if ens_comb is None or traj.states is None:
        return ()
    from ..figures import image_grid

    j = int(np.argmin(np.abs(traj.logsnr - ens_comb.logsnr)))
    image_grid(torch.from_numpy(traj.states[j][:16]).float(), out / "snapshots.png",
               title=f"states at the recorded step nearest t_c (logsnr {traj.logsnr[j]:.2f})")
    return ("snapshots.png",)


def _measure(cfg: ProbeConfig, loaded, schedule, bar) -> dict:
    """Every measurement of a probe run (ensemble, branch, theory) as a dict of raw objects."""
    sigmas = S.sigma_grid(schedule, cfg.steps, cfg.spacing)
    steps = probe_steps(cfg.steps, cfg.times)
    x = SM.initial_noise((cfg.n, *loaded.shape), sigmas, SM.seed_generators(cfg.seed, cfg.n), dtype=cfg.torch_dtype,
                         device=cfg.torch_device)
    ens = ensemble_probe(loaded.model, x, sigmas, steps, sampler=cfg.sampler, label=cfg.label, n_probes=cfg.probes,
                         window=cfg.window, chi=cfg.chi, n_boot=cfg.n_boot, seed=cfg.seed,
                         on_step=[FiniteGuard("probe"), lambda step: bar.update(1)], on_phase=bar.set_postfix_str)
    if cfg.chi:
        bar.update(len(steps))
    signals, ens_comb, ensemble_combined = ensemble_signals(ens, schedule)
    lin = None
    if cfg.linear:
        lin = branch_response(loaded.model, loaded.shape, schedule, steps=cfg.linear, eps=cfg.linear_eps,
                              n=cfg.linear_n, eps_scan=cfg.eps_scan, label=cfg.label, n_probes=cfg.probes,
                              window=cfg.window, dtype=cfg.torch_dtype, device=cfg.torch_device,
                              growth_seed=derive(cfg.seed, "linear-response"),
                              probe_seed=derive(cfg.seed, "branch-stiffness"), estimator={"n_boot": cfg.n_boot, "seed": cfg.seed},
                              on_phase=lambda s: (bar.set_postfix_str(s), bar.update(1)))
        for k, v in lin["estimates"].items():
            signals[k] = {**estimate_record(v, schedule), "at_grid_edge": False,
                          **(lin["k_star"].get(k, {}).get("k_star") or {})}
        _, combined = combine_record(list(lin["estimates"].values()), schedule)
        combined["source"] = "linear response of the symmetric branch (linear_growth, linear_stiffness)"
    else:
        combined = {**ensemble_combined, "source": "sampler ensemble (no linear-response run)"}
    theory = rep = hom = None
    if cfg.analytic_patch and loaded.images is not None:
        theory, rep, hom = _theory(loaded.model, cfg, loaded.images, schedule, signals, lin, bar)
    return {"steps": steps, "ens": ens, "signals": signals, "ens_comb": ens_comb, "lin": lin, "theory": theory,
            "rep": rep, "hom": hom, "combined": combined, "ensemble_combined": ensemble_combined}


def run_probe(cfg: ProbeConfig, ctx: ContextLike) -> ProbeResult:
    """Run the probe experiment; write ``result.json`` and ``snapshots.png`` to ``ctx.out``;
    return the result. ``ctx``: a :class:`~critdiff.experiments.context.Context` or an output folder."""
    cfg.validate()
    ctx = as_context(ctx)
    out = ctx.folder()
    loaded = load_model(cfg)
    schedule = S.get(cfg.schedule)
    t0 = time.perf_counter()
    with ctx.bar(_phase_units(cfg, len(probe_steps(cfg.steps, cfg.times))), f"probe {cfg.model}") as bar:
        m = _measure(cfg, loaded, schedule, bar)
    seconds = time.perf_counter() - t0
    ens, lin, hom, traj = m["ens"], m["lin"], m["hom"], m["ens"]["traj"]
    k_meas = None  # the measured softest mode along trajectories at the step nearest the ensemble's estimate
    if m["ens_comb"] is not None and traj.k_star is not None:
        k_meas = [float(v) for v in traj.k_star[int(np.argmin(np.abs(traj.logsnr - m["ens_comb"].logsnr)))]]
    susc = ens["susc"]
    result = ProbeResult(
        config=cfg, signals=m["signals"], combined=m["combined"], ensemble_combined=m["ensemble_combined"],
        nfe=_nfe(ens, lin, hom), theory=m["theory"], k_star_trajectory=k_meas, steps=m["steps"],
        linear_response=_linear_record(lin),
        recorded={"t": traj.times(schedule)["t"].tolist(), "logsnr": traj.logsnr.tolist(), "xi_zero": traj.xi_zero.tolist(),
                  "xi_peak": traj.xi_peak.tolist(), "xi_oz": traj.xi_oz.tolist(),
                  "sigma2_kappa_min": (traj.kappa_min * traj.sigma**2).tolist(), "chi": None if susc is None else susc.chi_mean.tolist()},
        homogeneous=None if hom is None else {k: hom[k].tolist() for k in ("logsnr", "sigma2_kappa_min", "k_star")},
        shape=loaded.shape, schedule=schedule.config(),
        n_train=None if loaded.images is None else int(loaded.images.shape[0]),
        seconds={"total": seconds, "trajectory": ens["t_traj"], "susceptibility": ens["t_chi"],
                 "linear_response": None if lin is None else lin["seconds"]},
        files=_snapshots(out, traj, m["ens_comb"]), curves=_curves(ens, m["ens_comb"], lin, m["rep"], hom))
    ctx.save(result)
    return result


def demo_config(quick: bool, data: str, stencil: str = "square:5", eps_scan: tuple = ()) -> ProbeConfig:
    """The demo's probe settings on the equivariant periodic patch model (``quick``: a smaller run; it keeps
    only the largest amplitude of ``eps_scan``)."""
    if not quick:
        return ProbeConfig(model="patch", data=data, stencil=stencil, eps_scan=eps_scan)
    return ProbeConfig(model="patch", data=data, stencil=stencil, n=6, steps=12, times=5, n_boot=100, homogeneous=21,
                       linear=12, linear_n=3, eps_scan=eps_scan[-1:])
