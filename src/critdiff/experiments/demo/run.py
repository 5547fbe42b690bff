"""``critdiff demo``: the main job. Runs each section on the bundled data and writes ``results.json`` holding
every section's result; :func:`critdiff.report.folder.write_demo_report` renders the self-contained HTML report
(``report.html``) from it (the ``demo`` command does both).

Each section is ``run(folder) -> Result``; its result is cached as ``OUT/sections/<key>-<hash>/result.json``
(hash of the section's configuration), so an interrupted demo resumes where it stopped and a finished
section is never recomputed. The report is rendered from the results alone, which is also what
``critdiff report OUT`` does: the same ``results.json`` gives the same HTML.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ...io import config_hash, save_json
from ...progress import log_line
from ...threads import torch_threads
from .sections import DemoSection, demo_sections
from ..result import Result, result_from_record

TITLE = "critdiff demo report"


def _cached(out: Path, sec: DemoSection, log) -> tuple[str, Result]:
    folder = out / "sections" / f"{sec.key}-{config_hash(sec.config)}"
    done = folder / "result.json"
    if done.exists():
        log(f"[demo] {sec.key}: cached ({folder.name})")
        from ...inputs import read_json

        try:
            return folder.relative_to(out).as_posix(), result_from_record(read_json(done, "out", "cached section result"))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"out: the cached section result {str(done)!r} is damaged ({type(exc).__name__}: "
                             f"{exc}); delete its folder to recompute it") from None
    log(f"[demo] {sec.key}: running")
    t0 = time.perf_counter()
    with torch_threads(sec.threads):
        result = sec.run(folder)
    save_json(done, result.record())
    log(f"[demo] {sec.key}: done in {time.perf_counter() - t0:.1f} s")
    return folder.relative_to(out).as_posix(), result


def run_demo(out_dir: "str | Path", quick: bool = False, log=log_line, device: str = "cpu") -> Path:
    """Run every section (cached) on ``device`` and write ``OUT/results.json``; returns its path (the report:
    :func:`critdiff.report.folder.write_demo_report`)."""
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
    return save_json(out / "results.json", {"title": TITLE, "meta": meta, "sections": entries})
