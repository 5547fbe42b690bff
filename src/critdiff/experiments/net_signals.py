"""The measurement phases of :mod:`.net_criticality`, each a call into ``probes/`` or ``theory/``, and the JSON
records of their results.

Every estimated time is a :class:`critdiff.times.TimeEstimate` on the network's training schedule (the estimator's
own :meth:`~critdiff.probes.critical_time.CriticalTime.estimate`: time, interval, source = the signal, extras =
method, ``logsnr_se``, ``n_boot``, ``n_valid``), stored as its record (``TimeEstimate.to_dict``; ``None`` where the
signal gives no finite time). The patch theory's times are ``{'t', 'logsnr', 'sigma_over_a'}``
(:func:`critdiff.times.time_dict`). Seeds: every phase uses ``cfg.seed`` as the old section did (the branch runs ``derive(seed, 'linear-response')``),
so the numbers are those of the previous ``net_criticality_section``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from typing import Optional

from ..io import to_jsonable
from ..seeding import derive
from ..times import TimeEstimate, time_dict


def record_of(est: Optional[TimeEstimate]) -> Optional[dict]:
    """The stored form of an estimate: its :meth:`~critdiff.times.TimeEstimate.to_dict`, or None."""
    return None if est is None else est.to_dict()


def has_feature(e, logsnr_range) -> bool:
    """A zero crossing, or an extremum inside the recorded range (the edge rule,
    :func:`~critdiff.probes.critical_time.at_grid_edge`)."""
    from ..probes.critical_time import at_grid_edge

    return math.isfinite(e.logsnr) and not at_grid_edge(e, logsnr_range)


def trajectories(net, x, sigmas, cfg):
    """Heun trajectories with the spectral probe, correlations and the states (every ``probe_every`` steps)."""
    from ..probes import probe_trajectory

    with torch.no_grad():
        return probe_trajectory(net, x, sigmas, sampler="heun", steps=list(range(0, cfg.steps, cfg.probe_every)),
                                spectral={"n_probes": cfg.n_probes}, keep_states=True, seed=cfg.seed)


def kicks(net, x, sigmas, cfg):
    """Susceptibility ``chi(t)`` at ``cfg.kicks`` kick steps spread over the grid."""
    from ..probes import susceptibility

    steps = sorted(set(np.round(np.linspace(0, cfg.steps - 2, cfg.kicks)).astype(int).tolist()))
    with torch.no_grad():
        return susceptibility(net, x, sigmas, steps, sampler="heun", seed=cfg.seed, n_boot=cfg.n_boot)


def estimates(traj, susc, schedule: str, cfg) -> tuple[dict, dict, Optional[TimeEstimate]]:
    """``(estimates, feature, combined)``: ``t_c`` from each signal as a :class:`~critdiff.times.TimeEstimate`
    (None without a finite time), which signals have a feature, and the inverse-variance combination of those
    (its extras name the ``components``; None when no signal has a feature with a bootstrap variance)."""
    from ..probes import combine, from_chi, from_stiffness, from_xi

    kw = dict(n_boot=cfg.n_boot, seed=cfg.seed)
    ests = {"stiffness": from_stiffness(traj, **kw), "xi_zero": from_xi(traj, which="xi_zero", **kw),
            "xi_oz": from_xi(traj, which="oz", **kw), "chi": from_chi(susc, **kw)}
    ranges = {"stiffness": traj.logsnr, "xi_zero": traj.logsnr, "xi_oz": traj.logsnr, "chi": susc.logsnr}
    feature = {k: has_feature(e, ranges[k]) for k, e in ests.items()}
    try:
        combined = combine([e for k, e in ests.items() if feature[k]]).estimate(schedule)
    except ValueError:
        combined = None
    return {k: e.estimate(schedule) for k, e in ests.items()}, feature, combined


def branch_growth(net, schedule: str, cfg) -> dict:
    """Linear response of the symmetric branch (eps = 0.01) beside the growth onset of the sampler's own
    ensemble (fluctuations as large as the noise, eps = 1): one record each, its time under ``estimate`` (a
    :class:`~critdiff.times.TimeEstimate` record, or None)."""
    from ..probes.linear_response import from_growth, linear_response, softest_mode

    branch = {}
    for name, eps in (("linear", 0.01), ("ensemble", 1.0)):
        with torch.no_grad():
            lr = linear_response(net, tuple(net.sample_shape), schedule, steps=cfg.steps, eps=eps,
                                 n=max(4, cfg.batch // 2), seed=derive(cfg.seed, "linear-response"), keep_states=False)
        ct, kmap = from_growth(lr, signal=f"growth ({name})", n_boot=cfg.n_boot, seed=cfg.seed, return_map=True)
        km = softest_mode(kmap)
        branch[name] = {"estimate": record_of(ct.estimate(schedule)), "eps": eps, **km, "logsnr_grid": lr.logsnr.tolist(),
                        "wavelength": 2 * math.pi / km["k_star_abs"] if km["k_star_abs"] > 0 else None,
                        "g_min": lr.g_min.tolist(), "nfe_per_member": lr.nfe}
    return branch


def _pool_order(images: torch.Tensor, seed: int) -> torch.Tensor:
    """The seeded permutation of the training images whose first ones build the patch models."""
    return torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))


def calibrate(net, images, traj, cfg):
    """Patch-size calibration (:func:`critdiff.probes.calibration.calibrate_patch_size`) on the probe states."""
    from ..probes.calibration import calibrate_patch_size

    o = np.argsort(-traj.sigma)
    idx = np.unique(np.round(np.linspace(0, len(o) - 1, cfg.n_cal_times)).astype(int))
    states = [(float(traj.sigma[o][i]), torch.from_numpy(traj.states[o][i]).to(torch.float32)) for i in idx]
    pool = images[_pool_order(images, cfg.seed)[:cfg.n_cal_train]]
    return calibrate_patch_size(net, pool, stencils=cfg.stencils, states=states)


def calibrated_theory(images, cal, critical: Optional[TimeEstimate], schedule: str, cfg) -> tuple[dict, list]:
    """Patch theory (periodic, exact weights) of the stencil calibrated nearest the network's critical time
    ``critical`` (else the modal one), and of every other stencil calibrated at some recorded time."""
    from ..theory.analysis import analyze

    lam_ref = None if critical is None else critical.logsnr
    stencil = cal.stencil_at(lam_ref) if lam_ref is not None else cal.modal_stencil()
    imgs = images[_pool_order(images, cfg.seed)[:cfg.n_theory]]

    def run(st: str) -> dict:
        cp = analyze(imgs, st, schedule, n_t=cfg.n_t_theory).critical
        return {"stencil": st, "found": bool(cp.found), "message": cp.message,
                **time_dict(schedule, cp.logsnr_c if cp.found else None), "k_star_abs": to_jsonable(cp.k_star_abs),
                "n_train": int(imgs.shape[0]), "boundary": "periodic", "weights": cp.weights}

    theory = {**run(stencil), "stencil_rule": "calibrated at the time nearest the critical time (branch instability)"
              if lam_ref is not None else "calibrated at most recorded times"}
    return theory, [run(st) for st in dict.fromkeys(cal.best_stencil) if st != stencil]


def curves(traj, susc) -> dict:
    """The plotted curves, in the sampling direction, and the low-|k| softening of the stiffness."""
    from ..probes.softening import low_k_softening

    o = np.argsort(-traj.sigma)  # sampling direction: logsnr ascending
    s2k = traj.kappa_radial[o] * (traj.sigma[o] ** 2)[:, None]  # [T, nk] sigma^2 kappa = 1 - Re Jhat_D
    s2k_se = traj.kappa_radial_se[o] * (traj.sigma[o] ** 2)[:, None]
    oc = np.argsort(-susc.sigma)
    stiff = low_k_softening(traj.logsnr[o], traj.k, s2k, s2k_se)
    stiff["softest_k"] = [float(np.hypot(*ks)) for ks in traj.k_star[o]]
    return {"probe_logsnr": traj.logsnr[o], "k": traj.k, "sigma2_kappa_radial": s2k, "xi_zero": traj.xi_zero[o],
            "xi_oz": traj.xi_oz[o], "chi_logsnr": susc.logsnr[oc], "chi_mean": susc.chi_mean[oc],
            "chi_ci": susc.chi_ci[oc], "stiffness_low_k": stiff}


def peaks(c: dict, xi_oz_logsnr: Optional[float], xi_oz_feature: bool) -> dict:
    """Peaks of ``xi_zero``, the OZ ``xi`` (its estimate's time and feature) and ``chi`` over the recorded range."""
    from ..probes.softening import curve_peak

    xi2, xi_oz = np.asarray(c["xi_zero"], dtype=np.float64), np.asarray(c["xi_oz"], dtype=np.float64)
    fin = np.isfinite(xi_oz)
    return {"xi_zero_peak": {**curve_peak(c["probe_logsnr"], xi2), "all_zero": bool(np.all(xi2 == 0))},
            "xi_oz_peak": {"logsnr": xi_oz_logsnr, "interior": bool(xi_oz_feature),
                           "value": to_jsonable(np.nanmax(xi_oz[fin])) if fin.any() else None},
            "chi_peak": curve_peak(c["chi_logsnr"], np.asarray(c["chi_mean"]))}


def xi_growth(c: dict) -> dict:
    """Growth of the correlation lengths along the sampling direction: for ``xi_zero`` (states) and ``xi_oz``
    (stiffness fit), the first and last recorded values and the steepest growth
    (:func:`critdiff.probes.softening.steepest_growth`); ``{'error'}`` for a curve with under two finite points."""
    from ..probes.softening import steepest_growth

    out = {}
    for name in ("xi_zero", "xi_oz"):
        try:
            out[name] = steepest_growth(np.asarray(c["probe_logsnr"], dtype=np.float64), np.asarray(c[name], dtype=np.float64))
        except ValueError as exc:
            out[name] = {"error": str(exc)}
    return out
