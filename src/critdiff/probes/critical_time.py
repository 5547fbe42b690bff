"""Critical-time estimators from the probe signals, with bootstrap intervals (DESIGN.md section 4).

Every signal is a curve over recorded times (``logsnr`` ascending = the sampling direction) computed from the
ensemble; the estimator locates a feature of the curve, interpolating between recorded times in logsnr:

- stiffness of the slowest mode, ``kappa_min(t) = min_k mean_b kappa_b(k, t)``: its first zero crossing
  (linear interpolation; ``method='zero-crossing'``), or its minimum if it never crosses (``'minimum'``);
- correlation length (``xi_zero`` or ``xi_peak`` of the states, or the Ornstein-Zernike ``xi``) and susceptibility ``chi``: the
  peak (``'peak'``; vertex of the parabola through the largest recorded value and its two neighbours).

Intervals: resample the ``B`` samples with replacement, recompute the curve and its feature (:mod:`.bootstrap`),
take the percentile interval; replicates where the feature does not exist (no crossing) are dropped and
counted. :func:`combine` merges signals: the inverse-variance weighted mean in logsnr (variance = bootstrap
variance), with an interval spanning both the statistical interval (``+- z / sqrt(sum w)``) and the spread of the
individual estimates. Every time is reported as logsnr and denoiser-frame sigma, and through
:meth:`CriticalTime.times` as ``t``, ``logsnr``, ``sigma/a`` of a schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Optional, Sequence

import numpy as np
import torch

from ..errors import check_choice
from ..schedules import Schedule
from ..io import to_jsonable
from .bootstrap import percentile_ci, replicates
from .correlations import ornstein_zernike, periodograms, xi_peak, xi_zero
from ..times import TimeEstimate
from .trajectory import Trajectory

Locate = Literal["crossing", "crossing-or-min", "min", "max"]

EDGE_RTOL = 1e-9
"""The edge rule's one tolerance: an estimate within ``EDGE_RTOL * max(1, span)`` (``span`` = the recorded
logsnr range) of the first or last recorded time sits on the edge of the grid (:func:`at_grid_edge`)."""


def zero_crossing(logsnr: np.ndarray, curve: np.ndarray) -> Optional[float]:
    """First logsnr (ascending) where ``curve`` goes from > 0 to <= 0, linearly interpolated; None if never."""
    for j in range(len(curve) - 1):
        a, b = curve[j], curve[j + 1]
        if a > 0 >= b:
            return float(logsnr[j] + (logsnr[j + 1] - logsnr[j]) * a / (a - b))
    return None


def extremum(logsnr: np.ndarray, curve: np.ndarray, kind: Literal["min", "max"]) -> tuple[float, bool]:
    """``(logsnr of the extremum, interior?)``: parabolic vertex through the extreme point and its neighbours."""
    c = np.asarray(curve, dtype=np.float64)
    if not np.isfinite(c).any():
        return math.nan, False
    c = np.where(np.isfinite(c), c, -np.inf if kind == "max" else np.inf)
    j = int(np.argmax(c) if kind == "max" else np.argmin(c))
    if j == 0 or j == len(c) - 1 or not np.isfinite(c[j - 1:j + 2]).all():
        return float(logsnr[j]), False
    x0, x1, x2 = logsnr[j - 1:j + 2]
    y0, y1, y2 = c[j - 1:j + 2]
    den = (x0 - x1) * (x0 - x2) * (x1 - x2)
    A = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / den
    Bc = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / den
    if A == 0:
        return float(x1), True
    return float(np.clip(-Bc / (2 * A), x0, x2)), True


def locate(logsnr: np.ndarray, curve: np.ndarray, how: Locate) -> tuple[float, str]:
    """``(logsnr, method)`` of the feature ``how`` of ``curve``; NaN when it does not exist."""
    if how in ("crossing", "crossing-or-min"):
        z = zero_crossing(logsnr, curve)
        if z is not None:
            return z, "zero-crossing"
        if how == "crossing":
            return math.nan, "zero-crossing"
        return extremum(logsnr, curve, "min")[0], "minimum"
    return extremum(logsnr, curve, how)[0], ("peak" if how == "max" else "minimum")


@dataclass(frozen=True)
class CriticalTime:
    """One estimate of ``t_c``: ``logsnr`` with ``logsnr_ci [2]`` and bootstrap ``logsnr_se``; ``sigma`` and
    ``sigma_ci`` (denoiser frame, ``sigma = exp(-logsnr/2)``); ``n_valid`` of ``n_boot`` replicates had the feature."""

    signal: str
    method: str
    logsnr: float
    logsnr_ci: np.ndarray
    logsnr_se: float
    sigma: float
    sigma_ci: np.ndarray
    n_boot: int
    n_valid: int

    def estimate(self, schedule: "Schedule | str") -> Optional[TimeEstimate]:
        """The estimate as a :class:`~critdiff.times.TimeEstimate` on ``schedule`` (source: the signal; extras:
        ``method``, ``logsnr_se``, ``n_boot``, ``n_valid``), or None when there is no finite estimate."""
        if not math.isfinite(self.logsnr):
            return None
        return TimeEstimate.at_logsnr(schedule, self.logsnr, self.signal, self.logsnr_ci, method=self.method,
                                      logsnr_se=self.logsnr_se, n_boot=self.n_boot, n_valid=self.n_valid)

    def to_dict(self, schedule: "Schedule | str | None" = None) -> dict:
        """JSON; with ``schedule``, ``estimate`` holds :meth:`estimate` on it (its times)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        if schedule is not None:
            d["estimate"] = self.estimate(schedule)
        return to_jsonable(d)


def at_grid_edge(estimate, logsnr_grid) -> bool:
    """The edge rule: an extremum at an end of the recorded grid is not an estimate.

    ``estimate`` has ``logsnr`` and ``method`` (a :class:`CriticalTime`, or the estimate of a linear-response
    probe); ``logsnr_grid``: the recorded times of its signal. True when the estimate is a minimum or peak (not a
    zero crossing) lying within :data:`EDGE_RTOL` of the first or last recorded logsnr: the curve was still
    falling (rising) there, so the true feature lies outside the grid. A non-finite estimate is not "at the
    edge" (it is no estimate at all; test ``math.isfinite`` for that).
    """
    lam = float(estimate.logsnr)
    if estimate.method == "zero-crossing" or not math.isfinite(lam):
        return False
    grid = np.asarray(logsnr_grid, dtype=np.float64)
    lo, hi = float(grid.min()), float(grid.max())
    tol = EDGE_RTOL * max(1.0, hi - lo)
    return min(abs(lam - lo), abs(lam - hi)) <= tol


def _make(signal, method, lam, reps, ci, n_boot) -> CriticalTime:
    ok = np.isfinite(reps)
    lci = percentile_ci(reps[ok], ci) if ok.sum() >= 2 else np.array([math.nan, math.nan])
    se = float(reps[ok].std(ddof=1)) if ok.sum() >= 2 else math.nan
    return CriticalTime(signal=signal, method=method, logsnr=float(lam), logsnr_ci=lci, logsnr_se=se,
                        sigma=math.exp(-0.5 * lam) if math.isfinite(lam) else math.nan,
                        sigma_ci=np.exp(-0.5 * lci[::-1]), n_boot=n_boot, n_valid=int(ok.sum()))


def estimate(signal: str, logsnr, curve_fn: Callable[[np.ndarray], np.ndarray], n: int, how: Locate, *,
             n_boot: int = 500, ci: float = 0.95, seed: int = 0) -> CriticalTime:
    """Generic estimator: ``curve_fn(idx [n]) -> curve [T]`` over ``logsnr [T]`` (ascending); feature ``how``."""
    check_choice("how", how, ("crossing", "crossing-or-min", "min", "max"))
    lam = np.asarray(logsnr, dtype=np.float64)
    if lam.ndim != 1 or lam.size < 2 or (np.diff(lam) <= 0).any():
        raise ValueError("logsnr: expected at least 2 strictly increasing recorded times")
    full, method = locate(lam, curve_fn(np.arange(n)), how)
    rule = "crossing" if (how == "crossing-or-min" and method == "zero-crossing") else how
    rule = "min" if (how == "crossing-or-min" and method == "minimum") else rule
    reps = replicates(lambda idx: locate(lam, curve_fn(idx), rule)[0], n, n_boot=n_boot, seed=seed)
    return _make(signal, method, full, reps, ci, n_boot)


def from_samples(signal: str, logsnr, samples: np.ndarray, how: Locate, **kw) -> CriticalTime:
    """Estimator on the ensemble-mean curve of per-sample values ``samples [T, B]``."""
    samples = np.asarray(samples, dtype=np.float64)
    return estimate(signal, logsnr, lambda idx: samples[:, idx].mean(1), samples.shape[1], how, **kw)


def _ascending(traj_sigma):
    return np.argsort(-np.asarray(traj_sigma))


def from_stiffness(traj: Trajectory, *, scale: Literal["none", "sigma2"] = "none", **kw) -> CriticalTime:
    """Zero crossing (or minimum) of the slowest mode's stiffness ``min_k mean_b kappa_b(k)``.

    ``scale='sigma2'`` locates the minimum of the dimensionless ``sigma^2 kappa = 1 - Re Jhat_D`` instead
    (same zero crossing).
    """
    if traj.kappa_state is None:
        raise ValueError("traj: recorded without the spectral probe (pass spectral={} to probe_trajectory)")
    check_choice("scale", scale, ("none", "sigma2"))
    o = _ascending(traj.sigma)
    ks = traj.kappa_state[o]  # [T, B, H, W]
    fac = (traj.sigma[o] ** 2 if scale == "sigma2" else np.ones(len(o))).reshape(-1, 1, 1)
    T, B = ks.shape[:2]
    fn = lambda idx: (ks[:, idx].mean(1) * fac).reshape(T, -1).min(1)  # noqa: E731
    return estimate("stiffness", traj.logsnr[o], fn, B, "crossing-or-min", **kw)


XI_OF_STATES = {"xi_zero": xi_zero, "xi_peak": xi_peak}


def from_xi(traj: Trajectory, *, which: Literal["xi_zero", "xi_peak", "oz"] = "xi_zero", **kw) -> CriticalTime:
    """Peak of a correlation length: ``xi_zero`` or ``xi_peak`` (:mod:`.correlations`) of the structure factor of
    the recorded states, or the Ornstein-Zernike ``xi`` of the stiffness (signal ``'xi_oz'``)."""
    check_choice("which", which, ("xi_zero", "xi_peak", "oz"))
    o = _ascending(traj.sigma)
    if which in XI_OF_STATES:
        if traj.states is None:
            raise ValueError(f"traj: recorded without states (keep_states=True is needed to resample {which})")
        st, xi = torch.from_numpy(traj.states[o]), XI_OF_STATES[which]
        fn = lambda idx: np.array([xi(periodograms(st[t, idx]).sum(1).mean(0)) for t in range(len(o))])  # noqa: E731
        return estimate(which, traj.logsnr[o], fn, st.shape[1], "max", **kw)
    if traj.kappa_state is None:
        raise ValueError("traj: recorded without the spectral probe")
    ks = traj.kappa_state[o]

    def fn(idx):
        out = []
        for t in range(len(o)):
            f = ornstein_zernike(ks[t, idx].mean(0))
            out.append(math.nan if f.xi is None else f.xi)
        return np.array(out)

    return estimate("xi_oz", traj.logsnr[o], fn, ks.shape[1], "max", **kw)


def from_chi(susc, **kw) -> CriticalTime:
    """Peak of the susceptibility ``chi`` (a :class:`~.susceptibility.Susceptibility`)."""
    o = _ascending(susc.sigma)
    return from_samples("chi", susc.logsnr[o], susc.chi[o], "max", **kw)


@dataclass(frozen=True)
class CombinedCriticalTime:
    """Inverse-variance weighted ``logsnr`` of the component estimates; ``logsnr_ci`` covers the statistical
    interval and the spread ``[min, max]`` of the components; ``sigma``/``sigma_ci`` likewise."""

    logsnr: float
    logsnr_ci: np.ndarray
    logsnr_se: float
    spread: np.ndarray
    sigma: float
    sigma_ci: np.ndarray
    components: tuple

    def estimate(self, schedule: "Schedule | str") -> Optional[TimeEstimate]:
        """The combined estimate as a :class:`~critdiff.times.TimeEstimate` on ``schedule`` (source
        ``'combined (signal, ...)'``; extras: ``logsnr_se``, ``spread``, ``components``), or None."""
        if not math.isfinite(self.logsnr):
            return None
        names = [c.signal for c in self.components]
        return TimeEstimate.at_logsnr(schedule, self.logsnr, f"combined ({', '.join(names)})", self.logsnr_ci,
                                      logsnr_se=self.logsnr_se, spread=self.spread, components=names)

    def to_dict(self, schedule: "Schedule | str | None" = None) -> dict:
        """JSON; with ``schedule``, ``estimate`` holds :meth:`estimate` on it (its times)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "components"}
        d["components"] = [c.to_dict(schedule) for c in self.components]
        if schedule is not None:
            d["estimate"] = self.estimate(schedule)
        return to_jsonable(d)


def combine(estimates: Sequence[CriticalTime], z: float = 1.959963984540054) -> CombinedCriticalTime:
    """Inverse-variance weighted combination in logsnr (module docstring); estimates without a finite
    time or variance are left out."""
    use = [e for e in estimates if math.isfinite(e.logsnr) and math.isfinite(e.logsnr_se) and e.logsnr_se > 0]
    if not use:
        raise ValueError("estimates: none has a finite time and bootstrap variance")
    lam = np.array([e.logsnr for e in use])
    w = 1.0 / np.array([e.logsnr_se for e in use]) ** 2
    mean = float((w * lam).sum() / w.sum())
    se = float(1.0 / math.sqrt(w.sum()))
    lo, hi = min(mean - z * se, float(lam.min())), max(mean + z * se, float(lam.max()))
    ci = np.array([lo, hi])
    return CombinedCriticalTime(logsnr=mean, logsnr_ci=ci, logsnr_se=se, spread=np.array([lam.min(), lam.max()]),
                                sigma=math.exp(-0.5 * mean), sigma_ci=np.exp(-0.5 * ci[::-1]), components=tuple(use))
