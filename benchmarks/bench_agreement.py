"""Benchmark: Patch-model-vs-network agreement at the protocol of Kamb & Ganguli (2024) (issue #15, point 3).

Calls :func:`critdiff.experiments.agreement.run_agreement` (protocol in its docstring and in docs/agreement.md):
20-step deterministic DDIM samples of the calibrated patch model on the MNIST-5k pool and of a trained MNIST
UNet from identical noise; Pearson r per seed (median, IQR, bootstrap 95% interval of the median) and per level.
Resumable: rerun the same command (or with more ``--seeds``) and finished seeds are skipped. Writes
``OUT/agreement.jsonl`` (the log), ``OUT/result.json`` (the result), ``OUT/report.html`` (the section) and
prints the summary and the wall time per seed (to size a run). Errors and Ctrl-C are handled as the ``critdiff``
command line handles them (:func:`critdiff.cli.guarded`): one line, exit 2 or 130, finished seeds kept.

Usage: ``python benchmarks/bench_agreement.py --net pretrained:mnist28 --out runs/agreement [--seeds 100]
[--pool mnist] [--steps 20] [--batch 8] [--threads 2] [--device cuda]``; every flag: ``--help``. ``--net`` takes
the reference network that ships with critdiff (``pretrained:mnist28``, docs/models.md) or a ``critdiff train`` folder.
"""

from __future__ import annotations

import argparse
import sys

from critdiff.cli import guarded
from critdiff.cli.generate import add_config_args, config_from_args
from critdiff.devices import resolve as resolve_device
from critdiff.experiments.agreement import AgreementConfig, run_agreement
from critdiff.experiments.context import Context
from critdiff.outdir import locked_output
from critdiff.report.agreement import render_agreement
from critdiff.report.fmt import interval, num
from critdiff.report.html import write_report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_config_args(p, AgreementConfig)
    p.add_argument("--out", required=True, help="output folder (resumable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    return guarded(lambda: _run(args), prog="bench_agreement")


def _run(args) -> int:
    cfg = config_from_args(AgreementConfig, args).validate()
    resolve_device(cfg.device)  # a device this machine lacks: one line, before the folder is made
    with locked_output(args.out):
        res = run_agreement(cfg, Context(args.out, progress=not args.no_progress))
        write_report(args.out, "Patch-model-vs-network agreement", [render_agreement(res, folder=args.out)])
    s = res.summary
    print(f"seeds {s['n']} (+{s['n_nonfinite']} non-finite): median r {num(s['median'])} "
          f"{interval(*s['median_ci'])}, IQR {num(s['q25'])} to {num(s['q75'])}; anchor {res.anchor_r}")
    print(f"stencil per level: {', '.join(res.level_stencil)}")
    print(f"per-level denoiser r (median): {', '.join(num(v) for v in res.level_r_median)}")
    cpu = "" if res.cpu_seconds_per_seed is None else f", {res.cpu_seconds_per_seed:.2f} CPU s"
    cal_cpu = "" if res.calibration_cpu_seconds is None else f", {res.calibration_cpu_seconds:.1f} CPU s"
    print(f"{res.seconds_per_seed:.2f} s{cpu} per seed (batch {cfg.batch}, threads {cfg.threads}); calibration "
          f"{res.calibration_seconds:.1f} s{cal_cpu}; max certified bound {res.max_bound:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
