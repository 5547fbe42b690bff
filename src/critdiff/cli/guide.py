"""``critdiff guide``: guidance pulses at the critical time against pulses at random times (DESIGN.md section 5)."""

from __future__ import annotations

from ..experiments.context import Context
from ..experiments.guide import GuideConfig, run_guide
from .common import add_executor_args, add_out_arg, executor_of, threads_of
from .generate import add_config_args, config_from_args

CONFIG = GuideConfig


def add_parser(sub) -> None:
    p = sub.add_parser("guide", help="guidance pulses at the critical time vs random times, constant, interval, adaptive")
    add_config_args(p, GuideConfig)
    p.add_argument("--classifier", default=None,
                   help="folder of the evaluation classifier (critdiff train-classifier) or pretrained:NAME (shipped: "
                        "mnist28-clf); without it only the samples "
                        "are produced and the metrics wait for it")
    p.add_argument("--verbose", action="store_true", help="a line per trial (accuracy, log p, NFE, time)")
    add_executor_args(p)
    add_out_arg(p, help_text="output folder; trials stream to OUT/trials.jsonl and a rerun resumes")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..pretrained import load_classifier
    from ..report.fmt import num
    from ..report.guide import arms_rows
    from ..report.folder import write_run_report

    cfg = config_from_args(GuideConfig, args).validate()
    classifier = load_classifier(args.classifier, device=cfg.torch_device) if args.classifier else None
    with threads_of(cfg), executor_of(args, cfg.device) as executor:
        result = run_guide(cfg, Context(args.out, executor=executor), classifier=classifier, verbose=args.verbose)
    if result.status == "no-classifier":
        print(f"critical time: logsnr {result.tc.logsnr:.4f} ({result.tc.source})")
        for arm, r in (result.arms or {}).items():
            div = r["pixel_diversity"]
            div = "-" if div is None or div != div else f"{div:.4g}"  # no class with two samples
            print(f"{arm:>14s}  NFE {r['nfe']['diff']:.1f}  pixel diversity {div}  (n {r['n']})")
        print(f"wrote the samples to {args.out}/trials.jsonl; rerun with --classifier DIR (and --data SPEC) for "
              "accuracy, log p and FD")
        return 0
    write_run_report(args.out, {"model": cfg.model, "data": cfg.data})
    for row in arms_rows(result):
        print(f"{row['arm']:>14s}  acc {row['accuracy [95% CI]']}  log p {row['log p [95% CI]']}  NFE {num(row['NFE'])}"
              + (f"  d_logp vs random {row['d_logp vs random [95% CI]']}" if "d_logp vs random [95% CI]" in row else ""))
    print(f"wrote {args.out}/report.html, summary.json, result.json, trials.jsonl")
    return 0
