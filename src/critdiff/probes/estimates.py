"""Critical-time estimates as JSON records (``t_c``, ``logsnr_c``, ``sigma_over_a_c`` and the intervals).
The rule that an extremum on the first or last probed step is no estimate is
:func:`critdiff.probes.critical_time.at_grid_edge` (DESIGN.md section 4).

These records are what ``critdiff probe`` writes to ``result.json`` (``signals``, ``combined``) and what the
report and :func:`critdiff.probes.theory_compare.comparison_rows` read.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

from .critical_time import CombinedCriticalTime, CriticalTime, combine

__all__ = ["estimate_record", "combine_record"]


def estimate_record(ct, schedule) -> dict:
    """One critical-time estimate (:class:`CriticalTime` or :class:`CombinedCriticalTime`, or None) as JSON:
    ``t_c``, ``logsnr_c``, ``sigma_over_a_c`` of ``schedule`` (its :meth:`estimate`) with the logsnr and t
    intervals ``logsnr_ci``, ``t_ci``."""
    est = None if ct is None else ct.estimate(schedule)
    if est is None:
        return {"t_c": None, "logsnr_c": None, "sigma_over_a_c": None, "logsnr_ci": [None, None], "found": False}
    iv = est.interval
    d = {"t_c": est.t, "logsnr_c": est.logsnr, "sigma_over_a_c": est.sigma_over_a,
         "logsnr_ci": [None, None] if iv is None else [iv[0].logsnr, iv[1].logsnr],
         "t_ci": [None, None] if iv is None else [iv[0].t, iv[1].t],
         "logsnr_se": ct.logsnr_se if math.isfinite(ct.logsnr_se) else None, "found": True}
    for k in ("signal", "method", "n_boot", "n_valid"):
        if hasattr(ct, k):
            d[k] = getattr(ct, k)
    return d


def combine_record(estimates: Sequence[CriticalTime], schedule) -> tuple[Optional[CombinedCriticalTime], dict]:
    """``(CombinedCriticalTime or None, JSON record)`` of the estimates (see :func:`critdiff.probes.combine`);
    when none can be combined the record says why (``message``)."""
    try:
        comb = combine(estimates)
    except ValueError as exc:
        return None, {**estimate_record(None, schedule), "message": str(exc)}
    d = estimate_record(comb, schedule)
    d["components"] = [c.signal for c in comb.components]
    return comb, d

