"""The Gaussian late start inside a user's own diffusers pipeline: initial latents and truncated timesteps, by one
call (DESIGN.md section 5b; docs/samplers.md "Late start"; docs/diffusers.md).

:func:`pipeline_late_start` takes the model's scheduler grid for ``steps`` steps (its own spacing, as
:func:`~.schedulers.scheduler_plan` reads it), keeps the evaluated timesteps whose level lies at or below the start
level (``logsnr >= start_logsnr``: the start is snapped to the first kept timestep ``t0``, level ``sigma0``), and draws
the latents from the Gaussian that matches ``p_{t0}`` (:func:`critdiff.late_start.start_state` in the denoiser frame,
``x = mu + (Sigma + sigma0^2 I)^{1/2} z``), in the pipeline's frame and divided by the scale the pipeline multiplies
its ``latents=`` by (the scheduler's ``init_noise_sigma`` after ``set_timesteps(timesteps=...)``):

- DDPM and DPM-Solver keep the VP state: ``latents = x / sqrt(1 + sigma0^2)`` (``init_noise_sigma = 1``), i.e.
  ``N(a mu, a^2 Sigma + s^2 I)`` with ``a = sqrt(abar_t0)``, ``s = sqrt(1 - abar_t0)`` (eq. LS.2);
- Euler and Heun keep ``x`` itself: ``latents = x / init_noise_sigma``.

Pass ``latents=out.latents, timesteps=out.timesteps`` to the pipeline call (``StableDiffusionPipeline`` and every
pipeline that forwards ``timesteps=`` to ``scheduler.set_timesteps``); the run then evaluates the model at exactly
the kept timesteps (tested against critdiff's own run of the truncated plan). ``sigmas`` are the kept levels in
the scheduler's own sigma convention, for pipelines that take ``sigmas=`` with an Euler scheduler. Schedulers whose
``set_timesteps`` takes no custom timesteps (DDIM, Euler ancestral) are refused with one line. The moments are of
the model's state space (a latent model: its VAE latents; :func:`critdiff.experiments.start.model_moments` draws
them from the model).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import torch

from ... import samplers as SM
from ...errors import check_finite
from ...late_start import Moments, start_state
from .adapter import DiffusersDenoiser
from .schedulers import SchedulerPlan, build_scheduler, scheduler_plan


@dataclass(frozen=True)
class PipelineLateStart:
    """What a pipeline call needs for a late start: ``latents [n, C, H, W]`` (float32, pass as ``latents=``),
    ``timesteps`` (pass as ``timesteps=``), ``sigmas`` (the same levels as the scheduler's sigmas), the start
    (``start_logsnr``, ``start_timestep``, ``sigma0`` in the denoiser frame), the steps kept and skipped, and the
    truncated :class:`~.schedulers.SchedulerPlan` critdiff runs for the same thing."""

    latents: torch.Tensor
    timesteps: list
    sigmas: list
    start_logsnr: float
    start_timestep: float
    sigma0: float
    steps_kept: int
    steps_skipped: int
    plan: SchedulerPlan


def truncate_plan(plan: SchedulerPlan, start_logsnr: float) -> SchedulerPlan:
    """The rows of ``plan`` whose evaluated level has ``logsnr >= start_logsnr`` (``sigma <= exp(-start/2)``)."""
    check_finite("start_logsnr", start_logsnr)
    keep = plan.sigmas <= math.exp(-0.5 * start_logsnr) * (1 + 1e-12)
    if not bool(keep.any()):
        raise ValueError(f"start_logsnr: {start_logsnr:.4g} lies past the scheduler's last evaluated level "
                         f"(logsnr {float(-2 * torch.log(plan.sigmas[-1])):.4g}); choose an earlier start")
    k = int(torch.nonzero(keep)[0])
    return SchedulerPlan(plan.kind, plan.sigmas[k:], plan.timesteps[k:], plan.sigmas_next[k:], plan.init_noise_sigma,
                         plan.frame, plan.config)


def _pipeline_init_sigma(model: DiffusersDenoiser, timesteps: list) -> float:
    """The scheduler's ``init_noise_sigma`` after ``set_timesteps(timesteps=...)``: what the pipeline multiplies
    ``latents`` by. Refuses schedulers that take no custom timesteps."""
    sched = build_scheduler(model)
    if "timesteps" not in inspect.signature(sched.set_timesteps).parameters:
        raise ValueError(f"scheduler: {type(sched).__name__}.set_timesteps takes no timesteps=, so a pipeline cannot "
                         "start late with it; use DDPMScheduler, EulerDiscreteScheduler, HeunDiscreteScheduler or "
                         "DPMSolverMultistepScheduler (same config)")
    sched.set_timesteps(timesteps=list(timesteps))
    if hasattr(sched, "sigmas"):
        sched.sigmas = sched.sigmas.detach().to("cpu", torch.float64)  # the init_noise_sigma rule in float64
    return float(sched.init_noise_sigma)


def pipeline_late_start(model: "DiffusersDenoiser | str", moments: Moments, steps: int, start_logsnr: float, n: int,
                        generator: SM.GeneratorLike = None) -> PipelineLateStart:
    """The late start of ``model``'s own scheduler at ``steps`` steps from ``start_logsnr`` (module docstring):
    ``n`` latents from ``generator`` (one per sample allowed; sample ``j`` then does not depend on the batch)."""
    if isinstance(model, str):
        from .loading import load_diffusers

        model = load_diffusers(model)
    shape = tuple(model.sample_shape)
    if tuple(moments.shape) != shape:
        raise ValueError(f"moments: expected moments of the model's state {list(shape)}, got {list(moments.shape)}")
    full = scheduler_plan(model, steps)
    if full.kind not in ("ddpm", "dpmpp-2m", "euler", "heun"):
        raise ValueError(f"scheduler: {model.scheduler_class} takes no timesteps= in set_timesteps; use DDPMScheduler, "
                         "EulerDiscreteScheduler, HeunDiscreteScheduler or DPMSolverMultistepScheduler (same config)")
    plan = truncate_plan(full, start_logsnr)
    # integers where the scheduler's are (DDPM, DPM-Solver), its own float values otherwise (Euler/Heun 'linspace')
    timesteps = [int(t) if float(t).is_integer() else float(t) for t in plan.timesteps.tolist()]
    init = _pipeline_init_sigma(model, timesteps)
    sigma0 = float(plan.sigmas[0])
    x = start_state(moments, sigma0, n, generator, dtype=torch.float64)
    z = x / math.sqrt(1 + sigma0**2) if plan.frame == "vp" else x
    plan = SchedulerPlan(plan.kind, plan.sigmas, plan.timesteps, plan.sigmas_next, init, plan.frame, plan.config)
    return PipelineLateStart(latents=(z / init).to(torch.float32), timesteps=timesteps,
                             sigmas=[float(s) for s in plan.sigmas], start_logsnr=float(start_logsnr),
                             start_timestep=float(plan.timesteps[0]), sigma0=sigma0, steps_kept=len(timesteps),
                             steps_skipped=len(full.sigmas) - len(timesteps), plan=plan)


def initial_state(start: PipelineLateStart) -> torch.Tensor:
    """The denoiser-frame state ``x`` at ``sigma0`` that the pipeline starts from (critdiff's side of the test)."""
    from .loops import initial_state as plan_initial_state

    return plan_initial_state(start.plan, start.latents)

