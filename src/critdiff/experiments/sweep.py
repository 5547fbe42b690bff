"""``critdiff sweep SPEC.toml``: a grid of probe and/or guide runs, run through an executor, in one table.

The spec (TOML) has a ``[probe]`` and/or a ``[guide]`` table: its keys are fields of :class:`ProbeConfig` /
:class:`GuideConfig` held fixed, its ``grid`` sub-table the axes (each a non-empty list; every combination is one
unit, in the order the axes are written); ``[guide]`` may name a ``classifier`` folder for the metrics::

    [probe]
    data = "textures:size=12,n=6"
    steps = 8
    [probe.grid]
    model = ["patch", "gaussian"]
    seed = [0, 1]

Each unit is one run (``run_probe`` / ``run_guide``) in ``OUT/units/KEY`` (``KEY``: the kind and the hash of the
run's configuration); its row (the grid values and the headline numbers) goes to ``OUT/sweep.jsonl``, written by
the driver only (:class:`.guide_store.TrialLog`: append-only, resumable). A rerun skips the finished units and
retries the failed ones; ``result.json`` (the :class:`SweepResult`) and ``sweep.csv`` are rewritten atomically.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from ..io import atomic_write_text, config_hash
from .context import Context, ContextLike, as_context
from .guide.config import GuideConfig
from .guide.store import TrialLog
from .probe import ProbeConfig
from .result import Result

KINDS = {"probe": ProbeConfig, "guide": GuideConfig}
EXTRA = {"probe": (), "guide": ("classifier",)}  # spec keys of a section that are not configuration fields
UNIT = {"unit": ("key", "kind", "status")}


@dataclass(frozen=True)
class SweepResult(Result):
    """A sweep: one row per unit (``kind``, ``key``, the grid values, ``status`` ok | failed, headline numbers)."""

    kind = "sweep"
    spec: dict
    status: Literal["complete", "incomplete"]
    rows: tuple[dict, ...] = ()


@dataclass(frozen=True)
class Unit:
    kind: str
    key: str
    axes: dict
    config: dict
    classifier: Optional[str] = None


def sweep_units(spec: dict) -> list[Unit]:
    """The units of a spec (module docstring); a one-line ``ValueError`` naming the offending key."""
    if not isinstance(spec, dict) or not spec:
        raise ValueError(f"spec: expected a [probe] and/or [guide] table, got {spec!r}")
    units = []
    for section, body in spec.items():
        if section not in KINDS:
            raise ValueError(f"spec: unknown table [{section}]; expected {' or '.join(f'[{k}]' for k in KINDS)}")
        if not isinstance(body, dict):
            raise ValueError(f"spec: {section}: expected a table, got {type(body).__name__}")
        units += _section_units(section, body)
    first: dict = {}
    for u in units:  # distinct grid values can still make one run (seed 0 and 0.0, a field set to its default)
        if u.key in first:
            raise ValueError(f"spec: {u.kind}: the grid values {first[u.key].axes} and {u.axes} make the same run; "
                             "each unit must differ")
        first[u.key] = u
    return units


def _section_units(section: str, body: dict) -> list[Unit]:
    cls = KINDS[section]
    grid = body.get("grid", {})
    if not isinstance(grid, dict):
        raise ValueError(f"spec: {section}.grid: expected a table of lists, got {type(grid).__name__}")
    fields = set(cls.__dataclass_fields__)
    base = {k: v for k, v in body.items() if k != "grid" and k not in EXTRA[section]}
    for key in list(base) + list(grid):
        if key not in fields:
            where = f"{section}.grid.{key}" if key in grid else f"{section}.{key}"
            raise ValueError(f"spec: {where}: unknown key; expected a field of {cls.__name__} or "
                             f"{', '.join(('grid',) + EXTRA[section])}")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"spec: {section}.grid.{key}: expected a non-empty list of values, got {values!r}")
        seen = [json.dumps(v, sort_keys=True) for v in values]
        repeated = sorted({v for v in seen if seen.count(v) > 1})
        if repeated:
            raise ValueError(f"spec: {section}.grid.{key}: the value {repeated[0]} is given more than once; each unit "
                             "would run twice into one folder")
    classifier = body.get("classifier")
    if classifier is not None and not isinstance(classifier, str):
        raise ValueError(f"spec: {section}.classifier: expected a folder name or pretrained:NAME, got {classifier!r}")
    units = []
    for combo in itertools.product(*grid.values()):
        axes = dict(zip(grid, combo))
        try:
            cfg = cls.from_dict({**base, **axes}).validate()
        except (ValueError, TypeError) as exc:
            raise ValueError(f"spec: {section}: {str(exc).splitlines()[0]}") from None
        key = f"{section}-{config_hash(cfg.identity())}"
        units.append(Unit(section, key, axes, cfg.to_dict(), classifier))
    return units


def _probe_row(result) -> dict:
    c = result.combined or {}
    return {"logsnr_c": c.get("logsnr_c"), "logsnr_ci": c.get("logsnr_ci"),
            "theory_logsnr_c": (result.theory or {}).get("logsnr_c"), "seconds": result.seconds.get("total")}


def _guide_row(result) -> dict:
    row = {"tc_logsnr": result.tc.logsnr, "guide_status": result.status}
    for r in result.table:
        row[f"accuracy {r['arm']}"] = r["accuracy"]
    return row


def sweep_unit(state, unit: Unit) -> dict:
    """``work`` of the executor: run one unit in its folder; its log record (the row)."""
    from ..threads import torch_threads
    from .guide.run import run_guide
    from .probe import run_probe

    t0 = time.perf_counter()
    ctx = Context.quiet(Path(state["out"]) / "units" / unit.key)  # a unit shows no bar and logs nothing
    cfg = KINDS[unit.kind].from_dict(unit.config)
    with torch_threads(cfg.threads):
        if unit.kind == "probe":
            row = _probe_row(run_probe(cfg, ctx))
        else:
            from ..pretrained import load_classifier

            clf = load_classifier(unit.classifier) if unit.classifier else None
            row = _guide_row(run_guide(cfg, ctx, classifier=clf))
    return {"type": "unit", "key": unit.key, "kind": unit.kind, "status": "ok", "axes": unit.axes,
            "row": {**row, "seconds": time.perf_counter() - t0}}


@dataclass(frozen=True)
class _Out:
    """``setup`` of a sweep worker: only the output folder (each unit loads its own model)."""

    out: str

    def __call__(self) -> dict:
        return {"out": self.out}


def _rows(units: list[Unit], log: TrialLog) -> list[dict]:
    latest = {r["key"]: r for r in log.of_type("unit")}  # the last record of a key wins (a retried failure)
    rows = []
    for u in units:
        rec = latest.get(u.key)
        status = "pending" if rec is None else rec["status"]
        rows.append({"kind": u.kind, "key": u.key, **u.axes, "status": status,
                     **((rec or {}).get("row") or {}), **({"error": rec["error"]} if status == "failed" else {})})
    return rows


def write_table(out: Path, rows: list[dict]) -> None:
    """``sweep.csv``: one line per unit, the union of the rows' columns (atomically)."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "sweep.csv", buf.getvalue())


def run_sweep(spec: dict, ctx: ContextLike) -> SweepResult:
    """Run (or resume) the sweep ``spec`` in ``ctx.out`` through ``ctx.executor``; write ``result.json`` and
    ``sweep.csv``; ``ctx.log`` takes a line per unit (``ctx``: a :class:`~critdiff.experiments.context.Context` or
    an output folder)."""
    from .preflight import check_grid, check_units

    ctx = as_context(ctx)
    log = ctx.log
    check_grid(spec)
    units = sweep_units(spec)
    check_units(units, KINDS)  # every unit's inputs before any unit runs or any file is written
    out = ctx.folder()
    unit_log = TrialLog(out / "sweep.jsonl", {"spec": spec}, required=UNIT)
    finished = {r["key"] for r in unit_log.of_type("unit") if r["status"] == "ok"}
    todo = [(u.key, u) for u in units if u.key not in finished]
    log(f"[sweep] {len(units)} units, {len(units) - len(todo)} already finished")

    def done(key: str, outcome) -> None:
        rec = outcome.record if outcome.ok else {"type": "unit", "key": key, "kind": key.split("-")[0],
                                                 "status": "failed", "error": outcome.error,
                                                 "attempts": outcome.attempts}
        unit_log.append(rec)
        log(f"[sweep] {key}: {rec['status']}" + (f" ({rec['error']})" if not outcome.ok else ""))

    try:
        ctx.executor.run(_Out(str(out)), sweep_unit, todo, done)
    finally:  # the table holds what finished, also after Ctrl-C
        rows = _rows(units, unit_log)
        status = "complete" if all(r["status"] == "ok" for r in rows) else "incomplete"
        result = SweepResult(spec=spec, status=status, rows=tuple(rows))
        ctx.save(result)
        write_table(out, rows)
    return result
