"""diffusers' ``PNDMScheduler`` loop, exactly: its Runge-Kutta warm-up, its PLMS steps and its timestep arithmetic.

PNDM (Liu et al. 2022, arXiv:2202.09778) moves the VP state ``z`` with the "transfer" of its eq. 9,
``z' = sqrt(abar'/abar) z - (abar' - abar) E / (abar sqrt(1 - abar') + sqrt(abar (1 - abar) abar'))``, which is
the DDIM step written in the VP frame: in the denoiser frame it is ``x' = x + (sigma' - sigma) E`` with ``E`` an
eps (docs/samplers.md, eq. M1). What ``E`` is, and between which timesteps it transfers, is the method:

- warm-up (``skip_prk_steps=False``): three pseudo-Runge-Kutta steps (eq. 13) over the last four timesteps
  ``a3 > a2 > a1 > a0`` of the grid: from ``a`` with ``h = T // N // 2``, the four evaluations feed
  ``E1`` (transfer ``a -> a - h``), ``E2`` (``a -> a' + h``), ``E3`` (``a -> a'``), and the step itself is
  ``(E1 + 2 E2 + 2 E3 + E4) / 6`` (``a -> a'``); every transfer starts from the state at ``a``; the model is
  fed the grid's half timestep ``a' + h`` even where the state was moved to ``a - h`` (the two differ when
  ``T // N`` is odd or the spacing is not ``leading``);
- ``skip_prk_steps=True`` (Stable Diffusion's configs): the first step is the trapezoid ``(E0 + E1) / 2`` of the
  two evaluations at the first two timesteps, from the first state, between ``t1 + T // N`` and ``t1``;
- then PLMS (eq. 12): ``E`` the Adams-Bashforth combination (orders 2, 3, 4 while the history fills) of the eps
  of the previous steps' first evaluations, transfer ``t -> t - T // N`` (``final_alpha_cumprod`` below 0).

``E`` is the model's eps; a ``v_prediction`` output ``v`` is converted as diffusers does, at the step's anchor
(the state and timestep the transfer starts from): ``E = sqrt(abar) v + sqrt(1 - abar) z``. Everything is
evaluated with critdiff's model (guidance on the raw outputs, the plan's timesteps); the loop only reproduces
the scheduler's bookkeeping, which is not expressible on a sigma grid (critdiff's generic ``plms`` sampler is the
grid method: equal to this loop for ``leading`` spacing with ``skip_prk_steps``).
"""

from __future__ import annotations

import math

import torch

from ... import multistep as MS
from ... import samplers as SM
from ...denoisers import Label
from ...guidance import guided
from .adapter import DiffusersDenoiser
from .schedulers import SchedulerPlan


class _Raw:
    """The raw network output ``F`` at a timestep (guidance mixes ``F``, as the pipelines do; no x0 conversion)."""

    def __init__(self, model: DiffusersDenoiser):
        self.model = model
        self.timestep = None

    def guidance_output(self, x, sigma, label: Label = None):
        return self.model.raw_output(x, sigma, label, timestep=self.timestep)[0]

    def guidance_x0(self, x, sigma, out):
        return out

    def __call__(self, x, sigma, label: Label = None):
        return self.guidance_output(x, sigma, label)


def run_pndm(model: DiffusersDenoiser, plan: SchedulerPlan, x: torch.Tensor, *, label: Label = None,
             guidance=None, callback=None) -> torch.Tensor:
    """PNDM's loop from ``x`` (denoiser frame at ``plan.sigmas[0]``); returns the final VP state ``z``."""
    T, N = model.num_train_timesteps, plan.n_steps
    step, half = T // N, T // N // 2
    abar = model.alphas_cumprod
    final = 1.0 if plan.config.get("set_alpha_to_one", False) else float(abar[0])
    v_pred = plan.config.get("prediction_type", "epsilon") == "v_prediction"
    raw = _Raw(model)
    net = raw if guidance is None else guided(raw, guidance)
    ts = [int(t) for t in plan.timesteps]
    sig = model.sigmas()

    def a(t: int) -> float:
        return float(abar[t]) if t >= 0 else final

    def eps_at(F, z_a, t_a):  # the eps of a raw output, read at the anchor (z_a, t_a) as diffusers does
        return math.sqrt(a(t_a)) * F + math.sqrt(1 - a(t_a)) * z_a if v_pred else F

    def transfer(z_a, t_a, t_p, E):  # eq. 9 = x' = x + (sigma' - sigma) E in the denoiser frame, back to z
        s_a, s_p = math.sqrt((1 - a(t_a)) / a(t_a)), math.sqrt((1 - a(t_p)) / a(t_p))
        return math.sqrt(a(t_p)) * (z_a / math.sqrt(a(t_a)) + (s_p - s_a) * eps_at(E, z_a, t_a))

    z = x / math.sqrt(1 + float(plan.sigmas[0]) ** 2)
    ets: list = []  # the raw outputs the PLMS history holds (each step's first evaluation)
    acc, z_a, t_a = None, None, None
    for c, t in enumerate(ts):
        sigma = float(sig[t])
        xe = z * math.sqrt(1 + sigma * sigma)
        raw.timestep = float(t)
        F = net(xe, sigma, label)
        SM._notify(callback, SM.Step(c, sigma, float(plan.sigmas_next[c]), xe, model.x0_from_raw(xe, sigma, F)))
        if c < plan.warmup:  # pseudo Runge-Kutta, four evaluations per step
            r = c % 4
            if r == 0:
                z_a, t_a, acc = z, t, F / 6
                ets.append(F)
            elif r in (1, 2):
                acc = acc + F / 3
            E = acc + F / 6 if r == 3 else F
            z = transfer(z_a, t_a, t - half if r % 2 == 0 else t, E)
            continue
        if c == 1 and plan.warmup == 0:  # skip_prk_steps: the trapezoid correction of the first step
            z = transfer(z_a, t + step, t, (F + ets[-1]) / 2)
            continue
        ets = (ets + [F])[-4:]
        if c == 0:
            z_a = z
        w = MS.adams_bashforth(len(ets))
        z = transfer(z, t, t - step, sum(wk * ek for wk, ek in zip(w, reversed(ets))))
    return z
