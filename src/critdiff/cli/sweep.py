"""``critdiff sweep SPEC.toml``: a grid of probe and/or guide runs through an executor (docs/scale.md)."""

from __future__ import annotations

from pathlib import Path

from .common import add_executor_args, add_out_arg, add_run_args, executor_of


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="a grid of probe and/or guide runs (TOML spec), serial or on Ray; resumable")
    p.add_argument("spec", help="sweep spec (TOML): [probe] and/or [guide] tables with a grid sub-table")
    add_executor_args(p)
    add_run_args(p, only=("max_memory",))
    add_out_arg(p, help_text="output folder: sweep.jsonl (resumable log), result.json, sweep.csv, report.html, units/")
    p.set_defaults(run=run)


def read_spec(path: "str | Path") -> dict:
    """The TOML spec at ``path`` (:func:`critdiff.inputs.read_toml`); a one-line error naming ``spec`` when it is
    missing or not valid TOML."""
    from ..inputs import read_toml

    return read_toml(path, "spec")


def run(args) -> int:
    from ..experiments.context import Context
    from ..experiments.sweep import run_sweep, sweep_units
    from ..report.html import write_report
    from ..report.render import render

    spec = read_spec(args.spec)
    units = sweep_units(spec)  # spec errors before any worker starts
    devices = {u.config.get("device", "cpu") for u in units}
    with executor_of(args, "cuda" if any(d.startswith("cuda") for d in devices) else "cpu") as executor:
        result = run_sweep(spec, Context(args.out, executor=executor))
    write_report(args.out, "critdiff sweep", [render(result, folder=args.out)], {"spec": args.spec})
    failed = sum(r["status"] != "ok" for r in result.rows)
    print(f"wrote {args.out}/result.json, sweep.csv, report.html ({len(result.rows) - failed} of {len(result.rows)} "
          f"runs finished{'; rerun to retry the others' if failed else ''})")
    return 0
