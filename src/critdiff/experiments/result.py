"""Typed, frozen experiment results that round-trip through JSON.

Every experiment is ``run(cfg, ctx) -> Result`` (:mod:`.context`); :mod:`critdiff.report` renders a result it is
given, so a report can be re-rendered from ``results.json`` without recomputing (``critdiff report OUT``).

A :class:`Result` subclass is a frozen dataclass whose fields are JSON values: numbers, strings,
tuples, ``None`` for a missing or non-finite number, nested configuration dataclasses, and plain
``dict`` payloads for nested measurement records. On construction every field is normalised to the form
it has after a JSON round trip (tensors and arrays to lists, non-finite floats to ``None``, lists in
tuple fields to tuples), so ``Result.from_json(r.to_json()) == r`` holds exactly.

``kind`` (a class attribute) names the result type in ``results.json``; :func:`result_from_record`
rebuilds a result of any kind of :data:`critdiff.experiments.kinds.KINDS` from its record
``{"kind": ..., "result": {...}}``, importing only that kind's module.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

from ..config import JsonConfig, from_json_value, field_types
from ..io import save_json, to_jsonable
from .kinds import result_type

RESULT_FILE = "result.json"  # every command's result, as Result.record(): critdiff report OUT reloads it


def _normalised(tp: Any, value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value
    return from_json_value(tp, json.loads(json.dumps(to_jsonable(value))))


@dataclasses.dataclass(frozen=True)
class Result(JsonConfig):
    """Base of every experiment result (module docstring)."""

    kind: ClassVar[str] = ""  # its entry in critdiff.experiments.kinds.KINDS

    def __post_init__(self) -> None:
        types = field_types(type(self))
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _normalised(types[f.name], getattr(self, f.name)))

    def record(self) -> dict[str, Any]:
        """``{"kind": ..., "result": {...}}``: how a result is stored in ``results.json``."""
        return {"kind": self.kind, "result": self.to_dict()}


def result_from_record(record: dict[str, Any]) -> Result:
    """Rebuild a result from :meth:`Result.record` (its kind's module is imported on demand)."""
    kind = record.get("kind") if isinstance(record, dict) else None
    return result_type(kind).from_dict(record["result"])


def save_result(out_dir, result: Result):
    """Write ``OUT/result.json`` (:data:`RESULT_FILE`, the result's :meth:`~Result.record`) atomically."""
    return save_json(Path(out_dir) / RESULT_FILE, result.record())
