"""``critdiff demo``: the main job; writes OUT/report.html and OUT/results.json."""

from __future__ import annotations

from ..experiments.demo import run_demo
from ..report.folder import write_demo_report
from .common import add_run_args


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="run the main job on the bundled data and write the HTML report")
    p.add_argument("--out", default="out/demo", help="output folder (default: %(default)s); reruns resume from it")
    p.add_argument("--quick", action="store_true", help="smaller settings (for tests)")
    p.add_argument("--jobs", type=int, default=None,
                   help="sections run at a time, each in its own process (default: 2 on a CPU with 2 or more cores)")
    p.add_argument("--verbose", action="store_true", help="also print the guidance section's per-trial lines")
    add_run_args(p, only=("device", "max_memory"))
    p.set_defaults(run=run)


def run(args) -> int:
    results = run_demo(args.out, quick=args.quick, device=args.device, jobs=args.jobs, verbose=args.verbose)
    print(f"[demo] wrote {write_demo_report(args.out)} and {results}")
    return 0
