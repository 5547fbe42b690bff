"""The spectral probe at the theory's homogeneous states ``m(sigma) 1`` (DESIGN.md section 3).

By equivariance a constant image stays constant under the reverse dynamics of the equivariant periodic patch
model; there its Jacobian is circulant, so the impulse route of :func:`~critdiff.probes.spectral_probe` is
exact and its stiffness is exactly the theory's ``kappa(k, t)``. The zero crossing of ``sigma^2 min_k kappa``
along a logsnr grid is then the theory's ``t_c`` measured by JVPs on the model itself (an independent code
path from :mod:`critdiff.theory`, which computes patch-pool covariances in closed form).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import schedules as S
from ._lattice import k_grid
from .critical_time import zero_crossing
from .spectral import spectral_probe

__all__ = ["homogeneous_probe", "k_star_matches"]


def _probe_at(model, hom, shape, sigma: float, dtype=torch.float64, device=None):
    """Impulse spectral probe of ``model`` at ``m(sigma) 1`` (``shape`` ``(C, H, W)``) on ``device``."""
    C, H, W = shape
    x = torch.as_tensor(hom(sigma), dtype=dtype).reshape(1, C, 1, 1).expand(1, C, H, W).contiguous().to(device)
    with torch.enable_grad():
        return spectral_probe(model, x, sigma, method="impulse", backend="auto")


def _bisect_crossing(model, hom, shape, dtype, lo: float, hi: float, refine: int, device=None) -> tuple[float, int]:
    """Bisect in logsnr between ``lo`` (``sigma^2 kappa_min > 0``) and ``hi`` (``<= 0``); ``(logsnr, nfe)``."""
    evals = 0
    for _ in range(refine):
        mid = 0.5 * (lo + hi)
        s = math.exp(-0.5 * mid)
        pr = _probe_at(model, hom, shape, s, dtype, device)
        evals += pr.denoiser_evaluations
        if pr.kappa_min * s * s > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi), evals


def homogeneous_probe(model, images: torch.Tensor, stencil: str, schedule, logsnr: np.ndarray, *,
                      refine: int = 40, tie_tol: float = 1e-6, device=None) -> dict:
    """Spectral probe (impulse route: exact for the circulant Jacobian there) at the theory's homogeneous
    states ``m(sigma) 1`` on a ``logsnr`` grid (ascending), in the dtype of ``images`` (the model's). Returns
    ``sigma2_kappa_min [T]`` (``sigma^2 min_k kappa``), ``k_star [T, 2]``, ``kappa_radial [T, nk]`` on
    ``k_radial``, ``logsnr``, ``nfe``, and the first zero crossing of ``sigma2_kappa_min`` refined by bisection
    in logsnr (``crossing``: ``logsnr``, the softest mode ``k_star`` there, ``kappa`` map ``sigma^2 kappa
    [H, W]`` for tie checks), or ``crossing = None``. ``device``: where the states are made (default the CPU; the
    model's device), where the theory's pool lives too (:mod:`critdiff.theory.pool`)."""
    from ..theory.homogeneous import homogeneous_solution
    from ..theory.pool import patch_pool

    sch = S.get(schedule)
    pool = patch_pool(images.to(torch.float64), stencil, device=device)
    hom = homogeneous_solution(pool, sch.sigma_max, sch.sigma_min)
    shape, dtype = tuple(images.shape[1:]), images.dtype
    out = {"logsnr": np.asarray(logsnr, dtype=np.float64), "sigma2_kappa_min": [], "k_star": [], "kappa_radial": []}
    evals = 0
    for lam in out["logsnr"]:
        sigma = math.exp(-0.5 * lam)
        pr = _probe_at(model, hom, shape, sigma, dtype, device)
        out["sigma2_kappa_min"].append(pr.kappa_min * sigma**2)
        out["k_star"].append(pr.k_star)
        out["kappa_radial"].append(pr.kappa_radial * sigma**2)
        out["k_radial"] = pr.k_radial
        evals += pr.denoiser_evaluations
    out = {k: np.asarray(v) for k, v in out.items()}
    out["crossing"] = None
    lam0 = zero_crossing(out["logsnr"], out["sigma2_kappa_min"])
    if lam0 is not None:
        j = int(np.searchsorted(out["logsnr"], lam0))
        lam, n_bisect = _bisect_crossing(model, hom, shape, dtype, float(out["logsnr"][j - 1]),
                                         float(out["logsnr"][j]), refine, device)  # g(lo) > 0 >= g(hi)
        evals += n_bisect
        s = math.exp(-0.5 * lam)
        pr = _probe_at(model, hom, shape, s, dtype, device)
        out["crossing"] = {"logsnr": lam, "k_star": list(pr.k_star), "k_star_abs": math.hypot(*pr.k_star),
                           "kappa": pr.kappa_mode * s * s, "tie_tol": tie_tol}
    out["nfe"] = evals
    return out


def k_star_matches(kappa: np.ndarray, k_star, tol: float = 1e-6) -> bool:
    """Whether the mode ``k_star`` ``(ky, kx)`` is (within ``tol``, or its sign partner) a softest mode of
    ``kappa [H, W]`` (``sigma^2 kappa`` on the ``fft2`` grid): symmetry partners tie exactly."""
    H, W = kappa.shape
    ky, kx = k_grid(H, W)
    wrap = lambda a: (a + math.pi) % (2 * math.pi) - math.pi  # noqa: E731
    d = np.hypot(wrap(ky - k_star[0]), wrap(kx - k_star[1]))
    dm = np.hypot(wrap(ky + k_star[0]), wrap(kx + k_star[1]))
    j = np.unravel_index(int(np.argmin(np.minimum(d, dm))), (H, W))
    return bool(kappa[j] <= kappa.min() + tol * max(1.0, abs(kappa.min())))
