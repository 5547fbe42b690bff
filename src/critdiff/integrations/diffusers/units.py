"""Unit conversions for a diffusers model: t <-> logsnr <-> sigma (= sigma_t / a_t) <-> timestep <-> step index.

Conventions (DESIGN.md section 1): ``sigma`` is the denoiser-frame noise level ``sqrt((1 - abar) /
abar)``, ``logsnr = -2 log sigma``; a diffusers *timestep* ``k`` in ``[0, T - 1]`` has ``sigma_k`` of
the model's ``alphas_cumprod`` (fractional timesteps interpolate ``log sigma``); ``t = k / T`` is the
diffusion-time fraction diffusers' continuous-time schedulers use; a *step index* ``i`` counts the
model evaluations of one scheduler plan (``num_inference_steps`` and spacing), ``0`` first (noisiest).
Integer timesteps and step indices round-trip exactly (a float32 sigma maps to its integer timestep).
"""

from __future__ import annotations

import math

import torch

from ...times import logsnr_of
from .adapter import DiffusersDenoiser
from .schedulers import SchedulerPlan


def sigma_of_logsnr(logsnr) -> torch.Tensor:
    """``sigma = exp(-logsnr / 2)`` (float64)."""
    return torch.exp(-0.5 * torch.as_tensor(logsnr, dtype=torch.float64))


def timestep_of_t(model: DiffusersDenoiser, t) -> torch.Tensor:
    """``k = t T`` (float64); ``t`` must lie in ``[0, (T - 1) / T]``."""
    return torch.as_tensor(t, dtype=torch.float64) * model.num_train_timesteps


def t_of_timestep(model: DiffusersDenoiser, timestep) -> torch.Tensor:
    """``t = k / T`` (float64)."""
    return torch.as_tensor(timestep, dtype=torch.float64) / model.num_train_timesteps


def step_of_sigma(plan: SchedulerPlan, sigma: float) -> int:
    """The step index whose evaluated sigma equals ``sigma`` (to float32 rounding), else the first step at or below it."""
    s = plan.sigmas
    if not 0 < float(sigma) <= float(s[0]) * (1 + 1e-6):
        raise ValueError(f"sigma: expected a value in (0, {float(s[0]):.6g}] (the plan's first level), got {sigma!r}")
    close = ((s - sigma).abs() <= 4 * torch.finfo(torch.float32).eps * s).nonzero()
    if close.numel():
        return int(close[0])
    below = (s <= sigma).nonzero()
    if not below.numel():
        raise ValueError(f"sigma: {sigma:.6g} lies below the plan's last evaluated level {float(s[-1]):.6g}")
    return int(below[0])


def steps_to_sigma_interval(plan: SchedulerPlan, first: int, last: int) -> tuple[float, float]:
    """Steps ``first..last`` (inclusive, 0-based) as the closed sigma interval ``(sigma_lo, sigma_hi)`` they evaluate."""
    n = len(plan.sigmas)
    for name, v in (("first", first), ("last", last)):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < n:
            raise ValueError(f"{name}: expected a step index in [0, {n - 1}], got {v!r}")
    if first > last:
        raise ValueError(f"first, last: expected first <= last, got {first}, {last}")
    return float(plan.sigmas[last]), float(plan.sigmas[first])


def sigma_interval_to_steps(plan: SchedulerPlan, sigma_lo: float, sigma_hi: float) -> list[int]:
    """The step indices whose evaluated sigma lies in ``[sigma_lo, sigma_hi]`` (float32 rounding tolerated)."""
    if not 0 < sigma_lo <= sigma_hi:
        raise ValueError(f"sigma_lo, sigma_hi: expected 0 < sigma_lo <= sigma_hi, got {sigma_lo}, {sigma_hi}")
    tol = 4 * torch.finfo(torch.float32).eps
    s = plan.sigmas
    inside = (s >= sigma_lo * (1 - tol)) & (s <= sigma_hi * (1 + tol))
    return [int(i) for i in inside.nonzero().reshape(-1)]


def unit_table(model: DiffusersDenoiser, plan: SchedulerPlan) -> list[dict]:
    """One row per step: ``step, timestep, t, sigma, logsnr`` of the plan's evaluations."""
    rows = []
    for i, (s, k) in enumerate(zip(plan.sigmas.tolist(), plan.timesteps.tolist())):
        rows.append({"step": i, "timestep": int(k) if float(k).is_integer() else k,
                     "t": float(t_of_timestep(model, k)), "sigma": s, "logsnr": float(logsnr_of(s))})
    return rows


def describe_point(model: DiffusersDenoiser, logsnr: float, plan: SchedulerPlan) -> dict:
    """A noise level in every unit: logsnr, sigma, timestep (fractional; integer where on the grid), t, step."""
    if not math.isfinite(logsnr):
        raise ValueError(f"logsnr: expected a finite number, got {logsnr!r}")
    sigma = float(sigma_of_logsnr(logsnr))
    if not model.sigma_min * (1 - 1e-6) <= sigma <= model.sigma_max * (1 + 1e-6):
        raise ValueError(f"logsnr: {logsnr:.6g} (sigma {sigma:.6g}) lies outside the model's range "
                         f"[{model.sigma_min:.6g}, {model.sigma_max:.6g}]")
    k = float(model.sigma_to_timestep(sigma))
    step = step_of_sigma(plan, sigma) if sigma <= float(plan.sigmas[0]) else 0
    return {"logsnr": logsnr, "sigma": sigma, "timestep": k, "t": k / model.num_train_timesteps, "step": step}
