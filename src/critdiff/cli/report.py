"""``critdiff report OUT``: re-render OUT/report.html from OUT/results.json (no recomputation)."""

from __future__ import annotations

from ..report.demo import write_demo_report


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="re-render OUT/report.html from OUT/results.json without recomputing")
    p.add_argument("out", help="output folder of a critdiff demo run")
    p.set_defaults(run=run)


def run(args) -> int:
    path = write_demo_report(args.out)
    print(f"wrote {path}")
    return 0
