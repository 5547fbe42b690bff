"""Correlation length and the predicted structure factor (docs/theory.md section 5).

- ``xi = sqrt(c / |r|)`` from the local quadratic form ``kappa(k) ~ r + c |k - k*|^2`` around the
  critical mode (eq. 5.1): ``r = Re kappa(k*)``, ``c`` from the exact Hessian of ``Re kappa`` in the
  continuous wavevector (``C_w(k)`` is a trigonometric polynomial): the radial curvature
  ``c = n.H n / 2`` (``n = k*/|k*|``) when ``k* != 0``, the mean curvature ``tr H / 4`` when ``k* = 0``.
  White data: ``c = 0`` and ``xi = 0`` by definition (no preferred mode).
- ``S(k, sigma)``: each Fourier mode of the linearised sampler is a linear process; its ``C x C``
  covariance ``Sigma(k)`` is integrated from the initial noise ``Sigma = sigma_max^2 I`` (eq. 5.3-5.4);
  ``S(k) = tr Sigma(k)`` (summed over channels). Normalisation ``S(k) = E|x_hat(k) - E x_hat(k)|^2 / (H W)``.
- The structure factor of an ensemble and its second-moment lengths ``xi_zero`` / ``xi_peak`` (eq. 5.5) are
  :func:`critdiff.probes.correlations.structure_factor`, ``xi_zero`` and ``xi_peak``: one definition for
  theory, probes and reports.

Shapes: ``S [T, H, W]`` over a sigma grid ``[T]``; fields ``[B, C, H, W]``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import torch

from ..errors import check_choice
from .homogeneous import HomogeneousSolution
from .pool import PatchPool
from .spectrum import block_eigenvalues, is_hermitian_kernel, k_grid, kernel_transform, patch_kernel


@dataclass(frozen=True)
class CorrelationLength:
    """``xi = sqrt(c/|r|)`` at one ``sigma``; ``c_min, c_max`` are half the Hessian's eigenvalues."""

    sigma: float
    r: float
    c: float
    c_min: float
    c_max: float
    xi: float
    k_star: Optional[tuple[float, float]]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["k_star"] = None if self.k_star is None else list(self.k_star)
        return d


def _top_cov(kernel, offsets, k: torch.Tensor) -> torch.Tensor:
    blocks = kernel_transform(kernel, offsets, k)
    return block_eigenvalues(blocks, is_hermitian_kernel(kernel, offsets))[..., 0].real


def kappa_hessian(kernel: torch.Tensor, offsets: torch.Tensor, k_star, sigma: float, h: float = 1e-3):
    """``(Re kappa(k*), Hessian [2, 2])`` of the top branch in the continuous ``k`` (central differences)."""
    k0 = torch.tensor(k_star, dtype=torch.float64)
    e = torch.eye(2, dtype=torch.float64) * h
    pts = [k0]
    for a in range(2):
        pts += [k0 + e[a], k0 - e[a]]
    pts += [k0 + e[0] + e[1], k0 + e[0] - e[1], k0 - e[0] + e[1], k0 - e[0] - e[1]]
    c = _top_cov(kernel, offsets, torch.stack(pts))
    kap = (1.0 - c / sigma**2) / sigma**2
    H = torch.empty(2, 2, dtype=torch.float64)
    H[0, 0] = (kap[1] - 2 * kap[0] + kap[2]) / h**2
    H[1, 1] = (kap[3] - 2 * kap[0] + kap[4]) / h**2
    H[0, 1] = H[1, 0] = (kap[5] - kap[6] - kap[7] + kap[8]) / (4 * h**2)
    return float(kap[0]), H


def correlation_length(pool: PatchPool, sigma: float, k_star, *, m=None, weights="exact",
                       preferred_mode: bool = True) -> CorrelationLength:
    """``xi(sigma)`` around the critical mode ``k_star`` ``(ky, kx)`` (eq. 5.1); ``k_star=None`` means white data."""
    kern = patch_kernel(pool, sigma, None if m is None else torch.as_tensor(m, dtype=torch.float64), weights)
    offs = pool.offsets
    if k_star is None or not preferred_mode:
        r, _ = kappa_hessian(kern, offs, (0.0, 0.0), sigma)
        return CorrelationLength(float(sigma), r, 0.0, 0.0, 0.0, 0.0, None)
    r, H = kappa_hessian(kern, offs, k_star, sigma)
    ev = torch.linalg.eigvalsh(H) / 2
    kabs = math.hypot(*k_star)
    if kabs > 0:
        n = torch.tensor(k_star, dtype=torch.float64) / kabs
        c = float(n @ H @ n) / 2
    else:
        c = float(torch.trace(H)) / 4
    xi = math.sqrt(max(c, 0.0) / abs(r)) if r != 0 else math.inf
    return CorrelationLength(float(sigma), r, c, float(ev[0]), float(ev[1]), xi, tuple(k_star))


def xi_curve(pool: PatchPool, sigmas, k_star, *, hom: Optional[HomogeneousSolution] = None, weights="exact",
             preferred_mode: bool = True) -> list[CorrelationLength]:
    """:func:`correlation_length` at every ``sigma`` of ``sigmas`` (the homogeneous state from ``hom``)."""
    out = []
    for s in [float(v) for v in sigmas]:
        m = None if hom is None or weights == "uniform" else hom(s)
        out.append(correlation_length(pool, s, k_star, m=m, weights=weights, preferred_mode=preferred_mode))
    return out


def predicted_structure_factor(pool: PatchPool, sigmas, *, sampler: str = "ode", weights: str = "exact",
                               hom: Optional[HomogeneousSolution] = None, max_step: float = 0.01,
                               discretisation: Optional[str] = None) -> torch.Tensor:
    """Linear-theory ``S(k, sigma)`` ``[T, H, W]`` at the descending ``sigmas [T]`` (eq. 5.3-5.4).

    Starts from white noise ``Sigma(k) = sigmas[0]^2 I`` at ``sigmas[0]``. ``sampler='ode'``: probability-flow
    ODE ``dv/dl = (I - Lambda) v`` (``l = log sigma``, ``Lambda = C_w(k)/sigma^2``); ``'sde'``: reverse SDE,
    drift doubled plus ``2 sigma^2 dl`` of fresh variance. Exponential integrator with coefficients frozen at
    the midpoint of substeps of at most ``max_step`` in ``log sigma``. Values after ``t_c`` grow like
    ``exp(int c/sigma^2)`` and overflow to ``inf`` far past it: the linear theory holds only before ``t_c``.

    ``discretisation='euler'`` / ``'heun'`` (ODE) or ``'euler-maruyama'`` (SDE) instead propagates the exact
    linearisation of that sampler's step on the grid ``sigmas`` (eq. 5.6): then ``sigmas`` must be the
    sampler's grid and the comparison with its ensemble carries no time-discretisation error.
    """
    check_choice("sampler", sampler, ("ode", "sde"))
    if discretisation is not None:
        check_choice("discretisation", discretisation, ("euler", "heun", "euler-maruyama"))
        return _discrete_structure_factor(pool, sigmas, discretisation, weights, hom)
    sig = [float(s) for s in torch.as_tensor(sigmas, dtype=torch.float64)]
    if len(sig) < 1 or any(s <= 0 for s in sig) or any(b >= a for a, b in zip(sig, sig[1:])):
        raise ValueError("sigmas: expected a strictly decreasing sequence of positive noise levels")
    C, H, W = pool.shape
    alpha = 1.0 if sampler == "ode" else 2.0
    ky, kx = k_grid(H, W)
    kvec = torch.stack([ky, kx], dim=-1)
    eye = torch.eye(C, dtype=torch.complex128)
    Sig = (sig[0] ** 2) * eye.expand(H, W, C, C).clone()
    out = [Sig.diagonal(dim1=-2, dim2=-1).real.sum(-1).clone()]
    uniform_blocks = None
    if weights == "uniform":
        uniform_blocks = kernel_transform(patch_kernel(pool, None, None, "uniform"), pool.offsets, kvec)
    for s_hi, s_lo in zip(sig, sig[1:]):
        L = math.log(s_hi / s_lo)
        n = max(1, math.ceil(L / max_step))
        h = L / n
        for j in range(n):
            s_mid = s_hi * math.exp(-(j + 0.5) * h)
            if uniform_blocks is None:
                m = None if hom is None else torch.as_tensor(hom(s_mid))
                blocks = kernel_transform(patch_kernel(pool, s_mid, m, "exact"), pool.offsets, kvec)
            else:
                blocks = uniform_blocks
            A = h * alpha * (blocks / s_mid**2 - eye)  # -h B
            if C == 1:
                E = torch.exp(A)
                Eh = torch.exp(0.5 * A)
            else:
                E = torch.linalg.matrix_exp(A)
                Eh = torch.linalg.matrix_exp(0.5 * A)
            Sig = E @ Sig @ E.conj().transpose(-1, -2)
            if sampler == "sde":
                Sig = Sig + 2.0 * s_mid**2 * h * (Eh @ Eh.conj().transpose(-1, -2))
        out.append(Sig.diagonal(dim1=-2, dim2=-1).real.sum(-1).clone())
    return torch.stack(out)


def _blocks_at(pool, sigma, kvec, weights, hom):
    m = None if hom is None or weights == "uniform" else torch.as_tensor(hom(sigma))
    return kernel_transform(patch_kernel(pool, sigma, m, weights), pool.offsets, kvec)


def _discrete_structure_factor(pool, sigmas, method, weights, hom) -> torch.Tensor:
    """``S`` under the linearised steps of a sampler on its own grid (eq. 5.6); ``sigmas`` may end in 0."""
    sig = [float(s) for s in torch.as_tensor(sigmas, dtype=torch.float64)]
    if any(b >= a for a, b in zip(sig, sig[1:])) or sig[0] <= 0:
        raise ValueError("sigmas: expected a strictly decreasing grid starting above 0")
    C, H, W = pool.shape
    ky, kx = k_grid(H, W)
    kvec = torch.stack([ky, kx], dim=-1)
    eye = torch.eye(C, dtype=torch.complex128)
    Sig = (sig[0] ** 2) * eye.expand(H, W, C, C).clone()
    out = [Sig.diagonal(dim1=-2, dim2=-1).real.sum(-1).clone()]
    for s, s_next in zip(sig, sig[1:]):
        if s_next == 0:
            break
        lam0 = _blocks_at(pool, s, kvec, weights, hom) / s**2  # J_D(k) at s
        if method == "euler-maruyama":
            dvar = s**2 - s_next**2
            G = eye + (dvar / s**2) * (lam0 - eye)
            Sig = G @ Sig @ G.conj().transpose(-1, -2) + dvar * eye
        else:
            hs = s_next - s
            A0 = (eye - lam0) / s
            if method == "euler":
                G = eye + hs * A0
            else:
                A1 = (eye - _blocks_at(pool, s_next, kvec, weights, hom) / s_next**2) / s_next
                G = eye + 0.5 * hs * (A0 + A1 @ (eye + hs * A0))
            Sig = G @ Sig @ G.conj().transpose(-1, -2)
        out.append(Sig.diagonal(dim1=-2, dim2=-1).real.sum(-1).clone())
    return torch.stack(out)


def dominant_wavelength(S: "torch.Tensor | np.ndarray") -> Optional[float]:
    """``2 pi / |k|`` at the peak of the radially averaged ``S [H, W]`` (None when the peak is at ``k = 0``)."""
    from .spectrum import radial_average

    S = torch.as_tensor(S, dtype=torch.float64)
    H, W = S.shape
    ky, kx = k_grid(H, W)
    k, mean, _, _ = radial_average(S, ky, kx)
    kp = float(k[int(np.argmax(mean))])
    return None if kp == 0 else 2 * math.pi / kp


def compare_structure_factors(S_pred: torch.Tensor, S_emp: torch.Tensor, S_se: torch.Tensor, sigmas,
                              z_max: float = 4.0) -> dict:
    """Per-time agreement of predicted and ensemble ``S`` ``[T, H, W]`` on radial shells.

    Shell means of both, the standard error of the ensemble's shell mean (from the per-mode errors),
    the largest ``|z|`` per time, and ``departs_at``: the first time (largest sigma) from which on
    ``|z| > z_max`` (None if never).
    """
    from .spectrum import radial_average

    S_pred, S_emp, S_se = (torch.as_tensor(v, dtype=torch.float64) for v in (S_pred, S_emp, S_se))
    T, H, W = S_pred.shape
    ky, kx = k_grid(H, W)
    zs = []
    for i in range(T):
        _, p, _, cnt = radial_average(S_pred[i], ky, kx)
        _, e, _, _ = radial_average(S_emp[i], ky, kx)
        _, v, _, _ = radial_average(S_se[i] ** 2, ky, kx)
        se = np.sqrt(v / cnt * np.minimum(cnt, 2))  # k and -k carry the same |x_hat|: ~cnt/2 independent modes
        z = np.abs(p - e) / np.maximum(se, 1e-300)
        zs.append(float(np.max(np.where(np.isfinite(z), z, np.inf))))
    sig = [float(s) for s in sigmas]
    departs = None
    for i in range(T):
        if all(z > z_max for z in zs[i: i + 2]):
            departs = sig[i]
            break
    return {"sigma": sig, "z_max_per_time": zs, "z_threshold": z_max, "departs_at_sigma": departs}
