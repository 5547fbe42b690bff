"""Homogeneous solution ``m(sigma)`` of the equivariant periodic patch model (docs/theory.md section 2).

A constant image ``x = m 1`` (``m [C]``) is mapped to a constant image by the patch denoiser, so the
reverse dynamics keep it constant. In the denoiser frame (``x = x0 + sigma n``):

- probability-flow ODE:  ``dm/dsigma = (m - D(m, sigma)) / sigma``                   (eq. 2.2)
- reverse-SDE drift:     ``dm/dsigma = 2 (m - D(m, sigma)) / sigma``                 (eq. 2.3)

with ``D(m, sigma) = sum_p w(p) p_0`` and ``w(p) ∝ exp(-|m 1_S - p_S|^2 / (2 sigma^2))``. Both are solved
in ``l = log sigma`` with scipy's RK45 in float64 from ``sigma_max`` (where ``m = m0``, default 0: the
spatial mean of the initial noise) down to ``sigma_min``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from scipy.integrate import solve_ivp

from ..errors import check_choice, check_positive
from .pool import PatchPool, homogeneous_weights

Drift = Literal["ode", "sde"]
DRIFT_FACTOR = {"ode": 1.0, "sde": 2.0}


def denoise_homogeneous(pool: PatchPool, m, sigma: float) -> torch.Tensor:
    """Patch denoiser at the constant image ``m`` ``[C]``: ``D(m, sigma) = sum_p w(p) p_0`` ``[C]`` (eq. 2.1), on the CPU."""
    w = homogeneous_weights(pool, m, sigma)
    return (w @ pool.centres).cpu()


@dataclass(frozen=True, eq=False)
class HomogeneousSolution:
    """``m(sigma)`` on a float64 grid ``sigmas`` (descending) with a dense interpolant ``__call__``."""

    sigmas: np.ndarray  # [T] descending
    m: np.ndarray  # [T, C]
    drift: str
    _dense: object = field(repr=False, default=None)

    def __call__(self, sigma: float) -> np.ndarray:
        """``m`` at any ``sigma`` in the solved range ``[sigmas[-1], sigmas[0]]`` ``[C]``."""
        lo, hi = float(self.sigmas[-1]), float(self.sigmas[0])
        s = min(max(float(sigma), lo), hi)
        return np.asarray(self._dense(math.log(s)), dtype=np.float64)

    def to_dict(self) -> dict:
        return {"drift": self.drift, "sigma": self.sigmas.tolist(), "m": self.m.tolist()}


def homogeneous_solution(
    pool: PatchPool,
    sigma_max: float,
    sigma_min: float,
    *,
    drift: Drift = "ode",
    m0=None,
    n: int = 200,
    rtol: float = 1e-9,
    atol: float = 1e-11,
) -> HomogeneousSolution:
    """Solve eq. (2.2) (``drift='ode'``) or (2.3) (``'sde'``) from ``sigma_max`` down to ``sigma_min``.

    Returns the solution on ``n`` log-spaced sigmas plus a dense interpolant (scipy RK45, float64).
    """
    check_choice("drift", drift, DRIFT_FACTOR)
    sigma_max = check_positive("sigma_max", sigma_max)
    sigma_min = check_positive("sigma_min", sigma_min)
    if not sigma_min < sigma_max:
        raise ValueError(f"sigma_min: expected sigma_min < sigma_max, got {sigma_min:g} >= {sigma_max:g}")
    C = pool.channels
    m_start = np.zeros(C) if m0 is None else np.broadcast_to(np.asarray(m0, dtype=np.float64), (C,)).copy()
    alpha = DRIFT_FACTOR[drift]

    def rhs(l, m):  # dm/dl with l = log sigma
        d = denoise_homogeneous(pool, torch.from_numpy(m), math.exp(l)).numpy()
        return alpha * (m - d)

    l_grid = np.linspace(math.log(sigma_max), math.log(sigma_min), n)
    sol = solve_ivp(rhs, (l_grid[0], l_grid[-1]), m_start, t_eval=l_grid, rtol=rtol, atol=atol,
                    dense_output=True, method="RK45")
    if not sol.success:
        raise RuntimeError(f"homogeneous solution: the ODE solver failed ({sol.message})")
    return HomogeneousSolution(np.exp(l_grid), sol.y.T.copy(), drift, sol.sol)
