"""Critical point, critical mode and sampler growth rates (docs/theory.md section 4).

- The **critical time** ``t_c`` is the first (largest ``t``, going backward from ``t_max``) zero of
  ``min_k Re kappa(k, t)``, i.e. of ``g(sigma) = max_k Re c(k, sigma) - sigma^2`` (eq. 4.1), located on a
  logsnr-uniform scan and refined by Brent's method. ``k*`` is the mode that crosses first.
- The **sampler growth rates** (eq. 4.3), per unit of reverse time in the schedule frame ``z = a x``:
  ``gamma_ode = -f - g^2 kappa_z / 2`` and ``gamma_sde = -f - g^2 kappa_z``, ``kappa_z = Re kappa / a^2``.
  Their own instability times (``max_k gamma`` crossing 0) are reported separately: they equal ``t_c``
  for ``a = 1`` schedules (VE, EDM) and differ for VP schedules.
- **White data** (no spatial correlation within the stencil) soften every mode at once: then
  ``preferred_mode`` is False and ``k_star`` is None (eq. 4.2).

"No crossing within the schedule" (or "unstable from the start") is a normal answer: ``found=False``
with a ``message``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np
import torch
from scipy.optimize import brentq

from ..errors import check_choice, check_int
from ..schedules import get as get_schedule
from ..times import Time, TimeEstimate
from .homogeneous import HomogeneousSolution, homogeneous_solution
from .pool import PatchPool, homogeneous_weights
from .spectrum import Spectrum, WEIGHTS, stiffness_spectrum

WHITE_Z = 6.0  # off-centre covariances within this many standard errors of 0 count as zero


def white_statistic(pool: PatchPool, spectrum: Spectrum) -> float:
    """Largest ``|Cov_w[p_0, p_delta]|`` over ``delta != 0`` in units of its standard error (eq. 4.2).

    The standard error of a weighted covariance of independent values is
    ``sqrt(Var_w[p_0] Var_w[p_delta] / M_eff)`` with ``M_eff = 1 / sum w^2``. Returns 0 when the
    stencil holds only the centre.
    """
    w = homogeneous_weights(pool, spectrum.m, None if spectrum.weights == "uniform" else spectrum.sigma)
    m_eff = 1.0 / float((w * w).sum())
    k = spectrum.kernel  # [S, C, C]
    var0 = torch.diagonal(k[[i for i, o in enumerate(spectrum.offsets.tolist()) if o == [0, 0]]][0]) \
        if [0, 0] in spectrum.offsets.tolist() else None
    mean = w @ pool.patches.reshape(pool.size, -1)
    var_p = (w @ (pool.patches.reshape(pool.size, -1) - mean) ** 2).reshape(pool.stencil.size, pool.channels).cpu()
    var_c = (w @ (pool.centres - w @ pool.centres) ** 2).cpu()  # [C]
    if var0 is None:
        var0 = var_c
    z = 0.0
    for i, o in enumerate(spectrum.offsets.tolist()):
        if o == [0, 0]:
            continue
        se = torch.sqrt(var_c[:, None] * var_p[i][None, :] / m_eff).clamp_min(1e-300)
        z = max(z, float((k[i].abs() / se).max()))
    return z


def _canonical(k: tuple[float, float]) -> tuple[float, float]:
    """The representative of ``{k, -k}`` with ``ky > 0``, or ``ky = 0`` and ``kx >= 0``."""
    ky, kx = k
    if ky < -1e-12 or (abs(ky) <= 1e-12 and kx < -1e-12):
        return (-ky + 0.0, -kx + 0.0)
    return (ky + 0.0, kx + 0.0)


@dataclass(frozen=True)
class CriticalPoint:
    """Result of :func:`critical_point`; ``to_dict()`` is JSON-able.

    ``found``: a crossing lies inside the schedule; ``k_star`` ``(ky, kx)`` rad/pixel (canonical sign);
    ``k_star_equivalent``: every grid mode tied with it (symmetry partners); ``preferred_mode``: False for
    white data (every mode crosses at once, ``k_star`` None); ``c_star``: ``Re c(k*)`` at the crossing
    (``= sigma_c^2``); ``instability``: the samplers' own instability times ``{'ode': ..., 'sde': ...}``.
    """

    found: bool
    message: str
    t_c: Optional[float]
    logsnr_c: Optional[float]
    sigma_over_a_c: Optional[float]
    k_star: Optional[tuple[float, float]]
    k_star_abs: Optional[float]
    k_star_equivalent: tuple
    preferred_mode: bool
    white_z: float
    c_star: Optional[float]
    weights: str
    drift: str
    instability: dict = field(default_factory=dict)

    @property
    def time(self) -> Optional[Time]:
        """``t_c`` as a :class:`~critdiff.times.Time` (None when not found)."""
        return None if self.t_c is None else Time(self.t_c, self.logsnr_c, self.sigma_over_a_c)

    def estimate(self, source: str = "theory") -> Optional[TimeEstimate]:
        """``t_c`` as a :class:`~critdiff.times.TimeEstimate` (extras: ``k_star``; no interval: the theory is
        exact for its pool), or None when not found."""
        tm = self.time
        return None if tm is None else TimeEstimate(tm, source, None, {"k_star": self.k_star})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["k_star"] = None if self.k_star is None else list(self.k_star)
        d["k_star_equivalent"] = [list(k) for k in self.k_star_equivalent]
        return d


@dataclass(frozen=True, eq=False)
class SpectrumScan:
    """``Re`` of the top eigenvalue ``c(k)`` on a logsnr-uniform time grid.

    ``t, logsnr, sigma, a, f, g2 [T]`` (descending ``t``); ``c [T, H, W]``; ``ky, kx [H, W]``; ``m [T, C]``.
    """

    t: np.ndarray
    logsnr: np.ndarray
    sigma: np.ndarray
    a: np.ndarray
    f: np.ndarray
    g2: np.ndarray
    c: np.ndarray
    ky: np.ndarray
    kx: np.ndarray
    m: np.ndarray
    weights: str

    @property
    def kappa(self) -> np.ndarray:
        """Denoiser-frame stiffness ``Re kappa [T, H, W]`` of the softest channel branch (eq. 3.4)."""
        s2 = self.sigma[:, None, None] ** 2
        return (1.0 - self.c / s2) / s2

    @property
    def kappa_schedule_frame(self) -> np.ndarray:
        return self.kappa / self.a[:, None, None] ** 2

    def growth_rate(self, sampler: str) -> np.ndarray:
        """``gamma(k, t)`` ``[T, H, W]`` of the linearised ``'ode'`` or ``'sde'`` sampler (eq. 4.3)."""
        check_choice("sampler", sampler, ("ode", "sde"))
        factor = 0.5 if sampler == "ode" else 1.0
        return -self.f[:, None, None] - factor * self.g2[:, None, None] * self.kappa_schedule_frame


def _solution(pool, schedule, weights, drift, hom):
    if weights == "uniform":
        return None
    if hom is not None:
        return hom
    return homogeneous_solution(pool, schedule.sigma_max, schedule.sigma_min, drift=drift)


def _m_at(hom: Optional[HomogeneousSolution], sigma: float, C: int):
    return np.zeros(C) if hom is None else hom(sigma)


def scan_spectrum(pool: PatchPool, schedule="vp-linear", *, weights="exact", drift="ode", n_t: int = 161,
                  hom: Optional[HomogeneousSolution] = None) -> SpectrumScan:
    """The top eigenvalue ``Re c(k)`` at ``n_t`` times uniform in logsnr over the whole schedule."""
    sch = get_schedule(schedule)
    check_choice("weights", weights, WEIGHTS)
    n_t = check_int("n_t", n_t, 2)
    hom = _solution(pool, sch, weights, drift, hom)
    lam = torch.linspace(sch.logsnr_min, sch.logsnr_max, n_t, dtype=torch.float64)
    t = sch.t_of_logsnr(lam).clamp(sch.t_min, sch.t_max)
    sig = torch.exp(-0.5 * lam)
    cs, ms = [], []
    spec = None
    for s in sig.tolist():
        m = _m_at(hom, s, pool.channels)
        if weights == "uniform" and spec is not None:
            spec = Spectrum(s, spec.cov_eigs, spec.kernel, spec.offsets, spec.ky, spec.kx, m, "uniform", spec.hermitian)
        else:
            spec = stiffness_spectrum(pool, s, m, weights)
        cs.append(spec.cov_eigs[..., 0].real.numpy())
        ms.append(m)
    return SpectrumScan(t.numpy(), lam.numpy(), sig.numpy(), sch.a(t).numpy(), sch.f(t).numpy(), sch.g2(t).numpy(),
                        np.stack(cs), spec.ky.numpy(), spec.kx.numpy(), np.stack(ms), weights)


def _first_crossing(values: np.ndarray) -> Optional[int]:
    """Index ``i >= 1`` of the first grid point with ``values[i] >= 0`` after ``values[i-1] < 0``."""
    for i in range(1, len(values)):
        if values[i - 1] < 0 <= values[i]:
            return i
    return None


def _refine(func, lam_lo: float, lam_hi: float) -> float:
    """Root of ``func(logsnr)`` between two bracketing logsnr values."""
    flo, fhi = func(lam_lo), func(lam_hi)
    if flo == 0:
        return lam_lo
    if fhi == 0 or np.sign(flo) == np.sign(fhi):
        return lam_hi
    return brentq(func, lam_lo, lam_hi, xtol=1e-12, rtol=1e-12, maxiter=200)


def _instability(pool, sch, scan: SpectrumScan, sampler: str, hom) -> dict:
    """The sampler's own instability time: first zero of ``max_k gamma(k, t)`` going backward."""
    gam = scan.growth_rate(sampler).reshape(len(scan.t), -1).max(axis=1)
    name = f"{sampler}_growth"
    if gam[0] >= 0:
        return {"name": name, "found": False, "message": "growing from the start of the schedule (t_max)"}
    i = _first_crossing(gam)
    if i is None:
        return {"name": name, "found": False, "message": "no instability within the schedule"}
    factor = 0.5 if sampler == "ode" else 1.0

    def g(lam):
        s = math.exp(-0.5 * lam)
        t = sch.t_of_logsnr(torch.tensor(lam, dtype=torch.float64)).clamp(sch.t_min, sch.t_max)
        a, f, g2 = float(sch.a(t)), float(sch.f(t)), float(sch.g2(t))
        spec = stiffness_spectrum(pool, s, _m_at(hom, s, pool.channels), scan.weights)
        kz = spec.kappa[..., 0].real / a**2
        return float((-f - factor * g2 * kz).max())

    lam = _refine(g, float(scan.logsnr[i - 1]), float(scan.logsnr[i]))
    return {"name": name, "found": True, "message": "", **Time.from_logsnr(sch, lam).to_dict()}


def critical_point(pool: PatchPool, schedule="vp-linear", *, weights="exact", drift="ode", n_t: int = 161,
                   white_z: float = WHITE_Z, tie_tol: float = 1e-9, scan: Optional[SpectrumScan] = None,
                   hom: Optional[HomogeneousSolution] = None, growth: bool = True) -> CriticalPoint:
    """``t_c``, ``k*`` and the samplers' instability times of the patch model (docs/theory.md section 4)."""
    sch = get_schedule(schedule)
    check_choice("weights", weights, WEIGHTS)
    check_choice("drift", drift, ("ode", "sde"))
    hom = _solution(pool, sch, weights, drift, hom)
    if scan is None:
        scan = scan_spectrum(pool, sch, weights=weights, drift=drift, n_t=n_t, hom=hom)
    gmax = scan.c.reshape(len(scan.t), -1).max(axis=1) - scan.sigma**2
    instab = {}
    if growth:
        instab["ode"] = _instability(pool, sch, scan, "ode", hom)
        if weights == "exact" and drift == "ode":
            hom_sde = homogeneous_solution(pool, sch.sigma_max, sch.sigma_min, drift="sde")
            scan_sde = scan_spectrum(pool, sch, weights=weights, drift="sde", n_t=len(scan.t), hom=hom_sde)
            instab["sde"] = _instability(pool, sch, scan_sde, "sde", hom_sde)
        else:
            instab["sde"] = _instability(pool, sch, scan, "sde", hom)
    base = dict(weights=weights, drift=drift, instability=instab)
    if gmax[0] >= 0:
        return CriticalPoint(False, "unstable from the start: snr c(k) >= 1 already at t_max", None, None, None,
                             None, None, (), False, 0.0, None, **base)
    i = _first_crossing(gmax)
    if i is None:
        smax = float((scan.c.reshape(len(scan.t), -1).max(axis=1) / scan.sigma**2).max())
        return CriticalPoint(False, f"no crossing within the schedule (largest snr c(k) reached: {smax:.4g} < 1)",
                             None, None, None, None, None, (), False, 0.0, None, **base)

    def g(lam):
        s = math.exp(-0.5 * lam)
        spec = stiffness_spectrum(pool, s, _m_at(hom, s, pool.channels), weights)
        return float(spec.cov_eigs[..., 0].real.max()) - s * s

    lam = _refine(g, float(scan.logsnr[i - 1]), float(scan.logsnr[i]))
    tp = Time.from_logsnr(sch, lam)
    spec = stiffness_spectrum(pool, tp.sigma_over_a, _m_at(hom, tp.sigma_over_a, pool.channels), weights)
    z = white_statistic(pool, spec)
    c = spec.cov_eigs[..., 0].real
    cmax = float(c.max())
    if z < white_z:
        return CriticalPoint(True, "white data: every mode softens at once, no preferred critical mode",
                             tp.t, tp.logsnr, tp.sigma_over_a, None, None, (), False, z, cmax, **base)
    ties = torch.nonzero(c >= cmax - tie_tol * max(abs(cmax), 1e-300))
    modes = sorted({_canonical((float(spec.ky[a, b]), float(spec.kx[a, b]))) for a, b in ties.tolist()},
                   key=lambda k: (math.hypot(*k), -k[0], -k[1]))
    a, b = torch.nonzero(c == c.max())[0].tolist()
    kstar = _canonical((float(spec.ky[a, b]), float(spec.kx[a, b])))
    return CriticalPoint(True, "", tp.t, tp.logsnr, tp.sigma_over_a, kstar, math.hypot(*kstar), tuple(modes), True,
                         z, cmax, **base)
