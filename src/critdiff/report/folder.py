"""The report of an output folder, rendered from its results alone (no recomputation; ``critdiff report OUT``):
``OUT/results.json`` (the demo's sections, :func:`write_demo_report`) or ``OUT/result.json`` (one command's
result, written by every command: :func:`write_run_report`)."""

from __future__ import annotations

import json
from pathlib import Path

from ..experiments.demo.run import TITLE
from ..experiments.result import RESULT_FILE, result_from_record
from ..inputs import Fields, read_json
from ..io import atomic_write_text
from .demo_summary import VERDICT_RULES, demo_findings
from .html import render_html, write_report
from .render import render


def read_results(out_dir: "str | Path") -> "tuple[dict, list]":
    """``OUT/results.json`` validated as an input (:mod:`critdiff.inputs`): ``(document, [(key, entry, result)])``.

    Each section needs ``kind`` (a registered result type), ``result`` (an object that rebuilds that result),
    ``folder`` (a relative path inside ``OUT``) and optionally ``render`` (an object); a failure names the file
    and the field (``sections.KEY.result``)."""
    out = Path(out_dir)
    path = out / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"out: {str(out)!r} holds no results.json nor {RESULT_FILE} (run critdiff demo --out "
                                f"{out}, or any command with --out {out}, first)")
    doc = read_json(path, "out", "results file")
    top = Fields(doc, path, "out")
    top.text("title", default=TITLE)
    top.object("meta", default={})
    sections = top.object("sections")
    entries = []
    for key in sections.doc:
        f = sections.object(key)
        f.text("kind")
        f.object("result")
        folder = f.text("folder")
        if Path(folder).is_absolute() or ".." in Path(folder).parts:
            raise f.fail("folder", "a folder inside OUT (relative, without '..')", folder)
        f.object("render", default={})
        try:
            result = result_from_record(f.doc)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"out: {str(path)!r}: field 'sections.{key}.result' does not hold a {f.doc['kind']} "
                             f"result ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        entries.append((key, f.doc, result))
    return doc, entries


def write_demo_report(out_dir: "str | Path") -> Path:
    """Render ``OUT/report.html`` from ``OUT/results.json`` alone (no recomputation)."""
    out = Path(out_dir)
    doc, entries = read_results(out)
    sections, results = [], {}
    for key, entry, result in entries:
        results[key] = result
        try:
            sec = render(result, folder=out / entry["folder"], key=key, **entry.get("render", {}))
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"out: {str(out / 'results.json')!r}: section {key!r} cannot be rendered "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
        sec.folder = entry["folder"]
        sections.append(sec)
    return atomic_write_text(out / "report.html", render_html(out, doc.get("title", TITLE), sections, doc.get("meta"),
                                                              summary=demo_findings(results), summary_note=VERDICT_RULES))


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
