"""The critical time at which the guidance experiment pulses: one :class:`~critdiff.times.TimeEstimate`.

It is resolved once per run (:func:`critdiff.experiments.guide.estimators.resolve_tc`: given, or one of the
estimators), stored as the ``tc`` record of the trial log (:func:`tc_record`), and read back from there on
resume (:func:`tc_from_record`), so every arm of a run uses the same value. :func:`probe_tc` is the
linear-response estimator (the probes' growth onset of DESIGN.md section 4).
"""

from __future__ import annotations

from typing import Optional

from ...denoisers import sample_shape_of
from ...seeding import derive
from ...times import TimeEstimate
from .config import GuideConfig


def tc_record(tc: TimeEstimate) -> dict:
    """The ``tc`` record of the trial log: ``{'type': 'tc', **tc.to_dict()}``."""
    return {"type": "tc", **tc.to_dict()}


def tc_from_record(rec: dict, schedule) -> TimeEstimate:
    """The estimate of a ``tc`` record (:func:`tc_record`); a record written before :class:`TimeEstimate`
    (flat ``logsnr_ci``, ``k_star``) is read too, its interval placed on ``schedule``, so such a run resumes."""
    if "interval" in rec:
        return TimeEstimate.from_dict(rec)
    extras = {} if rec.get("k_star") is None else {"k_star": tuple(rec["k_star"])}
    return TimeEstimate.at_logsnr(schedule, rec["logsnr"], rec["source"], rec.get("logsnr_ci"), **extras)


def probe_tc(cfg: GuideConfig, model, images) -> Optional[TimeEstimate]:
    """The probes' estimate of the critical point (DESIGN.md section 4): the growth onset of small fluctuations
    about the unconditional model's symmetric branch (:func:`critdiff.probes.linear_response`, forward
    evaluations only), with its interval. On the trained digits net this sits where the class is decided
    (logsnr about -1), whereas the stiffness along the sampler's own trajectories only turns at logsnr about 7.

    The branch run has the sizes ``critdiff probe`` uses by default (``ProbeConfig.linear`` coarse steps,
    ``ProbeConfig.linear_n`` members); its seed is ``derive(cfg.seed, 'linear-response')``.
    """
    shape = sample_shape_of(model) or (None if images is None else images.shape[1:])  # latents
    if model is None or shape is None:  # a diffusers model knows its shape; a net needs its data's
        return None
    from ...probes import at_grid_edge, from_growth, linear_response
    from ..probe import ProbeConfig

    lr = linear_response(model, tuple(shape), cfg.schedule, steps=ProbeConfig.linear, n=ProbeConfig.linear_n,
                         seed=derive(cfg.seed, "linear-response"),
                         dtype=cfg.torch_dtype if images is None else images.dtype, device=cfg.torch_device,
                         keep_states=False)
    est = from_growth(lr, n_boot=200, seed=cfg.seed)
    lam = float(est.logsnr)
    if at_grid_edge(est, lr.logsnr):
        # the branch neither turned unstable nor had an interior softest point: no critical time to pulse at
        raise ValueError(f"tc-logsnr: the linear-response probe found no critical time inside the grid (estimate at "
                         f"its end, logsnr {lam:.3g}); give --tc-logsnr (e.g. from `critdiff probe`)")
    return TimeEstimate.at_logsnr(cfg.schedule, lam, f"probe (branch growth, {est.method})", est.logsnr_ci)
