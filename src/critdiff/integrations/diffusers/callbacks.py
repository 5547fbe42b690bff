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
the pipeline never built them and the callback encodes the null prompt ``""`` with ``pipe.encode_prompt``,
as the pipeline does by default (a ``negative_prompt`` is then not seen: start the call above 1 to use one).
Only baseline 1 schedules (``w = 1`` outside the pulse, never below 1) can be expressed.
"""

from __future__ import annotations

import math

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


def guidance_callback(schedule, plan: SchedulerPlan):
    """``callback_on_step_end`` that sets ``pipe._guidance_scale`` to the schedule's weight of the next step.

    Returns ``(callback, scales)``; call the pipeline with ``guidance_scale=scales[0]``,
    ``callback_on_step_end=callback`` and ``callback_on_step_end_tensor_inputs=callback.tensor_inputs``
    (module docstring: the callback swaps the prompt embeddings when the scale crosses 1).
    ``callback.applied`` records the scale each pipeline step ran with (``scales`` is per level: Heun's
    pipeline loop evaluates the levels ``0, 1, 1, 2, 2, ...``, :func:`pipeline_levels`).
    """
    scales = guidance_scales(schedule, plan)
    per_step = [scales[k] for k in pipeline_levels(plan)]
    null: dict = {}  # the null prompt's embeddings, once known

    def callback(pipe, i, timestep, callback_kwargs):
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
        if "embeds" not in null:  # the call started unguided: encode "" as the pipeline would have
            null["embeds"] = pipe.encode_prompt("", embeds.device, embeds.shape[0], False)[0].to(embeds.dtype)
        return {"prompt_embeds": torch.cat([null["embeds"], embeds])}

    callback.applied = []
    callback.tensor_inputs = ["prompt_embeds"]
    return callback, scales


def guide_config(model, tc, steps: int, *, kind=None, width: float = 3.0, height: float = 3.0, **overrides) -> dict:
    """The critical time and the pulse/interval around it in every unit, for ``steps`` steps of the model's scheduler.

    ``tc``: the critical time, a :class:`~critdiff.times.TimeEstimate` (from any estimator; its ``source`` and
    interval are reported) or a logsnr (``source`` ``'given'``, no interval).
    The pulse is a box of ``width`` (logsnr) and ``height`` centred at ``tc`` (baseline 1); the
    interval is its ``[lo, hi]`` edges. Returns a JSON-ready dict: ``tc``, ``pulse`` (``lo``/``hi`` ends in
    every unit and the steps it covers), the per-step ``table`` and the ``guidance_scale`` per step.
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
    covered = sigma_interval_to_steps(plan, ends["hi"]["sigma"], ends["lo"]["sigma"])
    return {"scheduler": plan.kind, "steps": steps, "spacing": plan.config.get("timestep_spacing"),
            "tc": {**describe_point(model, tc_logsnr, plan), "source": "given" if est is None else est.source,
                   "logsnr_ci": None if est is None or est.logsnr_ci is None else list(est.logsnr_ci)},
            "pulse": {"height": height, "width_logsnr": width, **ends, "steps": covered},
            "table": [dict(row, guidance_scale=w) for row, w in zip(unit_table(model, plan), scales)]}
