"""Ginzburg-Landau effective theory of the critical mode (docs/theory.md section 7).

Around the homogeneous state the patch denoiser has the exact Taylor expansion in the deviation patch
``eps = x_{i+S} - m 1_S`` (cumulants ``kappa_n`` of the patch values under the homogeneous weights):

    D_i = D(m) + sum K2_{0d} eps_d / s^2 + 1/2 sum K3_{0dd'} eps eps / s^4 + 1/6 sum K4_{0dd'd''} eps eps eps / s^6

(eq. 7.1). Projected on the critical mode and written for the score ``(D - x)/s^2`` it gives the
effective (denoiser-frame) score of the order-parameter field ``phi``:

    score_GL(phi) = -(L phi + v phi^2 + u phi^3),    kappa_GL(k) = r + c Q(k)          (eq. 7.2)

- ``r = Re kappa(k*)``, ``c`` its curvature (``correlation.correlation_length``);
- ``u = -Re cum4(q_0, z, z, conj z) / (6 s^8)`` with ``z = sum_d e^{i k*.d} q_d``, ``q`` the patch values
  projected on the critical channel vector (eq. 7.3) -- the resonant cubic term of the mode;
- ``v = -cum3(q_0, z, z) / (2 s^6)`` for ``k* = 0`` (for ``k* != 0`` the quadratic term is not resonant
  and is dropped);
- ``Q(k) = K^2`` (lattice ``K^2 = 4 sin^2(ky/2) + 4 sin^2(kx/2)``) for ``k* = 0``, the Swift-Hohenberg
  form ``(K^2 - k*^2)^2 / (4 k*^2)`` otherwise; ``kappa_GL`` is capped at ``1/s^2``, the stiffness of
  pure noise and an upper bound of the exact ``kappa`` (``C_w(k) >= 0`` for uniform weights).

:class:`GLDenoiser` turns eq. (7.2) into a denoiser ``D_GL(x, s) = D(m) + phi - s^2 (L phi + v phi^2 + u phi^3)``
(``phi = x - m(s)``) so that the same samplers, schedule grid and noise drive both models.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import torch

from ..errors import check_images
from ..probes.correlations import structure_factor
from .correlation import correlation_length, dominant_wavelength
from .homogeneous import HomogeneousSolution, denoise_homogeneous
from .pool import PatchPool, homogeneous_weights
from .spectrum import k_grid, kernel_transform, patch_kernel


@dataclass(frozen=True)
class GLCoefficients:
    """``r, c, u, v`` at one ``sigma`` (denoiser frame), the mode ``k_star`` and channel vector ``e``."""

    sigma: float
    r: float
    c: float
    u: float
    v: float
    k_star: tuple
    e: tuple

    def to_dict(self) -> dict:
        d = asdict(self)
        d["k_star"], d["e"] = list(self.k_star), list(self.e)
        return d


def channel_vector(pool: PatchPool, k_star, sigma: float, m=None, weights="exact") -> torch.Tensor:
    """Real unit channel vector ``e [C]``: top eigenvector of ``Re C_w(k*)`` (``[1.]`` for one channel)."""
    if pool.channels == 1:
        return torch.ones(1, dtype=torch.float64)
    kern = patch_kernel(pool, sigma, None if m is None else torch.as_tensor(m, dtype=torch.float64), weights)
    block = kernel_transform(kern, pool.offsets, torch.tensor([k_star], dtype=torch.float64))[0].real
    return torch.linalg.eigh(0.5 * (block + block.T))[1][:, -1]


def gl_coefficients(pool: PatchPool, sigma: float, k_star, *, m=None, weights="exact",
                    e: Optional[torch.Tensor] = None) -> GLCoefficients:
    """Eq. (7.2)-(7.3) at ``sigma`` around the constant image ``m`` for the critical mode ``k_star``."""
    kstar = tuple(float(v) for v in k_star)
    m_t = torch.zeros(pool.channels, dtype=torch.float64) if m is None else torch.as_tensor(m, dtype=torch.float64)
    if e is None:
        e = channel_vector(pool, kstar, sigma, m_t, weights)
    w = homogeneous_weights(pool, m_t, None if weights == "uniform" else sigma)  # the moments run on the pool's device
    q = pool.patches @ e.to(pool.device)  # [M, S]
    q0 = pool.centres @ e.to(pool.device)  # [M]
    q = q - w @ q
    q0 = q0 - w @ q0
    phase = torch.exp(1j * (pool.offsets.to(torch.float64) @ torch.tensor(kstar, dtype=torch.float64))).to(pool.device)
    z = q.to(torch.complex128) @ phase  # [M]
    wc = w.to(torch.complex128)
    q0c = q0.to(torch.complex128)

    def E(t):
        return wc @ t

    cum4 = E(q0c * z * z * z.conj()) - 2 * E(q0c * z) * E(z * z.conj()) - E(q0c * z.conj()) * E(z * z)
    s2 = float(sigma) ** 2
    u = -float(cum4.real) / (6 * s2**4)
    v = -float(E(q0c * z * z).real) / (2 * s2**3) if math.hypot(*kstar) == 0 else 0.0
    cl = correlation_length(pool, sigma, kstar, m=m_t.numpy(), weights=weights)
    return GLCoefficients(float(sigma), cl.r, cl.c, u, v, kstar, tuple(e.tolist()))


def gl_symbol(k_star, shape: tuple[int, int]) -> torch.Tensor:
    """``Q(k) [H, W]`` of eq. (7.2): lattice ``K^2`` for ``k* = 0``, Swift-Hohenberg form otherwise."""
    ky, kx = k_grid(*shape)
    K2 = 4 * torch.sin(ky / 2) ** 2 + 4 * torch.sin(kx / 2) ** 2
    ks = math.hypot(*k_star)
    if ks == 0:
        return K2
    ks2 = 4 * math.sin(k_star[0] / 2) ** 2 + 4 * math.sin(k_star[1] / 2) ** 2
    return (K2 - ks2) ** 2 / (4 * ks2)


@dataclass(frozen=True, eq=False)
class GLTable:
    """Coefficients tabulated on descending ``sigmas [T]`` with the homogeneous state ``m [T, C]`` and ``D(m) [T, C]``."""

    sigmas: np.ndarray
    r: np.ndarray
    c: np.ndarray
    u: np.ndarray
    v: np.ndarray
    m: np.ndarray
    d_hom: np.ndarray
    k_star: tuple
    e: np.ndarray

    def at(self, sigma: float) -> dict:
        """Linear interpolation in ``log sigma`` (clamped to the table)."""
        ls = np.log(self.sigmas[::-1])
        x = math.log(min(max(sigma, self.sigmas[-1]), self.sigmas[0]))
        f = lambda a: np.interp(x, ls, a[::-1]) if a.ndim == 1 else np.array(  # noqa: E731
            [np.interp(x, ls, a[::-1, j]) for j in range(a.shape[1])])
        return {"r": f(self.r), "c": f(self.c), "u": f(self.u), "v": f(self.v), "m": f(self.m), "d_hom": f(self.d_hom)}

    def to_dict(self) -> dict:
        return {"sigma": self.sigmas.tolist(), "r": self.r.tolist(), "c": self.c.tolist(), "u": self.u.tolist(),
                "v": self.v.tolist(), "k_star": list(self.k_star), "e": self.e.tolist()}


def gl_table(pool: PatchPool, sigmas, k_star, *, hom: Optional[HomogeneousSolution] = None,
             weights="exact") -> GLTable:
    """Eq. (7.2) coefficients at every ``sigma`` of ``sigmas`` (descending, > 0)."""
    rows = []
    C = pool.channels
    e = None
    for s in [float(v) for v in sigmas]:
        m = np.zeros(C) if hom is None or weights == "uniform" else hom(s)
        if e is None:
            e = channel_vector(pool, k_star, s, m, weights)
        g = gl_coefficients(pool, s, k_star, m=m, weights=weights, e=e)
        rows.append((s, g.r, g.c, g.u, g.v, m, denoise_homogeneous(pool, torch.as_tensor(m), s).numpy()))
    cols = list(zip(*rows))
    return GLTable(np.array(cols[0]), np.array(cols[1]), np.array(cols[2]), np.array(cols[3]), np.array(cols[4]),
                   np.stack(cols[5]), np.stack(cols[6]), tuple(float(v) for v in k_star), e.numpy())


class GLDenoiser:
    """The GL (Swift-Hohenberg when ``k* != 0``) model as a denoiser ``D(x [B, C, H, W], sigma)`` (eq. 7.4).

    The field is ``x = m(sigma) + phi e`` (``e`` the critical channel vector); channels orthogonal to ``e``
    get no correlation (``J_D = 0`` there: ``D = D(m)``, the pure-noise denoiser).
    """

    def __init__(self, table: GLTable, shape: tuple[int, int]):
        self.table = table
        self.Q = gl_symbol(table.k_star, shape)
        self.e = torch.as_tensor(table.e, dtype=torch.float64)

    def __call__(self, x: torch.Tensor, sigma, label=None) -> torch.Tensor:
        s = float(sigma if not isinstance(sigma, torch.Tensor) else sigma.reshape(-1)[0])
        co = self.table.at(s)
        e = self.e.to(x.dtype).reshape(1, -1, 1, 1)
        m = torch.as_tensor(co["m"], dtype=x.dtype).reshape(1, -1, 1, 1)
        dh = torch.as_tensor(co["d_hom"], dtype=x.dtype).reshape(1, -1, 1, 1)
        phi = ((x - m) * e).sum(1)  # [B, H, W]
        kap = torch.clamp(co["r"] + co["c"] * self.Q, max=1.0 / s**2).to(x.dtype)
        lin = torch.fft.ifft2(torch.fft.fft2(phi) * kap).real
        dphi = phi - s * s * (lin + co["v"] * phi**2 + co["u"] * phi**3)
        return dh + dphi[:, None] * e


def pattern_statistics(x: torch.Tensor, e: Optional[torch.Tensor] = None) -> dict:
    """Dominant wavelength and second-moment correlation length ``xi_peak`` (about the spectral peak) of an ensemble of fields ``[B, C, H, W]``.

    With ``e`` the fields are first projected on the channel vector ``e``.
    """
    check_images("x", x)
    if e is not None:
        x = (x * torch.as_tensor(e, dtype=x.dtype).reshape(1, -1, 1, 1)).sum(1, keepdim=True)
    sf = structure_factor(x)
    return {"dominant_wavelength": dominant_wavelength(sf.S), "xi_peak": sf.xi_peak}


def compare_with_patch_model(images: torch.Tensor, stencil="square:5", schedule="vp-linear", *, n: int = 200,
                             steps: int = 40, seed: int = 0, logsnr_after: float = 2.0, weights="exact") -> dict:
    """Run the patch model and its GL model from the same noise on the same grid (Euler ODE sampler).

    The grid is uniform in logsnr from the schedule's ``sigma_max`` to ``sigma_end = sigma_c e^{-logsnr_after/2}``
    (the GL truncation holds near ``t_c`` only); both ensembles' pattern statistics at ``sigma_end`` are
    returned beside the linear theory's ``2 pi / |k*|``. Returns ``{'ok': False, 'message': ...}`` when
    there is no critical point or no preferred mode.
    """
    from ..samplers import Recorder, sample_euler
    from ..schedules import get as get_schedule
    from ..scores.patch import PatchScore
    from .critical import critical_point
    from .homogeneous import homogeneous_solution
    from .pool import patch_pool

    sch = get_schedule(schedule)
    pool = patch_pool(images, stencil)
    cp = critical_point(pool, sch, weights=weights, growth=False)
    if not cp.found or not cp.preferred_mode:
        return {"ok": False, "message": cp.message or "no preferred critical mode", "critical": cp.to_dict()}
    s_end = cp.sigma_over_a_c * math.exp(-0.5 * logsnr_after)
    sig = torch.cat([torch.exp(torch.linspace(math.log(sch.sigma_max), math.log(s_end), steps + 1,
                                              dtype=torch.float64)), torch.zeros(1, dtype=torch.float64)])
    hom = homogeneous_solution(pool, sch.sigma_max, s_end * 0.5)
    table = gl_table(pool, sig[:-1], cp.k_star, hom=hom, weights=weights)
    C, H, W = pool.shape
    g = torch.Generator().manual_seed(int(seed))
    x0 = torch.randn(n, C, H, W, generator=g, dtype=torch.float64) * sig[0]
    out = {}
    for name, den in (("patch", PatchScore(images.to(torch.float64), stencil)), ("gl", GLDenoiser(table, (H, W)))):
        rec = Recorder(steps=[steps])
        with torch.no_grad():
            sample_euler(den, x0.clone(), sig, callback=rec)
        out[name] = pattern_statistics(rec.x[0], table.e)
        out[name]["finite"] = bool(torch.isfinite(rec.x[0]).all())
    return {"ok": True, "message": "", "sigma_end": s_end, "logsnr_end": -2 * math.log(s_end), "n": n,
            "steps": steps, "theory_wavelength": None if cp.k_star_abs == 0 else 2 * math.pi / cp.k_star_abs,
            "critical": cp.to_dict(), "patch": out["patch"], "gl": out["gl"],
            "coefficients_at_end": {k: float(np.atleast_1d(v)[0]) for k, v in table.at(s_end).items()
                                    if k in ("r", "c", "u", "v")}}
