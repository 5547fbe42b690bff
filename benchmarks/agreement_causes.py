"""Benchmark summary: the agreement runs of issue #27 side by side (docs/agreement.md, "Causes of the gap").

Reads the logs of finished or partial ``bench_agreement.py`` runs (``NAME=FOLDER`` pairs), and prints and writes
(``--json``) one row per run: seeds, median r with its bootstrap 95% interval, quartiles, wall and CPU time per seed, the
stencil per level and the per-level denoiser r; and for each ``--pair A,B`` the paired differences r(A) - r(B) on
their common seeds (median and bootstrap interval of the median, mean, seeds where A is larger). Runs that have not
reached a seed yet are listed with their calibration only (and the final rule's selection, when it finished).

Usage: ``python benchmarks/agreement_causes.py ref_ls=/work/runs/agree/ref_ls ref_ls_cond=... --pair ref_ls_cond,ref_ls
--json benchmarks/results/agreement_causes.json``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from critdiff.experiments.agreement import LOG
from critdiff.probes.agreement import median_summary


def _records(folder: Path) -> list[dict]:
    out = []
    for line in (folder / LOG).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a torn last line of a run still in progress
            break
    return out


def summarise(name: str, folder: Path, n_boot: int) -> dict:
    recs = _records(folder)
    cfg = recs[0]["config"]
    cal = next((r for r in recs if r["type"] == "stencil-calibration"), None)
    table = next((r for r in recs if r["type"] in ("stencil-calibration", "calibration-table")), None)
    seeds = sorted((r for r in recs if r["type"] == "seed"), key=lambda r: r["seed"])
    r = np.array([np.nan if s["r"] is None else s["r"] for s in seeds], dtype=np.float64)
    row = {"name": name, "folder": str(folder), "net": cfg["net"], "conditional": cfg.get("conditional", False),
           "stencils": cfg["stencils"], "stencil_rule": cfg["stencil_rule"], "n": len(seeds),
           "seeds": [s["seed"] for s in seeds], "r": r.tolist(),
           "level_stencil": cal["stencils"] if cal else None,
           "calibration_seconds": table["seconds"] if table else None,
           "calibration_cpu_seconds": table.get("cpu_seconds") if table else None,
           "calibration": table["calibration"] if table else None,
           "final": cal.get("final") if cal else None}
    if seeds:
        row["summary"] = median_summary(r, n_boot=n_boot)
        row["seconds_per_seed"] = float(np.mean([s["seconds"] for s in seeds]))
        cpu = [s["cpu_seconds"] for s in seeds if "cpu_seconds" in s]  # older logs record wall time only
        row["cpu_seconds_per_seed"] = float(np.mean(cpu)) if cpu else None
        row["n_cpu"] = len(cpu)
        lr = np.array([[np.nan if v is None else v for v in s["level_r"]] for s in seeds], dtype=np.float64)
        row["level_r_median"] = np.nanmedian(lr, axis=0).tolist()
    return row


def paired(a: dict, b: dict, n_boot: int) -> dict:
    ra = dict(zip(a["seeds"], a["r"]))
    rb = dict(zip(b["seeds"], b["r"]))
    common = sorted(set(ra) & set(rb))
    d = np.array([ra[j] - rb[j] for j in common], dtype=np.float64)
    out = {"a": a["name"], "b": b["name"], "n": len(common)}
    if common:
        out.update(median_summary(d, n_boot=n_boot), mean=float(np.nanmean(d)), a_larger=int((d > 0).sum()))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="NAME=FOLDER of a bench_agreement.py run")
    p.add_argument("--pair", action="append", default=[], help="A,B: paired differences r(A) - r(B)")
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--json", help="write the rows and pairs here")
    args = p.parse_args(argv)
    rows = {}
    for spec in args.runs:
        name, _, folder = spec.partition("=")
        if not folder or not (Path(folder) / LOG).is_file():
            print(f"agreement_causes: expected NAME=FOLDER with {LOG} inside, got {spec!r}", file=sys.stderr)
            return 2
        rows[name] = summarise(name, Path(folder), args.n_boot)
    pairs = []
    for spec in args.pair:
        a, _, b = spec.partition(",")
        if a not in rows or b not in rows:
            print(f"agreement_causes: --pair expects two run names, got {spec!r}", file=sys.stderr)
            return 2
        pairs.append(paired(rows[a], rows[b], args.n_boot))
    for row in rows.values():
        s = row.get("summary")
        txt = (f"median r {s['median']:.4g} [{s['median_ci'][0]:.4g}, {s['median_ci'][1]:.4g}] IQR {s['q25']:.4g}.."
               f"{s['q75']:.4g}, {row['seconds_per_seed']:.1f} s/seed" if s else "no seed yet")
        if s and row["cpu_seconds_per_seed"] is not None:
            txt += f" ({row['cpu_seconds_per_seed']:.2f} CPU s/seed over {row['n_cpu']} seeds)"
        print(f"{row['name']}: n {row['n']}, {txt}; stencils {row['level_stencil']}")
        if row.get("level_r_median"):
            print("  per-level r:", ", ".join(f"{v:.4g}" for v in row["level_r_median"]))
        if row["final"]:
            print("  final rule:", row["final"]["chosen"], {k: round(v, 4) for k, v in row["final"]["median_r"].items()})
    for pr in pairs:
        if pr["n"]:
            print(f"{pr['a']} - {pr['b']}: n {pr['n']}, median diff {pr['median']:+.4g} [{pr['median_ci'][0]:+.4g}, "
                  f"{pr['median_ci'][1]:+.4g}], mean {pr['mean']:+.4g}, larger on {pr['a_larger']}/{pr['n']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": list(rows.values()), "pairs": pairs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
