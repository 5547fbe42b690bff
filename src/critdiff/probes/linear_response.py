"""Linear response of the symmetric branch: the measured counterpart of the linear-stability theory.

The theory (DESIGN.md section 3) linearises the reverse dynamics about the homogeneous solution. The sampler
follows that solution when it starts from the mean of its own initial noise, ``x = base`` (default 0: the
*branch*); an ensemble started at ``x_b = base + eps * sigma_max * n_b`` follows it with fluctuations
``delta_b = x_b - x_branch`` whose size relative to the noise is ``eps`` (``eps = 1`` is the sampler's own
ensemble). The probability-flow ODE is integrated with Euler steps in the denoiser frame (= DDIM, eta = 0),
``x' = x + (sigma' - sigma) (x - D(x)) / sigma``; to first order in ``eps``

    delta_{j+1} = r_j delta_j + (1 - r_j) J_D(x_j) delta_j,        r_j = sigma_{j+1} / sigma_j,

so for a circulant ``J_D`` the per-mode multiplier of a step, estimated over the ensemble as
``m_j(k) = sum_b Re conj(dhat_bj(k)) dhat_b,j+1(k) / sum_b |dhat_bj(k)|^2`` (channels summed), inverts
*exactly* to the denoiser gain at the step's start: ``Jhat_D(k, sigma_j) = (m_j - r_j) / (1 - r_j)``. The
**growth stiffness** is

    g_j(k) = sigma_j^2 kappa(k, sigma_j) = (1 - m_j(k)) / (1 - r_j) = 1 - Jhat_D(k, sigma_j):

positive while the step contracts mode ``k``, zero exactly where it starts amplifying it, which is where the
theory's stiffness changes sign. For a non-circulant Jacobian the ratio is the Rayleigh quotient of the
Fourier diagonal in the direction the fluctuations themselves take (like the random probe of
:mod:`.spectral`, with the dynamics choosing the probe; with ``C > 1`` it tends to the least stable channel
combination). No Jacobian-vector product is needed: only forward evaluations of the denoiser.

The branch itself carries the Euler error ``O(h)``; two nested grids uniform in logsnr (``n`` and ``2n``
steps between the schedule's ``sigma_max`` and ``sigma_min``, the coarse points a subset of the fine ones)
give the Richardson extrapolation ``g = 2 g_fine - g_coarse`` on the coarse points (error ``O(h^2)``);
``|crossing(g) - crossing(g_fine)|`` is reported as the discretisation error of the estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import torch

from ..denoisers import CountingDenoiser, Denoiser, Label
from ..errors import check_int, check_positive
from ..samplers import initial_noise, sample_euler, seed_generators
from ..schedules import Schedule
from ..schedules import get as get_schedule
from ..seeding import derive
from ..io import to_jsonable
from .bootstrap import replicates
from .critical_time import CriticalTime, _make, extremum


def logsnr_grid(schedule: "Schedule | str", n: int) -> np.ndarray:
    """``n + 1`` denoiser-frame sigmas (float64, descending) uniform in logsnr from ``sigma_max`` to ``sigma_min``."""
    sch = get_schedule(schedule)
    n = check_int("n", n, 2)
    lam = np.linspace(-2 * math.log(sch.sigma_max), -2 * math.log(sch.sigma_min), n + 1)
    return np.exp(-0.5 * lam)


@dataclass(frozen=True)
class GrowthRun:
    """One Euler run of the branch and its ensemble on one grid.

    ``sigma [T+1]`` (the grid, descending); ``num, den [T, B, H, W]``: per sample ``b`` and step ``j`` the
    channel-summed ``Re conj(dhat_j) dhat_{j+1}`` and ``|dhat_j|^2``; ``states [T+1, B, C, H, W]`` (float64
    numpy, ensemble members) and ``branch [T+1, C, H, W]`` when kept; ``nfe``: evaluations per sample.
    """

    sigma: np.ndarray
    num: np.ndarray
    den: np.ndarray
    states: Optional[np.ndarray]
    branch: Optional[np.ndarray]
    nfe: float

    def stiffness(self, idx: Optional[np.ndarray] = None) -> np.ndarray:
        """``g [T, H, W] = (1 - m) / (1 - r)`` at the steps' start sigmas, from samples ``idx`` (all if None)."""
        num, den = (self.num, self.den) if idx is None else (self.num[:, idx], self.den[:, idx])
        m = num.sum(1) / np.maximum(den.sum(1), np.finfo(np.float64).tiny)
        r = (self.sigma[1:] / self.sigma[:-1])[:, None, None]
        return (1.0 - m) / (1.0 - r)


def growth_run(denoiser: Denoiser, shape, sigmas, *, eps: float = 1e-2, n: int = 4, base=0.0,
               label: Label = None, seed: int = 0, dtype=torch.float32, device="cpu",
               keep_states: bool = False) -> GrowthRun:
    """Euler-integrate the branch (from ``base``) and ``n`` members ``base + eps sigma_max n_b`` over ``sigmas``.

    ``shape``: ``(C, H, W)``; ``sigmas``: descending positive grid (no final 0: the run stops at
    ``sigmas[-1]``). Member ``b``'s noise comes from generator ``derive(seed, b)`` (:func:`~critdiff.samplers.seed_generators`), so runs on different grids start
    from the same fluctuations (paired for the Richardson step and the bootstrap).
    """
    eps = check_positive("eps", eps)
    n = check_int("n", n, 2)
    sig = np.asarray(sigmas, dtype=np.float64)
    if sig.ndim != 1 or sig.size < 3 or (np.diff(sig) >= 0).any() or sig[-1] <= 0:
        raise ValueError("sigmas: expected at least 3 strictly decreasing positive noise levels")
    C, H, W = (int(v) for v in shape)
    b0 = torch.as_tensor(base, dtype=dtype, device=device).expand(1, C, H, W)
    grid = torch.tensor(np.append(sig, 0.0), dtype=torch.float64)
    dx = initial_noise((n, C, H, W), grid, seed_generators(seed, n), dtype=dtype, device=device) * eps
    x = torch.cat([b0, b0 + dx])
    counting = CountingDenoiser(denoiser)
    traj: list[torch.Tensor] = []

    def record(step):
        traj.append(step.x.detach().to("cpu", torch.float64))

    # the last grid step (to sigma = 0) only completes the sampler's loop; its state is not used
    sample_euler(counting, x, grid, label=label, callback=record)
    X = torch.stack(traj)  # [T+1, 1+n, C, H, W]
    d = torch.fft.fft2(X[:, 1:] - X[:, :1])
    num = (d[:-1].conj() * d[1:]).real.sum(2).numpy()
    den = (d[:-1].abs() ** 2).sum(2).numpy()
    return GrowthRun(sigma=sig, num=num, den=den, states=X[:, 1:].numpy() if keep_states else None,
                     branch=X[:, 0].numpy() if keep_states else None,
                     nfe=counting.evaluations / x.shape[0])


@dataclass(frozen=True)
class LinearResponse:
    """Growth stiffness of the branch on two nested grids and its Richardson extrapolation.

    ``logsnr [T]``, ``sigma [T]``: the coarse grid's step starts (ascending logsnr = sampling order);
    ``g [T, H, W]`` extrapolated, ``g_fine``, ``g_coarse`` (``sigma^2 kappa`` per lattice mode, ``fft2``
    order); ``g_min [T]`` (softest mode), ``k_star [T, 2]`` (its ``(ky, kx)``); ``fine``/``coarse``: the runs;
    ``eps``; ``nfe``: denoiser evaluations per sample of both runs.
    """

    eps: float
    logsnr: np.ndarray
    sigma: np.ndarray
    g: np.ndarray
    g_fine: np.ndarray
    g_coarse: np.ndarray
    g_min: np.ndarray
    k_star: np.ndarray
    fine: GrowthRun
    coarse: GrowthRun
    nfe: float

    @property
    def n(self) -> int:
        return int(self.fine.num.shape[1])

    def extrapolated(self, idx: Optional[np.ndarray] = None) -> np.ndarray:
        """Richardson ``2 g_fine - g_coarse`` on the coarse steps from samples ``idx``."""
        T = self.coarse.num.shape[0]
        return 2.0 * self.fine.stiffness(idx)[0:2 * T:2] - self.coarse.stiffness(idx)

    def to_dict(self) -> dict:
        return to_jsonable({"eps": self.eps, "logsnr": self.logsnr, "sigma": self.sigma, "g_min": self.g_min,
                         "g_min_fine": self.g_fine.reshape(len(self.logsnr), -1).min(1),
                         "g_min_coarse": self.g_coarse.reshape(len(self.logsnr), -1).min(1),
                         "k_star": self.k_star, "n": self.n, "nfe": self.nfe})


def linear_response(denoiser: Denoiser, shape, schedule: "Schedule | str", *, steps: int = 24, eps: float = 1e-2,
                    n: int = 4, base=0.0, label: Label = None, seed: int = 0, dtype=torch.float32,
                    device="cpu", keep_states: bool = True) -> LinearResponse:
    """Growth stiffness along the branch (module docstring): Euler runs on ``steps`` and ``2 steps`` logsnr-uniform
    steps, Richardson-extrapolated. ``keep_states`` keeps both runs' states (for JVP probes, :func:`branch_stiffness`)."""
    steps = check_int("steps", steps, 3)
    kw = dict(eps=eps, n=n, base=base, label=label, seed=seed, dtype=dtype, device=device)
    coarse = growth_run(denoiser, shape, logsnr_grid(schedule, steps), keep_states=keep_states, **kw)
    fine = growth_run(denoiser, shape, logsnr_grid(schedule, 2 * steps), keep_states=keep_states, **kw)
    gc, gf = coarse.stiffness(), fine.stiffness()[0:2 * steps:2]
    g = 2.0 * gf - gc
    sig = coarse.sigma[:-1]
    H, W = g.shape[-2:]
    flat = g.reshape(len(g), -1)
    j = flat.argmin(1)
    ky = 2 * np.pi * np.fft.fftfreq(H)
    kx = 2 * np.pi * np.fft.fftfreq(W)
    k_star = np.stack([ky[j // W], kx[j % W]], -1)
    return LinearResponse(eps=float(eps), logsnr=-2 * np.log(sig), sigma=sig, g=g, g_fine=gf, g_coarse=gc,
                          g_min=flat.min(1), k_star=k_star, fine=fine, coarse=coarse, nfe=coarse.nfe + fine.nfe)


def _widen(ct: CriticalTime, disc: float, z: float = 1.959963984540054) -> CriticalTime:
    """Add a discretisation error ``disc`` (logsnr) in quadrature to the bootstrap error and widen the interval."""
    if not math.isfinite(disc) or not math.isfinite(ct.logsnr):
        return ct
    se = math.sqrt((ct.logsnr_se if math.isfinite(ct.logsnr_se) else 0.0) ** 2 + disc**2)
    lo, hi = ct.logsnr_ci
    lo = ct.logsnr - z * disc if not math.isfinite(lo) else min(lo, ct.logsnr - z * disc)
    hi = ct.logsnr + z * disc if not math.isfinite(hi) else max(hi, ct.logsnr + z * disc)
    ci = np.array([lo, hi])
    return replace(ct, logsnr_se=se, logsnr_ci=ci, sigma_ci=np.exp(-0.5 * ci[::-1]))


def log_gain(g: np.ndarray) -> np.ndarray:
    """``-log(1 - g) = -log Jhat_D``: positive exactly where ``g > 0``, and nearly linear in logsnr (``Jhat_D ~ snr c``
    with ``c`` slowly varying), so zero crossings interpolated in logsnr are accurate on a coarse grid.
    Non-positive gains (no amplification at all) map to a large positive value."""
    return -np.log(np.clip(1.0 - np.asarray(g, dtype=np.float64), 1e-300, None))


def softest_mode(kmap: np.ndarray) -> dict:
    """Softest lattice mode of a ``[H, W]`` map (``fft2`` order): ``k_star (ky, kx)`` with the canonical sign of the
    ``+-k`` pair, and ``k_star_abs``."""
    from ._lattice import k_grid

    ky, kx = k_grid(*kmap.shape)
    j = np.unravel_index(int(np.argmin(kmap)), kmap.shape)
    k = [float(ky[j]), float(kx[j])]
    if k[0] < 0 or (k[0] == 0 and k[1] < 0):
        k = [-k[0] + 0.0, -k[1] + 0.0]
    return {"k_star": k, "k_star_abs": math.hypot(*k)}


def mode_feature(lam: np.ndarray, G: np.ndarray) -> tuple[float, str, np.ndarray]:
    """The critical point from per-mode log-gains ``G [T, H, W]`` (:func:`log_gain`) over ``lam [T]`` ascending.

    Each mode's first sign change (``> 0`` to ``<= 0``) is interpolated linearly in logsnr; ``t_c`` is the
    earliest over modes (interpolating ``min_k`` instead would cut corners where the softest mode changes between
    recorded times). Without any crossing: the minimum of ``min_k G`` (parabolic vertex). Returns
    ``(logsnr, method, map)`` with ``map [H, W]`` each mode's ``G`` interpolated at that logsnr (its argmin is
    the critical mode ``k*``)."""
    T = len(lam)
    flat = G.reshape(T, -1)
    hit = (flat[:-1] > 0) & (flat[1:] <= 0)
    if hit.any():
        j = hit.argmax(0)
        a, b = flat[j, np.arange(flat.shape[1])], flat[j + 1, np.arange(flat.shape[1])]
        t = np.where(hit.any(0), lam[j] + (lam[j + 1] - lam[j]) * a / np.where(a - b == 0, 1.0, a - b), np.inf)
        lam_c, method = float(t.min()), "zero-crossing"
    else:
        lam_c, method = extremum(lam, flat.min(1), "min")[0], "minimum"
    i = int(np.clip(np.searchsorted(lam, lam_c), 1, T - 1))
    w = (lam_c - lam[i - 1]) / (lam[i] - lam[i - 1])
    return lam_c, method, ((1 - w) * G[i - 1] + w * G[i])


def _mode_estimate(signal: str, lam: np.ndarray, gfn, n: int, *, n_boot: int, ci: float, seed: int):
    """Bootstrap :func:`mode_feature` of ``log_gain(gfn(idx))`` over ``n`` members; interval widened by the
    interpolation error (:func:`_interpolation_error`). Returns ``(CriticalTime, map at t_c)``."""
    full = log_gain(gfn(np.arange(n)))
    lam_c, method, kmap = mode_feature(lam, full)

    def stat(idx):
        t, m, _ = mode_feature(lam, log_gain(gfn(idx)))
        return t if m == method else math.nan

    ct = _make(signal, method, lam_c, replicates(stat, n, n_boot=n_boot, seed=seed), ci, n_boot)
    return _widen(ct, _interpolation_error(lam, full, ct)), kmap


def from_growth(lr: LinearResponse, *, signal: str = "growth", n_boot: int = 500, ci: float = 0.95,
                seed: int = 0, return_map: bool = False):
    """``t_c`` from the growth stiffness (:func:`mode_feature` on :func:`log_gain` of the extrapolated ``g``),
    bootstrap over the ensemble members, widened by the discretisation error ``|t(g) - t(g_fine)|`` and the
    interpolation error in quadrature. ``return_map``: also the per-mode log-gain map at ``t_c``."""
    lam = lr.logsnr
    ct, kmap = _mode_estimate(signal, lam, lr.extrapolated, lr.n, n_boot=n_boot, ci=ci, seed=seed)
    fine_t, fine_m, _ = mode_feature(lam, log_gain(lr.g_fine))
    disc = abs(ct.logsnr - fine_t) if fine_m == ct.method and math.isfinite(fine_t) else 0.0
    ct = _widen(ct, disc)
    return (ct, kmap) if return_map else ct


def _interpolation_error(lam: np.ndarray, G: np.ndarray, ct: CriticalTime) -> float:
    """Conservative error of locating the feature between recorded times: the largest shift of the estimate
    when only every other recorded time is used, capped at the local grid spacing (the feature is bracketed
    by two recorded times; a coarser subset may miss a narrow dip altogether). 0 with fewer than 5 points."""
    if len(lam) < 5 or not math.isfinite(ct.logsnr):
        return 0.0
    j = int(np.clip(np.searchsorted(lam, ct.logsnr), 1, len(lam) - 1))
    spacing = float(lam[j] - lam[j - 1])
    half = []
    for o in (0, 1):
        t, m, _ = mode_feature(lam[o::2], G[o::2])
        if m == ct.method and math.isfinite(t):
            half.append(abs(ct.logsnr - t))
    return min(spacing, max(half, default=spacing))


def extrapolated_states(lr: LinearResponse, j: int) -> np.ndarray:
    """Member states at the coarse step ``j``, Richardson-extrapolated ``2 x_fine - x_coarse`` (error ``O(h^2)``)
    ``[B, C, H, W]`` float64."""
    if lr.fine.states is None or lr.coarse.states is None:
        raise ValueError("lr: made without keep_states=True")
    return 2.0 * lr.fine.states[2 * j] - lr.coarse.states[j]


def branch_stiffness(denoiser: Denoiser, lr: LinearResponse, around: float, *, width: int = 3,
                     label: Label = None, n_probes: int = 1, probe: str = "phase", seed: int = 0,
                     dtype=torch.float32, device="cpu", window=None) -> dict:
    """Spectral probe (random JVPs, :func:`~.spectral.spectral_probe`) at the member states
    (:func:`extrapolated_states`) of the ``2 width + 1`` coarse steps nearest logsnr ``around``. Returns
    ``logsnr [T]`` (ascending), ``kappa_state [T, B, H, W]`` (``sigma^2 kappa``, channel mean), ``k_star [T, 2]``
    and ``nfe`` (evaluations per member). ``window``: see :func:`~.spectral.spectral_probe`."""
    from .spectral import spectral_probe

    lam = lr.logsnr
    j0 = int(np.argmin(np.abs(lam - around)))
    js = [j for j in range(j0 - width, j0 + width + 1) if 0 <= j < len(lam)]
    out = {"logsnr": [], "kappa_state": [], "k_star": []}
    evals = 0.0
    for j in js:
        x = torch.from_numpy(extrapolated_states(lr, j)).to(device, dtype)
        s = float(lr.sigma[j])
        with torch.enable_grad():
            pr = spectral_probe(denoiser, x, s, label=label, n_probes=n_probes, probe=probe, seed=derive(seed, "spectral-probe", j),
                                window=window)
        out["logsnr"].append(lam[j])
        out["kappa_state"].append(pr.kappa_state.mean(1) * s**2)
        out["k_star"].append(pr.k_star)
        evals += pr.denoiser_evaluations / x.shape[0]
    res = {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}
    res["nfe"] = evals
    return res


def from_branch_stiffness(bs: dict, *, signal: str = "branch-stiffness", n_boot: int = 500, ci: float = 0.95,
                          seed: int = 0, return_map: bool = False):
    """``t_c`` from JVP stiffness on the branch (:func:`mode_feature` on :func:`log_gain` of the member-mean
    ``sigma^2 kappa``), bootstrap over members, widened by the interpolation error."""
    lam, ks = bs["logsnr"], bs["kappa_state"]
    ct, kmap = _mode_estimate(signal, lam, lambda idx: ks[:, idx].mean(1), ks.shape[1], n_boot=n_boot, ci=ci,
                              seed=seed)
    return (ct, kmap) if return_map else ct
