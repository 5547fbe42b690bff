"""Run a :class:`~.schedulers.SchedulerPlan` with critdiff's samplers: diffusers' scheduler loops, exactly.

Shapes: ``x`` ``[B, C, H, W]`` in the denoiser frame at ``plan.sigmas[0]``; the result is the state
diffusers returns, in the scheduler's own frame (``plan.frame``).

How each scheduler maps (the model is evaluated at the plan's own timesteps, through
:meth:`DiffusersDenoiser.predict`; guidance mixes the raw predictions and the scheduler's clipping
or thresholding is applied to the mixed ``x0_hat``, as diffusers clips the guided output):

- Euler, Heun, DPM-Solver++(2M), LCM: ``sample_euler``, ``sample_heun``, ``sample_dpmpp_2m``, ``sample_lcm`` on
  ``plan.grid`` (LCM's boundary condition applied to ``D``: :func:`lcm_boundary`);
- LMS, UniPC, DEIS: the loops of ``sample_lms``, ``sample_unipc``, ``sample_deis`` on the plan's levels, which for
  UniPC (``final_sigmas_type='sigma_min'``) and DEIS end at ``sigma_min`` (the state returned there, as diffusers);
- PNDM: :func:`.pndm.run_pndm` (its warm-up and timestep arithmetic are not a grid method);
- Euler ancestral: ``sample_ddim`` with ``eta = 1`` (its ``sigma_up``/``sigma_down`` step is DDIM's
  in the denoiser frame, noise drawn in ``x``'s frame as diffusers draws it);
- DDPM and DDIM: the per-step updates below, which follow diffusers' ``step()`` where critdiff's
  generic ``sample_ddpm``/``sample_ddim`` cannot: the DDIM direction uses the *unclipped* ``eps_hat``
  (``use_clipped_model_output=False``, the default), a DDIM step may land on a level that is not
  the next evaluated one (``t - T // n``) or on ``abar_0 < 1`` (``set_alpha_to_one=False``), DDPM
  draws noise whenever ``t > 0`` (with its variance clamped at 1e-20), and the variance types
  ``fixed_large`` and ``learned_range`` are honoured.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from ... import samplers as SM
from ...denoisers import NULL_LABEL, Label
from ...guidance import WeightFn, guided
from .adapter import DiffusersDenoiser
from .schedulers import SchedulerPlan

_VAR_FLOOR = 1e-20  # DDPMScheduler._get_variance clamps beta_tilde here


class PlanDenoiser:
    """``D(x, sigma, label)`` that feeds the model the plan's timestep of each evaluated sigma.

    ``clip`` applies the scheduler's clipping/thresholding (after guidance when wrapped by
    :func:`guided_clipped`); ``raw=True`` also keeps the learned-variance channels of the last call.
    """

    def __init__(self, model: DiffusersDenoiser, plan: SchedulerPlan):
        self.model = model
        self.timestep_of = plan.timestep_of()
        self.variance: Optional[torch.Tensor] = None

    def __call__(self, x: torch.Tensor, sigma, label: Label = None) -> torch.Tensor:
        return self.guidance_x0(x, sigma, self.guidance_output(x, sigma, label))

    def guidance_output(self, x: torch.Tensor, sigma, label: Label = None) -> torch.Tensor:
        """The raw network output at the plan's timestep (guidance mixes it: :mod:`critdiff.guidance`)."""
        s = float(torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)[0])
        out, var = self.model.raw_output(x, sigma, label, timestep=self.timestep_of.get(s))
        if var is not None and isinstance(label, torch.Tensor) and label.ndim == 1:
            # a guided call of [x_u; x_c]: keep the conditional rows' variance, as DiTPipeline steps with it
            var = var[label != NULL_LABEL]
        self.variance = var
        return out

    def guidance_x0(self, x: torch.Tensor, sigma, out: torch.Tensor) -> torch.Tensor:
        """The unclipped ``x0_hat`` of a (guided) raw output."""
        return self.model.x0_from_raw(x, sigma, out)


def guided_clipped(model: DiffusersDenoiser, plan: SchedulerPlan, label: Label, guidance, clip: bool):
    """The denoiser a diffusers loop uses: plan timesteps, guidance on raw outputs, then the scheduler's clip."""
    base = PlanDenoiser(model, plan)
    inner = base if guidance is None else guided(base, guidance)

    def denoise(x, sigma, lab=label):
        x0 = inner(x, sigma, lab)
        return model.postprocess(x0) if clip else x0

    return denoise, base


def _ddpm_std(plan: SchedulerPlan, i: int, variance: Optional[torch.Tensor]):
    """The VP-frame standard deviation DDPMScheduler adds at step ``i`` (0 when ``t = 0``)."""
    s, sn = float(plan.sigmas[i]), float(plan.sigmas_next[i])
    beta = (s * s - sn * sn) / (1 + s * s)  # 1 - abar_t / abar_prev
    tilde = max(sn * sn / (1 + sn * sn) * (1 + s * s) / (s * s) * beta, _VAR_FLOOR)  # beta_tilde
    vt = plan.config.get("variance_type") or "fixed_small"
    if vt in ("fixed_small", "fixed_small_log"):
        return math.sqrt(tilde)
    if vt == "fixed_large":
        return math.sqrt(beta)
    frac = (variance + 1) / 2  # learned_range: interpolate the log variance
    return torch.exp(0.5 * (frac * math.log(beta) + (1 - frac) * math.log(tilde)))


def run_ddpm_ddim(denoise, base: PlanDenoiser, plan: SchedulerPlan, x: torch.Tensor, *, clip: bool,
                  model: DiffusersDenoiser, generator=None, callback=None, eta: float = 0.0) -> torch.Tensor:
    """diffusers' DDPM / DDIM ``step()`` loop in the denoiser frame (see the module docstring)."""
    if not (eta >= 0 and math.isfinite(eta)):
        raise ValueError(f"eta: expected a finite number >= 0, got {eta}")
    ddpm = plan.kind == "ddpm"
    sig, nxt = [float(v) for v in plan.sigmas], [float(v) for v in plan.sigmas_next]
    for i in range(len(sig)):
        s, sn = sig[i], nxt[i]
        if i > 0 and sig[i] != nxt[i - 1]:  # same VP state z, read at the next evaluated level
            x = x * math.sqrt((1 + s * s) / (1 + nxt[i - 1] ** 2))
        raw = denoise(x, s)
        x0 = model.postprocess(raw) if clip else raw
        SM._notify(callback, SM.Step(i, s, sn, x, x0))
        if ddpm:
            r = sn * sn / (s * s)
            x = (1 - r) * x0 + r * x
            if float(plan.timesteps[i]) > 0:
                n = SM.randn_like(x, generator)
                x = x + (_ddpm_std(plan, i, base.variance) * math.sqrt(1 + sn * sn)) * n
            continue
        eps = (x - raw) / s  # diffusers' default: the direction from the unclipped prediction
        up = eta * SM.ancestral_sigma(s, sn) if sn < s else 0.0
        if up > sn:
            raise ValueError(f"eta: {eta} injects more noise than the step allows (sigma_up > sigma_next)")
        x = x0 + math.sqrt(sn * sn - up * up) * eps
        if eta > 0:  # DDIMScheduler draws noise at every step when eta > 0
            x = x + up * SM.randn_like(x, generator)
    return x


def run_plan(model: DiffusersDenoiser, plan: SchedulerPlan, x: torch.Tensor, *, label: Label = None,
             guidance: "WeightFn | float | None" = None, generator=None, callback=None,
             eta: float = 0.0) -> torch.Tensor:
    """Run ``plan`` from ``x`` (denoiser frame, at ``plan.sigmas[0]``); returns the final state in the plan's frame.

    ``eta`` is DDIM's (ignored elsewhere). Guidance needs a label; with a learned variance it is refused
    (diffusers' pipelines disagree on which branch's variance to use).
    """
    if guidance is not None and label is None:
        raise ValueError("guidance: needs a label (guidance mixes conditional and unconditional outputs)")
    if guidance is not None and model.learned_variance:
        raise ValueError("guidance: not supported with a learned variance_type")
    if plan.kind == "pndm":
        from .pndm import run_pndm

        return run_pndm(model, plan, x, label=label, guidance=guidance, callback=callback)
    clip = _clips(plan, model)
    if plan.kind in ("ddpm", "ddim"):
        denoise, base = guided_clipped(model, plan, label, guidance, clip=False)
        final = run_ddpm_ddim(denoise, base, plan, x, clip=clip, model=model, generator=generator,
                              callback=callback, eta=eta)
    else:
        denoise, _ = guided_clipped(model, plan, label, guidance, clip=clip)
        if plan.kind == "lcm":
            denoise = lcm_boundary(denoise, plan)
        final = _grid_loop(plan, lambda xx, ss, lab=None: denoise(xx, ss), x, generator, callback)
    s_end = float(plan.sigmas_next[-1])
    return final / math.sqrt(1 + s_end * s_end) if plan.frame == "vp" else final


def _clips(plan: SchedulerPlan, model: DiffusersDenoiser) -> bool:
    """Whether the plan's scheduler clips or thresholds ``x0_hat`` (its own options: UniPC and DEIS only threshold,
    PNDM and LMS do neither, whatever the folder's config says)."""
    cfg = plan.config
    if plan.kind in ("ddpm", "ddim", "heun"):
        return model.clip_sample or model.thresholding
    if plan.kind in ("unipc", "deis"):
        return bool(cfg.get("thresholding"))
    if plan.kind == "lcm":
        return bool(cfg.get("thresholding")) or bool(cfg.get("clip_sample"))
    return False


def _grid_loop(plan: SchedulerPlan, denoise, x, generator, callback):
    """The schedulers that are critdiff samplers on the plan's levels (which may end above 0: UniPC's and DEIS's
    ``sigma_min``), with the options of the scheduler's config."""
    cfg, s = plan.config, [float(v) for v in plan.grid]
    if plan.kind == "lms":  # the pipelines call step() without ``order``: 4
        return SM.lms_steps(denoise, x, s, callback=callback, order=4)
    if plan.kind == "unipc":
        return SM.unipc_steps(denoise, x, s, callback=callback, order=int(cfg.get("solver_order", 2)),
                              variant=cfg.get("solver_type", "bh2"),
                              lower_order_final=bool(cfg.get("lower_order_final", True)),
                              disable_corrector=tuple(cfg.get("disable_corrector") or ()))
    if plan.kind == "deis":  # diffusers lowers the final orders only below 15 steps
        return SM.deis_steps(denoise, x, s, callback=callback, order=int(cfg.get("solver_order", 2)),
                             lower_order_final=bool(cfg.get("lower_order_final", True)) and len(s) - 1 < 15)
    sampler = {"euler": SM.sample_euler, "heun": SM.sample_heun, "dpmpp-2m": SM.sample_dpmpp_2m,
               "euler-ancestral": lambda *a, **k: SM.sample_ddim(*a, eta=1.0, **k),
               "lcm": SM.sample_lcm}[plan.kind]
    return sampler(denoise, x, plan.grid, generator=generator, callback=callback)


def lcm_boundary(denoise, plan: SchedulerPlan):
    """``LCMScheduler``'s consistency boundary condition on ``D``: ``c_skip(t) z + c_out(t) x0_hat`` with ``z = x /
    sqrt(1 + sigma^2)`` the VP state, ``c_skip = s_d^2 / ((k t)^2 + s_d^2)``, ``c_out = k t / sqrt((k t)^2 + s_d^2)``,
    ``s_d = 0.5``, ``k = timestep_scaling`` (Luo et al. 2023, arXiv:2310.04378, eq. 9-10); the step then re-noises it
    to the next level (:func:`critdiff.samplers.sample_lcm`)."""
    k, sd2 = float(plan.config.get("timestep_scaling", 10.0)), 0.25
    timestep_of = plan.timestep_of()

    def denoise_lcm(x, sigma, lab=None):
        kt = k * timestep_of[float(sigma)]
        c_skip, c_out = sd2 / (kt * kt + sd2), kt / math.sqrt(kt * kt + sd2)
        return c_out * denoise(x, sigma) + c_skip * x / math.sqrt(1 + float(sigma) ** 2)

    return denoise_lcm


def initial_state(plan: SchedulerPlan, noise: torch.Tensor) -> torch.Tensor:
    """The denoiser-frame start from standard normal ``noise`` drawn as the pipeline draws its latents."""
    x = noise * plan.init_noise_sigma
    return x * math.sqrt(1 + float(plan.sigmas[0]) ** 2) if plan.frame == "vp" else x
