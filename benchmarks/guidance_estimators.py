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

from critdiff.experiments.guide import GuideConfig, run_guide
from critdiff.experiments.guide.arms import prepare
from critdiff.experiments.guide.config import AUTO_TC_FROM, TC_SOURCES, parse_arms
from critdiff.experiments.guide.estimators import chosen_source, estimate
from critdiff.experiments.guide.tc import tc_record
from critdiff.io import save_json
from critdiff.nets.classifier import load_classifier, read_metrics
from critdiff.outdir import locked_output

# name -> (GuideConfig fields, classifier folder under --runs, samples per arm or None for --n)
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
ARMS = ("none", "cond", "constant", "interval", "interval-ours", "linear", "tc", "random")
CANDIDATES = ("auto",) + TC_SOURCES  # auto: theory on the patch model, linear-response on nets


class MeanClassifier:
    """Tiny runs only: logits ``-|x - mu_c|^2 / 8`` on the class means; embed = the flattened image."""

    def __init__(self, images, labels):
        self.mu = torch.stack([images[labels == c].mean(0).flatten() for c in range(int(labels.max()) + 1)]).double()

    def logits(self, x):
        return -((x.flatten(1).double()[:, None] - self.mu[None]) ** 2).sum(-1) / 8.0

    def embed(self, x):
        return x.flatten(1).double()


def _config(fields: dict, runs: str, n: int, sizes: dict, **over) -> GuideConfig:
    f = {k: (v.format(runs=runs) if isinstance(v, str) else v) for k, v in fields.items()}
    return GuideConfig(**{**f, "n": n, **sizes, **over})


def _classifier(runs: str, name, cfg: GuideConfig):
    if name is None:
        setup = prepare(cfg)
        return MeanClassifier(setup.images, setup.labels), None
    folder = Path(runs) / name
    return load_classifier(folder), read_metrics(folder).get("heldout_accuracy")


def estimators(cfg: GuideConfig, clf, path: Path) -> dict:
    """Every estimator on one model (cached in ``path``): its record or the reason it has none, with its wall time."""
    if path.exists():
        return json.loads(path.read_text())
    setup = prepare(cfg, clf)
    out = {}
    for name in TC_SOURCES:
        t0 = time.perf_counter()
        try:
            tc = estimate(name, cfg, setup.images, setup.model, clf)
            out[name] = {"logsnr": tc.logsnr, "t": tc.t, "sigma_over_a": tc.sigma_over_a, "ci": tc.logsnr_ci}
        except ValueError as exc:
            out[name] = {"error": str(exc)}
        out[name]["seconds"] = time.perf_counter() - t0
        print(f"  {name}: {out[name]}", flush=True)
    out[AUTO_TC_FROM] = out[chosen_source(dataclasses.replace(cfg, tc_from=AUTO_TC_FROM))]
    save_json(path, out)
    return out


def _brief(r) -> dict:
    """The numbers of a guide run the benchmark keeps."""
    keep = ("accuracy", "logp", "nfe", "fd", "diversity", "vs_random")
    arms = {k: {f: v.get(f) for f in keep if f in v} for k, v in (r.arms or {}).items()}
    return {"tc": tc_record(r.tc), "arms": arms, "sweep": list(r.sweep), "sweep_peak": r.sweep_peak,
            "comparisons": r.comparisons, "equal_nfe": list(r.equal_nfe), "grid_logsnr_range": r.grid_logsnr_range}


def guide(cfg: GuideConfig, folder: Path, clf):
    """One resumable guide run in ``folder``, held locked (a second process on it stops with an error instead of
    writing the same trials twice)."""
    with locked_output(folder, "work"):
        return run_guide(cfg, folder, progress=True, classifier=clf, log=lambda m: None)


def sweep_phase(name: str, spec, a, sizes: dict, work: Path) -> dict:
    fields, clf_name, n = spec
    cfg = _config(fields, a.runs, n or a.n, sizes, arms=("sweep",), sweep=a.sweep, tc_logsnr=0.0)
    clf, holdout = _classifier(a.runs, clf_name, cfg)
    print(f"[{name}] estimators", flush=True)
    est = estimators(dataclasses.replace(cfg, tc_logsnr=None), clf, work / name / "estimators.json")
    print(f"[{name}] sweep of {a.sweep} centres, n = {cfg.n}", flush=True)
    r = guide(cfg, work / name / "sweep", clf)
    peak = r.sweep_peak["logp_peak_fit"]
    for v in est.values():
        if "logsnr" in v:
            v["minus_peak"] = v["logsnr"] - peak
    return {"model": name, "config": cfg.to_dict(), "classifier_holdout_accuracy": holdout, "estimators": est,
            "sweep": _brief(r)["sweep"], "sweep_peak": r.sweep_peak, "peak_logsnr": peak}


def prediction_errors(rows: list[dict]) -> dict:
    """Per candidate: ``raw`` = mean |estimate - peak| and ``loo`` = mean |d_i - median(d_j, j != i)| with
    ``d = estimate - peak`` over the models with a sweep (None where an estimator has no value on one of them)."""
    rows = [r for r in rows if "peak_logsnr" in r]
    out = {}
    for name in CANDIDATES:
        d = [r["estimators"].get(name, {}).get("minus_peak") for r in rows]
        if not rows or any(v is None for v in d):
            out[name] = {"raw": None, "loo": None, "median_offset": None}
            continue
        loo = [abs(d[i] - float(np.median([d[j] for j in range(len(d)) if j != i]))) for i in range(len(d))] \
            if len(d) > 1 else [float("nan")]
        out[name] = {"raw": float(np.mean(np.abs(d))), "loo": float(np.mean(loo)), "median_offset": float(np.median(d))}
    return out


def choose(errors: dict) -> str:
    ok = {k: v["raw"] for k, v in errors.items() if v["raw"] is not None}
    if not ok:
        raise ValueError("no estimator has a value on every model")
    return min(ok, key=ok.get)


def arms_phase(name: str, spec, a, sizes: dict, work: Path, row: dict, chosen: str) -> dict:
    fields, clf_name, n = spec
    tc = row["estimators"][chosen]["logsnr"]
    out = {}
    runs = ((0.0, parse_arms(a.arms) if a.arms else ARMS),) + (() if a.no_baseline1 else ((1.0, ("tc", "random")),))
    for base, arms in runs:
        cfg = _config(fields, a.runs, a.arms_n or n or a.n, sizes, arms=arms, tc_logsnr=tc, baseline=base)
        clf, row["classifier_holdout_accuracy"] = _classifier(a.runs, clf_name, cfg)
        print(f"[{name}] arms at baseline {base:g}, t_c from {chosen} = {tc:.4g}, n = {cfg.n}", flush=True)
        folder = f"arms-b{base:g}-{chosen}" + (f"-n{cfg.n}" if a.arms_n else "")
        r = guide(cfg, work / name / folder, clf)
        out[f"baseline{base:g}"] = _brief(r)
    return {"tc_from": chosen, "tc_logsnr": tc, **out}


def claims(rows: list[dict]) -> dict:
    """The issue's must-shows, read off the arms: tc - random excludes 0 (accuracy or log p), and on the nets the
    pulse's NFE ratio to constant guidance and its accuracy gap."""
    per = {}
    for r in rows:
        if "arms" not in r:
            continue
        b0 = r["arms"]["baseline0"]
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
            e = r["estimators"][name]
            ci = e.get("ci")
            cells.append("--" if "logsnr" not in e else f"{_f(e['logsnr'])}{'' if not ci else f' [{_f(ci[0])}, {_f(ci[1])}]'}"
                         + ("" if "minus_peak" not in e else f" ({_f(e['minus_peak'], True)})"))
        peak = "no sweep" if p is None else \
            f"{_f(p['logp_peak_fit'])} [{_f(p['logp_peak_ci'][0])}, {_f(p['logp_peak_ci'][1])}]"
        out.append(f"| {r['model']} | {r['config']['n'] if 'config' in r else '--'} | {peak} | " + " | ".join(cells) + " |")
    err = res.get("prediction_error", {})
    out.append("| raw error / loo error | | | " + " | ".join(
        f"{_f(err.get(k, {}).get('raw'))} / {_f(err.get(k, {}).get('loo'))}" for k in CANDIDATES[1:]) + " |")
    arms = [a for a in ARMS if a != "random"]
    out += ["", f"t_c from `{res.get('chosen')}`; accuracy per arm (NFE per sample in brackets); tc - random paired 95%.", "",
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
    return "\n".join(out)


def finish(res: dict, models: dict, tc_from) -> dict:
    """Prediction errors, the chosen estimator and the claims of the rows in ``res``."""
    rows = [res["rows"][k] for k in models if k in res["rows"]]
    res["prediction_error"] = prediction_errors(rows)
    res["chosen"] = tc_from or choose(res["prediction_error"])
    res["claims"] = claims(rows)
    return res


def merge(files: list[Path], out: Path, tc_from) -> dict:
    """One result from per-model files (later files win for a model; each row keeps what its file had)."""
    res: dict = {"rows": {}}
    for f in files:
        part = json.loads(f.read_text())
        for k, row in part["rows"].items():
            res["rows"][k] = {**res["rows"].get(k, {}), **row}
        res.update({k: v for k, v in part.items() if k in ("tiny", "platform", "torch")})
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
    a = ap.parse_args(argv)
    if a.table:
        print(tables(json.loads(Path(a.out).read_text())))
        return {}
    if a.merge:
        return merge([Path(f) for f in a.merge], Path(a.out), a.tc_from)
    torch.set_num_threads(1)
    models = TINY if a.tiny else MODELS
    sizes = dict(batch=6, steps=8, width=2.0, n_boot=50, n_boot_set=10) if a.tiny else \
        dict(batch=50, steps=20, schedule="vp-linear", sampler="ddpm", spacing="logsnr")
    if a.tiny:
        a.n, a.sweep = 6, 3
    work, out_path = Path(a.work), Path(a.out)
    res = json.loads(out_path.read_text()) if out_path.exists() else {"rows": {}}
    res.update(tiny=a.tiny, platform=platform.platform(), torch=torch.__version__)
    names = a.only.split(",") if a.only else list(models)
    t0 = time.perf_counter()
    if a.phase in ("sweep", "all"):
        for name in names:
            res["rows"][name] = {**res["rows"].get(name, {}), **sweep_phase(name, models[name], a, sizes, work)}
            save_json(out_path, res)
    finish(res, models, a.tc_from)
    if a.phase in ("arms", "all"):
        for name in names:
            if name not in res["rows"]:  # no sweep yet: the estimators of the sweep phase's cache
                est = json.loads((work / name / "estimators.json").read_text())
                res["rows"][name] = {"model": name, "estimators": est}
            res["rows"][name]["arms"] = arms_phase(name, models[name], a, sizes, work, res["rows"][name], res["chosen"])
            save_json(out_path, res)
    finish(res, models, a.tc_from)
    res["seconds_this_call"] = time.perf_counter() - t0
    save_json(out_path, res)
    return res


if __name__ == "__main__":
    main()
