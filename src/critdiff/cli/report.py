"""``critdiff report OUT``: re-render OUT/report.html from OUT/results.json (a demo) or OUT/result.json (any
command), no recomputation."""

from __future__ import annotations

from ..report.folder import write_folder_report


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="re-render OUT/report.html from OUT/results.json or OUT/result.json without "
                                      "recomputing")
    p.add_argument("out", help="output folder of a critdiff demo run or of any command")
    p.set_defaults(run=run)


def run(args) -> int:
    path = write_folder_report(args.out)
    print(f"wrote {path}")
    return 0
