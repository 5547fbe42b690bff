"""Every critical-time estimator the guidance experiment can pulse at, selectable by name (docs/guidance.md
section 1; DESIGN.md section 5, "Which critical time places the pulse").

- ``theory``            the patch theory's ``t_c`` (linear instability of the homogeneous branch; patch model only);
- ``linear-response``   the measured growth onset about the unconditional model's symmetric branch
                        (:func:`critdiff.experiments.guide.tc.probe_tc`);
- ``ensemble``          the combined estimate of the sampler ensemble's signals (stiffness, ``xi``, ``chi``;
                        :func:`critdiff.probes.ensemble.ensemble_probe`) on unconditional samples;
- ``decision-entropy``  the steepest drop of the classifier's entropy on ``x0_hat`` along unconditional
                        trajectories (:mod:`critdiff.probes.decision`; needs the classifier);
- ``speciation``        the closed form ``snr lambda_max(Cov) = 1`` of the data covariance
                        (:func:`critdiff.theory.global_model.speciation`);
- ``commitment``        the cloning experiment's commitment time (:mod:`critdiff.probes.commitment`; needs the
                        classifier).

:data:`~.guide_config.DEFAULT_TC_FROM` is the ONE place the default lives: ``linear-response``, the estimator with the
smallest mean distance to the pulse-centre sweep's peak over the models of ``benchmarks/guidance_estimators.py``
(docs/guidance.md section 5). ``auto`` = ``theory`` for the analytic patch model, ``linear-response`` otherwise (the
default before that benchmark). :data:`ALWAYS` are computed on every run because they are cheap
(closed forms, no sampling); the chosen one is computed as well; the others only when named.

Sizes and seeds (fixed here so an estimate is reproducible): ensemble ``ENSEMBLE_N`` samples at
``ProbeConfig.times`` probed steps, seed ``derive(cfg.seed, "ensemble")``; decision entropy ``DECISION_N``
trajectories, seed ``derive(cfg.seed, "decision")``; commitment ``COMMIT_N`` states x ``COMMIT_K`` clones at
``COMMIT_TIMES`` grid steps, seed ``derive(cfg.seed, "commitment")``; the linear response
``derive(cfg.seed, "linear-response")`` (as in :mod:`.guide_tc`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import torch

from ... import samplers as SM
from ... import schedules as S
from ...seeding import derive
from ...times import TimeEstimate
from .config import AUTO_TC_FROM, DEFAULT_TC_FROM, TC_FROM_CHOICES, TC_SOURCES, GuideConfig
from .tc import probe_tc

ALWAYS = ("theory", "speciation")
ENSEMBLE_N, DECISION_N, COMMIT_N, COMMIT_K, COMMIT_TIMES = 8, 32, 32, 4, 8

__all__ = ["TC_SOURCES", "DEFAULT_TC_FROM", "AUTO_TC_FROM", "TC_FROM_CHOICES", "ALWAYS", "chosen_source", "estimate",
           "resolve_estimates", "resolve_tc"]


def chosen_source(cfg) -> str:
    """The estimator named by ``cfg.tc_from`` (``auto``: theory for the patch model, linear response otherwise)."""
    name = getattr(cfg, "tc_from", DEFAULT_TC_FROM)
    if name == AUTO_TC_FROM:
        return "theory" if cfg.kind == "patch" else "linear-response"
    return name


def _in_range(cfg, est: TimeEstimate, source: Optional[str] = None) -> TimeEstimate:
    """``est`` (with its ``source`` renamed when given), checked to lie inside the schedule's logsnr range."""
    sch = S.get(cfg.schedule)
    if not sch.logsnr_min <= est.logsnr <= sch.logsnr_max:
        raise ValueError(f"tc-from: the {source or est.source} estimate (logsnr {est.logsnr:.3g}) lies outside the "
                         "schedule's range")
    return est if source is None else dataclasses.replace(est, source=source)


def _theory(cfg, images, model, classifier) -> TimeEstimate:
    if cfg.kind != "patch":
        raise ValueError("tc-from: the patch theory needs the analytic patch model (--model patch)")
    from ...theory.critical import critical_point
    from ...theory.pool import patch_pool

    cp = critical_point(patch_pool(images.to(torch.float64), cfg.stencil, device=cfg.torch_device), S.get(cfg.schedule),
                        growth=False)
    if not cp.found:
        raise ValueError(f"tc-logsnr: the theory finds no critical point ({cp.message}); pass --tc-logsnr")
    note = "" if (cfg.equivariant and cfg.boundary == "periodic") else \
        " (theory of the equivariant periodic model, used as an approximation)"
    return cp.estimate("theory" + note)


def _linear_response(cfg, images, model, classifier) -> TimeEstimate:
    tc = probe_tc(cfg, model, images)
    if tc is None:
        raise ValueError("tc-logsnr: no critical-time estimate is available for this model (the linear-response "
                         "probe needs the model and its data); pass --tc-logsnr")
    return tc


def _speciation(cfg, images, model, classifier) -> TimeEstimate:
    from ...theory.global_model import speciation

    return _in_range(cfg, speciation(images).estimate(cfg.schedule))


def _noise(cfg, images, n: int, seed: int):
    sigmas = S.sigma_grid(cfg.schedule, cfg.steps, cfg.spacing)
    x = SM.initial_noise((n, *images.shape[1:]), sigmas, SM.seed_generators(seed, n), dtype=images.dtype,
                         device=cfg.torch_device)
    return sigmas, x


def _ensemble(cfg, images, model, classifier) -> TimeEstimate:
    from ...probes.ensemble import ensemble_probe, ensemble_signals
    from ..probe import ProbeConfig, probe_steps

    sigmas, x = _noise(cfg, images, ENSEMBLE_N, derive(cfg.seed, "ensemble"))
    ens = ensemble_probe(model, x, sigmas, probe_steps(cfg.steps, ProbeConfig.times), sampler=cfg.sampler,
                         n_boot=200, seed=derive(cfg.seed, "ensemble"))
    _, comb, rec = ensemble_signals(ens, cfg.schedule)
    if comb is None:
        raise ValueError(f"tc-from: the ensemble signals give no estimate ({rec.get('message', 'none found')})")
    return _in_range(cfg, comb.estimate(cfg.schedule), "ensemble (combined stiffness, xi, chi)")


def _need_classifier(classifier, name: str):
    if classifier is None:
        raise ValueError(f"tc-from: the {name} estimate needs a classifier (--classifier)")


def _decision(cfg, images, model, classifier) -> TimeEstimate:
    from ...probes.decision import EntropyRecorder, classifier_logits

    _need_classifier(classifier, "decision-entropy")
    sigmas, x = _noise(cfg, images, DECISION_N, derive(cfg.seed, "decision"))
    rec = EntropyRecorder(classifier_logits(classifier.logits))
    with torch.no_grad():
        SM.get(cfg.sampler)(model, x, sigmas, generator=SM.seed_generators(derive(cfg.seed, "decision", "sampler"), DECISION_N), callback=rec)
    d = rec.result(n_boot=200, seed=cfg.seed)
    return _in_range(cfg, d.estimate(cfg.schedule))


def _commitment(cfg, images, model, classifier) -> TimeEstimate:
    from ...probes.commitment import commitment
    from ..probe import probe_steps

    _need_classifier(classifier, "commitment")
    sigmas = S.sigma_grid(cfg.schedule, cfg.steps, cfg.spacing)
    c = commitment(model, (COMMIT_N, *images.shape[1:]), sigmas, probe_steps(cfg.steps, COMMIT_TIMES),
                   classifier.logits, k=COMMIT_K, sampler=cfg.sampler, seed=derive(cfg.seed, "commitment"), n_boot=200,
                   dtype=images.dtype, device=cfg.torch_device)
    if not c.found:
        raise ValueError(f"tc-from: phi never crosses its level {c.level:.3g} on the probed steps")
    return _in_range(cfg, c.estimate(cfg.schedule))


ESTIMATORS: dict[str, Callable[..., TimeEstimate]] = {
    "theory": _theory, "linear-response": _linear_response, "ensemble": _ensemble, "decision-entropy": _decision,
    "speciation": _speciation, "commitment": _commitment}


def estimate(name: str, cfg, images, model, classifier=None) -> TimeEstimate:
    """One estimator by name (module docstring); a one-line ValueError when it has no estimate for this model."""
    if name not in ESTIMATORS:
        raise ValueError(f"tc-from: expected one of {', '.join(TC_FROM_CHOICES)}, got {name!r}")
    return ESTIMATORS[name](cfg, images, model, classifier)


def resolve_tc(cfg: GuideConfig, images: Optional[torch.Tensor], model=None, classifier=None) -> TimeEstimate:
    """The critical time: given (``--tc-logsnr``), else the estimator named by ``cfg.tc_from``
    (:func:`estimate`; default: the patch-model theory of
    DESIGN.md section 3 for the patch model, the growth probe otherwise).

    Raises a one-line ValueError when no estimate is available (then pass ``--tc-logsnr``).
    """
    if cfg.tc_logsnr is not None:
        return TimeEstimate.at_logsnr(S.get(cfg.schedule), cfg.tc_logsnr, "given")
    return estimate(chosen_source(cfg), cfg, images, model, classifier)


def _record(tc: Optional[TimeEstimate], error: Optional[str] = None) -> dict[str, Any]:
    return {"error": error} if tc is None else tc.to_dict()


def resolve_estimates(cfg, images, model, classifier=None) -> tuple[TimeEstimate, dict]:
    """The run's critical time (``--tc-logsnr``, else the chosen estimator) and the ``estimators`` record: every
    estimator computed (:data:`ALWAYS` and the chosen one) with its interval, or the reason it has none."""
    chosen = "given" if cfg.tc_logsnr is not None else chosen_source(cfg)
    tc = resolve_tc(cfg, images, model, classifier)
    per: dict[str, dict] = {chosen: _record(tc)}
    for name in ALWAYS:
        if name not in per:
            try:
                per[name] = _record(estimate(name, cfg, images, model, classifier))
            except ValueError as exc:
                per[name] = _record(None, str(exc))
    return tc, {"type": "estimators", "chosen": chosen, "estimates": per}
