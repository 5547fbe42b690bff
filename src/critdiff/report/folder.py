"""The report of an output folder, rendered from its results alone (no recomputation; ``critdiff report OUT``):
``OUT/results.json`` (the demo's sections, :func:`write_demo_report`) or ``OUT/result.json`` (one command's
result, written by every command: :func:`write_run_report`)."""

from __future__ import annotations

import json
from pathlib import Path

from ..experiments.demo.run import TITLE
from ..experiments.result import RESULT_FILE, result_from_record
from ..io import atomic_write_text
from .html import render_html, write_report
from .render import render


def write_demo_report(out_dir: "str | Path") -> Path:
    """Render ``OUT/report.html`` from ``OUT/results.json`` alone (no recomputation)."""
    out = Path(out_dir)
    path = out / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"out: {str(out)!r} holds no results.json nor {RESULT_FILE} (run critdiff demo --out "
                                f"{out}, or any command with --out {out}, first)")
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


def _load_result(path: Path):
    try:
        return result_from_record(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"out: {str(path)!r} is not a critdiff result file ({exc})") from None


def write_run_report(out_dir: "str | Path", meta: "dict | None" = None) -> Path:
    """Render ``OUT/report.html`` from ``OUT/result.json`` (one command's result) alone."""
    out = Path(out_dir)
    path = out / RESULT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"out: {str(out)!r} holds no {RESULT_FILE}")
    result = _load_result(path)
    return write_report(out, f"critdiff {result.kind}", [render(result, folder=out)], meta)


def write_folder_report(out_dir: "str | Path") -> Path:
    """The demo's report when ``OUT`` holds ``results.json``, else the report of its ``result.json``."""
    out = Path(out_dir)
    if (out / "results.json").is_file() or not (out / RESULT_FILE).is_file():
        return write_demo_report(out)
    return write_run_report(out)
