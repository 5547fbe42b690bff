"""Softening of the low-|k| stiffness of a denoiser along its trajectories, and peaks of recorded curves.

Input: the shell means of the dimensionless stiffness ``sigma^2 kappa(|k|, t) = 1 - Re Jhat_D(k)``
(:mod:`.spectral`, radially averaged) as ``s2k [T, K]`` with standard errors ``s2k_se [T, K]``, on times
``logsnr [T]`` (ascending: the sampling direction) and shells ``k [K]`` (ascending, ``k[0]`` may be 0).

The **contrast** ``d(t) = sigma^2 kappa(|k|_max) - sigma^2 kappa(|k|_low)`` (``|k|_low`` the lowest non-zero
shell) measures how much long wavelengths have softened relative to the shortest ones; its standard error
is ``hypot`` of the two shells' errors. The softening **weakens** the low shell when the largest contrast
exceeds twice its standard error; its **onset** is the first time the contrast exceeds both
``2 se`` and ``onset`` (``sigma^2 kappa`` is 1 at high noise, so ``onset`` is an absolute scale).
"""

from __future__ import annotations

import numpy as np

from ..io import to_jsonable
from .critical_time import zero_crossing

ONSET = 0.05  # default absolute contrast threshold of the onset (module docstring)


def low_k_softening(logsnr: np.ndarray, k: np.ndarray, s2k: np.ndarray, s2k_se: np.ndarray, *,
                    onset: float = ONSET) -> dict:
    """Contrast, minimum, zero crossing and onset of the low-|k| stiffness (module docstring).

    Returns ``k_low, k_high, start, start_logsnr, min, min_logsnr, contrast_max, contrast_se,
    contrast_logsnr, low_at_contrast, high_at_contrast, crossing_logsnr`` (None without a crossing),
    ``weakens`` and ``onset_logsnr`` (None when never).
    """
    lam, k = np.asarray(logsnr, dtype=np.float64), np.asarray(k, dtype=np.float64)
    i_low = int(np.argmax(k > 1e-12)) if (k > 1e-12).any() else 0
    low, high = s2k[:, i_low], s2k[:, -1]
    d = high - low
    d_se = np.hypot(s2k_se[:, i_low], s2k_se[:, -1])
    j_d = int(np.nanargmax(d))
    j_min = int(np.nanargmin(low))
    first = next((lam[j] for j in range(len(d)) if d[j] > max(2 * d_se[j], onset)), None)
    return {"k_low": float(k[i_low]), "k_high": float(k[-1]), "start": float(low[0]),
            "start_logsnr": float(lam[0]), "min": float(low[j_min]), "min_logsnr": float(lam[j_min]),
            "contrast_max": float(d[j_d]), "contrast_se": float(d_se[j_d]), "contrast_logsnr": float(lam[j_d]),
            "low_at_contrast": float(low[j_d]), "high_at_contrast": float(high[j_d]),
            "crossing_logsnr": to_jsonable(zero_crossing(lam, low)), "weakens": bool(d[j_d] > 2 * d_se[j_d]),
            "onset_logsnr": to_jsonable(first)}


def curve_peak(logsnr: np.ndarray, curve: np.ndarray) -> dict:
    """``{'logsnr', 'value', 'interior'}`` of the largest finite value of ``curve [T]`` (``interior``: not at an
    end of the recorded range)."""
    j = int(np.nanargmax(curve))
    return {"logsnr": float(logsnr[j]), "value": float(curve[j]), "interior": bool(0 < j < len(curve) - 1)}


def steepest_growth(logsnr: np.ndarray, curve: np.ndarray) -> dict:
    """Where ``curve [T]`` (e.g. a correlation length) grows fastest along ``logsnr [T]`` (ascending).

    The largest finite slope ``(curve[j+1] - curve[j]) / (logsnr[j+1] - logsnr[j])`` of consecutive recorded
    points, placed at the interval's midpoint. Returns ``{'logsnr', 'slope', 'from', 'to'}``, where ``from`` and
    ``to`` are ``{'logsnr', 'value'}`` of the first and last finite points (the growth over the recorded range);
    ``logsnr`` and ``slope`` are None when no slope is positive.
    """
    lam, c = np.asarray(logsnr, dtype=np.float64), np.asarray(curve, dtype=np.float64)
    if lam.ndim != 1 or lam.shape != c.shape:
        raise ValueError(f"curve: expected two aligned 1-D arrays, got shapes {lam.shape}, {c.shape}")
    if np.any(np.diff(lam) <= 0):
        raise ValueError("logsnr: expected strictly ascending values (the sampling direction)")
    fin = np.flatnonzero(np.isfinite(c))
    if fin.size < 2:
        raise ValueError("curve: needs at least two finite values")
    lf, cf = lam[fin], c[fin]
    slope = np.diff(cf) / np.diff(lf)
    j = int(np.argmax(slope))
    ends = {"from": {"logsnr": float(lf[0]), "value": float(cf[0])}, "to": {"logsnr": float(lf[-1]), "value": float(cf[-1])}}
    if slope[j] <= 0:
        return {"logsnr": None, "slope": None, **ends}
    return {"logsnr": float(0.5 * (lf[j] + lf[j + 1])), "slope": float(slope[j]), **ends}
