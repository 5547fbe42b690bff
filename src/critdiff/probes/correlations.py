"""Correlations of an ensemble of fields, and the Ornstein-Zernike length of a stiffness (DESIGN.md section 4).

Shapes: fields ``x [N, C, H, W]`` on a periodic lattice; spectra ``[H, W]`` in DFT order, ``k`` in radians per
pixel. Definitions (float64 throughout):

- connected structure factor ``S_c(k) = E|xhat_c(k) - E xhat_c(k)|^2 / (H W)`` per channel, estimated with the
  ensemble mean removed and the factor ``N / (N - 1)`` (unbiased); ``S = sum_c S_c`` (the normalisation of the
  predicted ``S`` of :mod:`critdiff.theory.correlation`). For a stationary field ``S(k) = sum_r C(r) e^{-i k.r}``;
- real-space correlation ``C(r) = ifft2(S)(r) = (1/HW) sum_x Cov[x(x), x(x + r)]`` (Wiener-Khinchin), radially
  averaged over the minimum-image ``|r|``;
- two second-moment correlation lengths of a spectrum, one formula about two centres (the lattice second-moment
  definition, e.g. Cooper, Freedman & Preston 1982; docs/theory.md eq. 5.5). About a lattice point ``k_p``, each
  axis ``a`` of length ``L_a >= 2`` (step ``q_a = 2 pi / L_a``) gives::

      xi_a^2 = (S(k_p) / S_a - 1) / (2 sin(q_a / 2))^2,   S_a = (S(k_p + q_a e_a) + S(k_p - q_a e_a)) / 2,

  and ``xi = sqrt(mean_a xi_a^2)`` (a negative ``xi_a^2`` counts as 0; ``S_a <= 0 < S(k_p)`` gives ``inf``).

  * ``xi_zero``: about ``k_p = 0``, the width of the correlation of the field's local mean (large for blobs,
    0 for a spectrum that does not peak at 0, e.g. stripes);
  * ``xi_peak``: about the spectral peak ``k_p = argmax S``, the coherence length of the dominant pattern
    (large for clean stripes, the same as ``xi_zero`` when the peak is at 0).

  For ``S(k) = 1/(m^2 + 4 sin^2((ky - p_y)/2) + 4 sin^2((kx - p_x)/2))`` (a lattice Ornstein-Zernike spectrum
  centred on the lattice point ``p``) the length about ``p`` is exactly ``1/m``;
- Ornstein-Zernike fit of a stiffness map ``kappa(k) ~ r + c |k - k*|^2`` near its softest mode ``k*``
  (weighted least squares over the lattice points within ``radius`` of ``k*``), ``xi = sqrt(c / |r|)``
  (DESIGN.md section 3). A flat (white) spectrum has no preferred mode and is reported as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..errors import check_images, check_positive
from ..io import to_jsonable
from ._lattice import k_grid, min_image, r_shells, shell_mean, shells


@dataclass(frozen=True)
class StructureFactor:
    """``S [H, W]`` (channels summed), ``S_se``, ``S_channels [C, H, W]``; radial ``k``, ``S_radial``, ``S_radial_se``;
    real space ``r``, ``C_radial`` (``C(r)`` summed over channels); ``xi_zero`` and ``xi_peak`` (pixels, module
    docstring); ``n`` fields."""

    S: np.ndarray
    S_se: np.ndarray
    S_channels: np.ndarray
    k: np.ndarray
    S_radial: np.ndarray
    S_radial_se: np.ndarray
    r: np.ndarray
    C_radial: np.ndarray
    xi_zero: float
    xi_peak: float
    n: int

    def to_dict(self) -> dict:
        return to_jsonable({k: getattr(self, k) for k in self.__dataclass_fields__})


def periodograms(x: torch.Tensor) -> np.ndarray:
    """Per-sample connected periodograms ``[N, C, H, W]``: ``|xhat - mean xhat|^2 / (HW) * N/(N-1)``."""
    check_images("x", x)
    N, C, H, W = x.shape
    if N < 2:
        raise ValueError(f"x: a connected structure factor needs an ensemble of at least 2 fields, got {N}")
    xh = torch.fft.fft2(x.detach().to("cpu", torch.float64))
    xh = xh - xh.mean(0, keepdim=True)
    return ((xh.abs() ** 2) / (H * W) * (N / (N - 1))).numpy()


def correlation_function(S: np.ndarray) -> np.ndarray:
    """``C(r) = ifft2(S)`` for ``S [..., H, W]`` (real part; ``r`` in DFT order)."""
    return np.fft.ifft2(S).real


def _second_moment(S: np.ndarray, a: int, b: int) -> float:
    """Second-moment length of ``S [H, W]`` about the lattice point ``(a, b)`` (module docstring), in pixels."""
    H, W = S.shape
    peak = S[a, b]
    terms = []
    for L, nb in ((H, 0.5 * (S[(a + 1) % H, b] + S[(a - 1) % H, b])), (W, 0.5 * (S[a, (b + 1) % W] + S[a, (b - 1) % W]))):
        if L < 2:
            continue
        if nb <= 0:
            return math.inf if peak > 0 else 0.0
        terms.append(max(peak / nb - 1.0, 0.0) / (2 * math.sin(math.pi / L)) ** 2)
    return math.sqrt(float(np.mean(terms)))


def _spectrum(S) -> np.ndarray:
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2:
        raise ValueError(f"S: expected a spectrum [H, W], got shape {S.shape}")
    if max(S.shape) < 2:
        raise ValueError("S: needs at least 2 points along one axis")
    return S


def xi_zero(S) -> float:
    """Second-moment correlation length of ``S [H, W]`` (DFT order) about ``k = 0``, in pixels (module docstring).

    0 when ``S(0)`` does not exceed its neighbours (white, anti-correlated, or a spectrum peaked elsewhere).
    """
    return _second_moment(_spectrum(S), 0, 0)


def xi_peak(S, k_peak: Optional[tuple[int, int]] = None) -> float:
    """Second-moment correlation length of ``S [H, W]`` about its peak, in pixels (module docstring, eq. 5.5).

    ``k_peak``: the grid index ``(a, b)`` of the peak (default: the first argmax of ``S``). A flat ``S`` gives 0.
    """
    S = _spectrum(S)
    H, W = S.shape
    if k_peak is None:
        a, b = divmod(int(np.argmax(S)), W)
    else:
        a, b = (int(v) for v in k_peak)
        if not (0 <= a < H and 0 <= b < W):
            raise ValueError(f"k_peak: expected a grid index inside ({H}, {W}), got {k_peak}")
    return _second_moment(S, a, b)


def structure_factor(x: torch.Tensor) -> StructureFactor:
    """Connected structure factor, ``C(r)``, ``xi_zero`` and ``xi_peak`` of an ensemble ``x [N, C, H, W]``
    (module docstring). The one structure factor of critdiff: theory, probes and experiments use it."""
    p = periodograms(x)  # [N, C, H, W]
    N, C, H, W = p.shape
    ptot = p.sum(1)  # [N, H, W]
    S = ptot.mean(0)
    kidx, k, _ = shells(H, W)
    rad = shell_mean(ptot, kidx)  # [N, nk]
    ridx, r, _ = r_shells(H, W)
    return StructureFactor(
        S=S, S_se=ptot.std(0, ddof=1) / math.sqrt(N), S_channels=p.mean(0), k=k, S_radial=rad.mean(0),
        S_radial_se=rad.std(0, ddof=1) / math.sqrt(N), r=r, C_radial=shell_mean(correlation_function(S), ridx),
        xi_zero=xi_zero(S), xi_peak=xi_peak(S), n=N,
    )


@dataclass(frozen=True)
class OZFit:
    """Ornstein-Zernike fit ``kappa(k) ~ r + c |k - k*|^2`` near the softest mode.

    ``preferred_mode`` is False (and ``k_star``, ``xi`` are None) when the spectrum is flat within its errors;
    ``xi = sqrt(c / |r|)``: ``inf`` at ``r = 0`` (to rounding; ``reason`` then says ``'r = 0: xi diverges'``, since
    JSON writes ``inf`` as null), None when ``c <= 0`` (no quadratic minimum). ``reason`` says why a value is
    missing or infinite; ``n_points`` lattice points entered the fit.
    """

    preferred_mode: bool
    k_star: Optional[tuple[float, float]]
    r: Optional[float]
    c: Optional[float]
    r_se: Optional[float]
    c_se: Optional[float]
    xi: Optional[float]
    n_points: int
    reason: str

    def to_dict(self) -> dict:
        return to_jsonable({k: getattr(self, k) for k in self.__dataclass_fields__})


def _none_fit(reason: str, k_star=None, n: int = 0) -> OZFit:
    return OZFit(False, k_star, None, None, None, None, None, n, reason)


def ornstein_zernike(kappa: np.ndarray, kappa_se: Optional[np.ndarray] = None, *, radius: float = 2.0,
                     flat_tol: float = 1e-9, z_flat: Optional[float] = None) -> OZFit:
    """Fit ``kappa(k) ~ r + c |k - k*|^2`` around ``k* = argmin kappa`` for ``kappa [H, W]`` (DFT order).

    ``radius``: fit the lattice points with ``|k - k*| <= radius * dk`` (``dk = 2 pi / max(H, W)``; differences
    wrapped to ``[-pi, pi)``), at least 2 distinct ``|k - k*|`` values; weights ``1 / kappa_se^2`` when given.
    Flat spectrum: ``max - min <= flat_tol * max(1, |mean|)``, or (with ``kappa_se``) ``mean - min`` within
    ``z_flat`` standard errors of ``kappa(k*)`` (default ``sqrt(2 ln HW) + 1``, above the expected minimum of
    ``HW`` white estimates) -> ``preferred_mode=False``, ``reason='no preferred mode'``.
    """
    kappa = np.asarray(kappa, dtype=np.float64)
    if kappa.ndim != 2:
        raise ValueError(f"kappa: expected a stiffness map [H, W], got shape {kappa.shape}")
    if not np.isfinite(kappa).all():
        raise ValueError("kappa: contains non-finite values")
    check_positive("radius", radius)
    H, W = kappa.shape
    spread = float(kappa.max() - kappa.min())
    if spread <= flat_tol * max(1.0, abs(float(kappa.mean()))):
        return _none_fit("no preferred mode")
    a, b = np.unravel_index(int(np.argmin(kappa)), (H, W))
    if kappa_se is not None:
        se = np.asarray(kappa_se, dtype=np.float64)
        if se.shape != kappa.shape:
            raise ValueError(f"kappa_se: expected shape {kappa.shape}, got {se.shape}")
        z = math.sqrt(2 * math.log(H * W)) + 1.0 if z_flat is None else float(z_flat)
        if float(kappa.mean() - kappa[a, b]) <= z * float(se[a, b]):
            return _none_fit("no preferred mode")
    ky, kx = k_grid(H, W)
    k_star = (float(ky[a, b]), float(kx[a, b]))
    q2 = min_image(ky - k_star[0]) ** 2 + min_image(kx - k_star[1]) ** 2
    dk = 2 * math.pi / max(H, W)
    sel = q2 <= (radius * dk) ** 2 * (1 + 1e-9)
    if len(np.unique(np.round(q2[sel], 12))) < 2:
        return _none_fit("too few points near k* for a fit", k_star, int(sel.sum()))
    X = np.stack([np.ones(int(sel.sum())), q2[sel]], 1)
    y = kappa[sel]
    se_sel = None if kappa_se is None else np.asarray(kappa_se, dtype=np.float64)[sel]
    if se_sel is not None and not (se_sel > 0).all():
        se_sel = None  # exact (zero-error) estimates: an unweighted fit
    w = np.ones_like(y) if se_sel is None else 1.0 / se_sel**2
    A = X.T @ (w[:, None] * X)
    coef = np.linalg.solve(A, X.T @ (w * y))
    resid = y - X @ coef
    dof = max(len(y) - 2, 1)
    scale = float(w @ resid**2) / dof if se_sel is None else max(float(w @ resid**2) / dof, 1.0)
    cov = np.linalg.inv(A) * scale
    r, c = float(coef[0]), float(coef[1])
    r_se, c_se = float(math.sqrt(max(cov[0, 0], 0))), float(math.sqrt(max(cov[1, 1], 0)))
    if c <= 0:
        return OZFit(True, k_star, r, c, r_se, c_se, None, len(y), "c <= 0: no quadratic minimum")
    r_zero = abs(r) <= 1e-12 * max(float(np.abs(y).max()), c * dk * dk)  # r = 0 up to rounding: xi diverges
    if r_zero:
        return OZFit(True, k_star, r, c, r_se, c_se, math.inf, len(y), "r = 0: xi diverges")
    return OZFit(True, k_star, r, c, r_se, c_se, math.sqrt(c / abs(r)), len(y), "ok")
