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
                        classifier);
- ``commitment-midpoint`` the same run's decision midpoint: phi half-way from chance to 1;
- ``commitment-slope``  the same run's largest ``d phi / d logsnr`` (the decision's susceptibility);
- ``sensitivity``       the peak of the guidance sensitivity profile (:mod:`critdiff.probes.guidance_sensitivity`:
                        ``d log p(intended class) / d w`` at each grid node by one backward pass through the
                        sampler; needs the classifier), with its half-maximum window;
- ``sensitivity-box``   the same profile's first-order prediction of the best centre of a box pulse of
                        ``cfg.width`` (the sweep's pulse), with the same window;
- ``sensitivity-implicit`` the same profile with the model's own implicit classifier as the outcome
                        (:func:`~critdiff.probes.guidance_sensitivity.implicit_logp`, read at logsnr
                        ``SENS_IMPLICIT_LOGSNR`` over ``SENS_DRAWS`` noise draws): no classifier needed. ``sensitivity``
                        without a classifier is this estimate;
- ``linear-response+offset``, ``speciation+offset``: the estimate minus the median offset ``estimate - peak``
                        of the guidance benchmark's models (:mod:`.offsets`; fitted, never typed in).

:data:`~.guide_config.DEFAULT_TC_FROM` is the ONE place the default lives: ``linear-response+offset``, the estimator
with the smallest leave-one-model-out mean distance to the pulse-centre sweep's peak over the six models of
``benchmarks/guidance_estimators.py``, adopted by that script's switch rule on its validation models (docs/guidance.md
section 5). ``auto`` = ``theory`` for the analytic patch model, ``linear-response`` otherwise (the
default before that benchmark). :data:`ALWAYS` are computed on every run because they are cheap
(closed forms, no sampling); the chosen one is computed as well; the others only when named.

Sizes and seeds (fixed here so an estimate is reproducible): ensemble ``ENSEMBLE_N`` samples at
``ProbeConfig.times`` probed steps, seed ``derive(cfg.seed, "ensemble")``; decision entropy ``DECISION_N``
trajectories, seed ``derive(cfg.seed, "decision")``; commitment ``COMMIT_N`` states x ``COMMIT_K`` clones at
``COMMIT_TIMES`` grid steps, seed ``derive(cfg.seed, "commitment")``; the linear response
``derive(cfg.seed, "linear-response")`` (as in :mod:`.guide_tc`); sensitivity ``SENS_N`` samples (intended classes
balanced), initial noise ``derive(cfg.seed, "sensitivity")``, sampler noise ``derive(cfg.seed, "sensitivity",
"sampler")``, ``cfg.sampler`` and ``cfg.baseline``. A ``cache`` dict passed to :func:`estimate` shares one
commitment run and one sensitivity profile among the estimators built on them (per size: its key is
:func:`cache_key`). :func:`estimate`'s ``n`` replaces the size of a sampling estimator of :data:`SIZED` (the
commitment's states ``COMMIT_N``, the profile's samples ``SENS_N``) for a costly model; the seeds stay the same, so
the first ``n`` initial noises are those of the default size.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch

from ... import samplers as SM
from ... import schedules as S
from ...errors import check_int
from ...seeding import derive
from ...times import TimeEstimate
from .config import AUTO_TC_FROM, DEFAULT_TC_FROM, TC_FROM_CHOICES, TC_SOURCES, GuideConfig
from .tc import probe_tc
from ..config import ANALYTIC
from ..start import probe_spacing

ALWAYS = ("theory", "speciation")
ENSEMBLE_N, DECISION_N, COMMIT_N, COMMIT_K, COMMIT_TIMES = 8, 32, 32, 4, 8
# 32 samples x 2 evaluations x N steps (+ one backward pass per batch): <= 10% of a 9-centre sweep's NFE at n = 200
SENS_N = 32
SENS_BATCH = 4  # samples per backward pass: a net's autograd keeps every evaluation's activations
# the analytic models' profiles recompute each evaluation in the backward pass instead of keeping its activations
# (probes/guidance_sensitivity.py NodeWeights): patch-mnist28 kept > 23 GB at one sample without it; nets keep theirs
SENS_RECOMPUTE = ANALYTIC
# the implicit classifier's reading level (eq. 2.7): logsnr 2 (sigma/a = 0.37), after the class is decided on the
# benchmark's nets (commitment 0.8 to 4.3, docs/guidance.md 5.4) and before the pixel noise; a choice, not fitted
SENS_IMPLICIT_LOGSNR, SENS_DRAWS = 2.0, 4

__all__ = ["TC_SOURCES", "DEFAULT_TC_FROM", "AUTO_TC_FROM", "TC_FROM_CHOICES", "ALWAYS", "SIZED", "cache_key",
           "chosen_source", "estimate", "resolve_estimates", "resolve_tc"]


def chosen_source(cfg) -> str:
    """The estimator named by ``cfg.tc_from`` (``auto``: theory for the patch model, linear response otherwise)."""
    name = getattr(cfg, "tc_from", DEFAULT_TC_FROM)
    if name == AUTO_TC_FROM:
        return "theory" if cfg.kind == "patch" else "linear-response"
    return name


def _at(cfg, logsnr: float, source: str, ci=None, **extra) -> TimeEstimate:
    """The estimate at ``logsnr`` with its interval ``ci`` (dropped when a bound is not finite) and ``extra``
    facts, checked to lie inside the schedule's logsnr range."""
    sch = S.get(cfg.schedule)
    if not sch.logsnr_min <= logsnr <= sch.logsnr_max:
        raise ValueError(f"tc-from: the {source} estimate (logsnr {logsnr:.3g}) lies outside the schedule's range")
    return TimeEstimate.at_logsnr(sch, float(logsnr), source, ci, **extra)


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

    if images is None:
        raise ValueError("data: --tc-from speciation needs --data SPEC (the data covariance)")
    sp = speciation(images)
    return _at(cfg, sp.logsnr_c, "speciation (snr lambda_max(Cov) = 1)")


def _shape_dtype(cfg, images, model) -> tuple[tuple, torch.dtype]:
    """The sampled shape (a model's own ``sample_shape``, e.g. a diffusers model's latents, else the data's) and
    dtype (the data's, else the run's): a diffusers model needs no ``--data`` here."""
    shape = getattr(model, "sample_shape", None) or (None if images is None else tuple(images.shape[1:]))
    if shape is None:
        raise ValueError("data: this estimator needs the sample shape: give --data SPEC")
    return tuple(shape), (cfg.torch_dtype if images is None else images.dtype)


def _noise(cfg, images, n: int, seed: int, model=None):
    sigmas = S.sigma_grid(cfg.schedule, cfg.steps, probe_spacing(cfg.spacing))
    shape, dtype = _shape_dtype(cfg, images, model)
    x = SM.initial_noise((n, *shape), sigmas, SM.seed_generators(seed, n), dtype=dtype, device=cfg.torch_device)
    return sigmas, x


def _ensemble(cfg, images, model, classifier) -> TimeEstimate:
    from ...probes.ensemble import ensemble_probe, ensemble_signals
    from ..probe import ProbeConfig, probe_steps

    sigmas, x = _noise(cfg, images, ENSEMBLE_N, derive(cfg.seed, "ensemble"), model)
    ens = ensemble_probe(model, x, sigmas, probe_steps(cfg.steps, ProbeConfig.times), sampler=cfg.sampler,
                         n_boot=200, seed=derive(cfg.seed, "ensemble"))
    _, comb, rec = ensemble_signals(ens, cfg.schedule)
    if comb is None:
        raise ValueError(f"tc-from: the ensemble signals give no estimate ({rec.get('message', 'none found')})")
    return _at(cfg, comb.logsnr, "ensemble (combined stiffness, xi, chi)", comb.logsnr_ci)


def _need_classifier(classifier, name: str):
    if classifier is None:
        raise ValueError(f"tc-from: the {name} estimate needs a classifier (--classifier)")


def _decision(cfg, images, model, classifier) -> TimeEstimate:
    from ...probes.decision import EntropyRecorder, classifier_logits

    _need_classifier(classifier, "decision-entropy")
    sigmas, x = _noise(cfg, images, DECISION_N, derive(cfg.seed, "decision"), model)
    rec = EntropyRecorder(classifier_logits(classifier.logits))
    with torch.no_grad():
        SM.get(cfg.sampler)(model, x, sigmas, generator=SM.seed_generators(derive(cfg.seed, "decision", "sampler"), DECISION_N), callback=rec)
    d = rec.result(n_boot=200, seed=cfg.seed)
    return _at(cfg, d.decision_logsnr, "decision entropy (steepest drop)", d.logsnr_ci)


def cache_key(family: str, n: Optional[int] = None) -> str:
    """The key of a shared run in :func:`estimate`'s ``cache``: ``family`` (``commitment``, ``sensitivity``,
    ``sensitivity-implicit``) at its default size, ``family:n=N`` at size ``N``."""
    return family if n is None else f"{family}:n={n}"


def _cached(cache: Optional[dict], key: str, make: Callable[[], Any]) -> Any:
    if cache is None:
        return make()
    if key not in cache:
        cache[key] = make()
    return cache[key]


def _commitment_run(cfg, images, model, classifier, cache, n=None):
    from ...probes.commitment import commitment
    from ..probe import probe_steps

    _need_classifier(classifier, "commitment")
    sigmas = S.sigma_grid(cfg.schedule, cfg.steps, probe_spacing(cfg.spacing))
    shape, dtype = _shape_dtype(cfg, images, model)
    return _cached(cache, cache_key("commitment", n), lambda: commitment(
        model, (COMMIT_N if n is None else n, *shape), sigmas, probe_steps(cfg.steps, COMMIT_TIMES), classifier.logits,
        k=COMMIT_K, sampler=cfg.sampler, seed=derive(cfg.seed, "commitment"), n_boot=200, dtype=dtype,
        device=cfg.torch_device))


def _commitment(cfg, images, model, classifier, cache=None, n=None) -> TimeEstimate:
    c = _commitment_run(cfg, images, model, classifier, cache, n)
    if not c.found:
        raise ValueError(f"tc-from: phi never crosses its level {c.level:.3g} on the probed steps")
    return _at(cfg, c.commitment_logsnr, f"commitment (phi = {c.level_rule})", c.logsnr_ci)


def _commitment_midpoint(cfg, images, model, classifier, cache=None, n=None) -> TimeEstimate:
    m = _commitment_run(cfg, images, model, classifier, cache, n).midpoint
    if not math.isfinite(m.logsnr):
        raise ValueError(f"tc-from: phi never crosses its half level {m.level:.3g} on the probed steps")
    return _at(cfg, m.logsnr, "commitment midpoint (phi = chance + 0.5 (1 - chance))", m.logsnr_ci)


def _commitment_slope(cfg, images, model, classifier, cache=None, n=None) -> TimeEstimate:
    m = _commitment_run(cfg, images, model, classifier, cache, n).midpoint
    if not math.isfinite(m.slope_logsnr):
        raise ValueError("tc-from: phi has no finite slope on the probed steps")
    return _at(cfg, m.slope_logsnr, "commitment steepest rise (largest d phi / d logsnr)", m.slope_ci)


def sensitivity_run(cfg, images, model, classifier, n: int = SENS_N):
    """The guidance sensitivity profile (eq. 2.6 of docs/guidance.md) of ``n`` samples, ``min(cfg.batch,
    SENS_BATCH)`` per backward pass, with the outcome ``log p(c | x_end)`` of ``classifier``, or with ``classifier
    None`` of the model's own implicit classifier (eq. 2.7): a
    :class:`~critdiff.probes.guidance_sensitivity.SensitivityProfile` (forward ``nfe`` per sample, the outcome's
    evaluations included, and the number of backward passes recorded in it)."""
    import numpy as np

    from ...denoisers import n_classes_of
    from ...probes.guidance_sensitivity import classifier_logp, implicit_logp, sensitivity_profile, summarise

    sigmas, x = _noise(cfg, images, n, derive(cfg.seed, "sensitivity"), model)
    if classifier is not None:
        with torch.no_grad():
            K = int(classifier.logits(x[:1]).shape[1])
        outcome = classifier_logp(classifier)
    else:
        K = n_classes_of(model)
        if K < 2:
            raise ValueError("tc-from: the sensitivity profile without --classifier reads the model's implicit "
                             "classifier, which needs a class-conditional model (with its class count)")
        outcome = implicit_logp(model, math.exp(-0.5 * SENS_IMPLICIT_LOGSNR), SENS_DRAWS,
                                derive(cfg.seed, "sensitivity", "implicit"))
    labels = (torch.arange(n) % K).long().to(cfg.torch_device)
    gens = SM.seed_generators(derive(cfg.seed, "sensitivity", "sampler"), n, device=cfg.torch_device)
    parts, nfe = [], []
    step = min(cfg.batch, SENS_BATCH)
    for k in range(0, n, step):
        sl = slice(k, min(n, k + step))
        r, _, f = sensitivity_profile(model, x[sl], sigmas, labels[sl], outcome,
                                      sampler=cfg.sampler, generator=gens[sl], baseline=cfg.baseline,
                                      recompute=cfg.kind in SENS_RECOMPUTE)
        parts.append(r)
        nfe.append(f)
    extra = getattr(outcome, "nfe", 0) / n  # the implicit classifier's evaluations per sample
    return summarise(sigmas[:-1].numpy(), np.concatenate(parts, 1), baseline=cfg.baseline,
                     nfe=float(np.concatenate(nfe).mean()) + extra, backward=len(parts), n_boot=200,
                     seed=derive(cfg.seed, "sensitivity", "bootstrap"), box_width=cfg.width)


def _n(n: Optional[int]) -> int:
    return SENS_N if n is None else n


def _sensitivity(cfg, images, model, classifier, cache=None, n=None) -> TimeEstimate:
    if classifier is None:
        return _sensitivity_implicit(cfg, images, model, classifier, cache, n)
    p = _cached(cache, cache_key("sensitivity", n), lambda: sensitivity_run(cfg, images, model, classifier, _n(n)))
    return _at(cfg, p.peak_logsnr, "guidance sensitivity profile (peak of d log p / d w)", p.peak_ci,
               window=tuple(p.window))


def _sensitivity_implicit(cfg, images, model, classifier, cache=None, n=None) -> TimeEstimate:
    p = _cached(cache, cache_key("sensitivity-implicit", n), lambda: sensitivity_run(cfg, images, model, None, _n(n)))
    return _at(cfg, p.peak_logsnr, "guidance sensitivity profile of the model's implicit classifier (peak of "
               f"d log p_s(c | x) / d w, read at logsnr {SENS_IMPLICIT_LOGSNR:g})", p.peak_ci, window=tuple(p.window))


def _sensitivity_box(cfg, images, model, classifier, cache=None, n=None) -> TimeEstimate:
    key = "sensitivity" if classifier is not None else "sensitivity-implicit"  # one profile per outcome
    p = _cached(cache, cache_key(key, n), lambda: sensitivity_run(cfg, images, model, classifier, _n(n)))
    return _at(cfg, p.box_peak_logsnr, f"guidance sensitivity profile (best box of width {p.box_width:g})",
               p.box_peak_ci, window=tuple(p.window))


def _shifted(base: str):
    def shifted(cfg, images, model, classifier, cache=None) -> TimeEstimate:
        from .offsets import fitted_offset, load_offsets

        tc = estimate(base, cfg, images, model, classifier, cache)
        off = fitted_offset(load_offsets(), base)
        ci = None if tc.logsnr_ci is None else tuple(v - off for v in tc.logsnr_ci)
        # the measured estimate stays with it: the late start's margin is measured from it, not from the peak
        return _at(cfg, tc.logsnr - off, f"{tc.source} minus the benchmark's median offset {off:+.4g}", ci,
                   unshifted_logsnr=tc.logsnr, unshifted_source=tc.source)

    return shifted


ESTIMATORS: dict[str, Callable[..., TimeEstimate]] = {
    "theory": _theory, "linear-response": _linear_response, "ensemble": _ensemble, "decision-entropy": _decision,
    "speciation": _speciation, "commitment": _commitment, "commitment-midpoint": _commitment_midpoint,
    "commitment-slope": _commitment_slope, "sensitivity": _sensitivity, "sensitivity-box": _sensitivity_box,
    "sensitivity-implicit": _sensitivity_implicit,
    "linear-response+offset": _shifted("linear-response"), "speciation+offset": _shifted("speciation")}
SIZED = ("commitment", "commitment-midpoint", "commitment-slope", "sensitivity", "sensitivity-box",
         "sensitivity-implicit")  # the sampling estimators whose size ``n`` :func:`estimate` can set
CACHED = SIZED + ("linear-response+offset", "speciation+offset")  # the estimators that take the shared ``cache``


def estimate(name: str, cfg, images, model, classifier=None, cache: Optional[dict] = None,
             n: Optional[int] = None) -> TimeEstimate:
    """One estimator by name (module docstring); a one-line ValueError when it has no estimate for this model.
    ``cache`` (a dict) shares the commitment run and the sensitivity profile among the estimators built on them;
    ``n`` (an estimator of :data:`SIZED` only; None: ``COMMIT_N`` / ``SENS_N``) the states of the commitment run or
    the samples of the profile."""
    if name not in ESTIMATORS:
        raise ValueError(f"tc-from: expected one of {', '.join(TC_FROM_CHOICES)}, got {name!r}")
    fn = ESTIMATORS[name]
    if n is not None:
        if name not in SIZED:
            raise ValueError(f"n: only the sampling estimators {', '.join(SIZED)} take a size, not {name!r}")
        return fn(cfg, images, model, classifier, cache, check_int("n", n, 2))
    return fn(cfg, images, model, classifier, cache) if name in CACHED else fn(cfg, images, model, classifier)


def resolve_tc(cfg: GuideConfig, images: Optional[torch.Tensor], model=None, classifier=None) -> TimeEstimate:
    """The critical time: given (``--tc-logsnr``), else the estimator named by ``cfg.tc_from`` (:func:`estimate`;
    default :data:`DEFAULT_TC_FROM`).

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
