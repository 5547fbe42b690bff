"""How wrong is the Gaussian late start? Exact errors on data whose ``p_t`` is known (docs/samplers.md, "Late
start", eq. LS.3-LS.4; DESIGN.md section 5b).

For a finite point set ``{y_k}`` with weights ``w_k`` in ``d <= 2`` dimensions, ``p_sigma = sum_k w_k N(y_k,
sigma^2 I)`` exactly, and the late start draws from ``q_sigma = N(mu, Sigma + sigma^2 I)`` with the set's mean and
covariance. :func:`start_kl` is ``KL(p_sigma || q_sigma)`` by quadrature on a dense grid (eq. LS.3); the
probability-flow map from ``sigma`` to the end is invertible for ``sigma > 0``, so this KL is also the KL between
the exact sampler's ends from ``p_sigma`` and from ``q_sigma`` at any later level.

Two-point data ``x0 = +-m`` (weights ``w``, ``1 - w``) in 1-D: the exact flow preserves order, so the state that
ends on ``+m`` is the one above the ``(1 - w)``-quantile ``x*`` of ``p_sigma``; a start from ``q_sigma`` ends on
``+m`` with probability ``q_sigma(x > x*)``. :func:`twopoint_class_error` is ``|q_sigma(x > x*) - w|`` (eq. LS.4):
the class-frequency error of the late start with an exact sampler, zero for balanced data (by symmetry).
Constant images ``+-amp`` of ``D`` pixels are this 1-D problem along the diagonal with ``m = amp sqrt(D)``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq
from scipy.special import logsumexp
from scipy.stats import norm


def _moments(points: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = weights @ points
    c = points - mu
    return mu, (weights[:, None] * c).T @ c


def start_kl(points, weights, sigma: float, mesh: int = 801, extent: float = 9.0) -> float:
    """``KL(p_sigma || q_sigma)`` (eq. LS.3) for the point set ``points [K, d]`` (``d`` 1 or 2) with ``weights [K]``
    (normalised here), by the trapezoid rule on a ``mesh^d`` grid covering ``extent`` standard deviations of
    ``q_sigma`` about the mean (the integrand is smooth and decays like a Gaussian: spectrally accurate)."""
    y = np.atleast_2d(np.asarray(points, dtype=np.float64))
    w = np.asarray(weights, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] not in (1, 2) or w.shape != (y.shape[0],) or (w < 0).any() or w.sum() <= 0:
        raise ValueError("points, weights: expected [K, d] with d in (1, 2) and K weights >= 0")
    if not sigma > 0:
        raise ValueError(f"sigma: expected > 0, got {sigma}")
    w = w / w.sum()
    d = y.shape[1]
    mu, cov = _moments(y, w)
    cq = cov + sigma**2 * np.eye(d)
    half = extent * math.sqrt(float(np.linalg.eigvalsh(cq).max()))
    axes = [np.linspace(mu[i] - half, mu[i] + half, mesh) for i in range(d)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)  # [M, d]
    r2 = ((grid[:, None, :] - y[None, :, :]) ** 2).sum(-1)  # [M, K]
    logp = logsumexp(-r2 / (2 * sigma**2), axis=1, b=w) - 0.5 * d * math.log(2 * math.pi * sigma**2)
    diff = grid - mu
    inv = np.linalg.inv(cq)
    logq = -0.5 * np.einsum("mi,ij,mj->m", diff, inv, diff) - 0.5 * math.log(np.linalg.det(2 * math.pi * cq))
    f = np.exp(logp) * (logp - logq)
    cell = np.prod([a[1] - a[0] for a in axes])
    wt = np.ones(mesh)
    wt[0] = wt[-1] = 0.5
    wgrid = wt if d == 1 else np.outer(wt, wt).reshape(-1)
    return float((f * wgrid).sum() * cell)


def twopoint_class_error(w: float, m: float, sigma: float) -> float:
    """``|q_sigma(x > x*) - w|`` (eq. LS.4) for two points ``+-m`` with weight ``w`` on ``+m`` (1-D)."""
    if not 0 < w < 1 or not m > 0 or not sigma > 0:
        raise ValueError("w in (0, 1), m > 0 and sigma > 0 expected")

    # p_sigma(x > x*) = w  <=>  w P(N(m, s) < x*) = (1 - w) P(N(-m, s) > x*): solved in logs (the two sides
    # are tiny and the difference flat between the points at low noise), increasing in x*
    def gap(x):
        return (math.log(w) + norm.logcdf((x - m) / sigma)) - (math.log(1 - w) + norm.logsf((x + m) / sigma))

    span = m + 40 * sigma
    xs = brentq(gap, -span, span, xtol=1e-15 * max(1.0, span))
    mean = (2 * w - 1) * m
    var = 4 * w * (1 - w) * m**2 + sigma**2
    return float(abs(norm.sf(xs, mean, math.sqrt(var)) - w))
