"""The guidance-pulse experiment (DESIGN.md section 5): is guidance at the critical time special?

Arms (all on the same samples: sample ``j`` has intended class ``j mod K``, initial noise from
``seed_generators(seed, .)[j]`` and sampler noise from ``seed_generators(seed + 1, .)[j]``, fresh for
every arm, so arms differ only by their guidance schedule -- common random numbers):

- ``none``      ``w = baseline`` everywhere (0: unconditional, 1: conditional);
- ``cond``      ``w = 1`` (the conditional model);
- ``constant``  ``w = height`` everywhere (constant guidance at equal height);
- ``interval``  ``w = height`` on a logsnr interval (default: Kynkaanniemi et al. 2024's), else baseline;
- ``tc``        a pulse of ``height`` and ``width`` centred at the critical logsnr ``lambda_c``;
- ``random``    the same pulse at a per-sample random centre, uniform in logsnr on the grid's range
                shrunk by half a width (the control);
- ``adaptive``  the same pulse fired per sample by an online indicator (no extra network calls);
                its threshold is calibrated on separate pilot samples so that the median sample fires
                where the fixed pulse at ``lambda_c`` would start (or given);
- ``sweep``     fixed pulses at ``sweep`` centres spread over the grid's range (the sweep curve).

Metrics per arm (:mod:`.guide_metrics`): accuracy and mean log-probability of the intended class,
Frechet distance in the classifier's feature space per class (against the training images of that
class), diversity (mean pairwise feature distance within a class), NFE per sample; paired bootstrap
95% intervals (:mod:`.guide_stats`) for every difference from the ``random`` arm.

Trials (one arm on one batch: its samples, NFE and firing times) stream to ``OUT/trials.jsonl``
(:mod:`.guide_store`); the classifier is applied when summarising, so the samples wait for it and the summary is
computed from that log only, so a resumed run gives exactly the table of an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from .. import guidance_schedules as GS
from .. import samplers as SM
from .. import schedules as S
from ..errors import check_choice, check_finite, check_int, check_positive
from ..guidance import Guided
from ..io import save_json
from .guide_metrics import check_classifier, classify, diversity, frechet_distance
from .guide_stats import mean_interval, paired_mean_diff, paired_stat_diff
from .guide_store import TrialLog

ARMS = ("none", "cond", "constant", "interval", "tc", "random", "adaptive", "sweep")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class GuideConfig:
    """Everything that determines a guidance experiment (round-trips through JSON).

    ``height``, ``width`` (logsnr, equivalent width), ``baseline`` (0 or 1) and ``shape`` define every
    pulse (see :mod:`critdiff.guidance_schedules`); ``tc_logsnr`` overrides the critical logsnr;
    ``interval`` is ``(lo, hi)`` in logsnr; ``threshold`` overrides the adaptive calibration.
    """

    model: str = "patch"
    data: str = "textures:size=16,n=20"
    stencil: str = "square:5"
    equivariant: bool = True
    boundary: str = "periodic"
    pool: str = "all"
    schedule: str = "vp-linear"
    sampler: str = "ddpm"
    spacing: str = "logsnr"
    steps: int = 24
    n: int = 48
    batch: int = 24
    seed: int = 0
    height: float = 3.0
    width: float = 3.0
    baseline: float = 0.0
    shape: str = "box"
    arms: tuple = ARMS
    sweep: int = 7
    tc_logsnr: Optional[float] = None
    interval: Optional[tuple] = None
    indicator: str = "x0-rate"
    threshold: Optional[float] = None
    calib_n: int = 16
    n_boot: int = 2000
    n_boot_set: int = 200
    dtype: str = "float32"

    def validate(self) -> "GuideConfig":
        for k in ("steps", "n", "batch", "sweep", "calib_n"):
            check_int(k, getattr(self, k), 1)
        check_int("seed", self.seed, 0)
        check_int("n_boot", self.n_boot, 10)
        check_int("n_boot_set", self.n_boot_set, 10)
        check_positive("height", self.height, allow_zero=True)
        check_positive("width", self.width)
        if float(self.baseline) not in (0.0, 1.0):
            raise ValueError(f"baseline: expected 0 (unconditional) or 1 (conditional), got {self.baseline}")
        check_choice("shape", self.shape, GS.SHAPES)
        check_choice("spacing", self.spacing, S.SPACINGS)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("indicator", self.indicator, GS.INDICATORS)
        arms = tuple(self.arms)
        if not arms:
            raise ValueError("arms: expected at least one arm")
        for a in arms:
            check_choice("arms", a, ARMS)
        if len(set(arms)) != len(arms):
            raise ValueError(f"arms: each arm may be given once, got {','.join(arms)}")
        for k, v in (("tc-logsnr", self.tc_logsnr), ("threshold", self.threshold)):
            if v is not None:
                check_finite(k, v)
        if self.interval is not None and (len(self.interval) != 2 or not self.interval[0] < self.interval[1]):
            raise ValueError(f"interval: expected (lo, hi) in logsnr with lo < hi, got {self.interval}")
        S.get(self.schedule)
        SM.get(self.sampler)
        return self


def parse_arms(text: str) -> tuple:
    """``'tc,random,constant'`` -> a tuple of arm names (``'all'``: every arm)."""
    if text.strip() == "all":
        return ARMS
    arms = tuple(a.strip() for a in text.split(",") if a.strip())
    for a in arms:
        check_choice("arms", a, ARMS)
    return arms


# --- the critical time -----------------------------------------------------------------------
def resolve_tc(cfg: GuideConfig, images: Optional[torch.Tensor], model=None) -> dict:
    """The critical logsnr: given, else the patch-model theory (DESIGN.md section 3), else the stiffness probe.

    Returns ``{'logsnr', 't', 'sigma_over_a', 'source', ...}``; raises a one-line ValueError when no
    estimate is available (then pass ``--tc-logsnr``).
    """
    sch = S.get(cfg.schedule)

    def times(lam: float, source: str, **extra) -> dict:
        t = float(sch.t_of_logsnr(lam))
        return {"logsnr": float(lam), "t": t, "sigma_over_a": math.exp(-0.5 * lam), "source": source, **extra}

    if cfg.tc_logsnr is not None:
        return times(float(cfg.tc_logsnr), "given")
    kind = cfg.model.split(":", 1)[0]
    if kind == "patch" and images is not None:
        try:
            from ..theory.critical import critical_point
            from ..theory.pool import patch_pool
        except ImportError:  # pragma: no cover - theory not installed
            critical_point = None
        if critical_point is not None:
            cp = critical_point(patch_pool(images.to(torch.float64), cfg.stencil), sch, growth=False)
            if not cp.found:
                raise ValueError(f"tc-logsnr: the theory finds no critical point ({cp.message}); pass --tc-logsnr")
            note = "" if (cfg.equivariant and cfg.boundary == "periodic") else \
                " (theory of the equivariant periodic model, used as an approximation)"
            return times(cp.logsnr_c, "theory" + note, k_star=cp.k_star)
    probe = _probe_tc(cfg, model, images)
    if probe is not None:
        return probe
    raise ValueError("tc-logsnr: no critical-time estimate is available for this model; pass --tc-logsnr")


def _probe_tc(cfg, model, images, n: int = 4) -> Optional[dict]:
    """The probes' estimate of the critical point (DESIGN.md section 4): the growth onset of small fluctuations
    about the unconditional model's symmetric branch (:func:`critdiff.probes.linear_response`, forward
    evaluations only), with its interval. On the trained digits net this sits where the class is decided
    (logsnr about -1), whereas the stiffness along the sampler's own trajectories only turns at logsnr about 7."""
    if model is None or images is None:
        return None
    try:
        from ..probes import from_growth, linear_response
    except ImportError:  # pragma: no cover - probes not installed
        return None
    lr = linear_response(model, tuple(images.shape[1:]), cfg.schedule, steps=24, n=n, seed=cfg.seed + 3,
                         dtype=images.dtype, keep_states=False)
    est = from_growth(lr, n_boot=200, seed=cfg.seed)
    lam = float(est.logsnr)
    lo, hi = float(lr.logsnr.min()), float(lr.logsnr.max())
    if est.method != "zero-crossing" and min(abs(lam - lo), abs(lam - hi)) < 1e-9 * max(1.0, hi - lo):
        # the branch neither turned unstable nor had an interior softest point: no critical time to pulse at
        raise ValueError(f"tc-logsnr: the linear-response probe found no critical time inside the grid (estimate at "
                         f"its end, logsnr {lam:.3g}); give --tc-logsnr (e.g. from `critdiff probe`)")
    sch = S.get(cfg.schedule)
    return {"logsnr": lam, "t": float(sch.t_of_logsnr(lam)), "sigma_over_a": math.exp(-0.5 * lam),
            "source": f"probe (branch growth, {est.method})", "logsnr_ci": [float(v) for v in est.logsnr_ci]}


# --- arms ------------------------------------------------------------------------------------
@dataclass
class Arm:
    """One arm: ``make(index [B]) -> (schedule, callbacks)``; ``centre`` for fixed pulses (logsnr)."""

    name: str
    describe: str
    make: Callable[[torch.Tensor], tuple]
    centre: Optional[float] = None
    meta: dict = field(default_factory=dict)


def grid_range(sigmas: torch.Tensor) -> tuple[float, float]:
    lam = GS.grid_logsnr(sigmas)
    return float(lam.min()), float(lam.max())


def sweep_centres(cfg: GuideConfig, sigmas) -> list[float]:
    lo, hi = grid_range(sigmas)
    a, b = lo + 0.5 * cfg.width, hi - 0.5 * cfg.width
    if b <= a:
        raise ValueError(f"width: a pulse of width {cfg.width} does not fit in the grid's logsnr range [{lo:.3g}, {hi:.3g}]")
    return np.linspace(a, b, cfg.sweep).tolist() if cfg.sweep > 1 else [0.5 * (a + b)]


def adaptive_lead(cfg: GuideConfig, sigmas, tc: float) -> tuple[float, float]:
    """``(target firing logsnr, lead)``: the median sample fires one grid step before the fixed pulse
    at ``tc`` would start, and its pulse is then centred on ``tc``."""
    lam = GS.grid_logsnr(sigmas).numpy()
    start = tc - 0.5 * cfg.width
    inside = np.flatnonzero(lam >= start - GS.EDGE_TOL)
    j = int(inside[0]) if inside.size else len(lam) - 1
    target = float(lam[j - 1]) if j > 0 else float(lam[0])
    return target, tc - target


def build_arms(cfg: GuideConfig, sigmas, tc: float, threshold: Optional[float]) -> list[Arm]:
    """The arms named in ``cfg.arms``, in that order (``sweep`` expands to one arm per centre)."""
    h, W, b = float(cfg.height), float(cfg.width), float(cfg.baseline)
    lo, hi = grid_range(sigmas)
    pulse = lambda c: GS.Pulse(c, W, h, b, cfg.shape)  # noqa: E731
    arms: list[Arm] = []
    for name in cfg.arms:
        if name == "none":
            arms.append(Arm("none", f"w = {b:g}", lambda idx: (GS.Constant(b), [])))
        elif name == "cond":
            arms.append(Arm("cond", "w = 1", lambda idx: (GS.Constant(1.0), [])))
        elif name == "constant":
            arms.append(Arm("constant", f"w = {h:g}", lambda idx: (GS.Constant(h), [])))
        elif name == "interval":
            iv = GS.Interval(*cfg.interval, h, b) if cfg.interval is not None else GS.edm_interval(h, b)
            arms.append(Arm("interval", f"w = {h:g} on logsnr [{iv.lo:.2f}, {iv.hi:.2f}]",
                            lambda idx, iv=iv: (iv, []), meta=iv.to_dict()))
        elif name == "tc":
            arms.append(Arm("tc", f"{cfg.shape} pulse at t_c (logsnr {tc:.2f})", lambda idx: (pulse(tc), []), centre=tc))
        elif name == "random":
            centres = GS.random_centres(cfg.n, lo + 0.5 * W, hi - 0.5 * W, seed=cfg.seed + 2)
            arms.append(Arm("random", "same pulse, random centre per sample",
                            lambda idx, c=centres: (pulse(c[idx]), []), meta={"centres": centres.tolist()}))
        elif name == "adaptive":
            target, lead = adaptive_lead(cfg, sigmas, tc)

            def make(idx, lead=lead):
                ad = GS.AdaptivePulse(pulse(0.0), threshold, cfg.indicator, lead=lead)
                return ad, [ad]

            arms.append(Arm("adaptive", f"same pulse fired by {cfg.indicator} >= {threshold:.4g}", make,
                            meta={"threshold": threshold, "lead": lead, "target_fire_logsnr": target}))
        elif name == "sweep":
            for c in sweep_centres(cfg, sigmas):
                arms.append(Arm(f"sweep@{c:+.2f}", f"pulse at logsnr {c:.2f}", lambda idx, c=c: (pulse(c), []), centre=c))
    return arms


# --- running ---------------------------------------------------------------------------------
@dataclass
class Setup:
    cfg: GuideConfig
    model: Any
    classifier: Any
    images: torch.Tensor
    labels: torch.Tensor
    n_classes: int
    sigmas: torch.Tensor
    shape: tuple


def intended_labels(n: int, n_classes: int, offset: int = 0) -> torch.Tensor:
    return (torch.arange(offset, offset + n) % n_classes).long()


def run_arm(setup: Setup, schedule, callbacks, index: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``index`` under ``schedule``; returns ``(x [B,C,H,W], nfe [B])``. Noise is common to arms."""
    cfg = setup.cfg
    n_all = int(index.max()) + 1
    gens0, gens1 = SM.seed_generators(cfg.seed, n_all), SM.seed_generators(cfg.seed + 1, n_all)
    pick = index.tolist()
    x = SM.initial_noise((len(pick), *setup.shape), setup.sigmas, [gens0[j] for j in pick], dtype=DTYPES[cfg.dtype])
    g = Guided(setup.model, schedule)
    with torch.no_grad():
        out = SM.get(cfg.sampler)(g, x, setup.sigmas, label=labels, generator=[gens1[j] for j in pick],
                                  callback=list(callbacks) or None)
    return out, g.nfe.clone()


def calibrate_threshold(setup: Setup, tc: float) -> dict:
    """Threshold of the adaptive pulse: the median, over ``calib_n`` pilot samples (indices after the
    experiment's, run with ``w = baseline``), of the indicator at the target firing step."""
    cfg = setup.cfg
    target, lead = adaptive_lead(cfg, setup.sigmas, tc)
    index = torch.arange(cfg.n, cfg.n + cfg.calib_n)
    labels = intended_labels(cfg.calib_n, setup.n_classes, cfg.n)
    probe = GS.AdaptivePulse(GS.Pulse(0.0, cfg.width, cfg.height, cfg.baseline, cfg.shape), math.inf, cfg.indicator)
    run_arm(setup, GS.Constant(float(cfg.baseline)), [probe], index, labels)
    lam = np.array(probe.logsnrs)
    k = int(np.argmin(np.abs(lam - target)))
    finite = [j for j, h in enumerate(probe.history) if bool(torch.isfinite(h).any())]
    if not finite:
        raise ValueError(f"threshold: the indicator {cfg.indicator!r} was never finite on the pilot samples")
    k = min(finite, key=lambda j: abs(j - k))  # the first steps have no rate yet: nearest step with values
    values = probe.history[k].numpy()
    thr = float(np.nanmedian(values))
    return {"type": "calibration", "threshold": thr, "target_fire_logsnr": target, "step": k, "lead": lead,
            "indicator": cfg.indicator, "n": cfg.calib_n,
            "median_indicator": [float(np.nanmedian(h.numpy())) if not bool(torch.isnan(h).all()) else None
                                 for h in probe.history], "logsnr": lam.tolist()}


def load_classifier(path: str):
    """Load the project's evaluation classifier from a folder (``critdiff.nets.classifier``)."""
    try:
        from ..nets import classifier as C
    except ImportError:
        raise ValueError("classifier: critdiff.nets.classifier is not available in this version") from None
    fn = getattr(C, "load_classifier", None) or getattr(C, "load", None)
    if fn is None:
        raise ValueError("classifier: critdiff.nets.classifier has no load function")
    return fn(path)


def prepare(cfg: GuideConfig, classifier=None, model=None) -> Setup:
    """Load data, build the model and the sigma grid."""
    from ..data import load as load_data
    from .models import ModelOptions, build_model

    cfg.validate()
    images, labels = load_data(cfg.data)
    if labels is None:
        raise ValueError(f"data: {cfg.data!r} has no class labels; guidance needs a labelled data set")
    images = images.to(DTYPES[cfg.dtype])
    if model is None:
        opts = ModelOptions(stencil=cfg.stencil, equivariant=cfg.equivariant, boundary=cfg.boundary, pool=cfg.pool)
        model = build_model(cfg.model, images, labels, opts)
    if classifier is not None:
        check_classifier(classifier)
    sigmas = S.sigma_grid(cfg.schedule, cfg.steps, cfg.spacing)
    shape = tuple(images.shape[1:])
    return Setup(cfg, model, classifier, images, labels, int(labels.max()) + 1, sigmas, shape)


def run_guide(cfg: GuideConfig, out_dir: "str | Path", classifier=None, model=None, log=print,
              stop_after: Optional[int] = None) -> dict:
    """Run (or resume) the experiment; returns the summary (also written to ``OUT/summary.json``).

    ``classifier``: any object with ``logits(x)`` and ``embed(x)``; ``model``: a denoiser overriding
    ``cfg.model`` (tests). ``stop_after``: stop after that many new trials (simulates an interruption).
    """
    setup = prepare(cfg, classifier, model)
    out = Path(out_dir)
    trial_log = TrialLog(out / "trials.jsonl", asdict(cfg))
    tc_rec = trial_log.find("tc")
    if tc_rec is None:
        tc_rec = trial_log.append({"type": "tc", **resolve_tc(cfg, setup.images, setup.model)})
    tc = float(tc_rec["logsnr"])
    threshold = cfg.threshold
    if "adaptive" in cfg.arms and threshold is None:
        cal = trial_log.find("calibration")
        if cal is None:
            log("[guide] calibrating the adaptive threshold")
            cal = trial_log.append(calibrate_threshold(setup, tc))
        threshold = float(cal["threshold"])
    arms = build_arms(cfg, setup.sigmas, tc, threshold)
    new = 0
    for b0 in range(0, cfg.n, cfg.batch):
        index = torch.arange(b0, min(cfg.n, b0 + cfg.batch))
        labels = intended_labels(len(index), setup.n_classes, b0)
        for arm in arms:
            if trial_log.find("trial", arm=arm.name, start=b0) is not None:
                continue
            if stop_after is not None and new >= stop_after:
                log(f"[guide] stopped after {new} new trials")
                return {"stopped": True}
            t0 = time.perf_counter()
            schedule, callbacks = arm.make(index)
            x, nfe = run_arm(setup, schedule, callbacks, index, labels)
            rec = {"type": "trial", "arm": arm.name, "start": b0, "index": index.tolist(), "label": labels.tolist(),
                   "nfe": nfe.tolist(), "x": x.to(torch.float32).tolist(), "seconds": time.perf_counter() - t0}
            if isinstance(schedule, GS.AdaptivePulse):
                rec["fired_logsnr"] = schedule.fired.tolist() if schedule.fired is not None else None
            trial_log.append(rec)
            new += 1
            msg = ""
            if setup.classifier is not None:
                m = classify(setup.classifier, x, labels)
                msg = f"acc {float(m['correct'].float().mean()):.3f} logp {float(m['logp'].mean()):+.3f} "
            log(f"[guide] {arm.name:>14s} samples {b0}-{int(index[-1])}: {msg}nfe {float(nfe.double().mean()):.1f} "
                f"({rec['seconds']:.1f} s)")
    if setup.classifier is None:
        log(f"[guide] all trials are in {trial_log.path}; rerun with a classifier for the metrics")
        return {"stopped": False, "summary": None}
    summary = summarise(setup, trial_log, arms, tc_rec)
    save_json(out / "summary.json", summary)
    return summary


def summarise_log(out_dir: "str | Path", classifier, model=None) -> dict:
    """The summary of a finished run folder (its ``trials.jsonl``), with the given classifier."""
    import json

    out = Path(out_dir)
    path = out / "trials.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"out: no trials.jsonl in {out}")
    with open(path, encoding="utf-8") as fh:
        head = json.loads(fh.readline())
    cfg = GuideConfig(**{k: tuple(v) if k in ("arms", "interval") and v is not None else v
                         for k, v in head["config"].items()})
    return run_guide(cfg, out, classifier=classifier, model=model)


# --- summary ---------------------------------------------------------------------------------
def collect(trial_log: TrialLog, arm: str, n: int, classifier) -> dict[str, np.ndarray]:
    """Per-sample arrays of one arm, ordered by sample index (every sample must be present); the stored
    samples are classified here, so the metrics depend only on the log and the classifier."""
    recs = sorted((r for r in trial_log.of_type("trial") if r["arm"] == arm), key=lambda r: r["start"])
    if not recs:
        raise ValueError(f"trials: arm {arm!r} has no trials in {trial_log.path}")
    cat = lambda k: np.concatenate([np.asarray(r[k]) for r in recs])  # noqa: E731
    d = {k: cat(k) for k in ("index", "label", "nfe")}
    x = torch.cat([torch.tensor(r["x"], dtype=torch.float32) for r in recs])
    m = classify(classifier, x, torch.as_tensor(d["label"], dtype=torch.long))
    d["correct"], d["logp"], d["embed"] = m["correct"].numpy(), m["logp"].numpy(), m["embed"].numpy()
    if recs and "fired_logsnr" in recs[0]:
        d["fired"] = np.concatenate([np.asarray([np.nan if v is None else v for v in r["fired_logsnr"]]) for r in recs])
    if d["index"].size != n or not np.array_equal(d["index"], np.arange(n)):
        raise ValueError(f"trials: arm {arm!r} is incomplete ({d['index'].size} of {n} samples)")
    d["correct"] = d["correct"].astype(np.float64)
    return d


def _fd_per_class(embed, label, refs, idx=None) -> float:
    idx = np.arange(label.size) if idx is None else idx
    vals = [frechet_distance(embed[idx][label[idx] == c], refs[c]) for c in sorted(refs)
            if (label[idx] == c).sum() > 1]
    return float(np.mean(vals)) if vals else float("nan")


def _div_per_class(embed, label, idx=None) -> float:
    idx = np.arange(label.size) if idx is None else idx
    vals = [diversity(embed[idx][label[idx] == c]) for c in np.unique(label)]
    return float(np.nanmean(vals))


def summarise(setup: Setup, trial_log: TrialLog, arms: list[Arm], tc_rec: dict) -> dict:
    """The arms table, the sweep curve and the key comparisons, from the trial log only."""
    cfg = setup.cfg
    with torch.no_grad():
        ref = classify(setup.classifier, setup.images, setup.labels)
    ref_embed = ref["embed"].numpy()
    refs = {c: ref_embed[setup.labels.numpy() == c] for c in range(setup.n_classes)}
    data = {a.name: collect(trial_log, a.name, cfg.n, setup.classifier) for a in arms}
    label = next(iter(data.values()))["label"]
    rows, per_arm = [], {}
    for k, a in enumerate(arms):
        d = data[a.name]
        fd_c = {int(c): frechet_distance(d["embed"][label == c], refs[c]) for c in range(setup.n_classes)
                if (label == c).sum() > 1}
        acc = mean_interval(d["correct"], cfg.n_boot, seed=k)
        lp = mean_interval(d["logp"], cfg.n_boot, seed=k)
        per_arm[a.name] = {
            "describe": a.describe, "centre_logsnr": a.centre, "meta": a.meta,
            "accuracy": acc, "logp": lp, "nfe": float(d["nfe"].mean()),
            "fd_per_class": fd_c, "fd": float(np.mean(list(fd_c.values()))) if fd_c else None,
            "diversity": _div_per_class(d["embed"], label),
        }
        if "fired" in d:
            fired = d["fired"]
            per_arm[a.name]["fired_fraction"] = float(np.isfinite(fired).mean())
            per_arm[a.name]["fired_logsnr_quartiles"] = (np.nanquantile(fired, [0.25, 0.5, 0.75]).tolist()
                                                         if np.isfinite(fired).any() else None)
    comparisons = {}

    def compare(a: str, b: str, seed: int) -> dict:
        da, db = data[a], data[b]
        res = {
            "accuracy": paired_mean_diff(da["correct"], db["correct"], cfg.n_boot, seed),
            "logp": paired_mean_diff(da["logp"], db["logp"], cfg.n_boot, seed + 1),
            "nfe": paired_mean_diff(da["nfe"], db["nfe"], cfg.n_boot, seed + 2),
            "fd": paired_stat_diff(lambda i: _fd_per_class(da["embed"], label, refs, i)
                                   - _fd_per_class(db["embed"], label, refs, i), label, cfg.n_boot_set, seed + 3),
            "diversity": paired_stat_diff(lambda i: _div_per_class(da["embed"], label, i)
                                          - _div_per_class(db["embed"], label, i), label, cfg.n_boot_set, seed + 4),
        }
        res["nfe_ratio"] = float(da["nfe"].mean() / db["nfe"].mean())
        return res

    if "random" in data:
        for k, a in enumerate(arms):
            if a.name != "random":
                per_arm[a.name]["vs_random"] = compare(a.name, "random", 1000 + 10 * k)
    for a, b in (("tc", "random"), ("tc", "constant"), ("adaptive", "tc"), ("tc", "none"), ("adaptive", "random")):
        if a in data and b in data:
            comparisons[f"{a}-{b}"] = per_arm[a].get("vs_random") if b == "random" else compare(a, b, 5000 + len(comparisons))
    for a in arms:
        r = per_arm[a.name]
        row = {"arm": a.name, "schedule": a.describe, "accuracy": r["accuracy"]["diff"], "logp": r["logp"]["diff"],
               "FD": r["fd"], "diversity": r["diversity"], "NFE": r["nfe"]}
        vr = r.get("vs_random")
        if vr:
            row["d_acc vs random [95% CI]"] = _ci(vr["accuracy"])
            row["d_logp vs random [95% CI]"] = _ci(vr["logp"])
            row["d_FD vs random [95% CI]"] = _ci(vr["fd"])
            row["d_div vs random [95% CI]"] = _ci(vr["diversity"])
        rows.append(row)
    sweep = [{"centre_logsnr": a.centre, "accuracy": per_arm[a.name]["accuracy"], "logp": per_arm[a.name]["logp"],
              "nfe": per_arm[a.name]["nfe"]} for a in arms if a.name.startswith("sweep@")]
    peak = None
    if sweep:
        best = max(sweep, key=lambda s: s["logp"]["diff"])
        best_acc = max(sweep, key=lambda s: s["accuracy"]["diff"])
        peak = {"logp_peak_logsnr": best["centre_logsnr"], "accuracy_peak_logsnr": best_acc["centre_logsnr"],
                "logp_peak_minus_tc": best["centre_logsnr"] - tc_rec["logsnr"],
                "accuracy_peak_minus_tc": best_acc["centre_logsnr"] - tc_rec["logsnr"]}
    lo, hi = grid_range(setup.sigmas)
    return {"config": asdict(cfg), "tc": tc_rec, "grid_logsnr_range": [lo, hi], "n_classes": setup.n_classes,
            "classifier_train_accuracy": float(ref["correct"].double().mean()),
            "calibration": trial_log.find("calibration"), "arms": per_arm, "table": rows, "sweep": sweep,
            "sweep_peak": peak, "comparisons": comparisons, "log": str(trial_log.path)}


def _ci(r: dict) -> str:
    return f"{r['diff']:+.3g} [{r['lo']:+.3g}, {r['hi']:+.3g}]"


# --- report ----------------------------------------------------------------------------------
def sweep_figure(summary: dict, path) -> Optional[Path]:
    """Class alignment against the pulse centre (logsnr), with t_c and the reference arms marked."""
    if not summary.get("sweep"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..report.figures import save_figure as _save

    sw = summary["sweep"]
    c = np.array([s["centre_logsnr"] for s in sw])
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
    for ax, key, name in ((axes[0], "accuracy", "accuracy of intended class"), (axes[1], "logp", "mean log p(intended class)")):
        m = np.array([s[key]["diff"] for s in sw])
        lo = np.array([s[key]["lo"] for s in sw])
        hi = np.array([s[key]["hi"] for s in sw])
        ax.errorbar(c, m, yerr=[m - lo, hi - m], marker="o", capsize=3, label="pulse at centre")
        ax.axvline(summary["tc"]["logsnr"], color="C3", ls="--", label=f"t_c ({summary['tc']['source'].split(' ')[0]})")
        if "tc" in summary["arms"]:
            r = summary["arms"]["tc"][key]
            ax.errorbar([summary["tc"]["logsnr"]], [r["diff"]], yerr=[[r["diff"] - r["lo"]], [r["hi"] - r["diff"]]],
                        marker="*", ms=11, color="C3", capsize=3, ls="none", label="pulse at t_c")
        for arm, col in (("random", "C2"), ("constant", "C4"), ("none", "0.5"), ("adaptive", "C1")):
            if arm in summary["arms"]:
                ax.axhline(summary["arms"][arm][key]["diff"], color=col, ls=":", label=arm)
        ax.set_xlabel("pulse centre (logsnr)")
        ax.set_ylabel(name)
    axes[0].legend(fontsize=7)
    cfg = summary["config"]
    fig.suptitle(f"guidance pulse sweep: {cfg['model']} on {cfg['data']} (height {cfg['height']:g}, width {cfg['width']:g}, "
                 f"baseline {cfg['baseline']:g})", fontsize=9)
    return _save(fig, path)


def guide_section(summary: dict, folder: "str | Path", key: str = "guidance", title: str = "Guidance pulses at the critical time"):
    """A report :class:`~critdiff.report.html.Section`: the arms table and the sweep curve (``sweep.png`` in ``folder``)."""
    from ..report.html import Section, table

    fig = sweep_figure(summary, Path(folder) / "sweep.png")
    cfg, tc = summary["config"], summary["tc"]
    cmp = summary["comparisons"]
    lines = []
    if "tc-random" in cmp:
        r = cmp["tc-random"]
        lines.append(f"pulse at t_c minus pulse at random centres: accuracy {_ci(r['accuracy'])}, "
                     f"log p {_ci(r['logp'])} (paired bootstrap 95%)")
    if "tc-constant" in cmp:
        r = cmp["tc-constant"]
        lines.append(f"pulse at t_c minus constant guidance: accuracy {_ci(r['accuracy'])}, log p {_ci(r['logp'])}, "
                     f"NFE ratio {r['nfe_ratio']:.3f}")
    if "adaptive-tc" in cmp:
        r = cmp["adaptive-tc"]
        lines.append(f"adaptive pulse minus pulse at t_c: accuracy {_ci(r['accuracy'])}, log p {_ci(r['logp'])}, "
                     f"NFE ratio {r['nfe_ratio']:.3f}")
    if summary.get("sweep_peak"):
        p = summary["sweep_peak"]
        lines.append(f"sweep peak (log p) at logsnr {p['logp_peak_logsnr']:.2f}, {p['logp_peak_minus_tc']:+.2f} from t_c; "
                     f"(accuracy) at {p['accuracy_peak_logsnr']:.2f}")
    blurb = (f"<p>{cfg['model']} on <code>{cfg['data']}</code>, {cfg['n']} samples per arm (intended classes balanced), "
             f"{cfg['sampler']} with {cfg['steps']} steps uniform in {cfg['spacing']} on {cfg['schedule']}. Every arm starts "
             f"from the same noise and receives the same sampler noise. Pulses: {cfg['shape']}, height {cfg['height']:g}, "
             f"width {cfg['width']:g} logsnr, baseline w = {cfg['baseline']:g}. Critical logsnr {tc['logsnr']:.3f} "
             f"(t = {tc['t']:.4f}, sigma/a = {tc['sigma_over_a']:.4g}; source: {tc['source']}). Classifier accuracy on the "
             f"training images: {summary['classifier_train_accuracy']:.3f}.</p>")
    html = blurb + "<ul>" + "".join(f"<li>{line}</li>" for line in lines) + "</ul>" + table(summary["table"])
    if fig is not None:
        html += '<p><img src="sweep.png"></p>'
    from ..report.html import Section as _S  # noqa: F401

    return Section(key, title, html, {k: summary[k] for k in ("tc", "table", "sweep", "sweep_peak", "comparisons")})


def with_arms(cfg: GuideConfig, arms) -> GuideConfig:
    return replace(cfg, arms=tuple(arms))


def demo_config(quick: bool = False) -> GuideConfig:
    """The guidance section of ``critdiff demo``: the conditional patch model on textures (CPU-sized)."""
    if quick:
        return GuideConfig(data="textures:size=12,n=6", stencil="square:3", n=12, batch=12, steps=10, sweep=3,
                           calib_n=6, n_boot=500, n_boot_set=50)
    return GuideConfig(data="textures:size=16,n=10", stencil="square:5", n=90, batch=30, steps=16, sweep=6, calib_n=18)


def demo_section(folder: "str | Path", classifier, quick: bool = False, log=print):
    """Run (or resume) the demo's guidance experiment in ``folder`` and return its report Section."""
    summary = run_guide(demo_config(quick), folder, classifier=classifier, log=log)
    return guide_section(summary, folder)
