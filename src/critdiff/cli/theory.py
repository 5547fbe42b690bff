"""``critdiff theory``: the linear-stability theory of the patch model on a data set (docs/theory.md)."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("theory", help="critical time, critical mode and correlation length of the patch model")
    p.add_argument("--data", required=True, help="data spec, e.g. 'stripes:size=16,wavelength=4'")
    p.add_argument("--stencil", default="square:5", help="stencil spec (square:K, cross:R, dilated:K,D)")
    p.add_argument("--schedule", default="vp-linear", help="schedule spec (vp-linear, vp-cosine, ve, edm)")
    p.add_argument("--uniform-weights", action="store_true", help="high-noise approximation (plain patch covariance)")
    p.add_argument("--json", action="store_true", help="write one JSON object to stdout")
    p.add_argument("--out", default="critdiff-theory", help="folder for the figures")
    p.add_argument("--seed", type=int, default=None, help="data seed")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
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
