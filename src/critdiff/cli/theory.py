"""``critdiff theory``: the linear-stability theory of the patch model on a data set (docs/theory.md)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Optional

from ..config import JsonConfig, arg
from .common import add_out_arg
from .generate import add_config_args, config_from_args


@dataclass(frozen=True)
class TheoryConfig(JsonConfig):
    """The linear theory of the patch model on one data set (docs/theory.md)."""

    data: str = arg(help="data spec, e.g. 'stripes:size=16,wavelength=4'")
    stencil: str = arg("square:5", "stencil spec (square:K, cross:R, dilated:K,D)")
    schedule: str = arg("vp-linear", "schedule spec (vp-linear, vp-cosine, ve, edm)")
    uniform_weights: bool = arg(False, "high-noise approximation (plain patch covariance)")
    seed: Optional[int] = arg(None, "data seed (default: the spec's seed=, else 0)")


CONFIG = TheoryConfig


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("theory", help="critical time, critical mode and correlation length of the patch model")
    add_config_args(p, TheoryConfig)
    p.add_argument("--json", action="store_true", help="write one JSON object to stdout")
    add_out_arg(p, required=False, default="critdiff-theory", help_text="folder for the figures (default: %(default)s)")
    p.set_defaults(run=run)
    return p


def run(args) -> int:
    cfg = config_from_args(TheoryConfig, args)
    args.data, args.stencil, args.schedule, args.uniform_weights, args.seed = (
        cfg.data, cfg.stencil, cfg.schedule, cfg.uniform_weights, cfg.seed)
    from ..data import load
    from ..theory.analysis import analyze
    from ..theory.figures import write_figures

    try:
        images, _ = load(args.data, seed=args.seed)
        report = analyze(images, args.stencil, args.schedule, weights="uniform" if args.uniform_weights else "exact")
    except (ValueError, TypeError) as e:
        print(f"critdiff theory: {e}", file=sys.stderr)
        return 2
    figures = write_figures(report, args.out)
    d = report.to_dict()
    d["data"] = args.data
    d["figures"] = figures
    if args.json:
        json.dump(d, sys.stdout)
        sys.stdout.write("\n")
        return 0
    cp = report.critical
    print(f"data {args.data}  stencil {report.stencil}  schedule {report.schedule}  weights {cp.weights}")
    if cp.found:
        print(f"critical point: t_c = {cp.t_c:.6g}  logsnr_c = {cp.logsnr_c:.6g}  sigma/a = {cp.sigma_over_a_c:.6g}")
        if cp.preferred_mode:
            print(f"critical mode: k* = ({cp.k_star[0]:.6g}, {cp.k_star[1]:.6g}) rad/pixel  |k*| = {cp.k_star_abs:.6g}")
    if cp.message:
        print(cp.message)
    for name, v in cp.instability.items():
        where = f"t = {v['t']:.6g}, logsnr = {v['logsnr']:.6g}" if v["found"] else v["message"]
        print(f"{name} sampler instability ({v['name']}): {where}")
    sp = report.speciation
    print(f"global model speciation: logsnr = {sp['logsnr_c']:.6g}  sigma/a = {sp['sigma_over_a_c']:.6g}")
    print("figures: " + ", ".join(figures))
    return 0
