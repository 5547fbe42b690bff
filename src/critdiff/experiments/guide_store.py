"""A JSONL log of the guidance experiment that streams one trial per line, so a run resumes.

The first line is a ``config`` record (the configuration and its hash); then derived records
(``tc``, ``calibration``) and ``trial`` records (one arm on one batch of samples, with every
per-sample number). Each line is written, flushed and fsync-ed before the next trial starts; a
truncated last line (an interrupted write) is dropped when the log is reopened, so an interrupted
run loses at most the trial in progress and a resumed run continues from the first missing trial.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from ..io import config_hash, to_jsonable


class TrialLog:
    """Append-only JSONL log bound to one configuration."""

    def __init__(self, path: "str | Path", config: dict):
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
        good = 0
        with open(self.path, "rb") as fh:
            data = fh.read()
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break
            self.records.append(rec)
            good += len(line)
        if good < len(data):
            self._truncate(good)
        if self.records:
            head = self.records[0]
            if head.get("type") != "config" or head.get("hash") != self.hash:
                raise ValueError(f"out: {self.path} holds a run with a different configuration "
                                 f"(hash {head.get('hash')} != {self.hash}); use another --out folder or delete it")

    def append(self, record: dict) -> dict:
        rec = to_jsonable(record)
        line = json.dumps(rec, separators=(",", ":")) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.records.append(rec)
        return rec

    def of_type(self, kind: str) -> Iterator[dict]:
        return (r for r in self.records if r.get("type") == kind)

    def find(self, kind: str, **match: Any) -> "dict | None":
        for r in self.of_type(kind):
            if all(r.get(k) == v for k, v in match.items()):
                return r
        return None
