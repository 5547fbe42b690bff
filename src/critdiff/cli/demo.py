"""``critdiff demo``: the main job; writes OUT/report.html and OUT/results.json."""

from __future__ import annotations

from ..experiments.demo import run_demo
from ..report.folder import write_demo_report
from .common import add_run_args


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="run the main job on the bundled data and write the HTML report")
    p.add_argument("--out", default="out/demo", help="output folder (default: %(default)s); reruns resume from it")
    p.add_argument("--quick", action="store_true", help="smaller settings (for tests)")
    add_run_args(p, only=("device", "max_memory"))
    p.set_defaults(run=run)


def run(args) -> int:
    results = run_demo(args.out, quick=args.quick, device=args.device)
    print(f"[demo] wrote {write_demo_report(args.out)} and {results}")
    return 0
