"""A JSONL log of the guidance experiment that streams one trial per line, so a run resumes.

The first line is a ``config`` record (the configuration and its hash); then derived records
(``tc``, ``estimators``, ``calibration``) and ``trial`` records (one arm on one batch of samples, with every
per-sample number). Every record is checked against :data:`REQUIRED` (and its numbers for finiteness)
*before* it is written, and each line goes to the file in one ``os.write`` on an ``O_APPEND`` descriptor,
then fsync-ed, so two writers could not interleave (the folder lock keeps a second writer out anyway).

Reopening (docs/reliability.md, R3): only a torn *last* line (no final newline and not valid JSON) is
dropped, as the trace of an interrupted write; a valid last line without its newline is kept (the newline
is added). A damaged line anywhere else -- invalid JSON, an unknown type, a missing key -- is a one-line
``ValueError`` naming the file and line number; nothing is discarded silently and nothing is rewritten.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterator

from ...io import config_hash, to_jsonable

# the keys each record type must carry, and those of them that must be finite numbers
REQUIRED = {
    "config": ("hash", "config"),
    "tc": ("logsnr", "t", "sigma_over_a", "source"),
    "calibration": ("threshold",),
    "estimators": ("chosen", "estimates"),
    "trial": ("arm", "start", "index", "label", "nfe", "x"),
}
FINITE = {"tc": ("logsnr",), "calibration": ("threshold",)}


def check_record(rec: Any, where: str, required: "dict | None" = None) -> dict:
    """Check one record against ``required`` (default :data:`REQUIRED`) / :data:`FINITE`; a one-line
    ``ValueError`` naming ``where``."""
    required = REQUIRED if required is None else required
    if not isinstance(rec, dict) or rec.get("type") not in required:
        kind = rec.get("type") if isinstance(rec, dict) else type(rec).__name__
        raise ValueError(f"{where}: expected a record of type {', '.join(required)}, got {kind!r}")
    missing = [k for k in required[rec["type"]] if k not in rec]
    if missing:
        raise ValueError(f"{where}: {rec['type']} record lacks {', '.join(map(repr, missing))}")
    for k in FINITE.get(rec["type"], ()):
        v = rec[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{where}: {rec['type']} record has a non-finite {k} ({v!r})")
    return rec


class TrialLog:
    """Append-only JSONL log bound to one configuration. ``required``: the record types it accepts and their
    keys (default :data:`REQUIRED`, the guidance experiment's; the ``config`` type is always accepted)."""

    def __init__(self, path: "str | Path", config: dict, required: "dict | None" = None):
        self.required = REQUIRED if required is None else {"config": REQUIRED["config"], **required}
        self.path = Path(path)
        self.config = to_jsonable(config)
        self.hash = config_hash(self.config)
        self.records: list[dict] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._load()
        if not self.records:
            self._truncate(0)
            self.append({"type": "config", "hash": self.hash, "config": self.config})

    def _truncate(self, size: int) -> None:
        with open(self.path, "ab") as fh:
            fh.truncate(size)

    def _load(self) -> None:
        with open(self.path, "rb") as fh:
            data = fh.read()
        lines = data.splitlines(keepends=True)
        repair = None  # applied only once the whole file is known to belong to this run
        for no, line in enumerate(lines, 1):
            last = no == len(lines)
            try:
                rec = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                if last and not line.endswith(b"\n"):  # torn by an interrupted write: the only loss allowed
                    repair = lambda: self._truncate(len(data) - len(line))  # noqa: E731
                    break
                raise ValueError(f"trials: {self.path} line {no} is not valid JSON; repair or delete that line "
                                 "(the other lines are kept)") from None
            self.records.append(check_record(rec, f"trials: {self.path} line {no}", self.required))
            if last and not line.endswith(b"\n"):  # a whole record whose newline was lost: keep it
                repair = lambda: self._write(b"\n")  # noqa: E731
        if self.records:
            head = self.records[0]
            if head.get("type") != "config" or head.get("hash") != self.hash:
                raise ValueError(f"out: {self.path} holds a run with a different configuration "
                                 f"(hash {head.get('hash')} != {self.hash}); use another --out folder or delete it")
        if repair is not None:
            repair()

    def _write(self, data: bytes) -> None:
        """One ``os.write`` on an ``O_APPEND`` descriptor, then fsync."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            if os.write(fd, data) != len(data):
                raise OSError(f"trials: short write to {self.path}")
            os.fsync(fd)
        finally:
            os.close(fd)

    def append(self, record: dict) -> dict:
        rec = check_record(to_jsonable(record), f"trials: new record for {self.path}", self.required)
        self._write((json.dumps(rec, separators=(",", ":")) + "\n").encode("utf-8"))
        self.records.append(rec)
        return rec

    def of_type(self, kind: str) -> Iterator[dict]:
        return (r for r in self.records if r.get("type") == kind)

    def find(self, kind: str, **match: Any) -> "dict | None":
        for r in self.of_type(kind):
            if all(r.get(k) == v for k, v in match.items()):
                return r
        return None
