"""``critdiff probe``: measure the critical time of a model with every probe, and the theory's for the patch model."""

from __future__ import annotations

import json
import sys

from ..experiments.context import Context
from ..experiments.probe import ProbeConfig, run_probe
from .common import add_out_arg, threads_of
from .generate import add_config_args, config_from_args

CONFIG = ProbeConfig


def add_parser(sub) -> None:
    p = sub.add_parser("probe", help="measure t_c (stiffness, xi, chi) with bootstrap intervals; compare with theory")
    add_config_args(p, ProbeConfig)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    add_out_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..report.probe import render_probe

    cfg = config_from_args(ProbeConfig, args)
    with threads_of(cfg):
        res = run_probe(cfg, Context(args.out, progress=not args.json))
    render_probe(res, folder=args.out)  # draws the figures into OUT
    if args.json:
        rec = res.to_dict()
        json.dump({k: rec[k] for k in ("signals", "combined", "ensemble_combined", "nfe", "theory")}, sys.stdout)
        sys.stdout.write("\n")
    else:
        c, e = res.combined, res.ensemble_combined
        print(f"wrote {args.out}/result.json and figures; combined logsnr_c = {c['logsnr_c']} "
              f"(t_c = {c['t_c']}; {c.get('source')}); sampler ensemble logsnr_c = {e['logsnr_c']}; "
              f"{res.nfe['total_per_sample']:.0f} NFE per sample, {res.seconds['total']:.1f} s")
    return 0
