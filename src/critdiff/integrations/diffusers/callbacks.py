"""A critdiff guidance schedule inside a user's own diffusers pipeline (``callback_on_step_end``).

diffusers' text-to-image pipelines read ``pipe._guidance_scale`` at every step and call
``callback_on_step_end(pipe, i, timestep, callback_kwargs)`` after step ``i``; setting the scale
there sets the weight of step ``i + 1``. The weight of step ``i`` is ``w(sigma_i)`` of the critdiff
schedule at the sigma that step evaluates (:func:`guidance_scales`), the same convention as
critdiff's ``D_u + w (D_c - D_u)`` (diffusers' ``guidance_scale``). diffusers skips the
unconditional branch when the scale is <= 1, so only baseline 1 schedules (``w = 1`` outside the
pulse) can be expressed; pass ``guidance_scale=scales[0]`` to the call (> 1, so the pipeline
prepares the unconditional embeddings).
"""

from __future__ import annotations

import math

from .schedulers import SchedulerPlan


def guidance_scales(schedule, plan: SchedulerPlan) -> list[float]:
    """``w(sigma_i)`` for every step ``i`` of ``plan`` (one float per model evaluation step)."""
    if getattr(schedule, "baseline", 1.0) != 1.0:
        raise ValueError("schedule: diffusers pipelines skip the unconditional branch at guidance_scale <= 1; "
                         "expected baseline 1")
    return [float(schedule(plan.sigmas[i:i + 1])[0]) for i in range(len(plan.sigmas))]


def guidance_callback(schedule, plan: SchedulerPlan):
    """``callback_on_step_end`` that sets ``pipe._guidance_scale`` to the schedule's weight of the next step.

    Returns ``(callback, scales)``; call the pipeline with ``guidance_scale=scales[0]`` and
    ``callback_on_step_end=callback``. ``callback.applied`` records the scale each step ran with.
    """
    scales = guidance_scales(schedule, plan)

    def callback(pipe, i, timestep, callback_kwargs):
        callback.applied.append(float(pipe._guidance_scale))
        if i + 1 < len(scales):
            pipe._guidance_scale = scales[i + 1]
        return callback_kwargs

    callback.applied = []
    return callback, scales


def guide_config(model, tc_logsnr: float, steps: int, *, kind=None, width: float = 3.0, height: float = 3.0,
                 **overrides) -> dict:
    """The critical time and the pulse/interval around it in every unit, for ``steps`` steps of the model's scheduler.

    The pulse is a box of ``width`` (logsnr) and ``height`` centred at ``tc_logsnr`` (baseline 1); the
    interval is its ``[lo, hi]`` edges. Returns a JSON-ready dict: ``tc``, ``pulse`` (``lo``/``hi`` ends in
    every unit and the steps it covers), the per-step ``table`` and the ``guidance_scale`` per step.
    """
    from ...guidance_schedules import Pulse
    from .schedulers import scheduler_plan
    from .units import describe_point, sigma_interval_to_steps, unit_table

    plan = scheduler_plan(model, steps, kind, **overrides)
    pulse = Pulse(float(tc_logsnr), width, height)
    lo, hi = pulse.centre - width / 2, pulse.centre + width / 2
    clamp = (-2 * math.log(model.sigma_max), -2 * math.log(model.sigma_min))  # ends beyond the model's range
    ends = {name: describe_point(model, min(max(v, clamp[0]), clamp[1]), plan) for name, v in (("lo", lo), ("hi", hi))}
    scales = guidance_scales(pulse, plan)
    covered = sigma_interval_to_steps(plan, ends["hi"]["sigma"], ends["lo"]["sigma"])
    return {"scheduler": plan.kind, "steps": steps, "spacing": plan.config.get("timestep_spacing"),
            "tc": describe_point(model, float(tc_logsnr), plan),
            "pulse": {"height": height, "width_logsnr": width, **ends, "steps": covered},
            "table": [dict(row, guidance_scale=w) for row, w in zip(unit_table(model, plan), scales)]}
