"""How numbers are shown to people: 4 significant digits (full precision stays in ``results.json``).

Used by the report (:mod:`critdiff.report.fmt`) and by :meth:`critdiff.times.Time.format`."""

from __future__ import annotations

import math
from typing import Any

DIGITS = 4


def num(value: Any, digits: int = DIGITS) -> str:
    """``value`` as text: floats with ``digits`` significant digits, sequences of numbers as ``(a, b)``,
    ``None`` and non-finite floats as an em dash, anything else with ``str``."""
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) or type(value).__name__ in ("float32", "float64"):
        v = float(value)
        return f"{v:.{digits}g}" if math.isfinite(v) else "\u2014"
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) or v is None for v in value):
        return "(" + ", ".join(num(v, digits) for v in value) + ")"
    return str(value)


def interval(lo: Any, hi: Any, digits: int = DIGITS) -> str:
    """``[lo, hi]`` with ``digits`` significant digits."""
    return f"[{num(lo, digits)}, {num(hi, digits)}]"
