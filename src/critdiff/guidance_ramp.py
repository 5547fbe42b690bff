"""A linearly increasing guidance weight (Wang et al. 2024, "Analysis of classifier-free guidance weight
schedulers"; docs/guidance.md section 3) and the guidance interval placed at our critical time.

:class:`Ramp` rises linearly on a *clock* ``c`` from ``baseline`` at ``c_start`` (the start of sampling) to
``peak`` at ``c_end`` (its end), and is held at those values outside:

    w = baseline + (peak - baseline) clip((c - c_start) / (c_end - c_start), 0, 1)     (eq. 3.3)

with ``c = logsnr`` (``clock='logsnr'``) or ``c = 1 - t`` of a schedule (``clock='t'``: Wang et al.'s linear
schedule, uniform in diffusion time). :func:`wang_linear` sets ``peak = 2 height - baseline``, so the mean
weight over the clock equals ``height``, the constant schedule's: Wang et al.'s normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from .errors import check_finite
from .guidance_schedules.values import GuidanceSchedule, Interval, _baseline, edm_interval
from .schedules import get as get_schedule
from .times import centre_logsnr

__all__ = ["Ramp", "CLOCKS", "wang_linear", "interval_at"]

CLOCKS = ("logsnr", "t")


@dataclass(frozen=True)
class Ramp(GuidanceSchedule):
    """Eq. 3.3 on the clock ``clock`` (``'t'`` needs ``schedule``, a spec); ``c_start != c_end``."""

    c_start: float
    c_end: float
    peak: float
    baseline: float = 1.0
    clock: str = "logsnr"
    schedule: Optional[str] = None
    kind: str = field(default="ramp", init=False)

    def __post_init__(self):
        for k in ("c_start", "c_end", "peak"):
            object.__setattr__(self, k, check_finite(k, getattr(self, k)))
        object.__setattr__(self, "baseline", _baseline(self.baseline))
        if self.clock not in CLOCKS:
            raise ValueError(f"clock: expected one of {', '.join(CLOCKS)}, got {self.clock!r}")
        if self.clock == "t" and self.schedule is None:
            raise ValueError("schedule: the clock 't' needs the noise schedule")
        if self.c_start == self.c_end:
            raise ValueError(f"c_start, c_end: expected two different clock values, got {self.c_start}")

    def _clock(self, lam: torch.Tensor) -> torch.Tensor:
        if self.clock == "logsnr":
            return lam
        return 1.0 - get_schedule(self.schedule).t_of_logsnr(lam).to(torch.float64)

    def weight(self, lam):
        r = ((self._clock(lam) - self.c_start) / (self.c_end - self.c_start)).clamp(0.0, 1.0)
        return (self.baseline + (self.peak - self.baseline) * r).to(torch.float64)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "c_start": self.c_start, "c_end": self.c_end, "peak": self.peak,
                "baseline": self.baseline, "clock": self.clock, "schedule": self.schedule}


def wang_linear(height: float, baseline: float, logsnr_range: tuple[float, float], clock: str = "t",
                schedule: Optional[str] = None) -> Ramp:
    """Wang et al.'s linear schedule over a sampling grid's logsnr range ``(lo, hi)``: ``baseline`` at its start,
    ``2 height - baseline`` at its end, mean ``height`` over the clock."""
    lo, hi = (float(v) for v in logsnr_range)
    if clock == "t":
        sch = get_schedule(schedule)
        lo, hi = (1.0 - float(sch.t_of_logsnr(torch.tensor(v, dtype=torch.float64))) for v in (lo, hi))
    return Ramp(lo, hi, 2.0 * float(height) - float(baseline), baseline, clock, schedule)


def interval_at(tc, height: float, baseline: float) -> Interval:
    """The guidance interval placed at our critical time ``tc`` (a :class:`~critdiff.times.TimeEstimate`, or a
    logsnr): Kynkaanniemi et al.'s interval (:func:`edm_interval`, ``sigma in (0.28, 5.42]``, logsnr width 5.93)
    translated in logsnr so that its centre sits at ``tc``."""
    c = centre_logsnr(tc)
    ref = edm_interval(height, baseline)
    half = 0.5 * (ref.hi - ref.lo)
    return Interval(c - half, c + half, height, baseline)

