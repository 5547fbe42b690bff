"""Benchmark: which critical-time estimator predicts where a guidance pulse works, and does the pulse at it beat
the same pulse at random times and the baselines a practitioner would choose (issue #14 points 3 and 4;
docs/guidance.md section 5).

Six models (:data:`MODELS`): the analytic conditional patch model on textures 16x16, digits 16x16 and an MNIST-28
subset, and trained conditional UNets on digits 16x16, MNIST 28x28 and textures 32x32 (``--runs DIR`` holds the
nets ``net_*`` and the evaluation classifiers ``clf_*``; the commands that make them are in docs/guidance.md
section 5). Every model is sampled with the same sampler and grid (DDPM, VP-linear, 20 steps,
uniform in logsnr) and pulse (box, height 3, width 3 in logsnr).

Phase ``sweep`` (per model): every estimator of :mod:`critdiff.experiments.guide.estimators` (estimate, 95%
interval, wall time, or the reason it has none) and a pulse-centre sweep (``--sweep`` centres, paired seeds) whose
log p and accuracy peaks are located with paired bootstrap intervals. Then each estimator's distance to the log p
peak, and two prediction errors over models: ``raw`` (mean |estimate - peak|, nothing fitted) and ``loo``
(leave-one-model-out: mean |estimate + median offset of the other models - peak|). The default estimator is the one
with the smallest ``raw`` error (it is what ``guide`` uses, with no offset); ``loo`` says whether a constant offset
would help.

Phase ``arms`` (per model): the pulse at the chosen estimator's t_c against the random-centre control and the
baselines (none, cond, constant, interval, interval-ours, linear) on common random numbers, and the pulse at t_c on
baseline 1 against the same pulse at random centres on baseline 1. ``--tc-from NAME`` forces the estimator.

Issue #23 additions. New estimators (``commitment-midpoint``, ``commitment-slope``, ``sensitivity``,
``sensitivity-box``; ``--estimators a,b`` computes only those, into the cached ``estimators.json``, with their wall
time and network evaluations) and the shifted ``linear-response+offset`` / ``speciation+offset``, which are NOT
computed by the estimator (that would fit a model's own peak): :func:`shifted_rows` places them with the offset
fitted on the other original models (leave-one-model-out) and, on a validation model, on all six.
``--export-offsets`` writes the table the shifted estimators read at run time
(:data:`critdiff.experiments.guide.offsets.OFFSETS_FILE`) from ``--out``'s original six rows.
:data:`VALIDATION` models choose nothing: they are reported with the rule's choice as it stands.
``--estimator-n N`` sets the size of the sampling estimators (commitment states, profile samples; recorded in each
estimate's ``cost`` with its CPU seconds and counted network evaluations) and ``--estimator-batch B`` the profile's
samples per backward pass, for a costly model; ``--table`` prints every estimator's distance to the sweep peak
(:func:`distance_table`) and its cost beside the sweep's (:func:`cost_table`).

:data:`RULE` (written before the 2026-12-05 run) chooses the default estimator. A stored net retrained as another
model (:data:`RECREATED`, :data:`REPLACES`: all three stored nets, ``net-digits16-r`` etc.) is its own row with its
own sweep, and takes the stored row's place among the six once that sweep exists (:func:`originals`;
docs/guidance.md 5.14, 5.15).

Runs resume (each guide run is a folder under ``--work``); the summary is written to ``--out`` atomically after
every model. ``--tiny`` runs a seconds-sized smoke test on a tiny patch model (it is NOT a result).
Usage: ``python benchmarks/guidance_estimators.py --runs RUNS [--phase sweep|arms|all] [--only a,b] [--n 200]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from critdiff import pretrained
from critdiff.experiments.context import Context
from critdiff.experiments.guide import GuideConfig, run_guide
from critdiff.experiments.guide.arms import prepare
from critdiff.experiments.guide.config import AUTO_TC_FROM, TC_SOURCES, parse_arms
from critdiff.experiments.guide.estimators import SIZED, cache_key, chosen_source, estimate
from critdiff.experiments.guide.tc import tc_record
from critdiff.experiments.guide.offsets import OFFSETS_FILE, SHIFTABLE, SUFFIX, base_of, fitted_offset, offset_table
from critdiff.io import save_json
from critdiff.nets.classifier import load_classifier, read_metrics
from critdiff.outdir import locked_output

# name -> (GuideConfig fields, classifier folder under --runs or pretrained:NAME, samples per arm or None for --n)
MODELS = {
    "patch-textures16": (dict(model="patch", data="textures:size=16,per_class=10", stencil="square:5"), "clf_tex16", None),
    "patch-digits16": (dict(model="patch", data="digits:size=16,n=200", stencil="square:5"), "clf_digits16", None),
    # the costliest model (28x28, 100-image pool: ~1 s per evaluation of 50 samples): fewer samples per arm
    "patch-mnist28": (dict(model="patch", data="mnist:n=100", stencil="square:5"), "clf_mnist28", 50),
    "net-digits16": (dict(model="net:{runs}/net_digits16", data="digits:size=16"), "clf_digits16", None),
    "net-mnist28": (dict(model="net:{runs}/net_mnist28", data="mnist"), "clf_mnist28", None),
    "net-textures32": (dict(model="net:{runs}/net_tex32", data="textures:size=32"), "clf_tex32", None),
}
TINY = {"tiny-patch-a": (dict(model="patch", data="textures:size=8,per_class=3", stencil="square:3"), None, None),
        "tiny-patch-b": (dict(model="patch", data="textures:size=8,per_class=4", stencil="square:3", seed=1), None, None)}
# validation models: same protocol, numbers used only to report the chosen estimator (never to choose or fit)
VALIDATION = {
    # the patch model of textures sampled by deterministic DDIM (eta 0) instead of DDPM: another sampler
    "patch-textures16-ddim": (dict(model="patch", data="textures:size=16,per_class=10", stencil="square:5",
                                   sampler="ddim"), "clf_tex16", None),
    # the reference network that ships with critdiff (docs/models.md: conditional MNIST-28 UNet, v-prediction, trained
    # on VP-cosine, sampled here by the protocol's DDPM on VP-linear) with its shipped evaluation classifier; nothing
    # to train, so it is the one trained net of the benchmark that any install can rerun
    # (step 4500, the weights its stored numbers were measured on; pretrained:mnist28 has since moved to a later step)
    "net-ref-mnist28": (dict(model="pretrained:mnist28-s4500", data="mnist"), "pretrained:mnist28-clf", None),
}


def _retrained(stored: str, command: str, lr: str, lr_stored: str, also: str = "") -> str:
    """The note of a re-created row: how its net was retrained and why it is not the stored one."""
    return (f"{stored} retrained 2026-12-05 with its recorded command ({command}): not the stored net (linear-response "
            f"{lr} against the stored {lr_stored}), so this row has its own sweep and estimators{also}")


# re-created nets (docs/guidance.md 5.14): a stored net's checkpoint is gone, so it was retrained with its recorded
# command; where the retrained net is NOT the stored model (its linear-response estimate differs beyond rounding),
# it is its own row with its own sweep and estimators, and it takes the stored row's place among the six that RULE
# uses once it has a sweep (:func:`originals`); the stored row stays in the result as history, never mixed with it.
# re-created row -> (the stored row it replaces among the six, its note)
REPLACES = {
    "net-digits16-r": ("net-digits16", _retrained(
        "net-digits16", "critdiff train --data digits:size=16 --steps 2000 --batch 64 --threads 1, seed 0",
        "-1.488", "-1.633")),
    "net-textures32-r": ("net-textures32", _retrained(
        "net-textures32", "critdiff train --data textures:size=32 --steps 2000 --batch 32 --threads 1, seed 0; "
        "stopped and resumed exactly at checkpoints", "-5.319", "-4.501")),
    "net-mnist28-r": ("net-mnist28", _retrained(
        "net-mnist28", "critdiff train --data mnist --batch 64 --threads 1, seed 0, to the stored run's step 1781; the "
        "learning rate does not depend on --steps", "-2.784", "-3.168",
        "; clf_mnist28 re-created (held-out 0.992 on 1000, the stored value)")),
}
STORED = {old: new for new, (old, _) in REPLACES.items()}  # stored row -> its re-created row
# a re-created row runs its stored row's spec: the same recorded command wrote the net into the same folder
RECREATED = {new: MODELS[old] for new, (old, _) in REPLACES.items()}
ARMS = ("none", "cond", "constant", "interval", "interval-ours", "linear", "tc", "random")
WINDOW_ARMS = ("window", "interval", "constant", "tc")  # --window-arms: the estimated window against the baselines
RULE = ("default estimator = the candidate with the smallest mean out-of-sample |estimate - log p peak| over the "
        "original six models (MODELS): the raw error of an estimator with nothing fitted, the leave-one-model-out "
        "error of a shifted one (offset fitted without the model). Only a candidate with a value on all six may be "
        "chosen; candidates measured on fewer models are reported on the models they have, beside the others' "
        "errors on the same models. Validation models (VALIDATION) never choose or fit.")
SWITCH = ("guide's default (DEFAULT_TC_FROM) changes to the RULE's choice only if, on the validation models measured, "
          "the choice's mean |estimate - peak| is not larger than the current default's (written 2026-12-05 11:25, "
          "before the first validation sweep finished)")
CANDIDATES = ("auto",) + TC_SOURCES  # auto: theory on the patch model, linear-response on nets
COMPUTED = tuple(n for n in TC_SOURCES if base_of(n) is None)  # the shifted ones are placed by shifted_rows


class MeanClassifier:
    """Tiny runs only: logits ``-|x - mu_c|^2 / 8`` on the class means; embed = the flattened image."""

    def __init__(self, images, labels):
        self.mu = torch.stack([images[labels == c].mean(0).flatten() for c in range(int(labels.max()) + 1)]).double()

    def logits(self, x):
        return -((x.flatten(1).double()[:, None] - self.mu[None]) ** 2).sum(-1) / 8.0

    def embed(self, x):
        return x.flatten(1).double()


def _config(fields: dict, runs: str, n: int, sizes: dict, **over) -> GuideConfig:
    """A model's config: the protocol's ``sizes``, then the model's own ``fields`` (a model that names its sampler
    keeps it: before 2026-12-05 evening the sizes overrode it, so ``patch-textures16-ddim`` ran DDPM), ``n``,
    ``over``."""
    f = {k: (v.format(runs=runs) if isinstance(v, str) else v) for k, v in fields.items()}
    return GuideConfig(**{**sizes, **f, "n": n, **over})


def _classifier(runs: str, name, cfg: GuideConfig, allow_missing: bool = False):
    """The evaluation classifier and its held-out accuracy; ``(None, None)`` when ``allow_missing`` and its folder
    is not under ``runs`` (the estimators that need it then record why they have no value)."""
    if name is None:
        setup = prepare(cfg)
        return MeanClassifier(setup.images, setup.labels), None
    folder = pretrained.resolve(name, "classifier") if pretrained.spec_name(name) else Path(runs) / name
    if allow_missing and not Path(folder).exists():
        print(f"  classifier {folder} is not on disk: the estimators that need it are recorded without a value")
        return None, None
    return load_classifier(folder), read_metrics(folder).get("heldout_accuracy")


class Counted:
    """The model with its sample-evaluations counted (``evals``: the batch sizes of its calls, forward passes only;
    every other attribute is the model's)."""

    def __init__(self, model):
        self.model, self.evals = model, 0

    def __call__(self, x, sigma, label=None):
        self.evals += int(x.shape[0])
        return self.model(x, sigma, label)

    def __getattr__(self, name):
        return getattr(self.model, name)


def estimators(cfg: GuideConfig, clf, path: Path, names=COMPUTED, n: "int | None" = None) -> dict:
    """The estimators ``names`` on one model, added to the cache ``path`` (names already there are kept): each
    record or the reason it has none, with its wall time ``seconds`` and the process's CPU time ``cpu_seconds``
    (a family sharing one run -- commitment, sensitivity -- books the run on its first member), the forward
    sample-evaluations ``evaluations``, and the size of the run: for the commitment run its states, clones and
    probed steps, for the sensitivity profile its samples, forward NFE per sample and backward passes. ``n``
    replaces the size of the sampling estimators (:data:`SIZED`; None: the estimator's default)."""
    out = json.loads(path.read_text()) if path.exists() else {}
    todo = [k for k in names if k not in out]
    if not todo:
        return out
    setup = prepare(cfg, clf)
    model = Counted(setup.model)
    cache: dict = {}
    for name in todo:
        t0, c0, e0 = time.perf_counter(), time.process_time(), model.evals
        if clf is None and name in NEEDS_CLASSIFIER:  # without one, guide reads the implicit classifier instead
            out[name] = {"error": "needs the evaluation classifier, which is not on disk (sensitivity-implicit is "
                                  "the profile without one)"}
            continue
        size = n if name in SIZED else None
        try:
            tc = estimate(name, cfg, setup.images, model, clf, cache=cache, n=size)
            out[name] = {"logsnr": tc.logsnr, "t": tc.t, "sigma_over_a": tc.sigma_over_a, "ci": tc.logsnr_ci}
            if tc.extras.get("window") is not None:
                out[name]["window"] = list(tc.extras["window"])
        except ValueError as exc:
            out[name] = {"error": str(exc)}
        out[name]["seconds"] = time.perf_counter() - t0
        out[name]["cpu_seconds"] = time.process_time() - c0
        # forward sample-evaluations, with those an analytic model recomputes in the backward pass (SENS_RECOMPUTE);
        # the backward pass itself is not counted
        out[name]["evaluations"] = model.evals - e0
        profile = "sensitivity-implicit" if name == "sensitivity-implicit" or clf is None else "sensitivity"
        key = cache_key(profile, size)
        ckey = cache_key("commitment", size)
        if name.startswith("commitment") and ckey in cache:
            c = cache[ckey]
            out[name]["cost"] = {"states": int(c.phi_state.shape[1]), "clones": int(c.k),
                                 "probed_steps": int(c.phi_state.shape[0])}
        if name.startswith("sensitivity") and key in cache:
            p = cache[key]
            out[name]["cost"] = {"samples": int(p.response.shape[1]), "nfe_forward_per_sample": p.nfe,
                                 "backward_passes": p.backward}
            out[name]["profile"] = {"logsnr": p.logsnr.tolist(), "mean": p.mean.tolist(), "band": p.band.tolist(),
                                    "window_ci": p.window_ci.tolist()}
        print(f"  {name}: { {k: v for k, v in out[name].items() if k != 'profile'} }", flush=True)
        save_json(path, out)
    if "theory" in out and "linear-response" in out:
        out[AUTO_TC_FROM] = out[chosen_source(dataclasses.replace(cfg, tc_from=AUTO_TC_FROM))]
    save_json(path, out)
    return out


def _brief(r) -> dict:
    """The numbers of a guide run the benchmark keeps."""
    keep = ("accuracy", "logp", "nfe", "fd", "precision", "recall", "diversity", "vs_random")
    arms = {k: {f: v.get(f) for f in keep if f in v} for k, v in (r.arms or {}).items()}
    return {"tc": tc_record(r.tc), "arms": arms, "sweep": list(r.sweep), "sweep_peak": r.sweep_peak,
            "comparisons": r.comparisons, "equal_nfe": list(r.equal_nfe), "grid_logsnr_range": r.grid_logsnr_range,
            "summary_n_boot_set": SUMMARY_BOOT_SET}


def run_cost(folder: Path) -> dict:
    """Wall seconds and network evaluations of a guide run's trials (``trials.jsonl``; a resumed run's trials each
    keep their own time): ``{"seconds", "nfe", "samples"}``."""
    sec, nfe, n = 0.0, 0, 0
    for line in (folder / "trials.jsonl").read_text().splitlines():
        rec = json.loads(line) if line.strip() else {}
        if rec.get("type") == "trial":
            sec, nfe, n = sec + float(rec.get("seconds", 0.0)), nfe + int(sum(rec["nfe"])), n + len(rec["nfe"])
    return {"seconds": sec, "nfe": nfe, "samples": n}


SUMMARY_BOOT_SET: "int | None" = None  # --summary-boot-set: set-level bootstrap replicates of the summaries


def guide(cfg: GuideConfig, folder: Path, clf):
    """One resumable guide run in ``folder``, held locked (a second process on it stops with an error instead of
    writing the same trials twice). With ``--summary-boot-set N`` the summary (recomputed from the trial log on every
    call) uses N set-level bootstrap replicates (FD, precision, recall, diversity) instead of ``cfg.n_boot_set``: the
    trials, and the trial log's config, are unchanged (a loaded machine's knob; the row records it)."""
    from critdiff.experiments.guide import run as guide_run

    summarise = guide_run.summarise
    if SUMMARY_BOOT_SET is not None:
        guide_run.summarise = lambda setup, *args: summarise(
            dataclasses.replace(setup, cfg=dataclasses.replace(setup.cfg, n_boot_set=SUMMARY_BOOT_SET)), *args)
    try:
        with locked_output(folder, "work"):
            return run_guide(cfg, Context.quiet(folder).replace(progress=True), classifier=clf)
    finally:
        guide_run.summarise = summarise


NEEDS_CLASSIFIER = ("sensitivity", "sensitivity-box")  # the benchmark's profile of the evaluation classifier
BASELINE_DEPENDENT = ("sensitivity", "sensitivity-box", "sensitivity-implicit")  # estimators that read cfg.baseline


def sweep_phase(name: str, spec, a, sizes: dict, work: Path) -> dict:
    fields, clf_name, n = spec
    if a.sweep_baseline == 1:
        return sweep_baseline1(name, spec, a, sizes, work)
    cfg = _config(fields, a.runs, n or a.n, sizes, arms=("sweep",), sweep=a.sweep, tc_logsnr=0.0)
    clf, holdout = _classifier(a.runs, clf_name, cfg, allow_missing=a.no_sweep)
    print(f"[{name}] estimators", flush=True)
    small = {"batch": a.estimator_batch} if a.estimator_batch else {}  # the profile's samples per backward pass
    est = estimators(dataclasses.replace(cfg, tc_logsnr=None, **small), clf, work / name / "estimators.json",
                     a.estimators.split(",") if a.estimators else COMPUTED, a.estimator_n)
    if a.no_sweep:
        return {"model": name, "estimators": est}
    print(f"[{name}] sweep of {a.sweep} centres, n = {cfg.n}", flush=True)
    r = guide(cfg, work / name / "sweep", clf)
    peak = r.sweep_peak["logp_peak_fit"]
    note = {"note": REPLACES[name][1]} if name in REPLACES else {}
    return {"model": name, **note, "config": cfg.to_dict(), "classifier_holdout_accuracy": holdout, "estimators": est,
            "sweep": _brief(r)["sweep"], "sweep_peak": r.sweep_peak, "peak_logsnr": peak,
            "sweep_cost": run_cost(work / name / "sweep"), "summary_n_boot_set": SUMMARY_BOOT_SET}


def sweep_baseline1(name: str, spec, a, sizes: dict, work: Path) -> dict:
    """The same sweep on baseline 1 (w = 1 outside the pulse, height 3 inside: CFG as it is used), with the
    baseline-dependent estimators (:data:`BASELINE_DEPENDENT`, those named in ``--estimators``) recomputed on
    baseline 1 into ``estimators-b1.json``: the row's ``sweep_baseline1``."""
    fields, clf_name, n = spec
    cfg = _config(fields, a.runs, n or a.n, sizes, arms=("sweep",), sweep=a.sweep, tc_logsnr=0.0, baseline=1.0)
    clf, _ = _classifier(a.runs, clf_name, cfg)
    names = [e for e in (a.estimators.split(",") if a.estimators else BASELINE_DEPENDENT) if e in BASELINE_DEPENDENT]
    est = estimators(dataclasses.replace(cfg, tc_logsnr=None), clf, work / name / "estimators-b1.json", names,
                     a.estimator_n) \
        if names else {}
    print(f"[{name}] sweep of {a.sweep} centres on baseline 1, n = {cfg.n}", flush=True)
    r = guide(cfg, work / name / "sweep-b1", clf)
    return {"model": name, "sweep_baseline1": {"config": cfg.to_dict(), "estimators": est, "sweep": _brief(r)["sweep"],
                                               "sweep_peak": r.sweep_peak, "peak_logsnr": r.sweep_peak["logp_peak_fit"],
                                               "sweep_cost": run_cost(work / name / "sweep-b1")}}


def originals(rows: dict, models: dict) -> list:
    """The original models that RULE uses: ``models``, where a stored row is replaced by its re-created row
    (:data:`REPLACES`) once that row has a sweep."""
    swap = {old: new for old, new in STORED.items() if "peak_logsnr" in rows.get(new, {})}
    return [swap.get(k, k) for k in models]


def set_minus_peak(row: dict) -> None:
    """``minus_peak = estimate - peak`` of every estimator of a row with a sweep peak."""
    if row.get("peak_logsnr") is None:
        return
    for v in row.get("estimators", {}).values():
        if isinstance(v, dict) and "logsnr" in v:
            v["minus_peak"] = v["logsnr"] - row["peak_logsnr"]


def shifted_rows(rows: dict, originals) -> None:
    """Place ``NAME+offset`` on every row: the base estimate minus the median offset of the ORIGINAL models other
    than the row's own (leave-one-model-out on an original model; all six on a validation model)."""
    for row in rows.values():
        set_minus_peak(row)
    if not any("peak_logsnr" in rows[k] for k in originals if k in rows):
        return  # no original model's sweep in this file (e.g. a validation model's own run): nothing to fit on
    table = offset_table({"rows": {k: rows[k] for k in originals if k in rows}})
    for key, row in rows.items():
        for base in SHIFTABLE:
            e = row.get("estimators", {}).get(base, {})
            if "logsnr" not in e:
                continue
            try:
                off = fitted_offset(table, base, exclude=(key,))
            except ValueError as exc:
                row["estimators"][base + SUFFIX] = {"error": str(exc)}
                continue
            ci = None if not e.get("ci") else [v - off for v in e["ci"]]
            row["estimators"][base + SUFFIX] = {"logsnr": e["logsnr"] - off, "ci": ci, "offset": off,
                                                "offset_fitted_on": sorted(set(table["minus_peak"][base]) - {key}),
                                                "seconds": e.get("seconds")}
        set_minus_peak(row)


def prediction_errors(rows: list[dict]) -> dict:
    """Per candidate: ``raw`` = mean |estimate - peak| and ``loo`` = mean |d_i - median(d_j, j != i)| with
    ``d = estimate - peak`` over the models with a sweep (None where an estimator has no value on one of them);
    ``oos`` the out-of-sample error of :data:`RULE` (``raw``; for a shifted estimator, whose ``d`` is already
    leave-one-model-out, also ``raw``); ``models`` / ``abs_error`` the models it has a value on and its |d| there
    (``within_half``: how many are within 0.5 logsnr or inside the peak's 95% interval)."""
    rows = [r for r in rows if "peak_logsnr" in r]
    out = {}
    for name in CANDIDATES:
        have = [r for r in rows if r["estimators"].get(name, {}).get("minus_peak") is not None]
        dd = {r["model"]: r["estimators"][name]["minus_peak"] for r in have}
        inside = sum(abs(v) <= 0.5 or (r["sweep_peak"]["logp_peak_ci"][0] <= r["estimators"][name]["logsnr"]
                                       <= r["sweep_peak"]["logp_peak_ci"][1]) for r, v in zip(have, dd.values()))
        rec = {"models": list(dd), "abs_error": {k: abs(v) for k, v in dd.items()}, "within_half": int(inside)}
        d = list(dd.values())
        if not rows or len(have) < len(rows):
            out[name] = {**rec, "raw": None, "loo": None, "oos": None, "median_offset": None}
            continue
        loo = [abs(d[i] - float(np.median([d[j] for j in range(len(d)) if j != i]))) for i in range(len(d))] \
            if len(d) > 1 else [float("nan")]
        raw = float(np.mean(np.abs(d)))
        out[name] = {**rec, "raw": raw, "loo": None if base_of(name) else float(np.mean(loo)), "oos": raw,
                     "median_offset": float(np.median(d))}
    return out


def choose(errors: dict) -> str:
    """:data:`RULE` on the errors over the original six models."""
    ok = {k: v["oos"] for k, v in errors.items() if v.get("oos") is not None and k != AUTO_TC_FROM}
    if not ok:
        raise ValueError("no estimator has a value on every model")
    return min(ok, key=ok.get)


def arms_phase(name: str, spec, a, sizes: dict, work: Path, row: dict, chosen: str) -> dict:
    """The arms at the chosen estimator's t_c on baseline 0 (and the pulse against random centres on baseline 1);
    with ``--window-arms`` instead: :data:`WINDOW_ARMS` with the window of ``--window-from`` (default
    ``sensitivity``) on baseline 0 and on baseline 1."""
    fields, clf_name, n = spec
    if "logsnr" not in row["estimators"].get(chosen, {}):
        raise ValueError(f"tc-from: {name} has no {chosen} estimate in --out (a shifted estimator's offset is fitted "
                         f"on the other models' rows: run the arms phase on a copy of the merged result)")
    tc = row["estimators"][chosen]["logsnr"]
    out = {}
    window = None
    if a.window_arms:
        src = row["estimators"].get(a.window_from, {})
        if "window" not in src:
            raise ValueError(f"window-from: {a.window_from} gives no window on {name}")
        window = tuple(src["window"])
        runs = tuple((float(b), parse_arms(a.arms) if (a.arms and float(b) == 0) else WINDOW_ARMS)
                     for b in a.baselines.split(","))
    else:
        runs = ((0.0, parse_arms(a.arms) if a.arms else ARMS),) + (() if a.no_baseline1 else ((1.0, ("tc", "random")),))
    for base, arms in runs:
        cfg = _config(fields, a.runs, a.arms_n or n or a.n, sizes, arms=arms, tc_logsnr=tc, baseline=base,
                      window=window)
        clf, row["classifier_holdout_accuracy"] = _classifier(a.runs, clf_name, cfg)
        print(f"[{name}] arms at baseline {base:g}, t_c from {chosen} = {tc:.4g}, n = {cfg.n}", flush=True)
        folder = f"{'window' if window else 'arms'}-b{base:g}-{chosen}" + (f"-n{cfg.n}" if a.arms_n else "")
        r = guide(cfg, work / name / folder, clf)
        out[f"baseline{base:g}"] = _brief(r)
    return {"tc_from": chosen, "tc_logsnr": tc, "window": window, **out}


def claims(rows: list[dict]) -> dict:
    """The issue's must-shows, read off the arms: tc - random excludes 0 (accuracy or log p), and on the nets the
    pulse's NFE ratio to constant guidance and its accuracy gap."""
    per = {}
    for r in rows:
        src = r.get("arms") or r.get("window_arms")
        if not src or "baseline0" not in src or not {"tc", "random"} <= set(src["baseline0"]["arms"]):
            continue
        b0 = src["baseline0"]
        c = b0["comparisons"].get("tc-random") or b0["arms"]["tc"]["vs_random"]
        wins = any(c[m]["lo"] > 0 for m in ("accuracy", "logp"))
        tc_arm, const = b0["arms"]["tc"], b0["arms"].get("constant")
        if const is None:
            continue
        per[r["model"]] = {"tc_minus_random": {m: c[m] for m in ("accuracy", "logp")}, "excludes_zero": wins,
                           "nfe_ratio_to_constant": tc_arm["nfe"] / const["nfe"],
                           "accuracy_gap_to_constant": tc_arm["accuracy"]["diff"] - const["accuracy"]["diff"]}
    return {"models": per, "wins": sum(v["excludes_zero"] for v in per.values()), "of": len(per)}


def _f(v, signed=False) -> str:
    return "n/a" if v is None else (f"{v:+.4g}" if signed else f"{v:.4g}")


def _ci(r: dict) -> str:
    return f"{_f(r['diff'], True)} [{_f(r['lo'], True)}, {_f(r['hi'], True)}]"


def tables(res: dict) -> str:
    """The markdown tables of docs/guidance.md section 5, from the result JSON."""
    rows = list(res["rows"].values())
    head = "| model | n | log p peak [95%] | " + " | ".join(CANDIDATES[1:]) + " |"
    out = [head, "|" + "---|" * (3 + len(CANDIDATES) - 1)]
    for r in rows:
        p = r.get("sweep_peak")
        cells = []
        for name in CANDIDATES[1:]:
            e = r["estimators"].get(name, {})
            ci = e.get("ci")
            cells.append("--" if "logsnr" not in e else f"{_f(e['logsnr'])}{'' if not ci else f' [{_f(ci[0])}, {_f(ci[1])}]'}"
                         + ("" if "minus_peak" not in e else f" ({_f(e['minus_peak'], True)})"))
        peak = "no sweep" if p is None else \
            f"{_f(p['logp_peak_fit'])} [{_f(p['logp_peak_ci'][0])}, {_f(p['logp_peak_ci'][1])}]"
        out.append(f"| {r['model']} | {r['config']['n'] if 'config' in r else '--'} | {peak} | " + " | ".join(cells) + " |")
    err = res.get("prediction_error", {})
    out.append("| raw error / loo error (six models) | | | " + " | ".join(
        f"{_f(err.get(k, {}).get('raw'))} / {_f(err.get(k, {}).get('loo'))}" for k in CANDIDATES[1:]) + " |")
    out.append("| mean abs error on the models it has (count) | | | " + " | ".join(
        "--" if not err.get(k, {}).get("abs_error") else
        f"{_f(float(np.mean(list(err[k]['abs_error'].values()))))} ({len(err[k]['abs_error'])})" for k in CANDIDATES[1:]) + " |")
    out.append("| within 0.5 or inside the peak's 95% | | | " + " | ".join(
        "--" if not err.get(k, {}).get("models") else f"{err[k]['within_half']} of {len(err[k]['models'])}"
        for k in CANDIDATES[1:]) + " |")
    out += ["", f"Rule: {res.get('rule', '')} Chosen: `{res.get('chosen')}`.", ""]
    cost = [(r["model"], n, e) for r in rows for n, e in r["estimators"].items() if "cost" in e and n == "sensitivity"]
    if cost:
        out += ["| model | sensitivity: samples | forward NFE per sample | backward passes | seconds |", "|---|---|---|---|---|"]
        out += [f"| {m} | {e['cost']['samples']} | {_f(e['cost']['nfe_forward_per_sample'])} | "
                f"{e['cost']['backward_passes']} | {_f(e['seconds'])} |" for m, _, e in cost]
    arms = [a for a in ARMS if a != "random"]
    used = sorted({r["arms"].get("tc_from", "?") for r in rows if "arms" in r})
    out += ["", f"t_c from `{', '.join(used)}` (the estimator of each arms run); accuracy per arm (NFE per sample in "
            "brackets); tc - random paired 95%.", "",
            "| model | " + " | ".join(arms) + " | random | tc - random: accuracy | tc - random: log p | baseline 1: tc - random acc |",
            "|" + "---|" * (len(arms) + 5)]
    for r in rows:
        if "arms" not in r:
            continue
        b0, b1 = r["arms"]["baseline0"], r["arms"].get("baseline1")
        acc = lambda a, b=b0: "--" if a not in b["arms"] else \
            f"{_f(b['arms'][a]['accuracy']['diff'])} ({_f(b['arms'][a]['nfe'])})"  # noqa: E731
        c0 = b0["arms"]["tc"]["vs_random"]
        c1 = "--" if b1 is None else _ci(b1["arms"]["tc"]["vs_random"]["accuracy"])
        out.append(f"| {r['model']} | " + " | ".join(acc(a) for a in arms) + f" | {acc('random')} | {_ci(c0['accuracy'])} "
                   f"| {_ci(c0['logp'])} | {c1} |")
    win = [r for r in rows if "window_arms" in r]
    if win:
        out += ["", "Window arms: accuracy, FD, precision, recall (NFE per sample); window - interval and window - "
                "constant paired 95%.", "",
                "| model | baseline | window [lo, hi] | " + " | ".join(WINDOW_ARMS) +
                " | window - interval: acc | FD | precision | window - constant: acc |", "|" + "---|" * (7 + len(WINDOW_ARMS))]
        for r in win:
            w = r["window_arms"]
            for key in ("baseline0", "baseline1"):
                if key not in w:
                    continue
                arms_ = w[key]["arms"]
                cell = lambda a: "--" if a not in arms_ else (  # noqa: E731
                    f"{_f(arms_[a]['accuracy']['diff'])}, {_f(arms_[a].get('fd'))}, {_f(arms_[a].get('precision'))}, "
                    f"{_f(arms_[a].get('recall'))} ({_f(arms_[a]['nfe'])})")
                cmp_ = w[key]["comparisons"]
                wi, wc = cmp_.get("window-interval"), cmp_.get("window-constant")
                out.append(f"| {r['model']} | {key[-1]} | [{_f(w['window'][0])}, {_f(w['window'][1])}] | "
                           + " | ".join(cell(a) for a in WINDOW_ARMS)
                           + (f" | {_ci(wi['accuracy'])} | {_ci(wi['fd'])} | {_ci(wi['precision'])}" if wi else " | -- | -- | --")
                           + (f" | {_ci(wc['accuracy'])} |" if wc else " | -- |"))
    return "\n".join(out + ["", distance_table(res), "", cost_table(res), "", validation_tables(res),
                            arm_metrics_table(res)])


def _reason(e: "dict | None") -> str:
    """A table cell for an estimator without a value: why."""
    if e is None:
        return "not run"
    msg = e.get("error", "")
    for key, short in (("not on disk", "no classifier"), ("needs a classifier", "no classifier"),
                       ("stochastic sampler", "deterministic sampler"), ("patch model", "patch model only"),
                       ("finds no critical point", "no crossing")):
        if key in msg:
            return short
    return "no value"


def distance_table(res: dict) -> str:
    """Every estimator's ``estimate - log p peak`` on every model with a sweep (``*``: inside the peak's 95%
    interval; a reason where it has no value), with its count within 0.5 (or inside the interval) and its mean
    |error| over the models it has (the original six and the validation models; :func:`prediction_errors`), and,
    as :data:`RULE` asks of a candidate measured on fewer models, guide's default's mean |error| on the same models."""
    from critdiff.experiments.guide.config import DEFAULT_TC_FROM

    models = [k for k in list(MODELS) + list(RECREATED) + list(VALIDATION) if "peak_logsnr" in res["rows"].get(k, {})]
    six = originals(res["rows"], MODELS)
    pe, ve = res.get("prediction_error", {}), res.get("validation_error", {})
    default = {**pe.get(DEFAULT_TC_FROM, {}).get("abs_error", {}), **ve.get(DEFAULT_TC_FROM, {}).get("abs_error", {})}
    out = ["| estimator | " + " | ".join(m if m in six or m in VALIDATION else f"{m} (stored, history)" for m in models)
           + " | within 0.5 (all) | mean abs error (all) | "
           f"`{DEFAULT_TC_FROM}` on the same models |", "|" + "---|" * (len(models) + 4)]
    for name in CANDIDATES[1:]:
        cells = []
        for m in models:
            r = res["rows"][m]
            e = r["estimators"].get(name)
            if not e or "logsnr" not in e:
                cells.append(_reason(e))
                continue
            lo, hi = r["sweep_peak"]["logp_peak_ci"]
            cells.append(f"{_f(e['minus_peak'], True)}{'*' if lo <= e['logsnr'] <= hi else ''}")
        errs = {**pe.get(name, {}).get("abs_error", {}), **ve.get(name, {}).get("abs_error", {})}
        within = pe.get(name, {}).get("within_half", 0) + ve.get(name, {}).get("within_half", 0)
        mean = "--" if not errs else f"{_f(float(np.mean(list(errs.values()))))} ({len(errs)})"
        same = "--" if not errs or not set(errs) <= set(default) else _f(float(np.mean([default[m] for m in errs])))
        out.append(f"| {name} | " + " | ".join(cells) + f" | {within} of {len(errs)} | {mean} | {same} |")
    return "\n".join(out)


def sweep_nfe(row: dict) -> "int | None":
    """The network evaluations of a row's stored sweep: its counted cost where the row has one (``sweep_cost``), else
    the sum over centres of the mean NFE per sample x samples."""
    if row.get("sweep_cost"):
        return int(row["sweep_cost"]["nfe"])
    if not row.get("sweep") or "config" not in row:
        return None
    return int(round(sum(p["nfe"] for p in row["sweep"]) * row["config"]["n"]))


def cost_table(res: dict) -> str:
    """Per model and sampling estimator (the first member of a family, which books the shared run): its size, wall
    and CPU seconds, forward network evaluations, and forward-equivalent evaluations (a backward pass through an
    evaluation counted as two forward ones) as a share of the model's stored sweep."""
    out = ["| model | estimator | size | seconds (wall) | CPU seconds | forward NFE | forward-equivalent NFE | "
           "share of the sweep's NFE | sweep NFE (n) |", "|---|---|---|---|---|---|---|---|---|"]
    for m, r in res["rows"].items():
        total = sweep_nfe(r)
        for name, e in r.get("estimators", {}).items():
            c = e.get("cost", {})
            if "evaluations" not in e and "samples" in c and e.get("seconds", 0) > 1:  # a record from before the count
                e = {**e, "evaluations": int(round(c["samples"] * c["nfe_forward_per_sample"]))}
            if not e.get("evaluations") or name in (AUTO_TC_FROM,):
                continue
            size = (f"{c['states']} states x {c['clones']} clones" if "states" in c else
                    f"{c['samples']} samples, {c['backward_passes']} backward" if "samples" in c else "--")
            equiv = 3 * e["evaluations"] if "samples" in c else e["evaluations"]  # the profile backpropagates all
            share, sweep = ("--", "--") if not total else (f"{100 * equiv / total:.1f}%", f"{total:,} ({r['config']['n']})")
            out.append(f"| {m} | {name} | {size} | {_f(e.get('seconds'))} | {_f(e.get('cpu_seconds'))} | "
                       f"{e['evaluations']:,} | {equiv:,} | {share} | {sweep} |")
    return "\n".join(out)


def _peak(sp: dict) -> str:
    return f"{_f(sp['logp_peak_fit'])} [{_f(sp['logp_peak_ci'][0])}, {_f(sp['logp_peak_ci'][1])}]"


def _cost(c) -> str:
    return "--" if not c else f"{_f(c['seconds'])} s, {c['nfe']:,} NFE"


def validation_tables(res: dict) -> str:
    """Per validation model: its sweeps (baseline 0 and, where run, 1) with their peaks and costs, and every
    estimator's estimate, distance to each peak (``*``: inside the peak's 95% interval), wall time and forward
    network evaluations; the baseline-dependent estimators on baseline 1 from that sweep's own run."""
    out = []
    for key in VALIDATION:
        r = res["rows"].get(key)
        if not r or "sweep_peak" not in r:
            continue
        b1 = r.get("sweep_baseline1")
        out += [f"{key}: sweep (9 centres, height 3, width 3) baseline 0: n = {r['config']['n']}, log p peak "
                f"{_peak(r['sweep_peak'])}, cost {_cost(r.get('sweep_cost'))}"
                + ("" if not b1 else f"; baseline 1: n = {b1['config']['n']}, log p peak {_peak(b1['sweep_peak'])}, "
                                     f"cost {_cost(b1.get('sweep_cost'))}"), "",
                "| estimator | logsnr [95%] | window | minus peak (b0) | minus peak (b1) | seconds | NFE |",
                "|---|---|---|---|---|---|---|"]

        def dist(e, sp):
            if "logsnr" not in e:
                return "--"
            lo, hi = sp["logp_peak_ci"]
            return f"{_f(e['logsnr'] - sp['logp_peak_fit'], True)}{'*' if lo <= e['logsnr'] <= hi else ''}"

        rows = [(n, e, False) for n, e in r["estimators"].items() if n != AUTO_TC_FROM] + \
            ([(n, e, True) for n, e in b1.get("estimators", {}).items()] if b1 else [])
        for n, e, on_b1 in rows:
            if "logsnr" not in e:
                out.append(f"| {n}{' (b1)' if on_b1 else ''} | {e.get('error', '--')} | | | | {_f(e.get('seconds'))} | |")
                continue
            ci, w = e.get("ci"), e.get("window")
            out.append(f"| {n}{' (on baseline 1)' if on_b1 else ''} | {_f(e['logsnr'])}"
                       f"{'' if not ci else f' [{_f(ci[0])}, {_f(ci[1])}]'} | "
                       f"{'--' if not w else f'[{_f(w[0])}, {_f(w[1])}]'} | {'--' if on_b1 else dist(e, r['sweep_peak'])} | "
                       f"{'--' if not b1 else dist(e, b1['sweep_peak'])} | {_f(e.get('seconds'))} | "
                       f"{'--' if e.get('evaluations') is None else format(e['evaluations'], ',')} |")
        out.append("")
    return "\n".join(out)


def arm_metrics_table(res: dict) -> str:
    """Every window-arms run: per arm accuracy, log p, FD, precision, recall, diversity and NFE; then the paired 95%
    intervals of each comparison of the run (window - interval, window - constant, tc - random, ...)."""
    out = []
    for key, r in res["rows"].items():
        w = r.get("window_arms")
        if not w:
            continue
        for b in ("baseline0", "baseline1"):
            if b not in w:
                continue
            arms_ = w[b]["arms"]
            out += [f"{key}, {b}: window [{_f(w['window'][0])}, {_f(w['window'][1])}], t_c from {w['tc_from']} = "
                    f"{_f(w['tc_logsnr'])}", "",
                    "| arm | accuracy | log p | FD | precision | recall | diversity | NFE |", "|---|---|---|---|---|---|---|---|"]
            for a, v in arms_.items():
                out.append(f"| {a} | {_f(v['accuracy']['diff'])} | {_f(v['logp']['diff'])} | {_f(v.get('fd'))} | "
                           f"{_f(v.get('precision'))} | {_f(v.get('recall'))} | {_f(v.get('diversity'))} | {_f(v['nfe'])} |")
            out += ["", "| comparison | NFE ratio | accuracy | log p | FD | precision | recall |", "|---|---|---|---|---|---|---|"]
            for c, v in w[b]["comparisons"].items():
                cells = " | ".join("--" if m not in v else _ci(v[m]) for m in ("accuracy", "logp", "fd", "precision", "recall"))
                out.append(f"| {c} | {_f(v.get('nfe_ratio'))} | {cells} |")
            if "tc" in arms_ and "vs_random" in arms_["tc"]:
                vr = arms_["tc"]["vs_random"]
                out.append("| tc - random (vs_random) | -- | " + " | ".join(
                    "--" if m not in vr else _ci(vr[m]) for m in ("accuracy", "logp", "fd", "precision", "recall")) + " |")
            out.append("")
    return "\n".join(out)


def linear_prediction(row: dict) -> "dict | None":
    """The sensitivity profile's first-order prediction of the sweep (issue #23: how far is the linear prediction
    for a height-0 pulse from the sweep measured at height 3): ``height * sum`` of the mean profile over each sweep
    centre's box, beside the measured mean log p per centre; the best centre of each and their Pearson correlation."""
    e = row.get("estimators", {}).get("sensitivity", {})
    if "profile" not in e or not row.get("sweep") or "config" not in row:
        return None
    from critdiff.probes.guidance_sensitivity import box_response

    c = np.array([p["centre_logsnr"] for p in row["sweep"]])
    meas = np.array([p["logp"]["diff"] for p in row["sweep"]])
    pred = row["config"]["height"] * box_response(np.array(e["profile"]["logsnr"]), np.array(e["profile"]["mean"]), c,
                                                  row["config"]["width"])
    return {"centres": c.tolist(), "measured_logp": meas.tolist(), "predicted_first_order": pred.tolist(),
            "best_centre_measured": float(c[np.argmax(meas)]), "best_centre_predicted": float(c[np.argmax(pred)]),
            "pearson": float(np.corrcoef(meas, pred)[0, 1])}


def finish(res: dict, models: dict, tc_from) -> dict:
    """Shifted estimators, prediction errors (original models; validation models apart), the chosen estimator and
    the claims of the rows in ``res``."""
    six = originals(res["rows"], models)
    shifted_rows(res["rows"], six)
    for row in res["rows"].values():
        lp = linear_prediction(row)
        if lp is not None:
            row["linear_prediction"] = lp
    rows = [res["rows"][k] for k in six if k in res["rows"]]
    res["originals"] = [k for k in six if k in res["rows"]]
    res["rule"], res["switch_rule"] = RULE, SWITCH
    res["prediction_error"] = prediction_errors(rows)
    val = [res["rows"][k] for k in VALIDATION if k in res["rows"]]
    res["validation_error"] = prediction_errors(val) if val else {}
    res["chosen"] = tc_from or choose(res["prediction_error"])
    res["switch"] = switch_decision(res)
    res["claims"] = claims(rows + val)
    return res


def switch_decision(res: dict) -> dict:
    """:data:`SWITCH` applied: the rule's choice, guide's current default, their mean |error| on the validation
    models measured, and whether the default should change."""
    from critdiff.experiments.guide.config import DEFAULT_TC_FROM

    val = res.get("validation_error", {})
    mine, cur = (val.get(k, {}).get("raw") for k in (res["chosen"], DEFAULT_TC_FROM))
    ok = res["chosen"] == DEFAULT_TC_FROM or (mine is not None and cur is not None and mine <= cur)
    return {"rule_choice": res["chosen"], "current_default": DEFAULT_TC_FROM, "validation_error_choice": mine,
            "validation_error_default": cur, "validation_models": (val.get(res["chosen"]) or {}).get("models", []),
            "switch": bool(ok and res["chosen"] != DEFAULT_TC_FROM)}


def export_offsets(res: dict, path: Path = OFFSETS_FILE) -> dict:
    """Write the table the shifted estimators read at run time, from the original six rows of ``res``."""
    table = offset_table({"rows": {k: res["rows"][k] for k in res["originals"]}},  # the six that finish() used
                         source="benchmarks/results/guidance_estimators.json")
    save_json(path, table)
    return table


MERGED_KEYS = ("estimators", "arms", "window_arms")


def merge(files: list[Path], out: Path, tc_from) -> dict:
    """One result from per-model files (later files win for a model; each row keeps what its file had; the
    estimators and the arms runs of a row are merged key by key, so runs of one model in parallel processes -- its
    sweep, its baseline-0 and baseline-1 arms -- combine)."""
    res: dict = {"rows": {}}
    for f in files:
        part = json.loads(f.read_text())
        for k, row in part["rows"].items():
            old = res["rows"].get(k, {})
            res["rows"][k] = {**old, **row, **{key: {**old[key], **row[key]} for key in MERGED_KEYS
                                                 if isinstance(old.get(key), dict) and isinstance(row.get(key), dict)}}
        res.update({k: v for k, v in part.items() if k in ("tiny", "platform", "torch")})
    for k in set(REPLACES) & set(res["rows"]):  # a re-created row's note is the script's (written once measured)
        res["rows"][k]["note"] = REPLACES[k][1]
    res["merged_from"] = [str(f) for f in files]
    save_json(out, finish(res, TINY if res.get("tiny") else MODELS, tc_from))
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs/guidance-models", help="folder of the nets and classifiers")
    ap.add_argument("--work", default="runs/guidance-bench", help="resumable guide runs")
    ap.add_argument("--phase", choices=("sweep", "arms", "all"), default="all")
    ap.add_argument("--only", default=None, help="comma-separated model names")
    ap.add_argument("--tc-from", default=None, help="force the estimator of the arms phase")
    ap.add_argument("--arms", default=None, help="arms of the arms phase at baseline 0 (default: all of ARMS)")
    ap.add_argument("--no-baseline1", action="store_true", help="skip the baseline-1 run of the arms phase")
    ap.add_argument("--arms-n", type=int, default=None, help="samples per arm of the arms phase (default: the sweep's)")
    ap.add_argument("--tiny", action="store_true", help="seconds-sized smoke test (not a result)")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--sweep", type=int, default=9)
    ap.add_argument("--out", default="benchmarks/results/guidance_estimators.json")
    ap.add_argument("--table", action="store_true", help="print the markdown tables of --out and stop")
    ap.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                    help="combine the rows of per-model result files (runs in parallel processes) into --out")
    ap.add_argument("--estimators", default=None, help="comma-separated estimators to compute (default: all computed "
                                                       "ones); those already in a model's estimators.json are kept")
    ap.add_argument("--estimator-n", type=int, default=None,
                    help="states of the commitment run / samples of the sensitivity profile (default: the estimators' "
                         "own, 32); a costly model's smaller size is recorded in each estimate's cost")
    ap.add_argument("--estimator-batch", type=int, default=None,
                    help="sweep phase: samples per backward pass of the sensitivity profile (at most its 4): autograd "
                         "through the patch model on digits keeps > 20 GB at 4")
    ap.add_argument("--no-sweep", action="store_true", help="sweep phase: the estimators only (a stored sweep stays)")
    ap.add_argument("--window-arms", action="store_true", help="arms phase: WINDOW_ARMS on baselines 0 and 1")
    ap.add_argument("--window-from", default="sensitivity", help="estimator whose window the window arm uses")
    ap.add_argument("--baselines", default="0,1", help="window arms: the baselines to run (0, 1 or 0,1); --arms "
                                                      "replaces WINDOW_ARMS on baseline 0")
    ap.add_argument("--sweep-baseline", type=float, default=0.0, choices=(0.0, 1.0),
                    help="sweep phase: 1 runs the sweep on baseline 1 instead (the row's sweep_baseline1)")
    ap.add_argument("--export-offsets", action="store_true",
                    help="write the offsets table of the shifted estimators from --out and stop")
    ap.add_argument("--summary-boot-set", type=int, default=None,
                    help="set-level bootstrap replicates of the guide summaries (default: each run's n_boot_set)")
    a = ap.parse_args(argv)
    global SUMMARY_BOOT_SET
    SUMMARY_BOOT_SET = a.summary_boot_set
    if a.table:
        print(tables(json.loads(Path(a.out).read_text())))
        return {}
    if a.merge:
        return merge([Path(f) for f in a.merge], Path(a.out), a.tc_from)
    if a.export_offsets:
        return export_offsets(json.loads(Path(a.out).read_text()))
    torch.set_num_threads(1)
    models = TINY if a.tiny else {**MODELS, **RECREATED, **VALIDATION}
    sizes = dict(batch=6, steps=8, width=2.0, n_boot=50, n_boot_set=10) if a.tiny else \
        dict(batch=50, steps=20, schedule="vp-linear", sampler="ddpm", spacing="logsnr")
    if a.tiny:
        a.n, a.sweep = 6, 3
    work, out_path = Path(a.work), Path(a.out)
    res = json.loads(out_path.read_text()) if out_path.exists() else {"rows": {}}
    res.update(tiny=a.tiny, platform=platform.platform(), torch=torch.__version__)
    names = a.only.split(",") if a.only else list(models)
    if a.phase != "arms" and not a.tiny and set(names) & set(STORED):  # the net under --runs is another model now
        ap.error(f"only: {', '.join(sorted(set(names) & set(STORED)))} is a stored row whose net was retrained as "
                 f"{', '.join(STORED[k] for k in sorted(set(names) & set(STORED)))}; run that row instead")
    if not a.only:
        names = [k for k in names if k not in STORED]
    t0 = time.perf_counter()
    if a.phase in ("sweep", "all"):
        for name in names:
            old = res["rows"].get(name, {})
            new = sweep_phase(name, models[name], a, sizes, work)
            res["rows"][name] = {**old, **new, "estimators": {**old.get("estimators", {}), **new.get("estimators", {})}}
            save_json(out_path, res)
    base = TINY if a.tiny else MODELS
    finish(res, base, a.tc_from)
    if a.phase in ("arms", "all"):
        for name in names:
            if name not in res["rows"]:  # no sweep yet: the estimators of the sweep phase's cache
                est = json.loads((work / name / "estimators.json").read_text())
                res["rows"][name] = {"model": name, "estimators": est}
            res["rows"][name]["window_arms" if a.window_arms else "arms"] = arms_phase(
                name, models[name], a, sizes, work, res["rows"][name], res["chosen"])
            save_json(out_path, res)
    finish(res, base, a.tc_from)
    res["seconds_this_call"] = time.perf_counter() - t0
    save_json(out_path, res)
    return res


if __name__ == "__main__":
    main()
