"""The demo's report: ``OUT/report.html`` rendered from ``OUT/results.json`` alone (``critdiff demo`` writes both;
``critdiff report OUT`` re-renders it, no recomputation)."""

from __future__ import annotations

import json
from pathlib import Path

from ..experiments.demo.run import TITLE
from ..experiments.result import result_from_record
from ..io import atomic_write_text
from .html import render_html
from .render import render


def write_demo_report(out_dir: "str | Path") -> Path:
    """Render ``OUT/report.html`` from ``OUT/results.json`` alone (no recomputation)."""
    out = Path(out_dir)
    path = out / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"out: {str(out)!r} holds no results.json (run critdiff demo --out {out} first)")
    try:
        doc = json.loads(path.read_text())
        entries = doc["sections"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"out: {str(path)!r} is not a critdiff results file ({exc})") from None
    sections = []
    for key, entry in entries.items():
        sec = render(result_from_record(entry), folder=out / entry["folder"], key=key, **entry.get("render", {}))
        sec.folder = entry["folder"]
        sections.append(sec)
    return atomic_write_text(out / "report.html", render_html(out, doc.get("title", TITLE), sections, doc.get("meta")))
