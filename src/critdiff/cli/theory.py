"""``critdiff theory``: the linear-stability theory of the patch model on a data set (docs/theory.md)."""

from __future__ import annotations

import argparse
import json
import sys

from ..experiments.theory_section import TheoryConfig, run_theory
from ..fmt import num
from ..times import Time
from .common import add_out_arg, add_run_args
from .generate import add_config_args, config_from_args

CONFIG = TheoryConfig


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("theory", help="critical time, critical mode and correlation length of the patch model")
    add_config_args(p, TheoryConfig)
    p.add_argument("--json", action="store_true", help="write one JSON object to stdout")
    add_run_args(p, only=("device", "max_memory"))
    add_out_arg(p, required=False, default="critdiff-theory", help_text="folder for the figures (default: %(default)s)")
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    from ..report.theory import write_figures

    cfg = config_from_args(TheoryConfig, args)
    result = run_theory(cfg, args.out, device=args.device)  # usage errors: one line, exit 2 (critdiff.cli.guarded)
    figures = write_figures(result, args.out)
    if args.json:
        json.dump({**result.analysis, "data": cfg.data, "figures": figures}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    _print(result, figures)
    return 0


def _print(result, figures: list) -> None:
    a, cp = result.analysis, result.analysis["critical"]
    print(f"data {result.config.data}  stencil {a['stencil']}  schedule {a['schedule']}  weights {a['weights']}")
    if a["found"]:
        print(f"critical point: {Time(a['t_c'], a['logsnr_c'], a['sigma_over_a_c']).format()}")
        if a["preferred_mode"]:
            print(f"critical mode: k* = ({a['k_star'][0]:.6g}, {a['k_star'][1]:.6g}) rad/pixel  |k*| = {a['k_star_abs']:.6g}")
    if a["message"]:
        print(a["message"])
    for name, v in cp["instability"].items():
        where = Time.from_dict(v).format() if v["found"] else v["message"]
        print(f"{name} sampler instability ({v['name']}): {where}")
    sp = a["global_speciation"]
    print(f"global model speciation: logsnr = {num(sp['logsnr_c'])}, sigma/a = {num(sp['sigma_over_a_c'])}")
    print("figures: " + ", ".join(figures))
