"""``critdiff demo``: the main job. Runs each section on the bundled data and writes one self-contained
HTML report (``report.html``) plus ``results.json`` holding every section's result.

Each section is ``run(folder) -> Result``; its result is cached as ``OUT/sections/<key>-<hash>/result.json``
(hash of the section's configuration), so an interrupted demo resumes where it stopped and a finished
section is never recomputed. The report is rendered from the results alone
(:func:`critdiff.report.folder.write_demo_report`, which the ``demo`` command calls), which is also what
``critdiff report OUT`` does: the same ``results.json`` gives the same HTML. Its summary is
the numbered findings of :mod:`critdiff.report.demo_summary` (at most six, each with a verdict).

Sections are independent: with ``jobs = 2`` (the default on a machine with 2 or more CPUs, CPU only) two of them
run at a time, each in a forked child process that writes its ``result.json``; the parent then reads every
section from its cache. Every section starts from the same global torch seed (0), so the numbers do not depend
on ``jobs`` or on the order the sections ran in. Output is one line per section (a forked section's progress bars
and warnings go to its ``stderr.txt``); the guidance section's per-trial lines only with ``verbose``; each
distinct warning once.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import torch

from ...io import config_hash, save_json
from ...threads import torch_threads
from .sections import DemoSection, demo_sections
from ..context import ContextLike, as_context
from ..result import RESULT_FILE, Result, result_from_record, save_result

TITLE = "critdiff demo report"


SEED = 0  # the global torch seed every section starts from


def _folder(out: Path, sec: DemoSection) -> Path:
    return out / "sections" / f"{sec.key}-{config_hash(sec.config)}"


def _compute(out: Path, sec: DemoSection, threads: "int | None" = None) -> None:
    """Run one section from the demo's seed and write its ``result.json``, on ``sec.threads`` torch threads, else
    ``threads`` (None: torch's choice)."""
    torch.manual_seed(SEED)
    with torch_threads(sec.threads or threads):
        result = sec.run(_folder(out, sec))
    save_result(_folder(out, sec), result)


def _load(out: Path, sec: DemoSection) -> tuple[str, Result]:
    from ...inputs import read_json

    folder = _folder(out, sec)
    done = folder / RESULT_FILE
    try:
        return folder.relative_to(out).as_posix(), result_from_record(read_json(done, "out", "cached section result"))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"out: the cached section result {str(done)!r} is damaged ({type(exc).__name__}: "
                         f"{exc}); delete its folder to recompute it") from None


def _run_serial(out: Path, todo: list, log) -> None:
    for sec in todo:
        log(f"[demo] {sec.key}: running")
        t0 = time.perf_counter()
        _compute(out, sec)
        log(f"[demo] {sec.key}: done in {time.perf_counter() - t0:.1f} s")


def child_threads(jobs: int) -> int:
    """Torch threads of each of ``jobs`` forked sections: the cores shared out, at least 1. torch's own choice
    (every core) in each child oversubscribes the CPU: two children at 2 threads each on 2 cores ran the trained-net
    section 518 s where one thread ran it in 75 CPU-s (measured 2026-12-05, load ~5)."""
    return max(1, (os.cpu_count() or 1) // jobs)


def _child(out: Path, sec: DemoSection, threads: int) -> None:
    """The body of a forked child: compute the section on ``threads`` torch threads (unless the section fixes its
    own), exit 0; on an error write it to ``error.txt``, exit 1."""
    code = 1
    try:
        # two children's progress bars would garble one terminal: the child's stderr (bars, warnings) goes to a file
        _folder(out, sec).mkdir(parents=True, exist_ok=True)
        fd = os.open(_folder(out, sec) / "stderr.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 2)
        os.close(fd)
        _compute(out, sec, threads)
        code = 0
    except BaseException as exc:  # reported by the parent
        _folder(out, sec).mkdir(parents=True, exist_ok=True)
        (_folder(out, sec) / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run_forked(out: Path, todo: list, jobs: int, log) -> None:
    """Run the sections ``jobs`` at a time in forked children, in the order given. After a failure no new section
    starts, the running ones finish (and stay cached), then the failure is raised; Ctrl-C stops every child."""
    running: dict[int, tuple[DemoSection, float]] = {}
    queue, failed = list(todo), []
    try:
        while running or (queue and not failed):
            while queue and not failed and len(running) < jobs:
                sec = queue.pop(0)
                log(f"[demo] {sec.key}: running")
                pid = os.fork()
                if pid == 0:
                    _child(out, sec, child_threads(jobs))
                running[pid] = (sec, time.perf_counter())
            pid, status = os.wait()
            if pid not in running:
                continue
            sec, t0 = running.pop(pid)
            if os.waitstatus_to_exitcode(status) != 0:
                err = _folder(out, sec) / "error.txt"
                why = err.read_text().strip() if err.is_file() else f"exit status {os.waitstatus_to_exitcode(status)}"
                failed.append(f"demo: section {sec.key} failed: {why} (its output: {_folder(out, sec) / 'stderr.txt'})")
                continue
            log(f"[demo] {sec.key}: done in {time.perf_counter() - t0:.1f} s")
    finally:
        for pid in running:  # Ctrl-C: stop the other children (finished sections stay cached)
            try:
                os.kill(pid, 15)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    if failed:
        raise RuntimeError("; ".join(failed))


def default_jobs(device: str = "cpu") -> int:
    """Sections run at a time: 2 on a CPU machine with 2 or more cores, else 1 (and always 1 off the CPU)."""
    return 2 if device == "cpu" and (os.cpu_count() or 1) >= 2 else 1


def run_demo(ctx: ContextLike, quick: bool = False, device: str = "cpu", jobs: "int | None" = None,
             verbose: bool = False) -> Path:
    """Run every section (cached) on ``device``, ``jobs`` at a time (default :func:`default_jobs`) and write
    ``OUT/results.json`` (``OUT``: ``ctx.out``; ``ctx`` a :class:`~critdiff.experiments.context.Context` or a
    folder; ``ctx.log`` takes a line per section); returns its path (the report:
    :func:`critdiff.report.folder.write_demo_report`). ``verbose``: the guidance section's per-trial lines."""
    from ...devices import resolve as resolve_device
    from ...errors import check_int

    ctx = as_context(ctx)
    log = ctx.log
    resolve_device(device)  # a one-line error before anything is computed
    jobs = default_jobs(device) if jobs is None else check_int("jobs", jobs, 1)
    out = ctx.folder()
    sections = demo_sections(quick, device, log=log if verbose else (lambda message: None))
    todo = []
    for sec in sections:
        if (_folder(out, sec) / RESULT_FILE).exists():
            log(f"[demo] {sec.key}: cached ({_folder(out, sec).name})")
        else:
            todo.append(sec)
    with warnings.catch_warnings():
        warnings.simplefilter("once")  # each distinct warning once, whichever section raises it
        if jobs > 1 and len(todo) > 1:
            _run_forked(out, sorted(todo, key=lambda s: -s.cost), jobs, log)
        else:
            _run_serial(out, todo, log)
    entries = {}
    for sec in sections:
        folder, result = _load(out, sec)
        entries[sec.key] = {**result.record(), "folder": folder, "render": sec.render_options}
    meta = {"critdiff": __import__("critdiff").__version__, "quick": quick, "torch": torch.__version__, "device": device}
    return save_json(out / "results.json", {"title": TITLE, "meta": meta, "sections": entries})
