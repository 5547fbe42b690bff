"""Measured critical times beside the linear-stability theory of the patch model (DESIGN.md sections 3-4).

:func:`theory_record` gives the theory's ``t_c`` and ``k*`` (and where the homogeneous state is softest, the
reference when there is no crossing); :func:`homogeneous_signal` turns the JVP probe at the homogeneous states
(:mod:`.homogeneous`) into a signal record; :func:`comparison_rows` is the agreement rule of the report.
"""

from __future__ import annotations

import numpy as np
import torch

from ..times import Time
from .critical_time import extremum
from .homogeneous import k_star_matches
from .linear_response import softest_mode

__all__ = ["theory_record", "theory_softest", "homogeneous_signal", "comparison_rows", "AGREE_LOGSNR"]

AGREE_LOGSNR = 0.25  # a measured t_c agrees with the theory's within this many logsnr units (or by its interval)


def theory_softest(rep) -> dict:
    """Where the theory's homogeneous state is softest: ``logsnr`` of the minimum of ``sigma^2 min_k kappa =
    1 - max_k c / sigma^2`` over its scan (parabolic vertex), and that minimum."""
    sc = rep.scan
    h = 1.0 - sc.c.reshape(len(sc.t), -1).max(1) / sc.sigma**2
    o = np.argsort(sc.logsnr)
    lam, interior = extremum(sc.logsnr[o], h[o], "min")
    j = int(np.argmin(h))
    kk = softest_mode(1.0 - sc.c[j] / sc.sigma[j] ** 2)
    return {"logsnr": lam, "sigma2_kappa_min": float(h.min()), "interior": interior, **kk}


def theory_record(images: torch.Tensor, stencil: str, schedule: str, device=None) -> tuple[dict, object]:
    """``(record, TheoryReport)`` of the theory (:func:`critdiff.theory.analysis.analyze`, its pool on ``device``)
    on ``images``."""
    from ..theory.analysis import analyze

    rep = analyze(images.to(torch.float64), stencil, schedule, device=device)
    cp = rep.critical
    rec = {"t_c": cp.t_c, "logsnr_c": cp.logsnr_c, "sigma_over_a_c": cp.sigma_over_a_c,
           "k_star": None if cp.k_star is None else list(cp.k_star), "k_star_abs": cp.k_star_abs,
           "found": cp.found, "message": cp.message, "softest": theory_softest(rep)}
    return rec, rep


def homogeneous_signal(hom: dict, schedule, theory_k_star) -> dict:
    """The signal record of :func:`~.homogeneous.homogeneous_probe`'s crossing (``theory_k_star``: the theory's
    ``k*`` or None; whether it is a softest measured mode is recorded)."""
    cr = hom["crossing"]
    tt = None if cr is None else Time.from_logsnr(schedule, cr["logsnr"]).to_dict()
    match = None if cr is None or theory_k_star is None else k_star_matches(cr["kappa"], theory_k_star)
    return {"t_c": None if tt is None else tt["t"], "logsnr_c": None if cr is None else cr["logsnr"],
            "sigma_over_a_c": None if tt is None else tt["sigma_over_a"],
            "logsnr_ci": [None, None], "found": cr is not None,
            "k_star": None if cr is None else cr["k_star"],
            "k_star_abs": None if cr is None else cr["k_star_abs"],
            "theory_k_star_is_softest": match,
            "method": "zero crossing of sigma^2 min_k kappa at m(sigma) 1 (impulse JVP, exact; bisection)"}


def _agrees(s: dict, d, ref, soft):
    if s.get("at_grid_edge"):
        return "edge"  # the 'peak' sits on the first or last probed step: no estimate
    if soft is not None and s.get("logsnr_c") is not None and s.get("method") == "zero-crossing":
        return False  # a crossing where the theory has none
    if d is None:
        return None
    ci = s.get("logsnr_ci") or [None, None]
    inside = ci[0] is not None and ci[1] is not None and ci[0] <= ref <= ci[1]
    return bool(inside or abs(d) <= AGREE_LOGSNR)


def comparison_rows(rec: dict) -> list[dict]:
    """Table rows: per signal ``logsnr_c`` with CI and its difference from the theory's; ``agrees``: theory
    inside the interval or ``|d logsnr| <= 0.25`` (``'edge'`` for a peak on the first or last probed step).

    ``rec`` holds ``theory``, ``signals``, ``combined`` and optionally ``ensemble_combined`` and
    ``k_star_trajectory`` (as in a probe run's ``result.json``). When the theory finds no crossing, its reference is
    the time where the homogeneous state is softest (``theory.softest``): a measured minimum is compared with it,
    a measured crossing disagrees.
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
        ci = s.get("logsnr_ci") or [None, None]
        d = None if lam is None or ref is None else lam - ref
        kstar = s.get("k_star", rec.get("k_star_trajectory") if name == "ensemble_combined" else "")
        rows.append({"signal": name, "t_c": s.get("t_c"), "logsnr_c": lam,
                     "95% CI (logsnr)": "" if ci[0] is None else f"[{ci[0]:.3g}, {ci[1]:.3g}]",
                     "k*": kstar, "theory k* softest": s.get("theory_k_star_is_softest", ""),
                     "d logsnr": d, "agrees": _agrees(s, d, ref, soft)})
    return rows
