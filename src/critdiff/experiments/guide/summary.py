"""The summary of the guidance experiment, computed from the trial log only (DESIGN.md section 5).

Per arm: accuracy and mean log-probability of the intended class with bootstrap intervals, Frechet distance,
precision and recall (k = 3 manifolds, Kynkaanniemi et al. 2019) and diversity per class (each averaged over the
classes: samples of intended class ``c`` against the reference images of class ``c``), NFE; paired bootstrap 95% intervals for every difference from the ``random`` arm and
for the key comparisons; the sweep curve and its peaks. Bootstrap seeds (:func:`critdiff.seeding.derive`):
``derive(seed, 'accuracy' | 'logp', arm)`` per arm, ``derive(seed, 'compare', a, b, metric)`` per pair and metric. The stored samples are classified here,
so a resumed run gives exactly the table of an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...probes.bootstrap import mean_interval, paired_mean_diff, paired_stat_diff, peak_interval
from ...seeding import derive
from .arms import Arm, Setup, grid_range
from .metrics import centred_rows, classify, diversity, frechet_of_rows, knn_radii, per_class_diversity, precision_recall
from .store import TrialLog
from ...times import TimeEstimate

COMPARISONS = (("tc", "random"), ("tc", "constant"), ("adaptive", "tc"), ("tc", "none"), ("adaptive", "random"),
               ("tc", "interval"), ("tc", "interval-ours"), ("tc", "linear"), ("window", "interval"),
               ("window", "constant"), ("window", "tc"))
COST_PAIRS = (("tc", "interval"), ("tc", "interval-ours"), ("tc", "linear"), ("tc", "constant"), ("window", "interval"),
              ("window", "constant"))
EQUAL_NFE_TOL = 0.05  # two arms count as "equal NFE" when their mean NFE differ by at most 5%


def equal_nfe_rows(comparisons: dict) -> list[dict]:
    """The cost comparisons (pulse at t_c against the interval, interval-ours, linear and constant arms): mean
    NFE of both arms, their ratio, whether they are equal within :data:`EQUAL_NFE_TOL`, and the paired
    differences in accuracy and log p with their intervals ``{diff, lo, hi, ...}`` (docs/guidance.md section 4;
    :func:`critdiff.report.guide.equal_nfe_table` formats them)."""
    rows = []
    for a, b in COST_PAIRS:
        r = comparisons.get(f"{a}-{b}")
        if r is not None:
            rows.append({"comparison": f"{a} - {b}", "nfe_ratio": r["nfe_ratio"],
                         "equal_nfe": abs(r["nfe_ratio"] - 1.0) <= EQUAL_NFE_TOL,
                         "d_acc": r["accuracy"], "d_logp": r["logp"]})
    return rows


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


def unclassified(trial_log: TrialLog, arms: list[Arm], n: int, n_boot: int, seed: int) -> dict[str, dict]:
    """What a run without a classifier measures, per arm: NFE per sample (mean) and the diversity of its samples
    (mean pairwise Euclidean distance of the decoded samples in pixel space, :func:`.metrics.diversity`, per
    intended class then averaged) with a bootstrap interval over the sample-level NFE; ``n`` samples."""
    out = {}
    for a in arms:
        recs = sorted((r for r in trial_log.of_type("trial") if r["arm"] == a.name), key=lambda r: r["start"])
        label = np.concatenate([np.asarray(r["label"]) for r in recs])
        nfe = np.concatenate([np.asarray(r["nfe"], dtype=np.float64) for r in recs])
        x = np.concatenate([np.asarray(r["x"], dtype=np.float64).reshape(len(r["label"]), -1) for r in recs])
        div = [diversity(x[label == c]) for c in np.unique(label) if (label == c).sum() > 1]
        out[a.name] = {"n": int(label.size), "nfe": mean_interval(nfe, n_boot, derive(seed, "nfe", a.name)),
                       "pixel_diversity": float(np.mean(div)) if div else float("nan")}
    return out


def _fd_per_class(embed, label, ref_rows, idx=None) -> float:
    """Mean over the classes of the FD of the samples ``idx`` of class ``c`` to the references of ``c``, given as
    their :func:`~.metrics.centred_rows` (computed once per run: the bootstrap calls this thousands of times)."""
    idx = np.arange(label.size) if idx is None else idx
    vals = [frechet_of_rows(centred_rows(embed[idx][label[idx] == c]), ref_rows[c]) for c in sorted(ref_rows)
            if (label[idx] == c).sum() > 1]
    return float(np.mean(vals)) if vals else float("nan")


def _div_per_class(embed, label, idx=None) -> float:
    idx = np.arange(label.size) if idx is None else idx
    return float(np.nanmean(list(per_class_diversity(embed[idx], label[idx]).values())))


def _pr_per_class(embed, label, refs, radii, idx=None) -> np.ndarray:
    """``[precision, recall]`` averaged over the classes (samples of class ``c`` against the references of ``c``)."""
    idx = np.arange(label.size) if idx is None else idx
    vals = [precision_recall(refs[c], embed[idx][label[idx] == c], real_radii=radii[c]) for c in sorted(refs)
            if (label[idx] == c).any()]
    return np.nanmean(np.array(vals, dtype=np.float64), 0) if vals else np.full(2, np.nan)


def _arm_record(arm: Arm, d: dict, label: np.ndarray, refs: dict, radii: dict, n_boot: int, seed: int) -> dict:
    """One arm's metrics: accuracy and log p with bootstrap intervals, FD, precision, recall and diversity per
    class, NFE, firing."""
    ref_rows = {c: centred_rows(f) for c, f in refs.items()}
    fd_c = {int(c): frechet_of_rows(centred_rows(d["embed"][label == c]), ref_rows[c]) for c in sorted(refs)
            if (label == c).sum() > 1}
    prec, rec_ = _pr_per_class(d["embed"], label, refs, radii)
    rec = {
        "describe": arm.describe, "centre_logsnr": arm.centre, "meta": arm.meta,
        "accuracy": mean_interval(d["correct"], n_boot, seed=derive(seed, "accuracy", arm.name)),
        "logp": mean_interval(d["logp"], n_boot, seed=derive(seed, "logp", arm.name)),
        "nfe": float(d["nfe"].mean()), "fd_per_class": fd_c, "fd": float(np.mean(list(fd_c.values()))) if fd_c else None,
        "diversity": _div_per_class(d["embed"], label),
        "diversity_per_class": per_class_diversity(d["embed"], label), "precision": float(prec), "recall": float(rec_),
    }
    if "fired" in d:
        fired = d["fired"]
        rec["fired_fraction"] = float(np.isfinite(fired).mean())
        rec["fired_logsnr_quartiles"] = (np.nanquantile(fired, [0.25, 0.5, 0.75]).tolist()
                                         if np.isfinite(fired).any() else None)
    return rec


def compare(da: dict, db: dict, label: np.ndarray, refs: dict, radii: dict, n_boot: int, n_boot_set: int,
            seed: int) -> dict:
    """Paired differences ``a - b`` of two arms' per-sample records (seeds ``derive(seed, metric)``)."""
    ref_rows = {c: centred_rows(f) for c, f in refs.items()}
    res = {
        "accuracy": paired_mean_diff(da["correct"], db["correct"], n_boot, derive(seed, "accuracy")),
        "logp": paired_mean_diff(da["logp"], db["logp"], n_boot, derive(seed, "logp")),
        "nfe": paired_mean_diff(da["nfe"], db["nfe"], n_boot, derive(seed, "nfe")),
        "fd": paired_stat_diff(lambda i: _fd_per_class(da["embed"], label, ref_rows, i)
                               - _fd_per_class(db["embed"], label, ref_rows, i), label, n_boot_set, derive(seed, "fd")),
        "diversity": paired_stat_diff(lambda i: _div_per_class(da["embed"], label, i)
                                      - _div_per_class(db["embed"], label, i), label, n_boot_set,
                                      derive(seed, "diversity")),
    }
    for m, name in enumerate(("precision", "recall")):
        res[name] = paired_stat_diff(lambda i: _pr_per_class(da["embed"], label, refs, radii, i)[m]
                                     - _pr_per_class(db["embed"], label, refs, radii, i)[m], label, n_boot_set,
                                     derive(seed, name))
    res["nfe_ratio"] = float(da["nfe"].mean() / db["nfe"].mean())
    return res


def _table(arms: list[Arm], per_arm: dict) -> list[dict]:
    """The arms table of ``summary.json``: one row of numbers per arm (the paired differences from the random
    arm, with their intervals, are in ``arms[name]['vs_random']``; :func:`critdiff.report.guide.arms_rows`
    formats both)."""
    return [{"arm": a.name, "schedule": a.describe, "accuracy": per_arm[a.name]["accuracy"]["diff"],
             "logp": per_arm[a.name]["logp"]["diff"], "FD": per_arm[a.name]["fd"],
             "precision": per_arm[a.name]["precision"], "recall": per_arm[a.name]["recall"],
             "diversity": per_arm[a.name]["diversity"], "NFE": per_arm[a.name]["nfe"]} for a in arms]


SWEEP_METRICS = ("accuracy", "logp", "nfe", "fd", "precision", "recall", "diversity")


def _sweep(arms: list[Arm], per_arm: dict, data: dict, tc: TimeEstimate, n_boot: int, seed: int, paired
           ) -> tuple[list[dict], Any]:
    """The sweep curve (one point per sweep centre, with the paired differences ``vs_best`` from the centre of the
    largest mean log p; ``paired(a, b)`` computes them) and where log p and accuracy peak: the best centre
    (``*_peak_logsnr``) and the parabolic peak of the curve with its paired bootstrap interval (``*_peak_fit``,
    ``*_peak_ci``; :func:`critdiff.probes.bootstrap.peak_interval`)."""
    sw = sorted((a for a in arms if a.name.startswith("sweep@")), key=lambda a: a.centre)
    sweep = [{"centre_logsnr": a.centre, **{k: per_arm[a.name][k] for k in SWEEP_METRICS}} for a in sw]
    if not sweep:
        return sweep, None
    best = sw[int(np.argmax([per_arm[a.name]["logp"]["diff"] for a in sw]))].name
    for row, a in zip(sweep, sw):  # paired differences from the best centre (log p), every metric
        row["vs_best"] = None if a.name == best else paired(a.name, best)
    peak: dict[str, Any] = {}
    for metric, key in (("logp", "logp"), ("accuracy", "correct")):
        p = peak_interval(np.array([a.centre for a in sw]), np.stack([data[a.name][key] for a in sw]), n_boot,
                          derive(seed, "sweep-peak", metric))
        peak.update({f"{metric}_peak_logsnr": p["argmax"], f"{metric}_peak_minus_tc": p["argmax"] - tc.logsnr,
                     f"{metric}_peak_fit": p["peak"], f"{metric}_peak_ci": (p["lo"], p["hi"])})
    return sweep, peak


def summarise(setup: Setup, trial_log: TrialLog, arms: list[Arm], tc: TimeEstimate) -> dict[str, Any]:
    """The fields of :class:`~critdiff.experiments.guide.GuideResult`: the arms, the table, the sweep and the
    key comparisons, from the trial log only."""
    cfg = setup.cfg
    with torch.no_grad():
        ref = classify(setup.classifier, setup.images, setup.labels)
    ref_embed = ref["embed"].numpy().astype(np.float64)  # once: the metrics compute in float64
    refs = {c: ref_embed[setup.labels.numpy() == c] for c in range(setup.n_classes)}
    radii = {c: knn_radii(f) for c, f in refs.items()}
    data = {a.name: collect(trial_log, a.name, cfg.n, setup.classifier) for a in arms}
    label = next(iter(data.values()))["label"]
    per_arm = {a.name: _arm_record(a, data[a.name], label, refs, radii, cfg.n_boot, cfg.seed) for a in arms}
    paired = lambda a, b: compare(data[a], data[b], label, refs, radii, cfg.n_boot, cfg.n_boot_set,  # noqa: E731
                                  derive(cfg.seed, "compare", a, b))  # one stream per pair of arms and metric
    if "random" in data:
        for a in arms:
            if a.name != "random":
                per_arm[a.name]["vs_random"] = paired(a.name, "random")
    comparisons: dict[str, Any] = {}
    for a, b in COMPARISONS:
        if a in data and b in data:
            comparisons[f"{a}-{b}"] = per_arm[a].get("vs_random") if b == "random" else paired(a, b)
    sweep, peak = _sweep(arms, per_arm, data, tc, cfg.n_boot, cfg.seed, paired)
    return {"tc": tc, "grid_logsnr_range": grid_range(setup.sigmas), "n_classes": setup.n_classes,
            "classifier_train_accuracy": float(ref["correct"].double().mean()),
            "calibration": trial_log.find("calibration"), "arms": per_arm, "table": _table(arms, per_arm),
            "sweep": sweep, "sweep_peak": peak, "comparisons": comparisons, "equal_nfe": equal_nfe_rows(comparisons),
            "log": str(trial_log.path)}

