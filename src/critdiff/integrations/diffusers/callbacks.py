"""A critdiff guidance schedule inside a user's own diffusers pipeline (``callback_on_step_end``).

diffusers' text-to-image pipelines (``StableDiffusionPipeline`` and its kind) read ``pipe._guidance_scale``
at every step and call ``callback_on_step_end(pipe, i, timestep, callback_kwargs)`` after step ``i``;
setting the scale there sets the weight of step ``i + 1``. The weight of step ``i`` is ``w(sigma_i)`` of
the critdiff schedule at the sigma that step evaluates (:func:`guidance_scales`), the same convention as
critdiff's ``D_u + w (D_c - D_u)`` (diffusers' ``guidance_scale``).

A pipeline runs classifier-free guidance only while ``guidance_scale > 1`` (below it evaluates the
conditional branch alone, one evaluation, as critdiff does at ``w = 1``), and it concatenates the prompt
embeddings ``[null, cond]`` once, before the loop, only if the initial scale is > 1. So a pulse (1, then
``w > 1``, then 1) changes the embeddings' layout twice: the callback returns the new ``prompt_embeds``
whenever the next step crosses 1 (the conditional half alone, or ``[null, cond]`` again). The null
embeddings are the pipeline's own (the first half of ``[null, cond]``); if the call started at scale <= 1
the pipeline never built them and the callback encodes the callback's ``negative_prompt`` (default ``""``, the pipeline's own default) with
``pipe.encode_prompt``, or takes the ``negative_prompt_embeds`` the pipeline was given. The pipeline never encodes
a ``negative_prompt`` it is given when it starts at scale <= 1, so the callback is built with it
(``guidance_callback(..., negative_prompt=)``) and checks, at its first call, that the pipeline was given the same
(``callback.pipe_kwargs`` passes both). Heun's pipeline loop makes two calls per step (``2N - 1`` calls, levels
``0, 1, 1, 2, 2, ...``); the callback's index ``i`` is the pipeline's call index, and its ``timestep`` must be the
plan's for that call. ``guidance_rescale`` is not supported (refused at the first call).
Only baseline 1 schedules (``w = 1`` outside the pulse, never below 1) can be expressed.
"""

from __future__ import annotations

import math
import sys
from typing import Optional

import torch

from .schedulers import SchedulerPlan


def guidance_scales(schedule, plan: SchedulerPlan) -> list[float]:
    """``w(sigma_i)`` for every step ``i`` of ``plan`` (one float per model evaluation step)."""
    if getattr(schedule, "baseline", 1.0) != 1.0:
        raise ValueError("schedule: diffusers pipelines skip the unconditional branch at guidance_scale <= 1; "
                         "expected baseline 1")
    scales = [float(schedule(plan.sigmas[i:i + 1])[0]) for i in range(len(plan.sigmas))]
    if min(scales) < 1.0:
        raise ValueError(f"schedule: a weight {min(scales):.4g} < 1 cannot be expressed (pipelines run the conditional "
                         "branch alone at guidance_scale <= 1); expected weights >= 1")
    return scales


def pipeline_levels(plan: SchedulerPlan) -> list[int]:
    """The plan level each pipeline step evaluates: ``0 .. N-1``, or Heun's ``0, 1, 1, ..., N-1, N-1`` (its
    second stage evaluates the next level, so every level but the first is visited twice: 2N - 1 steps)."""
    n = len(plan.sigmas)
    return [0] + [k for k in range(1, n) for _ in range(2)] if plan.kind == "heun" else list(range(n))


def _pipeline_call_locals() -> dict:
    """The locals of the pipeline ``__call__`` that called the callback (a few frames up), else ``{}``: read only,
    to see a ``negative_prompt`` or ``guidance_rescale`` the pipeline was given but does not hand the callback."""
    frame = sys._getframe(1)
    for _ in range(6):
        frame = frame.f_back
        if frame is None:
            return {}
        if frame.f_code.co_name == "__call__" and "negative_prompt" in frame.f_locals:
            return frame.f_locals
    return {}


def guidance_callback(schedule, plan: SchedulerPlan, *, negative_prompt: Optional[str] = None):
    """``callback_on_step_end`` that sets ``pipe._guidance_scale`` to the schedule's weight of the next step.

    Returns ``(callback, scales)``; call the pipeline with ``**callback.pipe_kwargs`` (``guidance_scale=scales[0]``,
    ``callback_on_step_end=callback``, ``callback_on_step_end_tensor_inputs=callback.tensor_inputs`` and the
    ``negative_prompt``; module docstring: the callback swaps the prompt embeddings when the scale crosses 1).
    ``callback.applied`` records the scale each pipeline step ran with, ``callback.per_step`` the plan's (``scales``
    is per level: Heun's pipeline loop evaluates the levels ``0, 1, 1, 2, 2, ...``, :func:`pipeline_levels`).

    Misuse is one ``ValueError`` at the first call, before any wrong step runs: a pipeline ``guidance_scale`` other
    than ``scales[0]``; a schedule that crosses 1 without ``prompt_embeds`` among the tensor inputs; a pipeline
    ``negative_prompt`` other than ``negative_prompt`` (or any ``guidance_rescale > 0``: not supported). At every
    call the pipeline's timestep must be the plan's for that step (another scheduler or ``num_inference_steps``).
    """
    scales = guidance_scales(schedule, plan)
    levels = pipeline_levels(plan)
    per_step = [scales[k] for k in levels]
    times = [float(plan.timesteps[k]) for k in levels]
    crosses = any((w > 1) != (per_step[0] > 1) for w in per_step)
    null: dict = {}  # the null (negative) prompt's embeddings, once known

    def check_first(pipe, callback_kwargs) -> None:
        now = float(pipe._guidance_scale)
        if now != per_step[0]:
            raise ValueError(f"guidance_scale: the pipeline was called with guidance_scale={now:g}, but this callback's "
                             f"plan starts at {per_step[0]:g}; call the pipeline with **callback.pipe_kwargs")
        if crosses and "prompt_embeds" not in callback_kwargs:
            raise ValueError("callback_on_step_end_tensor_inputs: the schedule crosses guidance_scale 1, so the callback "
                             f"must swap prompt_embeds; pass callback_on_step_end_tensor_inputs={callback.tensor_inputs}")
        rescale = float(getattr(pipe, "_guidance_rescale", 0.0) or 0.0)
        if rescale > 0:
            raise ValueError(f"guidance_rescale: {rescale:g} is not supported (critdiff's guided sampler mixes "
                             "D_u + w (D_c - D_u) without rescaling); expected 0")
        call = _pipeline_call_locals()
        if call and call.get("negative_prompt") != negative_prompt:
            raise ValueError(f"negative_prompt: the pipeline was given {call.get('negative_prompt')!r}, the callback "
                             f"{negative_prompt!r}; build it with guidance_callback(..., negative_prompt=) (a pipeline "
                             "that starts at guidance_scale <= 1 never encodes its own)")

    def callback(pipe, i, timestep, callback_kwargs):
        if not callback.applied:
            check_first(pipe, callback_kwargs)
        if i >= len(per_step) or abs(float(timestep) - times[i]) > 1e-4 * max(1.0, abs(times[i])):
            want = f"timestep {times[i]:g}" if i < len(per_step) else f"only {len(per_step)} steps"
            raise ValueError(f"timestep: pipeline step {i} ran at timestep {float(timestep):g}, the callback's plan "
                             f"({plan.kind}, {len(plan.sigmas)} steps) has {want}; build the plan with the pipeline's "
                             "scheduler and num_inference_steps")
        now = float(pipe._guidance_scale)
        callback.applied.append(now)
        if i + 1 >= len(per_step):
            return {}
        pipe._guidance_scale = per_step[i + 1]
        embeds = callback_kwargs.get("prompt_embeds")
        if embeds is None or (now > 1) == (per_step[i + 1] > 1):
            return {}
        if now > 1:  # [null, cond] -> cond
            null["embeds"], cond = embeds.chunk(2)
            return {"prompt_embeds": cond}
        if "embeds" not in null:  # the call started unguided: the negative prompt's embeddings, as the pipeline's
            given = callback_kwargs.get("negative_prompt_embeds")
            null["embeds"] = given.to(embeds.dtype) if given is not None else pipe.encode_prompt(
                negative_prompt or "", embeds.device, embeds.shape[0], False)[0].to(embeds.dtype)
        return {"prompt_embeds": torch.cat([null["embeds"], embeds])}

    callback.applied = []
    callback.per_step = per_step
    callback.tensor_inputs = ["prompt_embeds", "negative_prompt_embeds"]
    callback.pipe_kwargs = {"guidance_scale": per_step[0], "negative_prompt": negative_prompt,
                            "callback_on_step_end": callback,
                            "callback_on_step_end_tensor_inputs": callback.tensor_inputs}
    return callback, scales


def guide_config(model, tc, steps: int, *, kind=None, width: float = 3.0, height: float = 3.0, **overrides) -> dict:
    """The critical time and the pulse/interval around it in every unit, for ``steps`` steps of the model's scheduler.

    ``tc``: the critical time, a :class:`~critdiff.times.TimeEstimate` (from any estimator; its ``source`` and
    interval are reported) or a logsnr (``source`` ``'given'``, no interval).
    The pulse is a box of ``width`` (logsnr) and ``height`` centred at ``tc`` (baseline 1); the
    interval is its ``[lo, hi]`` edges. Returns a JSON-ready dict: ``tc``, ``pulse`` (``lo``/``hi`` ends in
    every unit, and ``steps``, the pipeline steps inside it), the ``table`` with one row per pipeline step
    (the callback's index ``i``: Heun's ``2N - 1`` calls, each with the plan ``level`` it evaluates) and its
    ``guidance_scale``. Step fields are pipeline step indices throughout: ``tc.step`` is the first step at or
    below the critical sigma, ``pulse.lo.step`` / ``pulse.hi.step`` the first and last step inside the pulse
    (``None`` when no step falls inside). ``tc``'s ``source`` and ``logsnr_ci`` record where it came from.
    """
    from ...guidance_schedules import Pulse
    from ...times import TimeEstimate, centre_logsnr
    from .schedulers import scheduler_plan
    from .units import describe_point, sigma_interval_to_steps, unit_table

    plan = scheduler_plan(model, steps, kind, **overrides)
    est = tc if isinstance(tc, TimeEstimate) else None
    tc_logsnr = centre_logsnr(tc)
    pulse = Pulse(tc_logsnr, width, height)
    lo, hi = pulse.centre - width / 2, pulse.centre + width / 2
    clamp = (-2 * math.log(model.sigma_max), -2 * math.log(model.sigma_min))  # ends beyond the model's range
    ends = {name: describe_point(model, min(max(v, clamp[0]), clamp[1]), plan) for name, v in (("lo", lo), ("hi", hi))}
    scales = guidance_scales(pulse, plan)
    levels = pipeline_levels(plan)
    inside = set(sigma_interval_to_steps(plan, ends["hi"]["sigma"], ends["lo"]["sigma"]))
    covered = [i for i, k in enumerate(levels) if k in inside]
    ends["lo"]["step"], ends["hi"]["step"] = (covered[0], covered[-1]) if covered else (None, None)
    point = describe_point(model, float(tc_logsnr), plan)
    point["step"] = levels.index(point["step"])
    rows = unit_table(model, plan)
    return {"scheduler": plan.kind, "steps": steps, "spacing": plan.config.get("timestep_spacing"),
            "tc": {**point, "source": "given" if est is None else est.source,
                   "logsnr_ci": None if est is None or est.logsnr_ci is None else list(est.logsnr_ci)},
            "pulse": {"height": height, "width_logsnr": width, **ends, "steps": covered},
            "table": [dict(rows[k], step=i, level=k, guidance_scale=scales[k]) for i, k in enumerate(levels)]}
