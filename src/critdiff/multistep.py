"""Coefficients of the linear multistep samplers (PLMS, LMS, DEIS, UniPC), as pure float64 functions.

Every multistep update in the denoiser frame (DESIGN.md section 1, ``x = x0 + sigma n``) combines the
history of the slope ``d = (x - D) / sigma`` (= eps) or of ``D`` itself with weights that depend only on
the sigma grid. Those weights live here, apart from the loops (:mod:`critdiff.samplers`), so each can be
checked against its defining integral or linear system (``tests/test_multistep.py``); the derivations are
in docs/samplers.md, "Multistep samplers".

- :func:`lagrange_weights`: ``w_j = int_a^b L_j(tau) dtau`` for the Lagrange basis ``L_j`` on ``nodes``
  (LMS: nodes = past sigmas, integral over one step; PLMS: nodes ``0, -1, -2, -3`` in step units, the
  Adams-Bashforth weights ``55/24, -59/24, 37/24, -9/24``).
- :func:`deis_weights`: ``w_j = int_rho^rho' L_j(log r) dr``, the Lagrange basis in ``log rho`` integrated
  in ``rho`` (Zhang & Chen 2023, DEIS, the ``logrho`` variant of diffusers), exact in closed form and
  finite at ``rho' = 0``.
- :func:`unipc_rhos`: UniPC's ``rho`` weights of the predictor / corrector and its ``B(h)``
  (Zhao et al. 2023, UniPC, Algorithms 1-2 with ``B_1(h) = h`` or ``B_2(h) = e^h - 1``).
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import numpy as np

UniPCVariant = Literal["bh1", "bh2"]
UNIPC_VARIANTS = ("bh1", "bh2")


def _basis(nodes: Sequence[float], j: int) -> np.polynomial.Polynomial:
    """The Lagrange basis polynomial ``L_j`` on ``nodes`` (1 at ``nodes[j]``, 0 at the others)."""
    P = np.polynomial.Polynomial
    out = P([1.0])
    for k, n in enumerate(nodes):
        if k != j:
            out = out * P([-n, 1.0]) / (nodes[j] - n)
    return out


def _check_nodes(nodes: Sequence[float]) -> list[float]:
    nodes = [float(n) for n in nodes]
    if not nodes or len(set(nodes)) != len(nodes) or not all(math.isfinite(n) for n in nodes):
        raise ValueError(f"nodes: expected distinct finite values, got {nodes}")
    return nodes


def lagrange_weights(nodes: Sequence[float], a: float, b: float) -> list[float]:
    """``[int_a^b L_j(tau) dtau for j]``: the weights of a linear multistep step from ``a`` to ``b`` whose slope is
    interpolated through ``(nodes[j], d_j)``; exact polynomial integration in float64 (no quadrature)."""
    nodes = _check_nodes(nodes)
    out = []
    for j in range(len(nodes)):
        q = _basis(nodes, j).integ()
        out.append(float(q(b) - q(a)))
    return out


def adams_bashforth(order: int) -> list[float]:
    """The ``order``-step Adams-Bashforth weights for unit steps, newest first (1; 3/2, -1/2; 23/12, -16/12, 5/12;
    55/24, -59/24, 37/24, -9/24): :func:`lagrange_weights` on the nodes ``0, -1, ..., 1 - order`` over ``[0, 1]``."""
    if order not in (1, 2, 3, 4):
        raise ValueError(f"order: expected 1, 2, 3 or 4, got {order!r}")
    return lagrange_weights([-k for k in range(order)], 0.0, 1.0)


def deis_weights(rho_nodes: Sequence[float], rho: float, rho_next: float) -> list[float]:
    """``[int_rho^rho_next L_j(log r) dr for j]`` with ``L_j`` the Lagrange basis in ``u = log r`` on ``log rho_nodes``.

    With ``r = e^u`` and ``L_j(u) = sum_m c_m u^m``: ``int u^m e^u du = e^u sum_{i<=m} (-1)^(m-i) m!/i! u^i``, so the
    antiderivative is ``r * Q_j(log r)``; at ``rho_next = 0`` it is 0 (``r log^k r -> 0``), the limit of the step
    to sigma = 0.
    """
    nodes = _check_nodes([math.log(r) for r in rho_nodes])
    out = []
    for j in range(len(nodes)):
        c = _basis(nodes, j).coef
        q = np.zeros(len(c))
        for m, cm in enumerate(c):  # u^m e^u = d/du [e^u sum_i (-1)^(m-i) m!/i! u^i]
            for i in range(m + 1):
                q[i] += cm * (-1) ** (m - i) * math.factorial(m) / math.factorial(i)
        Q = np.polynomial.Polynomial(q)

        def anti(r):
            return 0.0 if r == 0 else r * float(Q(math.log(r)))

        out.append(anti(rho_next) - anti(rho))
    return out


def unipc_rhos(rks: Sequence[float], h: float, variant: UniPCVariant, corrector: bool) -> tuple[list[float], float]:
    """UniPC's weights ``rho`` and ``B(h)`` for one data-prediction step of size ``h = log(sigma / sigma')``.

    ``rks`` are ``r_k = (lambda_k - lambda_0) / h`` of the older points (``lambda = -log sigma``), newest first,
    without the final 1. With ``hh = -h``, ``phi``-moments ``g_i = i! * h phi_{i+1}(hh) / B(h)`` (diffusers'
    recursion ``h phi_{k+1} = h phi_k / hh - 1/k!``), ``R[i][k] = r_k^i``: the corrector solves
    ``R rho = g`` on all ``p = len(rks) + 1`` points (order 1: ``rho = 1/2``); the predictor solves the system
    without the last point (order 2: ``rho = 1/2``, as in the UniPC reference code; order 1: no term).
    ``B(h) = hh`` (bh1) or ``e^hh - 1`` (bh2). Returns ``(rho, B)``. ``h = inf`` (the step to 0) is only
    meaningful for the order-1 predictor, which has no ``rho``.
    """
    if variant not in UNIPC_VARIANTS:
        raise ValueError(f"variant: expected one of {', '.join(UNIPC_VARIANTS)}, got {variant!r}")
    p = len(rks) + 1
    if not corrector and p == 1:
        return [], (-h if variant == "bh1" else math.expm1(-h))
    hh = -h
    B = hh if variant == "bh1" else math.expm1(hh)
    if corrector and p == 1:
        return [0.5], B
    if not corrector and p == 2:
        return [0.5], B
    h_phi = math.expm1(hh) / hh - 1  # h phi_2(hh)
    g, fact = [], 1
    for i in range(1, p + 1):
        g.append(h_phi * fact / B)
        fact *= i + 1
        h_phi = h_phi / hh - 1 / fact
    r = list(rks) + [1.0]
    R = np.array([[rk ** i for rk in r] for i in range(p)])
    if corrector:
        return [float(v) for v in np.linalg.solve(R, np.array(g))], B
    return [float(v) for v in np.linalg.solve(R[:-1, :-1], np.array(g[:-1]))], B
