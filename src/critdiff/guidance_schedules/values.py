"""Guidance schedules whose value is a function of the noise level: constant, interval, pulse (box or Gaussian,
one centre or one per sample) and their JSON form (see :mod:`critdiff.guidance_schedules`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Optional, Sequence, Union

import torch

from ..errors import check_finite
from ..times import Unit, centre_logsnr, logsnr_of
from .nfe import grid_nfe

Profile = Literal["box", "gauss"]
PROFILES = ("box", "gauss")
EDGE_TOL = 1e-6  # logsnr tolerance of box edges (float32 sigmas give logsnr to ~1e-7)

Centre = Union[float, torch.Tensor]


# --- helpers ---------------------------------------------------------------------------------
def _baseline(v) -> float:
    b = check_finite("baseline", v)
    if b not in (0.0, 1.0):
        raise ValueError(f"baseline: expected 0 (unconditional) or 1 (conditional), got {v!r}")
    return b


def _per_sample(sigma) -> torch.Tensor:
    """logsnr per sample on the CPU (schedules keep their per-sample state there; :func:`_out` moves ``w`` back)."""
    lam = logsnr_of(sigma).cpu()
    return lam.reshape(1) if lam.ndim == 0 else lam.reshape(-1)


def _out(w: torch.Tensor, sigma) -> torch.Tensor:
    dev = sigma.device if isinstance(sigma, torch.Tensor) else "cpu"
    return w.to(device=dev)


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
        """Network evaluations per sample on a grid (:func:`.nfe.grid_nfe`)."""
        return grid_nfe(self, sigmas, evals, batch)


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
