"""The guidance-pulse experiment (DESIGN.md section 5): is guidance at the critical time special?

``run_guide(cfg, ctx) -> GuideResult``; :func:`critdiff.report.guide.render_guide` draws its report.
Arms (:mod:`.guide_arms`; all on the same samples -- common random numbers -- so arms differ only by
their guidance schedule):

- ``none``      ``w = baseline`` everywhere (0: unconditional, 1: conditional);
- ``cond``      ``w = 1`` (the conditional model);
- ``constant``  ``w = height`` everywhere (constant guidance at equal height);
- ``interval``  ``w = height`` on a logsnr interval (default: Kynkaanniemi et al. 2024's), else baseline;
- ``interval-ours`` Kynkaanniemi's interval translated in logsnr to centre on ``lambda_c``
                (:func:`critdiff.guidance_ramp.interval_at`);
- ``linear``    Wang et al. 2024's linearly increasing weight, linear in ``1 - t`` over the grid, mean ``height``
                (:func:`critdiff.guidance_ramp.wang_linear`);
- ``tc``        a pulse of ``height`` and ``width`` centred at the critical logsnr ``lambda_c`` (:mod:`.guide_tc`);
- ``random``    the same pulse at a per-sample random centre, uniform in logsnr on the grid's range
                shrunk by half a width (the control);
- ``adaptive``  the same pulse fired per sample by an online indicator (no extra network calls);
                its threshold is calibrated on separate pilot samples so that the median sample fires
                where the fixed pulse at ``lambda_c`` would start (or given);
- ``sweep``     fixed pulses at ``sweep`` centres spread over the grid's range (the sweep curve);
- ``window``    ``w = height`` over the estimated window ``[lo, hi]`` (``--window``, else the window of
                ``--tc-from``, e.g. ``sensitivity``'s half-maximum range), ``baseline`` elsewhere.

Metrics per arm (:mod:`.guide_metrics`, :mod:`.guide_summary`): accuracy and mean log-probability of the
intended class, Frechet distance, precision and recall (k = 3) in the classifier's feature space per class,
diversity per class, NFE per sample;
paired bootstrap 95% intervals (:mod:`critdiff.probes.bootstrap`) for every difference from the ``random`` arm.

Trials (one arm on one batch: its samples, NFE and firing times) stream to ``OUT/trials.jsonl``
(:mod:`.guide_store`); the classifier is applied when summarising, so the summary is computed from that
log only and a resumed run gives exactly the table of an uninterrupted one. Files: ``trials.jsonl``,
``summary.json`` (the summary record) and ``result.json`` (the :class:`GuideResult` record).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import torch

from ... import guidance_schedules as GS
from ...io import save_json
from ...times import TimeEstimate
from .arms import (Arm, Setup, build_arms, calibrate_threshold, grid_range, intended_labels, prepare, run_arm,
                   window_of, with_late_start)
from .config import ARMS, GuideConfig, demo_config, parse_arms
from .metrics import classify
from .store import TrialLog
from .summary import summarise, unclassified
from .estimators import resolve_estimates, resolve_tc
from .tc import tc_from_record, tc_record
from ..config import config_fields
from ..context import Context, ContextLike, as_context
from ..result import Result
from ..start import StartPlan

__all__ = ["ARMS", "GuideConfig", "GuideResult", "demo_config", "intended_labels",
           "parse_arms", "prepare", "resolve_tc", "run_arm", "run_guide", "summarise_log"]


@dataclass(frozen=True)
class GuideResult(Result):
    """What a guidance run found. ``status``: ``complete`` (every field set), ``stopped`` (``stop_after``
    reached) or ``no-classifier`` (the samples are in the log; the metrics wait for a classifier).

    ``arms``: per arm, accuracy and log p (``{diff, lo, hi, n, ...}``), FD (per class and mean),
    diversity, NFE, and ``vs_random`` (paired differences from the random arm); ``table``: the arms table of
    ``summary.json``; ``sweep``: one point per sweep centre; ``comparisons``: ``tc-random``,
    ``tc-constant``, ``adaptive-tc``, ``tc-none``, ``adaptive-random`` where both arms ran; ``equal_nfe``: the pulse against the interval, interval-ours, linear and constant arms
    with their NFE ratio (:func:`.guide_summary.equal_nfe_rows`); ``estimators``:
    ``{chosen, estimates: {name: TimeEstimate record or {error}}}`` (:mod:`.guide_estimators`).
    """

    kind = "guide"
    config: GuideConfig
    status: Literal["complete", "stopped", "no-classifier"]
    tc: TimeEstimate
    log: str
    grid_logsnr_range: Optional[tuple[float, float]] = None
    n_classes: Optional[int] = None
    classifier_train_accuracy: Optional[float] = None
    calibration: Optional[dict] = None
    arms: Optional[dict] = None
    table: tuple[dict, ...] = ()
    sweep: tuple[dict, ...] = ()
    sweep_peak: Optional[dict] = None
    comparisons: Optional[dict] = None
    estimators: Optional[dict] = None
    equal_nfe: tuple[dict, ...] = ()
    late_start: Optional[StartPlan] = None  # the Gaussian late start (--late-start), else None

    def summary(self) -> dict:
        """The ``summary.json`` record (its keys as before the Result existed)."""
        d = self.to_dict()
        d.pop("status")
        d["tc"] = tc_record(self.tc)
        return d


def _critical_time(cfg: GuideConfig, setup: Setup, trial_log: TrialLog) -> tuple[TimeEstimate, Optional[dict]]:
    """The run's critical time and the ``estimators`` record (every estimator computed, :mod:`.guide_estimators`):
    from the log (resume), else resolved once and logged."""
    rec = trial_log.find("tc")
    if rec is None:
        tc, est = resolve_estimates(cfg, setup.images, setup.model, setup.classifier)
        rec = trial_log.append(tc_record(tc))
        trial_log.append(est)
    est = trial_log.find("estimators")
    return tc_from_record(rec, cfg.schedule), None if est is None else {k: v for k, v in est.items() if k != "type"}


def _threshold(setup: Setup, trial_log: TrialLog, tc: TimeEstimate, log) -> Optional[float]:
    """The adaptive arm's threshold: given, else calibrated once on pilot samples and logged."""
    cfg = setup.cfg
    if "adaptive" not in cfg.arms or cfg.threshold is not None:
        return cfg.threshold
    cal = trial_log.find("calibration")
    if cal is None:
        log("[guide] calibrating the adaptive threshold")
        cal = trial_log.append(calibrate_threshold(setup, tc))
    return float(cal["threshold"])


def _trial(setup: Setup, arm: Arm, b0: int, index: torch.Tensor, labels: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """One arm on one batch: the trial record of the log, and the samples."""
    t0 = time.perf_counter()
    guidance, callbacks = arm.make(index)
    x, nfe = run_arm(setup, guidance, callbacks, index, labels)
    rec = {"type": "trial", "arm": arm.name, "start": b0, "index": index.tolist(), "label": labels.tolist(),
           "nfe": nfe.tolist(), "x": x.to(torch.float32).tolist(), "seconds": time.perf_counter() - t0}
    if isinstance(guidance, GS.AdaptivePulse):
        rec["fired_logsnr"] = guidance.fired.tolist() if guidance.fired is not None else None
    return rec, x


@dataclass(frozen=True)
class TrialWorker:
    """``setup()`` of a remote worker (:mod:`.executors`): prepare the model and build the arms, once per worker."""

    cfg: GuideConfig
    model: Any
    tc: TimeEstimate
    threshold: Optional[float]
    window: Optional[tuple] = None

    def __call__(self) -> tuple[Setup, dict]:
        if self.cfg.threads is not None:
            torch.set_num_threads(self.cfg.threads)
        setup = with_late_start(prepare(self.cfg, None, self.model), self.tc)
        return setup, {a.name: a for a in build_arms(self.cfg, setup.sigmas, self.tc, self.threshold, self.window)}


def _batch(cfg: GuideConfig, n_classes: int, b0: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The sample indices and intended labels of the batch starting at ``b0``."""
    index = torch.arange(b0, min(cfg.n, b0 + cfg.batch))
    return index, intended_labels(len(index), n_classes, b0)


def trial_unit(state: tuple[Setup, dict], unit: tuple[str, int]) -> dict:
    """``work`` of the executor: the trial record of arm ``unit[0]`` on the batch starting at ``unit[1]``."""
    setup, arms = state
    name, b0 = unit
    return _trial(setup, arms[name], b0, *_batch(setup.cfg, setup.n_classes, b0))[0]


def _run_trials(setup: Setup, trial_log: TrialLog, arms: list[Arm], ctx: Context, stop_after: Optional[int],
                worker: TrialWorker, verbose: bool = False) -> bool:
    """Run every missing trial (batches in order, arms in order) through ``ctx.executor``; the driver appends the
    records in that order (a line per trial through ``ctx.log`` only when ``verbose``; the bar shows the progress).
    True when the run is incomplete (``stop_after`` reached or a trial failed)."""
    cfg = setup.cfg
    units = [(f"{arm.name}@{b0}", (arm.name, b0)) for b0 in range(0, cfg.n, cfg.batch) for arm in arms]
    missing = [u for u in units if trial_log.find("trial", arm=u[1][0], start=u[1][1]) is None]
    stopped = stop_after is not None and len(missing) > stop_after
    failed = []
    log, executor = ctx.log, ctx.executor
    with ctx.bar(len(units), "guide trials") as bar:
        bar.update(len(units) - len(missing))

        def done(key: str, outcome) -> None:
            bar.update(1)
            if not outcome.ok:
                failed.append(key)
                log(f"[guide] trial {key} failed after {outcome.attempts} attempts: {outcome.error}")
                return
            rec = trial_log.append(outcome.record)
            if not verbose:
                return
            msg = ""
            if setup.classifier is not None:
                m = classify(setup.classifier, torch.tensor(rec["x"], dtype=cfg.torch_dtype), torch.tensor(rec["label"]))
                msg = f"acc {float(m['correct'].float().mean()):.3f} logp {float(m['logp'].mean()):+.3f} "
            log(f"[guide] {rec['arm']:>14s} samples {rec['start']}-{rec['index'][-1]}: {msg}"
                f"nfe {sum(rec['nfe']) / len(rec['nfe']):.1f} ({rec['seconds']:.1f} s)")

        local = (lambda: (setup, {a.name: a for a in arms})) if executor.local else worker
        executor.run(local, trial_unit, missing[:stop_after] if stopped else missing, done)
    if stopped:
        log(f"[guide] stopped after {stop_after} new trials")
    return stopped or bool(failed)


def run_guide(cfg: GuideConfig, ctx: ContextLike, *, classifier=None, model=None, stop_after: Optional[int] = None,
              verbose: bool = False) -> GuideResult:
    """Run (or resume) the experiment in ``ctx.out``; write ``result.json`` (whatever the status) and, when
    complete, ``summary.json``.

    ``ctx``: a :class:`~critdiff.experiments.context.Context` or an output folder; its executor runs the trials
    (:mod:`..executors`; default serial, in this process; the records, samples and summary do not depend on it)
    and its log takes the run's lines (default: above the progress bar). ``classifier``: any object with
    ``logits(x)`` and ``embed(x)``; ``model``: a denoiser overriding ``cfg.model`` (tests). ``stop_after``: stop
    after that many new trials (simulates an interruption). ``verbose``: also a line per trial (its accuracy, log
    p, NFE and time).
    """
    ctx = as_context(ctx)
    setup = prepare(cfg, classifier, model)
    out = ctx.folder()
    log = ctx.log
    trial_log = TrialLog(out / "trials.jsonl", cfg.identity())
    tc, estimators = _critical_time(cfg, setup, trial_log)
    setup = with_late_start(setup, tc)
    threshold = _threshold(setup, trial_log, tc, log)
    window = window_of(cfg, tc)
    arms = build_arms(cfg, setup.sigmas, tc, threshold, window)
    worker = TrialWorker(cfg, model, tc, threshold, window)
    if _run_trials(setup, trial_log, arms, ctx, stop_after, worker, verbose):
        result = GuideResult(config=cfg, status="stopped", tc=tc, log=str(trial_log.path), estimators=estimators,
                             late_start=setup.start)
    elif setup.classifier is None:
        log(f"[guide] all trials are in {trial_log.path}; rerun with a classifier for the metrics")
        result = GuideResult(config=cfg, status="no-classifier", tc=tc, log=str(trial_log.path), estimators=estimators,
                             late_start=setup.start, n_classes=setup.n_classes,
                             grid_logsnr_range=grid_range(setup.sigmas),
                             arms=unclassified(trial_log, arms, cfg.n, cfg.n_boot, cfg.seed))
    else:
        result = GuideResult(config=cfg, status="complete", estimators=estimators, late_start=setup.start,
                             **summarise(setup, trial_log, arms, tc))
        save_json(out / "summary.json", result.summary())
    ctx.save(result)  # every status: critdiff report renders what the run holds
    return result


def summarise_log(ctx: ContextLike, classifier, model=None) -> GuideResult:
    """The result of a finished run folder ``ctx.out`` (its ``trials.jsonl``), with the given classifier; a folder
    given as it is runs without a bar (``Context.quiet``)."""
    ctx = ctx if isinstance(ctx, Context) else Context.quiet(ctx)
    path = Path(ctx.out or ".") / "trials.jsonl"
    if ctx.out is None or not path.exists():
        raise FileNotFoundError(f"out: no trials.jsonl in {ctx.out}")
    with open(path, encoding="utf-8") as fh:
        head = json.loads(fh.readline())
    return run_guide(GuideConfig.from_dict(config_fields(head["config"])), ctx, classifier=classifier, model=model)
