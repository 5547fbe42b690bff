"""One time of the diffusion, reported three ways (DESIGN.md section 1): ``t``, ``logsnr`` and ``sigma/a``.

``t`` is the schedule's own clock; ``logsnr = log(a^2 / sigma^2)`` is the schedule-independent clock (results
from different schedules compare in it); ``sigma/a = exp(-logsnr / 2)`` is the noise level of the denoiser frame.
:class:`Time` is the one type that carries the three together, is built from a schedule and any one of them,
formats itself with 4 significant digits and round-trips through JSON as ``{'t', 'logsnr', 'sigma_over_a'}``
(the keys every report reads). :func:`schedule_times` is its array form for a whole grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .fmt import num
from .schedules import Schedule
from .schedules import get as get_schedule

KEYS = ("t", "logsnr", "sigma_over_a")


def _t_of_logsnr(sch: Schedule, logsnr: float) -> float:
    """``t`` of one logsnr; a value outside ``[t_min, t_max]`` by rounding only (1e-9 of the range) is clipped."""
    t = float(sch.t_of_logsnr(torch.tensor(float(logsnr), dtype=torch.float64)))
    tol = 1e-9 * (sch.t_max - sch.t_min)
    if sch.t_min - tol <= t < sch.t_min:
        return float(sch.t_min)
    if sch.t_max < t <= sch.t_max + tol:
        return float(sch.t_max)
    return t


@dataclass(frozen=True)
class Time:
    """A time as ``t`` (of a schedule), ``logsnr`` and ``sigma_over_a`` (denoiser-frame noise level)."""

    t: float
    logsnr: float
    sigma_over_a: float

    @classmethod
    def from_logsnr(cls, schedule: "Schedule | str", logsnr: float) -> "Time":
        lam = float(logsnr)
        if not math.isfinite(lam):
            raise ValueError(f"logsnr: expected a finite value, got {logsnr}")
        return cls(_t_of_logsnr(get_schedule(schedule), lam), lam, math.exp(-0.5 * lam))

    @classmethod
    def from_t(cls, schedule: "Schedule | str", t: float) -> "Time":
        sch = get_schedule(schedule)
        tt = sch.check_t(torch.tensor(float(t), dtype=torch.float64))
        return cls(float(tt), float(sch.logsnr(tt)), float(sch.sigma_over_a(tt)))

    @classmethod
    def from_sigma_over_a(cls, schedule: "Schedule | str", sigma_over_a: float) -> "Time":
        s = float(sigma_over_a)
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"sigma_over_a: expected a finite value > 0, got {sigma_over_a}")
        return cls.from_logsnr(schedule, -2.0 * math.log(s))

    @classmethod
    def maybe(cls, schedule: "Schedule | str", logsnr: Optional[float]) -> Optional["Time"]:
        """:meth:`from_logsnr`, or None when ``logsnr`` is None or not finite (no estimate)."""
        if logsnr is None or not math.isfinite(float(logsnr)):
            return None
        return cls.from_logsnr(schedule, logsnr)

    def format(self) -> str:
        """``'t = 0.4493, logsnr = -0.3681, sigma/a = 1.202'`` (4 significant digits, :func:`critdiff.fmt.num`)."""
        return f"t = {num(self.t)}, logsnr = {num(self.logsnr)}, sigma/a = {num(self.sigma_over_a)}"

    def to_dict(self) -> dict:
        return {"t": self.t, "logsnr": self.logsnr, "sigma_over_a": self.sigma_over_a}

    @classmethod
    def from_dict(cls, d: dict) -> "Time":
        missing = [k for k in KEYS if d.get(k) is None]
        if missing:
            raise ValueError(f"d: a time needs the keys {', '.join(KEYS)}; missing or null: {', '.join(missing)}")
        return cls(float(d["t"]), float(d["logsnr"]), float(d["sigma_over_a"]))


def time_dict(schedule: "Schedule | str", logsnr: Optional[float]) -> dict:
    """``Time.from_logsnr(...).to_dict()``, or the same keys with ``None`` when there is no (finite) estimate."""
    tm = Time.maybe(schedule, logsnr)
    return dict.fromkeys(KEYS) if tm is None else tm.to_dict()


def schedule_times(schedule: "Schedule | str", sigma) -> dict[str, np.ndarray]:
    """``{'t', 'logsnr', 'sigma_over_a'}`` float64 arrays of denoiser-frame ``sigma`` (any shape) under ``schedule``."""
    sch = get_schedule(schedule)
    s = torch.as_tensor(np.asarray(sigma, dtype=np.float64))
    lam = -2.0 * torch.log(s)
    return {"t": sch.t_of_logsnr(lam).numpy(), "logsnr": lam.numpy(), "sigma_over_a": s.numpy()}


def interval_times(schedule: "Schedule | str", logsnr: float, logsnr_ci) -> dict:
    """An estimate and its interval as ``{'estimate': {t, logsnr, sigma_over_a}, 'ci': {t: [lo, hi], ...}}``."""
    lam = np.array([logsnr, *logsnr_ci], dtype=np.float64)
    tt = schedule_times(schedule, np.exp(-0.5 * lam))
    return {"estimate": {k: float(v[0]) for k, v in tt.items()}, "ci": {k: v[1:].tolist() for k, v in tt.items()}}
