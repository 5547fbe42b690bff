"""Susceptibility ``chi(t)``: response of the final sample to a small kick at step ``i`` (DESIGN.md section 4).

For an ensemble ``x [B, C, H, W]`` run by any sampler over ``sigmas``, at each kick step ``i`` the state
``x_i`` is replaced by ``x_i + delta`` with ``delta = eps * rms(x_i) * z`` (``z`` a unit-RMS field per sample)
and the run continues with the SAME sampler noise as the unkicked run (common random numbers: each sample
has its own generator, whose state at step ``i`` is snapshot in the baseline run and restored for the
continuation; deterministic samplers need none). Then::

    chi_b(i) = ||x_final(kicked) - x_final||_b / ||delta_b||

(the gain of the linearised sampler map from step ``i`` to the end, along ``z``), with a bootstrap interval
of the ensemble mean. The spatial spread of the response ``dx = x_final(kicked) - x_final``:

- ``kick='bump'`` (a Gaussian bump of width ``width`` at ``site``, every channel): the RMS radius
  ``sqrt(sum_r |r - site|^2 |dx(r)|^2 / sum_r |dx(r)|^2)`` with minimum-image distances;
- ``kick='white'``: the second-moment length ``xi_zero`` (about ``k = 0``) of ``|dx_hat(k)|^2`` (:mod:`.correlations`).

The continuation runs ``sampler(denoiser, x_i + delta, sigmas[i:])``: samplers are step-local, so the unkicked
continuation reproduces the baseline exactly (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch

from ..denoisers import CountingDenoiser, Denoiser, Label
from ..errors import check_choice, check_images, check_positive
from ..samplers import Step, seed_generators
from ..schedules import Schedule
from ..seeding import derive
from ..io import to_jsonable
from .bootstrap import mean_ci
from .correlations import xi_zero
from ..times import schedule_times
from .trajectory import SamplerLike, resolve_sampler

Kick = Literal["white", "bump"]


@dataclass(frozen=True)
class Susceptibility:
    """``chi [T, B]`` per kick step and sample, ``chi_mean [T]``, ``chi_ci [T, 2]``; ``spread [T, B]`` (pixels),
    ``spread_mean``, ``spread_ci``; ``steps``, ``sigma``, ``logsnr`` of the kick steps; ``nfe`` per sample."""

    kick: str
    eps: float
    steps: np.ndarray
    sigma: np.ndarray
    logsnr: np.ndarray
    chi: np.ndarray
    chi_mean: np.ndarray
    chi_ci: np.ndarray
    spread: np.ndarray
    spread_mean: np.ndarray
    spread_ci: np.ndarray
    nfe: float

    def times(self, schedule: "Schedule | str") -> dict[str, np.ndarray]:
        return schedule_times(schedule, self.sigma)

    def to_dict(self) -> dict:
        return to_jsonable({k: getattr(self, k) for k in self.__dataclass_fields__})


def _min_image_r2(H: int, W: int, site) -> torch.Tensor:
    dy = torch.arange(H, dtype=torch.float64) - site[0]
    dx = torch.arange(W, dtype=torch.float64) - site[1]
    dy = (dy + H / 2) % H - H / 2
    dx = (dx + W / 2) % W - W / 2
    return dy[:, None] ** 2 + dx[None, :] ** 2


def kick_fields(shape, kick: Kick = "white", *, width: float = 1.5, site=None, seed: int = 0) -> torch.Tensor:
    """Unit-RMS kick fields ``z [B, C, H, W]`` float64: white Gaussian, or a Gaussian bump at ``site``."""
    check_choice("kick", kick, ("white", "bump"))
    B, C, H, W = shape
    if kick == "white":
        z = torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)
    else:
        check_positive("width", width)
        site = (H // 2, W // 2) if site is None else site
        z = torch.exp(-_min_image_r2(H, W, site) / (2 * width**2)).expand(B, C, H, W).clone()
    return z / z.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()


def response_spread(dx: torch.Tensor, kick: Kick, site=None) -> np.ndarray:
    """Spatial spread ``[B]`` (pixels) of responses ``dx [B, C, H, W]`` (module docstring)."""
    B, C, H, W = dx.shape
    p = dx.to(torch.float64).pow(2).sum(1)  # [B, H, W]
    if kick == "bump":
        site = (H // 2, W // 2) if site is None else site
        r2 = _min_image_r2(H, W, site)
        tot = p.sum((1, 2))
        return torch.where(tot > 0, ((p * r2).sum((1, 2)) / tot).sqrt(), torch.full_like(tot, math.nan)).numpy()
    S = (torch.fft.fft2(dx.to(torch.float64)).abs() ** 2).sum(1) / (H * W)
    return np.array([xi_zero(S[b].numpy()) for b in range(B)])


def susceptibility(denoiser: Denoiser, x: torch.Tensor, sigmas, kick_steps: Sequence[int], *,
                   sampler: SamplerLike = "heun", label: Label = None, eps: float = 1e-3, kick: Kick = "white",
                   width: float = 1.5, site=None, seed: int = 0, n_boot: int = 1000, ci: float = 0.95) -> Susceptibility:
    """``chi`` at each of ``kick_steps`` for the ensemble ``x [B, C, H, W]`` (module docstring).

    ``eps``: kick size relative to the RMS of the state at the kick; ``seed`` seeds the per-sample sampler
    generators (:func:`~critdiff.samplers.seed_generators`), the white kicks (``derive(seed, 'kick')``,
    :mod:`critdiff.seeding`) and the bootstrap.
    """
    check_images("x", x)
    check_positive("eps", eps)
    check_choice("kick", kick, ("white", "bump"))
    fn = resolve_sampler(sampler)
    n_steps = len(sigmas) - 1
    steps = sorted({int(s) % n_steps for s in kick_steps})
    if not steps:
        raise ValueError("kick_steps: expected at least one step index")
    B = x.shape[0]
    counting = CountingDenoiser(denoiser)
    snaps: dict[int, tuple] = {}
    gens = seed_generators(seed, B, device="cpu")

    def snapshot(step: Step) -> None:
        if step.i in steps:
            snaps[step.i] = (step.x.detach().clone(), [g.get_state() for g in gens])

    with torch.no_grad():
        base = fn(counting, x, sigmas, label=label, generator=gens, callback=snapshot)
    z = kick_fields(tuple(x.shape), kick, width=width, site=site, seed=derive(seed, "kick")).to(x.device)
    chi, spread = [], []
    for i in steps:
        xi, states = snaps[i]
        g_i = [torch.Generator(device="cpu") for _ in range(B)]
        for g, st in zip(g_i, states):
            g.set_state(st)
        rms = xi.to(torch.float64).pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
        rms = torch.where(rms > 0, rms, torch.ones_like(rms))
        delta = (eps * rms * z).to(xi.dtype)
        with torch.no_grad():
            out = fn(counting, xi + delta, sigmas[i:], label=label, generator=g_i)
        dx = (out - base).to("cpu", torch.float64)
        chi.append((dx.flatten(1).norm(dim=1) / delta.to("cpu", torch.float64).flatten(1).norm(dim=1)).numpy())
        spread.append(response_spread(dx, kick, site))
    chi, spread = np.array(chi), np.array(spread)
    sig = np.array([float(sigmas[i]) for i in steps])
    return Susceptibility(
        kick=kick, eps=float(eps), steps=np.array(steps), sigma=sig, logsnr=-2 * np.log(sig), chi=chi,
        chi_mean=chi.mean(1), chi_ci=mean_ci(chi, n_boot=n_boot, ci=ci, seed=seed),
        spread=spread, spread_mean=np.nanmean(spread, 1) if np.isfinite(spread).any() else spread.mean(1),
        spread_ci=mean_ci(spread, n_boot=n_boot, ci=ci, seed=seed), nfe=counting.evaluations / B,
    )
