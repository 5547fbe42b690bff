"""Guidance schedules as small composable objects (DESIGN.md section 5).

A guidance schedule is a callable ``w(sigma [B]) -> [B]`` of the denoiser-frame noise level (per
sample), used by :class:`critdiff.guidance.Guided` as ``D_w = D_u + w (D_c - D_u)``, plus
``to_dict()`` (JSON metadata). Every schedule here works on the logsnr clock
``lambda = -2 log sigma`` (computed in float64), so pulses are placed the same way on any noise schedule.

Baseline convention. ``w = 0`` is the unconditional model, ``w = 1`` the conditional model,
``w > 1`` guided. A pulse or interval is ``w = baseline + (height - baseline) * profile(lambda)``
with ``profile`` in ``[0, 1]`` and ``profile = 1`` at the centre, so ``height`` is the peak guidance
weight and ``baseline`` the weight outside the pulse. ``baseline`` must be 0 or 1 (default 1, the
conditional model): there :class:`~critdiff.guidance.Guided` spends one network evaluation per
sample, so a pulse costs two evaluations only where it is on. ``Constant(height)`` is the constant
guidance "at equal height".

Budgets. ``budget()`` is the guidance excess ``integral (w - baseline) dlambda`` over the whole
logsnr axis in closed form; ``excess(lo, hi)`` the same integral over ``[lo, hi]``;
``grid_nfe(sigmas, evals)`` the network evaluations per sample a sampler spends on a sigma grid
(``evals='euler'``: one evaluation at each ``sigmas[i]``, i < N; ``'heun'``: plus one at
``sigmas[i+1]`` for every step not ending at 0).

Profiles (``profile='box' | 'gauss'``). ``width`` is the *equivalent width* in logsnr (area / peak): a box covers
``|lambda - centre| <= width / 2``; the Gaussian ``exp(-pi (lambda - centre)^2 / width^2)`` (standard
deviation ``width / sqrt(2 pi)``) has the same area, so a box and a Gaussian of equal ``height`` and
``width`` carry the same budget. The Gaussian is cut to exactly ``baseline`` beyond ``truncate``
standard deviations (default 3) so it, too, saves evaluations far from its centre.

A centre may be a float (one pulse for the whole batch) or a tensor ``[B]`` (one centre per sample,
e.g. :func:`random_centres`); :func:`centre_logsnr` converts a centre given as ``t``, ``logsnr``,
``sigma`` or a step index of the grid in use, exactly.

An adaptive pulse (:class:`AdaptivePulse`) has two parts with two names: the pulse object is the guidance
weight (``guidance=pulse``, ``pulse(sigma) -> w``) and its method ``pulse.observe`` is the sampler callback
that watches the indicator (``callback=[pulse.observe]``). The callback fires after the denoiser call
of step ``i`` (it sees ``x0_hat`` at ``sigmas[i]``), so the indicator at step ``i`` decides ``w`` for
every later evaluation (the next step, and the second Heun evaluation of step ``i`` at
``sigmas[i+1]``). No extra network call is made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Literal, Optional, Sequence, Union

import torch

from .errors import check_finite
from .schedules import Schedule, get as get_schedule
from .times import Time, TimeEstimate

Profile = Literal["box", "gauss"]
PROFILES = ("box", "gauss")
Unit = Literal["logsnr", "t", "sigma", "step"]
UNITS = ("logsnr", "t", "sigma", "step")
EDGE_TOL = 1e-6  # logsnr tolerance of box edges (float32 sigmas give logsnr to ~1e-7)

Centre = Union[float, torch.Tensor]


# --- helpers ---------------------------------------------------------------------------------
def _baseline(v) -> float:
    b = check_finite("baseline", v)
    if b not in (0.0, 1.0):
        raise ValueError(f"baseline: expected 0 (unconditional) or 1 (conditional), got {v!r}")
    return b


def logsnr_of(sigma) -> torch.Tensor:
    """``lambda = -2 log sigma`` as float64 (``sigma`` a float or tensor, > 0)."""
    s = sigma if isinstance(sigma, torch.Tensor) else torch.as_tensor(sigma, dtype=torch.float64)
    return -2.0 * torch.log(s.detach().to(torch.float64))


def _per_sample(sigma) -> torch.Tensor:
    """logsnr per sample on the CPU (schedules keep their per-sample state there; :func:`_out` moves ``w`` back)."""
    lam = logsnr_of(sigma).cpu()
    return lam.reshape(1) if lam.ndim == 0 else lam.reshape(-1)


def _out(w: torch.Tensor, sigma) -> torch.Tensor:
    dev = sigma.device if isinstance(sigma, torch.Tensor) else "cpu"
    return w.to(device=dev)


def grid_logsnr(sigmas) -> torch.Tensor:
    """logsnr of the positive grid points ``sigmas[:-1]`` (float64, ascending with the step index)."""
    s = torch.as_tensor(sigmas, dtype=torch.float64)
    if s.ndim != 1 or s.numel() < 2 or float(s[-1]) != 0.0 or bool((s[:-1] <= 0).any()):
        raise ValueError("sigmas: expected a 1-D grid of positive sigmas ending in 0")
    return logsnr_of(s[:-1])


def centre_logsnr(value, unit: Unit = "logsnr", *, schedule: "Schedule | str | None" = None,
                  sigmas=None) -> float:
    """A pulse centre converted to logsnr exactly.

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


def random_centres(n: int, lo: float, hi: float, seed: int = 0) -> torch.Tensor:
    """``n`` centres uniform in logsnr on ``[lo, hi]`` from a generator seeded with ``seed`` (float64 ``[n]``).

    Sample ``j`` always gets the ``j``-th draw, so a centre does not depend on the batch it ran in.
    """
    lo, hi = check_finite("lo", lo), check_finite("hi", hi)
    if not lo <= hi:
        raise ValueError(f"lo, hi: expected lo <= hi, got {lo}, {hi}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n!r}")
    g = torch.Generator().manual_seed(int(seed))
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)


def _evaluation_sigmas(sigmas, evals: str) -> torch.Tensor:
    s = torch.as_tensor(sigmas, dtype=torch.float64)
    grid_logsnr(s)  # validates
    if evals == "euler":
        return s[:-1]
    if evals == "heun":
        return torch.cat([s[:-1], s[1:-1]])
    raise ValueError(f"evals: expected 'euler' (one evaluation per step) or 'heun', got {evals!r}")


# --- schedules -------------------------------------------------------------------------------
class GuidanceSchedule:
    """Base class: subclasses define ``weight(lambda [B]) -> [B]`` (float64) and ``to_dict``."""

    kind: str = ""

    def weight(self, lam: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, sigma) -> torch.Tensor:
        """``w`` per sample: ``sigma`` a float or ``[B]`` tensor -> float64 ``[B]`` (``[1]`` for a scalar)."""
        return _out(self.weight(_per_sample(sigma)), sigma)

    def to_dict(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def grid_nfe(self, sigmas, evals: str = "euler", batch: Optional[int] = None) -> torch.Tensor:
        """Network evaluations per sample on a grid, as :class:`~critdiff.guidance.Guided` spends them.

        One evaluation where ``w`` is exactly 0 or 1, two elsewhere. Returns float64 ``[B]`` (``B`` =
        ``batch``, or the number of per-sample centres, or 1).
        """
        sig = _evaluation_sigmas(sigmas, evals)
        B = batch or getattr(self, "batch", None) or 1
        total = torch.zeros(B, dtype=torch.float64)
        for s in sig.tolist():
            w = self.weight(torch.full((B,), -2.0 * math.log(s), dtype=torch.float64))
            total += torch.where((w == 0) | (w == 1), 1.0, 2.0)
        return total



@dataclass(frozen=True)
class Constant(GuidanceSchedule):
    """``w(sigma) = height`` everywhere (``height = 0``: unconditional, ``1``: conditional)."""

    height: float
    kind: str = field(default="constant", init=False)

    def __post_init__(self):
        object.__setattr__(self, "height", check_finite("height", self.height))

    def weight(self, lam):
        return torch.full_like(lam, self.height)

    def excess(self, lo: float, hi: float, baseline: float = 1.0) -> float:
        """``integral_lo^hi (w - baseline) dlambda``."""
        return (self.height - baseline) * (hi - lo)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "height": self.height}


def none(baseline: float = 1.0) -> Constant:
    """No guidance: the constant ``baseline`` (1: the conditional model, 0: the unconditional one)."""
    return Constant(_baseline(baseline))


@dataclass(frozen=True)
class Interval(GuidanceSchedule):
    """``w = height`` for ``lo <= lambda <= hi`` (logsnr), ``baseline`` elsewhere.

    Guidance in a limited interval (Kynkaanniemi et al. 2024); :func:`edm_interval` gives theirs.
    """

    lo: float
    hi: float
    height: float
    baseline: float = 1.0
    kind: str = field(default="interval", init=False)

    def __post_init__(self):
        lo, hi = check_finite("lo", self.lo), check_finite("hi", self.hi)
        if not lo < hi:
            raise ValueError(f"lo, hi: expected lo < hi (logsnr), got {lo}, {hi}")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)
        object.__setattr__(self, "height", check_finite("height", self.height))
        object.__setattr__(self, "baseline", _baseline(self.baseline))

    def weight(self, lam):
        on = (lam >= self.lo - EDGE_TOL) & (lam <= self.hi + EDGE_TOL)
        return torch.where(on, self.height, self.baseline).to(torch.float64)

    def budget(self) -> float:
        return (self.height - self.baseline) * (self.hi - self.lo)

    def excess(self, lo: float, hi: float) -> float:
        return (self.height - self.baseline) * max(0.0, min(hi, self.hi) - max(lo, self.lo))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "lo": self.lo, "hi": self.hi, "height": self.height, "baseline": self.baseline}


def edm_interval(height: float, baseline: float = 1.0) -> Interval:
    """The interval of Kynkaanniemi et al. 2024 for EDM2: ``sigma in (0.28, 5.42]`` as logsnr."""
    return Interval(-2 * math.log(5.42), -2 * math.log(0.28), height, baseline)


@dataclass(frozen=True)
class Pulse(GuidanceSchedule):
    """``w = baseline + (height - baseline) envelope(lambda - centre)``, a box or Gaussian ``profile`` in logsnr.

    ``centre``: logsnr, a float or a float64 tensor ``[B]`` (one per sample, e.g. random centres);
    ``width``: equivalent width in logsnr (see the module docstring); ``truncate``: the Gaussian is
    exactly ``baseline`` beyond this many standard deviations (``None``: never).
    """

    centre: Centre
    width: float
    height: float
    baseline: float = 1.0
    profile: Profile = "box"
    truncate: Optional[float] = 3.0
    kind: str = field(default="pulse", init=False)

    def __post_init__(self):
        if isinstance(self.centre, torch.Tensor):
            c = self.centre.detach().to("cpu", torch.float64).reshape(-1)
            if not bool(torch.isfinite(c).all()):
                raise ValueError("centre: contains non-finite values")
            object.__setattr__(self, "centre", c)
        else:
            object.__setattr__(self, "centre", check_finite("centre", self.centre))
        w = check_finite("width", self.width)
        if w <= 0:
            raise ValueError(f"width: expected a logsnr width > 0, got {self.width!r}")
        object.__setattr__(self, "width", w)
        object.__setattr__(self, "height", check_finite("height", self.height))
        object.__setattr__(self, "baseline", _baseline(self.baseline))
        if self.profile not in PROFILES:
            raise ValueError(f"profile: expected one of {', '.join(map(repr, PROFILES))}, got {self.profile!r}")
        if self.truncate is not None and not check_finite("truncate", self.truncate) > 0:
            raise ValueError(f"truncate: expected a number > 0 or None, got {self.truncate!r}")

    @classmethod
    def at(cls, centre, unit: Unit = "logsnr", *, schedule=None, sigmas=None, **kwargs) -> "Pulse":
        """A pulse whose centre is given as ``t``, ``logsnr``, ``sigma`` or a step index (see :func:`centre_logsnr`)."""
        return cls(centre_logsnr(centre, unit, schedule=schedule, sigmas=sigmas), **kwargs)

    @property
    def batch(self) -> Optional[int]:
        return self.centre.numel() if isinstance(self.centre, torch.Tensor) else None

    @property
    def std(self) -> float:
        """Standard deviation of the Gaussian profile, ``width / sqrt(2 pi)``."""
        return self.width / math.sqrt(2 * math.pi)

    def envelope(self, d: torch.Tensor) -> torch.Tensor:
        """The profile at ``d = lambda - centre``, in ``[0, 1]`` (1 at the centre)."""
        if self.profile == "box":
            return (d.abs() <= 0.5 * self.width + EDGE_TOL).to(torch.float64)
        p = torch.exp(-math.pi * (d / self.width) ** 2)
        if self.truncate is not None:
            p = torch.where(d.abs() > self.truncate * self.std, torch.zeros_like(p), p)
        return p

    def weight(self, lam):
        c = self.centre
        if isinstance(c, torch.Tensor):
            if lam.numel() == 1:
                lam = lam.expand(c.numel())
            elif lam.numel() != c.numel():
                raise ValueError(f"sigma: this pulse has {c.numel()} per-sample centres, got a batch of {lam.numel()}")
            c = c.to(lam.device)
        return self.baseline + (self.height - self.baseline) * self.envelope(lam - c)

    def budget(self) -> float:
        """Closed-form ``integral (w - baseline) dlambda`` over the whole axis (per sample)."""
        amp = self.height - self.baseline
        if self.profile == "box" or self.truncate is None:
            return amp * self.width
        return amp * self.width * math.erf(self.truncate / math.sqrt(2))

    def excess(self, lo: float, hi: float) -> torch.Tensor:
        """Closed-form ``integral_lo^hi (w - baseline) dlambda`` per sample (float64 ``[B]`` or ``[1]``)."""
        c = self.centre if isinstance(self.centre, torch.Tensor) else torch.tensor([self.centre], dtype=torch.float64)
        amp = self.height - self.baseline
        if self.profile == "box":
            a, b = c - 0.5 * self.width, c + 0.5 * self.width
            return amp * (torch.minimum(b, torch.tensor(hi)) - torch.maximum(a, torch.tensor(lo))).clamp_min(0)
        cut = math.inf if self.truncate is None else self.truncate * self.std
        a = torch.maximum(c - cut, torch.tensor(lo, dtype=torch.float64))
        b = torch.minimum(c + cut, torch.tensor(hi, dtype=torch.float64))
        z = lambda v: torch.erf((v - c) / (self.std * math.sqrt(2)))  # noqa: E731
        return (amp * self.width * 0.5 * (z(b) - z(a))).clamp_min(0) * (b > a)

    def subset(self, index: torch.Tensor) -> "Pulse":
        """The same pulse for the samples ``index`` (per-sample centres are sliced)."""
        if not isinstance(self.centre, torch.Tensor):
            return self
        return Pulse(self.centre[index], self.width, self.height, self.baseline, self.profile, self.truncate)

    def to_dict(self) -> dict:
        c = self.centre.tolist() if isinstance(self.centre, torch.Tensor) else self.centre
        return {"kind": self.kind, "centre_logsnr": c, "width": self.width, "height": self.height,
                "baseline": self.baseline, "profile": self.profile, "truncate": self.truncate}


def random_pulse(template: Pulse, n: int, lo: float, hi: float, seed: int = 0) -> Pulse:
    """The control: ``template`` with per-sample centres uniform in logsnr on ``[lo, hi]`` (seeded).

    Pass ``lo, hi`` = the grid's logsnr range shrunk by half the width, so every pulse lies inside it.
    """
    return Pulse(random_centres(n, lo, hi, seed), template.width, template.height, template.baseline,
                 template.profile, template.truncate)


# --- adaptive --------------------------------------------------------------------------------
Indicator = Callable[["_IndicatorState", object], torch.Tensor]


@dataclass
class _IndicatorState:
    prev_x0: Optional[torch.Tensor] = None
    prev_logsnr: Optional[float] = None


def _rms(v: torch.Tensor) -> torch.Tensor:
    return v.detach().to(torch.float64).flatten(1).pow(2).mean(1).sqrt()


def x0_rate(state: _IndicatorState, step) -> torch.Tensor:
    """Rate of change of the denoiser output per unit logsnr: ``RMS(x0_hat_i - x0_hat_{i-1}) / dlambda``.

    NaN at the first step (no previous output). In data units per logsnr unit.
    """
    lam = -2.0 * math.log(step.sigma)
    x0 = step.x0_hat.detach()
    if state.prev_x0 is None or state.prev_x0.shape != x0.shape:
        out = torch.full((x0.shape[0],), float("nan"), dtype=torch.float64)
    else:
        out = (_rms(x0 - state.prev_x0) / max(lam - state.prev_logsnr, 1e-12)).cpu()
    state.prev_x0, state.prev_logsnr = x0.clone(), lam
    return out


def x0_contrast(state: _IndicatorState, step) -> torch.Tensor:
    """Spatial contrast of the denoiser output: the pixel standard deviation of ``x0_hat`` per sample.

    It grows from ~0 (the mean image) to the data's contrast as structure is committed.
    """
    x0 = step.x0_hat.detach().to(torch.float64).flatten(1)
    return x0.std(1, unbiased=False).cpu()


INDICATORS: dict[str, Indicator] = {"x0-rate": x0_rate, "x0-contrast": x0_contrast}


class AdaptivePulse(GuidanceSchedule):
    """A pulse that fires, per sample, when an online indicator first reaches ``threshold``.

    The object is the guidance weight (``guidance=pulse``); its bound method :meth:`observe` is the sampler
    callback (``callback=[pulse.observe]``). At each step's callback
    the indicator (``'x0-rate'`` or ``'x0-contrast'``, or any function ``(state, Step) -> [B]``) is
    computed from the :class:`~critdiff.samplers.Step` record, without network calls. A sample whose
    indicator reaches ``threshold`` at the step with logsnr ``lambda_f`` (and that has not fired yet)
    gets the template's profile with its *onset* at ``lambda_f``: centre ``lambda_f + lead``, where
    ``lead`` defaults to half the width for a box (the box then runs from ``lambda_f`` to
    ``lambda_f + width``) and to ``truncate`` standard deviations for a Gaussian. Because the callback
    of step ``i`` runs after that step's denoiser call, the pulse first acts on the evaluations after
    it. ``threshold=inf`` never fires (an observer that only records ``history``). A sample that never fires keeps ``baseline`` (and its NFE). ``fired`` holds the firing logsnr
    per sample (NaN: not fired); call :meth:`reset` (or use a new object) for a new batch.
    """

    kind = "adaptive"

    def __init__(self, template: Pulse, threshold: float, indicator: "str | Indicator" = "x0-rate",
                 lead: Optional[float] = None, min_logsnr: float = -math.inf):
        if not isinstance(template, Pulse):
            raise TypeError(f"template: expected a Pulse, got {type(template).__name__}")
        self.template = template
        try:
            self.threshold = float(threshold)
        except (TypeError, ValueError):
            raise TypeError(f"threshold: expected a number, got {threshold!r}") from None
        if math.isnan(self.threshold):
            raise ValueError("threshold: expected a number (inf: never fire), got nan")
        if isinstance(indicator, str):
            if indicator not in INDICATORS:
                raise ValueError(f"indicator: expected one of {', '.join(map(repr, INDICATORS))} or a function, got {indicator!r}")
            self.indicator_name, self.indicator = indicator, INDICATORS[indicator]
        elif callable(indicator):
            self.indicator_name, self.indicator = getattr(indicator, "__name__", "custom"), indicator
        else:
            raise TypeError(f"indicator: expected a name or a function, got {type(indicator).__name__}")
        if lead is None:
            lead = 0.5 * template.width if template.profile == "box" else (template.truncate or 3.0) * template.std
        self.lead = check_finite("lead", lead)
        self.min_logsnr = float(min_logsnr)
        self.reset()

    def reset(self) -> None:
        self.fired: Optional[torch.Tensor] = None
        self.history: list[torch.Tensor] = []
        self.logsnrs: list[float] = []
        self._state = _IndicatorState()

    @property
    def batch(self) -> Optional[int]:
        return None if self.fired is None else self.fired.numel()

    # the observer (sampler callback): pulse.observe ------------------------------------------
    def observe(self, step) -> None:
        """The sampler callback: update the indicator and the firing state from a :class:`Step` record.

        Pass ``callback=[pulse.observe]``; the pulse itself (``pulse(sigma)``) is the guidance weight.
        """
        B = step.x0_hat.shape[0]
        if self.fired is None or self.fired.numel() != B:
            self.fired = torch.full((B,), float("nan"), dtype=torch.float64)
        value = torch.as_tensor(self.indicator(self._state, step), dtype=torch.float64).reshape(B).cpu()
        lam = -2.0 * math.log(step.sigma)
        self.history.append(value)
        self.logsnrs.append(lam)
        if lam >= self.min_logsnr:
            new = torch.isnan(self.fired) & (value >= self.threshold)
            self.fired[new] = lam

    # the guidance weight: pulse(sigma) ------------------------------------------------------
    def weight(self, lam):
        t = self.template
        if self.fired is None:
            return torch.full_like(lam, t.baseline)
        B = self.fired.numel()
        if lam.numel() == 1:
            lam = lam.expand(B)
        elif lam.numel() != B:
            raise ValueError(f"sigma: the adaptive pulse tracks {B} samples, got a batch of {lam.numel()}")
        fired = ~torch.isnan(self.fired)
        d = lam - torch.where(fired, self.fired + self.lead, torch.zeros_like(self.fired))
        w = t.baseline + (t.height - t.baseline) * t.envelope(d)
        return torch.where(fired, w, torch.full_like(w, t.baseline))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "template": self.template.to_dict(), "threshold": self.threshold,
                "indicator": self.indicator_name, "lead": self.lead, "min_logsnr": self.min_logsnr,
                "fired_logsnr": None if self.fired is None else self.fired.tolist()}


def from_dict(d: dict) -> GuidanceSchedule:
    """Rebuild a (non-adaptive) schedule from :meth:`to_dict`."""
    kind = d.get("kind")
    if kind == "constant":
        return Constant(d["height"])
    if kind == "interval":
        return Interval(d["lo"], d["hi"], d["height"], d["baseline"])
    if kind == "pulse":
        c = d["centre_logsnr"]
        c = torch.tensor(c, dtype=torch.float64) if isinstance(c, Sequence) else c
        return Pulse(c, d["width"], d["height"], d["baseline"], d["profile"], d["truncate"])
    raise ValueError(f"d: cannot rebuild a guidance schedule of kind {kind!r}")


__all__ = ["GuidanceSchedule", "Constant", "Interval", "Pulse", "AdaptivePulse", "none", "edm_interval",
           "random_pulse", "random_centres", "centre_logsnr", "grid_logsnr", "logsnr_of", "x0_rate", "x0_contrast",
           "INDICATORS", "from_dict"]
