"""Render a :class:`~critdiff.experiments.sweep.SweepResult`: one row per unit of the grid."""

from __future__ import annotations

from .html import Section, table

QUESTION = "What did each run of the sweep's grid find, and did every run finish?"


def render_sweep(result, folder=".", key: str = "sweep", **options) -> Section:
    rows = [dict(r) for r in result.rows]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "pending")}
    findings = [f"{counts['ok']} of {len(rows)} runs finished"
                + (f"; {counts['failed']} failed (see the error column; a rerun retries them)" if counts["failed"] else "")
                + (f"; {counts['pending']} not run yet" if counts["pending"] else "") + "."]
    html = (f"<p>Grid of {len(rows)} runs (kinds: {', '.join(sorted({r['kind'] for r in rows}))}); full numbers in "
            "<code>result.json</code> and <code>sweep.csv</code>, each run's own files in <code>units/KEY</code>.</p>"
            + table(rows))
    return Section(key=key, title="Sweep", html=html, question=QUESTION, findings=findings, folder=str(folder))
