"""``critdiff guide``: guidance pulses at the critical time against pulses at random times (DESIGN.md section 5)."""

from __future__ import annotations

from ..experiments.guide import ARMS, GuideConfig, load_classifier, parse_arms, run_guide
from .common import add_model_args


def add_parser(sub) -> None:
    p = sub.add_parser("guide", help="guidance pulses at the critical time vs random times, constant, interval, adaptive")
    add_model_args(p)
    p.add_argument("--classifier", default=None,
                   help="folder of the evaluation classifier (critdiff train-classifier); without it only the samples "
                        "are produced and the metrics wait for it")
    p.add_argument("--arms", default="all", help=f"comma-separated arms from {', '.join(ARMS)}, or all (default: %(default)s)")
    p.add_argument("--n", type=int, default=48, help="samples per arm, intended classes balanced (default: %(default)s)")
    p.add_argument("--batch", type=int, default=24, help="samples per trial (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (noise shared by every arm)")
    p.add_argument("--schedule", default="vp-linear", help="noise schedule (default: %(default)s)")
    p.add_argument("--sampler", default="ddpm", help="sampler spec (default: %(default)s)")
    p.add_argument("--spacing", default="logsnr", choices=["t", "logsnr", "karras"], help="sigma grid spacing")
    p.add_argument("--steps", type=int, default=20, help="sampler steps (default: %(default)s)")
    p.add_argument("--height", type=float, default=3.0, help="peak guidance weight w of pulses and constant guidance")
    p.add_argument("--width", type=float, default=3.0, help="pulse width in logsnr (equivalent width; default: %(default)s)")
    p.add_argument("--baseline", type=float, default=0.0, choices=[0.0, 1.0],
                   help="w outside pulses: 0 unconditional, 1 conditional (default: %(default)s)")
    p.add_argument("--shape", default="box", choices=["box", "gauss"], help="pulse shape in logsnr")
    p.add_argument("--sweep", type=int, default=5, help="pulse centres in the sweep (default: %(default)s)")
    p.add_argument("--tc-logsnr", type=float, default=None,
                   help="critical logsnr; default: the theory (patch model) or the probe estimator")
    p.add_argument("--interval", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="logsnr interval of the interval arm (default: Kynkaanniemi et al. 2024)")
    p.add_argument("--indicator", default="x0-rate", choices=["x0-rate", "x0-contrast"], help="online indicator of the adaptive arm")
    p.add_argument("--threshold", type=float, default=None, help="adaptive threshold (default: calibrated on pilot samples)")
    p.add_argument("--out", required=True, help="output folder; trials stream to OUT/trials.jsonl and a rerun resumes")
    p.set_defaults(run=run)


def run(args) -> int:
    if args.data is None:
        raise ValueError("data: the guidance experiment needs a labelled data set (--data SPEC)")
    cfg = GuideConfig(model=args.model, data=args.data, stencil=args.stencil, equivariant=not args.local,
                      boundary=args.boundary, pool=args.pool, schedule=args.schedule, sampler=args.sampler,
                      spacing=args.spacing, steps=args.steps, n=args.n, batch=args.batch, seed=args.seed,
                      height=args.height, width=args.width, baseline=args.baseline, shape=args.shape,
                      arms=parse_arms(args.arms), sweep=args.sweep, tc_logsnr=args.tc_logsnr,
                      interval=None if args.interval is None else tuple(args.interval), indicator=args.indicator,
                      threshold=args.threshold)
    classifier = load_classifier(args.classifier) if args.classifier else None
    summary = run_guide(cfg.validate(), args.out, classifier=classifier)
    if summary.get("summary", True) is None:
        print(f"wrote the samples to {args.out}/trials.jsonl; rerun with --classifier DIR for the metrics")
        return 0
    from ..experiments.guide import guide_section
    from ..report.html import write_report

    write_report(args.out, "critdiff guide", [guide_section(summary, args.out)], {"model": cfg.model, "data": cfg.data})
    for row in summary["table"]:
        print(f"{row['arm']:>14s}  acc {row['accuracy']:.3f}  logp {row['logp']:+.3f}  NFE {row['NFE']:.1f}  "
              f"{row.get('d_logp vs random [95% CI]', '')}")
    print(f"wrote {args.out}/report.html, summary.json, trials.jsonl")
    return 0
