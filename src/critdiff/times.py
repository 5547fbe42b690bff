"""One time of the diffusion, reported three ways (DESIGN.md section 1): ``t``, ``logsnr`` and ``sigma/a``.

``t`` is the schedule's own clock; ``logsnr = log(a^2 / sigma^2)`` is the schedule-independent clock (results
from different schedules compare in it); ``sigma/a = exp(-logsnr / 2)`` is the noise level of the denoiser frame.
:class:`Time` is the one type that carries the three together, is built from a schedule and any one of them,
formats itself with 4 significant digits and round-trips through JSON as ``{'t', 'logsnr', 'sigma_over_a'}``
(the keys every report reads). :func:`schedule_times` is its array form for a whole grid; :func:`logsnr_of`,
:func:`grid_logsnr` and :func:`centre_logsnr` convert a sigma, a sigma grid and a time given in any unit
(``t``, ``logsnr``, ``sigma``, a step index of the grid in use) to logsnr.

:class:`TimeEstimate` is the one type of an *estimated* time (a critical time ``t_c`` from any estimator: the
theory, a probe, the decision or commitment time, speciation, or given by the user): its :class:`Time`, its
interval as two :class:`Time` bounds (or None), the ``source`` that produced it and the estimator's ``extras``.
Every estimator returns one and every consumer (the pulse, window and interval builders, ``guide-config``,
the report) takes it as it is.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import numpy as np
import torch

from .errors import check_finite
from .fmt import num
from .io import to_jsonable
from .schedules import Schedule
from .schedules import get as get_schedule

KEYS = ("t", "logsnr", "sigma_over_a")
Unit = Literal["logsnr", "t", "sigma", "step"]
UNITS = ("logsnr", "t", "sigma", "step")


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


def _finite_pair(ci) -> Optional[tuple[float, float]]:
    """``(lo, hi)`` floats sorted, or None when ``ci`` is None or a bound is missing or not finite."""
    if ci is None:
        return None
    v = [None if x is None else float(x) for x in ci]
    if len(v) != 2 or any(x is None or not math.isfinite(x) for x in v):
        return None
    return (min(v), max(v))


@dataclass(frozen=True)
class TimeEstimate:
    """An estimated time of the diffusion (module docstring): ``time``, its ``interval`` ``(lo, hi)`` (two
    :class:`Time` s ordered by logsnr, or None when the estimator gives none), the ``source`` that produced it
    (``'given'``, ``'theory'``, ``'probe (branch growth, minimum)'``, ...) and JSON-able ``extras`` of the
    estimator (``method``, ``k_star``, ``logsnr_se``, ``n_boot``, ...).

    JSON: ``{'t', 'logsnr', 'sigma_over_a', 'source', 'interval': {'lo': time, 'hi': time} | None, 'extras'}``
    (:meth:`to_dict`, :meth:`from_dict`; a round trip gives an equal estimate)."""

    time: Time
    source: str
    interval: Optional[tuple[Time, Time]] = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.time, Time):
            raise TypeError(f"time: expected a critdiff.times.Time, got {type(self.time).__name__}")
        if not isinstance(self.source, str) or not self.source:
            raise ValueError(f"source: expected a non-empty string, got {self.source!r}")
        if self.interval is not None:
            lo, hi = self.interval
            if not (isinstance(lo, Time) and isinstance(hi, Time)) or lo.logsnr > hi.logsnr:
                raise ValueError("interval: expected (lo, hi) Times with lo.logsnr <= hi.logsnr")
            object.__setattr__(self, "interval", (lo, hi))
        if not isinstance(self.extras, dict):
            raise TypeError(f"extras: expected a dict, got {type(self.extras).__name__}")
        # stored as after a JSON round trip (arrays and tuples -> lists, non-finite -> None), so that
        # from_dict(to_dict()) gives an equal estimate
        object.__setattr__(self, "extras", json.loads(json.dumps(to_jsonable(self.extras))))

    @classmethod
    def at_logsnr(cls, schedule: "Schedule | str", logsnr: float, source: str, logsnr_ci=None,
                  **extras: Any) -> "TimeEstimate":
        """The estimate at ``logsnr`` of ``schedule`` with the interval ``logsnr_ci`` ``(lo, hi)`` in logsnr
        (None, or a non-finite bound: no interval); keyword ``extras`` are kept as they are."""
        pair = _finite_pair(logsnr_ci)
        interval = None if pair is None else tuple(Time.from_logsnr(schedule, v) for v in pair)
        return cls(Time.from_logsnr(schedule, logsnr), source, interval, extras)

    @property
    def t(self) -> float:
        return self.time.t

    @property
    def logsnr(self) -> float:
        return self.time.logsnr

    @property
    def sigma_over_a(self) -> float:
        return self.time.sigma_over_a

    @property
    def logsnr_ci(self) -> Optional[tuple[float, float]]:
        """The interval's bounds in logsnr, or None."""
        return None if self.interval is None else (self.interval[0].logsnr, self.interval[1].logsnr)

    def to_dict(self) -> dict:
        iv = None if self.interval is None else {"lo": self.interval[0].to_dict(), "hi": self.interval[1].to_dict()}
        return {**self.time.to_dict(), "source": self.source, "interval": iv, "extras": dict(self.extras)}

    @classmethod
    def from_dict(cls, d: dict) -> "TimeEstimate":
        if not isinstance(d, dict):
            raise TypeError(f"d: expected a JSON object of a time estimate, got {type(d).__name__}")
        iv = d.get("interval")
        interval = None if iv is None else (Time.from_dict(iv["lo"]), Time.from_dict(iv["hi"]))
        return cls(Time.from_dict(d), str(d.get("source")), interval, dict(d.get("extras") or {}))


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


# --- unit conversions: logsnr of a sigma, of a grid, of a time given in any unit ----------------------------
def logsnr_of(sigma) -> torch.Tensor:
    """``lambda = -2 log sigma`` as float64 (``sigma`` a float or tensor, > 0)."""
    s = sigma if isinstance(sigma, torch.Tensor) else torch.as_tensor(sigma, dtype=torch.float64)
    return -2.0 * torch.log(s.detach().to(torch.float64))


def grid_logsnr(sigmas) -> torch.Tensor:
    """logsnr of the positive grid points ``sigmas[:-1]`` (float64, ascending with the step index)."""
    s = torch.as_tensor(sigmas, dtype=torch.float64)
    if s.ndim != 1 or s.numel() < 2 or float(s[-1]) != 0.0 or bool((s[:-1] <= 0).any()):
        raise ValueError("sigmas: expected a 1-D grid of positive sigmas ending in 0")
    return logsnr_of(s[:-1])


def centre_logsnr(value, unit: Unit = "logsnr", *, schedule: "Schedule | str | None" = None,
                  sigmas=None) -> float:
    """A time (a pulse centre) converted to logsnr exactly.

    A :class:`~critdiff.times.Time` or :class:`~critdiff.times.TimeEstimate` (a critical time from any
    estimator) is its own logsnr, whatever ``unit``. ``unit='logsnr'``: as given; ``'sigma'``: ``-2 log sigma`` (denoiser frame, ``sigma / a``);
    ``'t'``: ``schedule.logsnr(t)`` (needs ``schedule``); ``'step'``: the logsnr of grid point
    ``sigmas[i]`` of the grid in use (an integer ``0 <= i < N``; needs ``sigmas``).
    """
    if unit not in UNITS:
        raise ValueError(f"unit: expected one of {', '.join(map(repr, UNITS))}, got {unit!r}")
    if isinstance(value, (Time, TimeEstimate)):
        return float(value.logsnr)
    if unit == "step":
        if sigmas is None:
            raise ValueError("sigmas: a centre given as a step index needs the sigma grid in use")
        if isinstance(value, bool) or not float(value).is_integer():
            raise TypeError(f"centre: a step index must be an integer, got {value!r}")
        lam = grid_logsnr(sigmas)
        i = int(value)
        if not 0 <= i < lam.numel():
            raise ValueError(f"centre: step index must lie in [0, {lam.numel() - 1}], got {i}")
        return float(lam[i])
    v = check_finite("centre", value)
    if unit == "logsnr":
        return v
    if unit == "sigma":
        if v <= 0:
            raise ValueError(f"centre: a sigma must be > 0, got {v}")
        return float(logsnr_of(v))
    if schedule is None:
        raise ValueError("schedule: a centre given as t needs the schedule")
    sch = get_schedule(schedule)
    return float(sch.logsnr(sch.check_t(v, "centre")))
