"""Noise schedules of the forward process and the sigma grids samplers consume.

Conventions (DESIGN.md section 1). The forward process is ``x_t = a(t) x0 + sigma_t(t) eps``
with ``t`` in ``[t_min, t_max]``. Symbols used throughout:

- ``a(t)``            signal scale; ``sigma(t)`` noise scale (``sigma_t``);
- ``snr = a^2 / sigma^2``, ``logsnr = log snr`` (the schedule-independent clock);
- ``sigma_over_a(t) = sigma / a = exp(-logsnr / 2)``: the noise level of the
  variance-exploding *denoiser frame* ``x = x_t / a = x0 + (sigma/a) n`` in which every
  denoiser and sampler works;
- SDE coefficients ``f = d log a / dt`` and ``g^2 = d sigma^2/dt - 2 f sigma^2``, so that the
  forward SDE ``dx_t = f x_t dt + g dW`` has the marginals above.

Schedules are frozen dataclasses of floats; every method takes a float or a tensor of times
and returns a float64 tensor. ``get(spec)`` builds one from a spec (``vp-linear``,
``vp-cosine:s=0.008``, ``ve:sigma_max=80``, ``edm``); ``sigma_grid`` builds the float64
grid of denoiser-frame sigmas (descending, ending in 0) that samplers consume.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import ClassVar, Literal

import torch

from .spec import parse_spec, take_kwargs

Spacing = Literal["t", "logsnr", "karras", "critical"]
SPACINGS = ("t", "logsnr", "karras", "critical")
CRITICAL_FLOOR = 0.5  # fraction of a 'critical' grid's density spread uniformly in logsnr (StepDensity)


def _f64(v) -> torch.Tensor:
    return torch.as_tensor(v, dtype=torch.float64).detach().cpu() if not isinstance(v, torch.Tensor) else v.to(torch.float64)


@dataclass(frozen=True)
class Schedule(ABC):
    """Base class: subclasses define ``a``, ``sigma``, ``logsnr``, ``t_of_logsnr``, ``f``, ``g2``."""

    name: ClassVar[str] = ""

    # --- to be defined by subclasses -------------------------------------------------------
    t_min: float
    t_max: float

    @abstractmethod
    def a(self, t) -> torch.Tensor: ...

    @abstractmethod
    def sigma(self, t) -> torch.Tensor: ...

    @abstractmethod
    def logsnr(self, t) -> torch.Tensor: ...

    @abstractmethod
    def t_of_logsnr(self, logsnr) -> torch.Tensor: ...

    @abstractmethod
    def f(self, t) -> torch.Tensor: ...

    @abstractmethod
    def g2(self, t) -> torch.Tensor: ...

    # --- option checks (called by each subclass's __post_init__) ----------------------------------
    def _check_options(self, positive: tuple = (), lower: float = 0.0) -> None:
        """Every option finite; those in ``positive`` > 0; ``lower <= t_min < t_max``. The message names the option."""
        for k, v in asdict(self).items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"schedule: {self.name} option {k} must be a finite number, got {v!r}")
        for k in positive:
            if not getattr(self, k) > 0:
                raise ValueError(f"schedule: {self.name} option {k} must be > 0, got {getattr(self, k)!r}")
        if not lower <= self.t_min < self.t_max:
            raise ValueError(f"schedule: {self.name} options t_min, t_max must satisfy {lower:g} <= t_min < t_max, "
                             f"got {self.t_min!r}, {self.t_max!r}")

    # --- derived ----------------------------------------------------------------------------
    def check_t(self, t, name: str = "t") -> torch.Tensor:
        """Return ``t`` as float64, raising if any value lies outside ``[t_min, t_max]``."""
        tt = _f64(t)
        if not bool(torch.isfinite(tt).all()):
            raise ValueError(f"{name}: contains non-finite values")
        tol = 1e-12 * max(1.0, abs(self.t_max))
        if bool((tt < self.t_min - tol).any()) or bool((tt > self.t_max + tol).any()):
            raise ValueError(
                f"{name}: outside the schedule {self.name!r} range [{self.t_min:g}, {self.t_max:g}] "
                f"(got min {float(tt.min()):g}, max {float(tt.max()):g})"
            )
        return tt

    def snr(self, t) -> torch.Tensor:
        return torch.exp(self.logsnr(t))

    def sigma_over_a(self, t) -> torch.Tensor:
        """Denoiser-frame noise level ``sigma / a = exp(-logsnr / 2)``."""
        return self.sigma(t) / self.a(t)

    def t_of_sigma(self, sigma) -> torch.Tensor:
        """Inverse of :meth:`sigma_over_a` (``sigma`` in the denoiser frame)."""
        s = _f64(sigma)
        if bool((s <= 0).any()) or not bool(torch.isfinite(s).all()):
            raise ValueError("sigma: expected finite values > 0")
        return self.t_of_logsnr(-2.0 * torch.log(s))

    @property
    def logsnr_min(self) -> float:
        return float(self.logsnr(self.t_max))

    @property
    def logsnr_max(self) -> float:
        return float(self.logsnr(self.t_min))

    @property
    def sigma_min(self) -> float:
        """Smallest denoiser-frame sigma of the schedule (at ``t_min``)."""
        return float(self.sigma_over_a(self.t_min))

    @property
    def sigma_max(self) -> float:
        """Largest denoiser-frame sigma of the schedule (at ``t_max``)."""
        return float(self.sigma_over_a(self.t_max))

    def config(self) -> dict:
        """JSON-able configuration; ``from_config(config())`` rebuilds the schedule."""
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class VPLinear(Schedule):
    """Variance-preserving SDE with linear ``beta(t) = beta_min + t (beta_max - beta_min)`` (Song et al. 2021).

    ``log a = -B(t)/2`` with ``B(t) = beta_min t + (beta_max - beta_min) t^2 / 2``; ``sigma^2 = 1 - a^2``;
    ``logsnr = -log(expm1(B))``; ``f = -beta/2``, ``g^2 = beta``.
    """

    name: ClassVar[str] = "vp-linear"
    t_min: float = 1e-3
    t_max: float = 1.0
    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self) -> None:
        self._check_options(positive=("t_min", "beta_min", "beta_max"))

    def beta(self, t) -> torch.Tensor:
        return self.beta_min + _f64(t) * (self.beta_max - self.beta_min)

    def _B(self, t) -> torch.Tensor:
        t = _f64(t)
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t

    def a(self, t):
        return torch.exp(-0.5 * self._B(t))

    def sigma(self, t):
        return torch.sqrt(-torch.expm1(-self._B(t)))

    def logsnr(self, t):
        return -torch.log(torch.expm1(self._B(t)))

    def t_of_logsnr(self, logsnr):
        B = torch.nn.functional.softplus(-_f64(logsnr))  # B = log(1 + e^-logsnr)
        d = self.beta_max - self.beta_min
        if d == 0:
            return B / self.beta_min
        # solve d/2 t^2 + beta_min t - B = 0 for t >= 0 (stable form of the root)
        return 2.0 * B / (self.beta_min + torch.sqrt(self.beta_min**2 + 2.0 * d * B))

    def f(self, t):
        return -0.5 * self.beta(t)

    def g2(self, t):
        return self.beta(t)


@dataclass(frozen=True)
class VPCosine(Schedule):
    """Variance-preserving cosine schedule (Nichol & Dhariwal 2021) in continuous time.

    ``abar(t) = cos^2(phi(t)) / cos^2(phi(0))``, ``phi(t) = (t + s)/(1 + s) * pi/2``; ``a = sqrt(abar)``,
    ``sigma^2 = 1 - abar``. ``abar(1) = 0``, so ``t_max`` defaults to 0.999 (logsnr about -12.9).
    ``f = d log a/dt = -phi' tan(phi)``, ``g^2 = -2 f`` (variance preserving).
    """

    name: ClassVar[str] = "vp-cosine"
    t_min: float = 1e-3
    t_max: float = 0.999
    s: float = 0.008

    def __post_init__(self) -> None:
        self._check_options(positive=("t_min", "s"))
        if not (0 < self.t_max < 1):
            raise ValueError(f"t_max: the cosine schedule needs 0 < t_max < 1 (abar(1) = 0), got {self.t_max}")

    def _phi(self, t):
        return (_f64(t) + self.s) / (1.0 + self.s) * (math.pi / 2)

    def abar(self, t):
        phi0 = self.s / (1.0 + self.s) * (math.pi / 2)
        return torch.cos(self._phi(t)) ** 2 / math.cos(phi0) ** 2

    def a(self, t):
        return torch.sqrt(self.abar(t))

    def sigma(self, t):
        return torch.sqrt(1.0 - self.abar(t))

    def logsnr(self, t):
        ab = self.abar(t)
        return torch.log(ab) - torch.log1p(-ab)

    def t_of_logsnr(self, logsnr):
        phi0 = self.s / (1.0 + self.s) * (math.pi / 2)
        ab = torch.sigmoid(_f64(logsnr))
        phi = torch.arccos(torch.sqrt(ab) * math.cos(phi0))
        return phi * (2.0 / math.pi) * (1.0 + self.s) - self.s

    def f(self, t):
        return -(math.pi / 2) / (1.0 + self.s) * torch.tan(self._phi(t))

    def g2(self, t):
        return -2.0 * self.f(t)


@dataclass(frozen=True)
class VE(Schedule):
    """Variance-exploding SDE (Song et al. 2021): ``a = 1``, ``sigma = sigma_min (sigma_max/sigma_min)^t``.

    ``f = 0``, ``g^2 = d sigma^2/dt = 2 sigma^2 log(sigma_max/sigma_min)``.
    """

    name: ClassVar[str] = "ve"
    t_min: float = 0.0
    t_max: float = 1.0
    sigma_lo: float = 0.01
    sigma_hi: float = 50.0

    def __post_init__(self) -> None:
        self._check_options(positive=("sigma_lo", "sigma_hi"))
        if not (0 < self.sigma_lo < self.sigma_hi):
            raise ValueError(f"sigma_lo, sigma_hi: expected 0 < sigma_lo < sigma_hi, got {self.sigma_lo}, {self.sigma_hi}")

    def a(self, t):
        return torch.ones_like(_f64(t))

    def sigma(self, t):
        return self.sigma_lo * (self.sigma_hi / self.sigma_lo) ** _f64(t)

    def logsnr(self, t):
        return -2.0 * torch.log(self.sigma(t))

    def t_of_logsnr(self, logsnr):
        return (-0.5 * _f64(logsnr) - math.log(self.sigma_lo)) / math.log(self.sigma_hi / self.sigma_lo)

    def f(self, t):
        return torch.zeros_like(_f64(t))

    def g2(self, t):
        return 2.0 * self.sigma(t) ** 2 * math.log(self.sigma_hi / self.sigma_lo)


@dataclass(frozen=True)
class EDM(Schedule):
    """EDM / Karras et al. 2022: ``a = 1``, ``sigma = t`` with ``t`` in ``[0.002, 80]``.

    ``f = 0``, ``g^2 = 2 t``. Its natural grid is ``sigma_grid(..., spacing='karras')`` (rho = 7).
    """

    name: ClassVar[str] = "edm"
    t_min: float = 0.002
    t_max: float = 80.0

    def __post_init__(self) -> None:
        self._check_options(positive=("t_min",))
        if not (0 < self.t_min < self.t_max):
            raise ValueError(f"t_min, t_max: expected 0 < t_min < t_max, got {self.t_min}, {self.t_max}")

    def a(self, t):
        return torch.ones_like(_f64(t))

    def sigma(self, t):
        return _f64(t).clone()

    def logsnr(self, t):
        return -2.0 * torch.log(_f64(t))

    def t_of_logsnr(self, logsnr):
        return torch.exp(-0.5 * _f64(logsnr))

    def f(self, t):
        return torch.zeros_like(_f64(t))

    def g2(self, t):
        return 2.0 * _f64(t)


SCHEDULES: dict[str, type[Schedule]] = {cls.name: cls for cls in (VPLinear, VPCosine, VE, EDM)}


def get(spec: "str | Schedule") -> Schedule:
    """Build a schedule from a spec: ``vp-linear``, ``vp-cosine``, ``ve``, ``edm``, with options as keys."""
    if isinstance(spec, Schedule):
        return spec
    s = parse_spec(spec, "schedule")
    if s.name not in SCHEDULES:
        raise ValueError(f"schedule: unknown schedule {s.name!r}; expected one of {', '.join(SCHEDULES)}")
    if s.args:
        raise ValueError(f"schedule: options must be key=value, got {spec!r}")
    cls = SCHEDULES[s.name]
    if cls is VE:  # user-facing names for the VE noise range
        for user, field_ in (("sigma_min", "sigma_lo"), ("sigma_max", "sigma_hi")):
            if user in s.kwargs:
                s.kwargs[field_] = s.kwargs.pop(user)
    defaults = {k: v for k, v in asdict(cls()).items()}
    kwargs = take_kwargs(s, defaults, "schedule")
    try:
        kwargs = {k: float(v) for k, v in kwargs.items()}
    except (TypeError, ValueError):
        raise ValueError(f"schedule: option values must be numbers in {spec!r}") from None
    if kwargs["t_min"] >= kwargs["t_max"]:
        raise ValueError(f"schedule: t_min must be < t_max in {spec!r}")
    return cls(**kwargs)


def from_config(config: dict) -> Schedule:
    """Inverse of :meth:`Schedule.config`."""
    cfg = dict(config)
    name = cfg.pop("name", None)
    if name not in SCHEDULES:
        raise ValueError(f"schedule config: unknown name {name!r}")
    return SCHEDULES[name](**cfg)


@dataclass(frozen=True)
class StepDensity:
    """A measured profile over logsnr that a ``'critical'`` grid follows (docs/samplers.md, "Critical grid").

    ``logsnr`` ascending and ``rate >= 0`` at those points (e.g. the speed of the denoiser output,
    :func:`critdiff.probes.step_density.denoiser_speed`), ``floor`` in ``[0, 1]``. On ``[lam_0, lam_1]`` the
    grid's density is

        rho(lam) = floor / (lam_1 - lam_0) + (1 - floor) v(lam) / int v,                    (CG.1)

    ``v`` the rate interpolated linearly (held constant beyond the measured range); steps sit at equal
    quantiles of ``rho``, so each step covers the same share of the profile's mass plus the floor's.
    """

    logsnr: tuple[float, ...]
    rate: tuple[float, ...]
    floor: float = CRITICAL_FLOOR

    def __post_init__(self) -> None:
        lam, v = (tuple(float(u) for u in x) for x in (self.logsnr, self.rate))
        object.__setattr__(self, "logsnr", lam)
        object.__setattr__(self, "rate", v)
        if len(lam) < 2 or len(lam) != len(v):
            raise ValueError(f"density: expected >= 2 logsnr points and as many rates, got {len(lam)} and {len(v)}")
        if not all(math.isfinite(u) for u in lam + v) or any(b <= a for a, b in zip(lam, lam[1:])):
            raise ValueError("density: logsnr must be finite and strictly ascending, rates finite")
        if any(u < 0 for u in v):
            raise ValueError("density: rates must be >= 0")
        if not 0.0 <= self.floor <= 1.0:
            raise ValueError(f"density: floor must lie in [0, 1], got {self.floor}")

    def quantiles(self, lam0: float, lam1: float, n: int, mesh: int = 4097) -> torch.Tensor:
        """``n`` logsnr values from ``lam0`` to ``lam1`` (both included) at equal quantiles of eq. CG.1."""
        x = torch.linspace(lam0, lam1, mesh, dtype=torch.float64)
        lam, v = torch.tensor(self.logsnr, dtype=torch.float64), torch.tensor(self.rate, dtype=torch.float64)
        j = torch.searchsorted(lam, x).clamp(1, len(lam) - 1)
        w = ((x - lam[j - 1]) / (lam[j] - lam[j - 1])).clamp(0, 1)
        vx = v[j - 1] + w * (v[j] - v[j - 1])
        cum_v = torch.cat([vx.new_zeros(1), torch.cumsum(0.5 * (vx[1:] + vx[:-1]) * (x[1:] - x[:-1]), 0)])
        cum_u = (x - lam0) / (lam1 - lam0)
        floor = self.floor if float(cum_v[-1]) > 0 else 1.0  # a flat-zero profile: the uniform grid
        cdf = floor * cum_u + (1 - floor) * (cum_v / cum_v[-1] if float(cum_v[-1]) > 0 else 0)
        q = torch.linspace(0, 1, n, dtype=torch.float64)
        k = torch.searchsorted(cdf, q).clamp(1, mesh - 1)
        c0, c1 = cdf[k - 1], cdf[k]
        t = torch.where(c1 > c0, (q - c0) / (c1 - c0), torch.zeros_like(q)).clamp(0, 1)
        out = x[k - 1] + t * (x[k] - x[k - 1])
        out[0], out[-1] = lam0, lam1
        return out


def sigma_grid(schedule: "Schedule | str", n: int, spacing: Spacing = "t", rho: float = 7.0, *,
               sigma_max: "float | None" = None, density: "StepDensity | None" = None) -> torch.Tensor:
    """Float64 grid of ``n + 1`` denoiser-frame sigmas, descending from ``sigma_max`` and ending in 0.

    ``spacing='t'``: uniform in ``t`` from ``t_max`` to ``t_min``; ``'logsnr'``: uniform in logsnr;
    ``'karras'``: ``(s_max^(1/rho) + i/(n-1) (s_min^(1/rho) - s_max^(1/rho)))^rho`` (Karras et al. 2022,
    eq. 5); ``'critical'``: equal quantiles in logsnr of the measured ``density`` (:class:`StepDensity`,
    eq. CG.1). ``sigma_max``: start the grid at this level instead of the schedule's (a late start,
    :mod:`critdiff.late_start`; it must lie in ``(sigma_min, schedule sigma_max]``), same ``n``.
    Samplers take this grid as given and never recompute it.
    """
    sch = get(schedule)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"steps: expected an integer >= 1, got {n!r}")
    if spacing not in SPACINGS:
        raise ValueError(f"spacing: expected one of {', '.join(SPACINGS)}, got {spacing!r}")
    if (spacing == "critical") != (density is not None):
        raise ValueError("density: the 'critical' spacing needs a measured StepDensity, and only it takes one")
    top = sch.sigma_max
    if sigma_max is not None:
        top = float(sigma_max)
        if not (math.isfinite(top) and sch.sigma_min < top <= sch.sigma_max * (1 + 1e-12)):
            raise ValueError(f"sigma_max: the start level must lie in ({sch.sigma_min:g}, {sch.sigma_max:g}], got {sigma_max!r}")
        top = min(top, sch.sigma_max)
    lam_top, lam_end = -2.0 * math.log(top), sch.logsnr_max
    if n == 1:
        sig = torch.tensor([top], dtype=torch.float64)
    elif spacing == "t":
        t = torch.linspace(float(sch.t_of_sigma(top)) if sigma_max is not None else sch.t_max, sch.t_min, n,
                           dtype=torch.float64)
        sig = sch.sigma_over_a(t)
    elif spacing == "logsnr":
        sig = torch.exp(-0.5 * torch.linspace(lam_top, lam_end, n, dtype=torch.float64))
    elif spacing == "critical":
        sig = torch.exp(-0.5 * density.quantiles(lam_top, lam_end, n))
    else:
        if not rho > 0:
            raise ValueError(f"rho: expected > 0, got {rho}")
        i = torch.arange(n, dtype=torch.float64) / (n - 1)
        hi, lo = top ** (1 / rho), sch.sigma_min ** (1 / rho)
        sig = (hi + i * (lo - hi)) ** rho
    return torch.cat([sig, sig.new_zeros(1)])
