"""Benchmark: which critical-time estimator predicts where a guidance pulse works (issue #14 point 3;
docs/guidance.md section 5).

Per model: every estimator of :mod:`critdiff.experiments.guide_estimators` (estimate and 95% interval, or the
reason it has none) and a pulse-centre sweep (``--sweep`` centres, paired seeds) whose log p peak is located;
the row gives each estimator's distance to the peak. Finally the leave-one-model-out prediction error of each
estimator (mean |estimate + median offset of the other models - peak|), the rule by which ``guide``'s default
(:data:`critdiff.experiments.guide_config.DEFAULT_TC_FROM`) is to be chosen.

The models are the analytic patch model on textures and digits (no training); ``--model NAME=CKPT`` adds a
trained net (its data spec is read from the checkpoint) with ``--classifier NAME=CKPT``. Without a classifier
checkpoint the patch models use the class-mean classifier below (a stand-in: the real run should pass the
project's trained classifiers). ``--tiny`` runs a seconds-sized smoke test (it is NOT a result).

Writes ``benchmarks/results/guidance_estimators.json`` (or ``--out``).
Usage: ``python benchmarks/guidance_estimators.py [--tiny] [--n 200] [--sweep 9] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from critdiff.experiments.guide import GuideConfig, run_guide
from critdiff.experiments.guide_config import TC_SOURCES
from critdiff.experiments.guide_estimators import estimate
from critdiff.experiments.guide_arms import prepare

PATCH_MODELS = {"patch-textures": dict(data="textures:size=16,n=10", stencil="square:5"),
                "patch-digits": dict(data="digits:size=16,n=20", stencil="square:5")}
TINY = dict(data="textures:size=8,n=4", stencil="square:3")


class MeanClassifier:
    """Logits ``-|x - mu_c|^2 / 8`` on the class means of the training images; embed = the flattened image."""

    def __init__(self, images, labels):
        self.mu = torch.stack([images[labels == c].mean(0).flatten() for c in range(int(labels.max()) + 1)]).double()

    def logits(self, x):
        return -((x.flatten(1).double()[:, None] - self.mu[None]) ** 2).sum(-1) / 8.0

    def embed(self, x):
        return x.flatten(1).double()


def estimates(cfg: GuideConfig, setup, classifier) -> dict:
    """Every estimator on one model: its record or the reason it has none, with its wall time."""
    out = {}
    for name in TC_SOURCES:
        t0 = time.perf_counter()
        try:
            tc = estimate(name, cfg, setup.images, setup.model, classifier)
            out[name] = {"logsnr": tc.logsnr, "t": tc.t, "sigma_over_a": tc.sigma_over_a, "ci": tc.logsnr_ci}
        except ValueError as exc:
            out[name] = {"error": str(exc)}
        out[name]["seconds"] = time.perf_counter() - t0
    return out


def one_model(name: str, cfg: GuideConfig, folder: Path) -> dict:
    """Estimators and the sweep on one model."""
    setup = prepare(cfg)
    clf = MeanClassifier(setup.images, setup.labels)
    est = estimates(cfg, setup, clf)
    r = run_guide(cfg, folder / name, progress=False, classifier=clf, log=lambda m: None)
    peak = r.sweep_peak["logp_peak_logsnr"]
    for v in est.values():
        if "logsnr" in v:
            v["minus_peak"] = v["logsnr"] - peak
    return {"model": name, "config": cfg.to_dict(), "sweep": r.sweep, "peak_logsnr": peak, "estimators": est}


def leave_one_out(rows: list[dict]) -> dict:
    """Per estimator: mean |estimate + median(minus_peak of the other models) ... - peak| over held-out models."""
    out = {}
    for name in TC_SOURCES:
        d = [r["estimators"][name].get("minus_peak") for r in rows]
        if len(rows) < 2 or any(v is None for v in d):
            out[name] = None
            continue
        errs = [abs(d[i] - float(np.median([d[j] for j in range(len(d)) if j != i]))) for i in range(len(d))]
        out[name] = float(np.mean(errs))
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="seconds-sized smoke test (not a result)")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--sweep", type=int, default=9)
    ap.add_argument("--out", default="benchmarks/results/guidance_estimators.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    models = {"tiny-patch": TINY} if args.tiny else PATCH_MODELS
    sizes = dict(n=6, batch=6, steps=8, sweep=3, width=2.0, n_boot=50, n_boot_set=10) if args.tiny else \
        dict(n=args.n, batch=50, steps=20, sweep=args.sweep)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [one_model(k, GuideConfig(model="patch", arms=("tc", "random", "sweep"), **v, **sizes), Path(tmp))
                for k, v in models.items()]
    res = {"tiny": args.tiny, "rows": rows, "leave_one_out_error": leave_one_out(rows),
           "seconds": time.perf_counter() - t0, "platform": platform.platform(), "torch": torch.__version__}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1, default=float))
    return res


if __name__ == "__main__":
    main()
