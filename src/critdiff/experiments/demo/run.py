"""``critdiff demo``: the main job. Runs each section on the bundled data and writes one self-contained
HTML report (``report.html``) plus ``results.json`` holding every section's result.

Each section is ``run(folder) -> Result``; its result is cached as ``OUT/sections/<key>-<hash>/result.json``
(hash of the section's configuration), so an interrupted demo resumes where it stopped and a finished
section is never recomputed. The report is rendered from the results alone (:func:`write_demo_report`),
which is also what ``critdiff report OUT`` does: the same ``results.json`` gives the same HTML.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ...io import config_hash, save_json
from ...threads import torch_threads
from .sections import DemoSection, demo_sections
from ..result import Result, result_from_record

TITLE = "critdiff demo report"


def _cached(out: Path, sec: DemoSection, log) -> tuple[str, Result]:
    folder = out / "sections" / f"{sec.key}-{config_hash(sec.config)}"
    done = folder / "result.json"
    if done.exists():
        log(f"[demo] {sec.key}: cached ({folder.name})")
        return folder.relative_to(out).as_posix(), result_from_record(json.loads(done.read_text()))
    log(f"[demo] {sec.key}: running")
    t0 = time.perf_counter()
    with torch_threads(sec.threads):
        result = sec.run(folder)
    save_json(done, result.record())
    log(f"[demo] {sec.key}: done in {time.perf_counter() - t0:.1f} s")
    return folder.relative_to(out).as_posix(), result


def write_demo_report(out_dir: "str | Path") -> Path:
    """Render ``OUT/report.html`` from ``OUT/results.json`` alone (no recomputation)."""
    from ...io import atomic_write_text
    from ...report.html import render_html
    from ...report.render import render

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


def run_demo(out_dir: "str | Path", quick: bool = False, log=print, device: str = "cpu") -> Path:
    """Run every section (cached) on ``device``, write ``results.json`` and the report; returns the report path."""
    from ...devices import resolve as resolve_device

    resolve_device(device)  # a one-line error before anything is computed
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    entries = {}
    for sec in demo_sections(quick, device):
        folder, result = _cached(out, sec, log)
        entries[sec.key] = {**result.record(), "folder": folder, "render": sec.render_options}
    meta = {"critdiff": __import__("critdiff").__version__, "quick": quick, "torch": torch.__version__, "device": device}
    save_json(out / "results.json", {"title": TITLE, "meta": meta, "sections": entries})
    report = write_demo_report(out)
    log(f"[demo] wrote {report} and {out / 'results.json'}")
    return report
