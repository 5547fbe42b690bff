"""Estimators shifted by an offset fitted on the guidance benchmark (docs/guidance.md section 5; issue #23).

The benchmark (``benchmarks/guidance_estimators.py``) measures, per model, each estimator's signed distance to the
pulse-centre sweep's log p peak, ``d = estimate - peak``. A shifted estimator ``NAME+offset`` places the pulse at
``estimate - median_m(d_m)``, the median over the benchmark's models ``m``. The offsets are never typed in: the
benchmark writes its table of ``d`` (:func:`offset_table`) to :data:`OFFSETS_FILE`, which ships with the package,
and :func:`fitted_offset` takes the median of it at run time; the benchmark's own leave-one-model-out error passes
``exclude=(model,)`` so that a model never fits its own offset.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

OFFSETS_FILE = Path(__file__).with_name("offsets.json")
SUFFIX = "+offset"
SHIFTABLE = ("linear-response", "speciation")  # the two candidates (leave-one-model-out 1.126 / 1.145)
SHIFTED = tuple(name + SUFFIX for name in SHIFTABLE)

__all__ = ["OFFSETS_FILE", "SUFFIX", "SHIFTABLE", "SHIFTED", "base_of", "offset_table", "load_offsets",
           "fitted_offset"]


def base_of(name: str) -> Optional[str]:
    """``'linear-response'`` for ``'linear-response+offset'``; None for a name that is no shifted estimator."""
    return name[: -len(SUFFIX)] if name.endswith(SUFFIX) and name[: -len(SUFFIX)] in SHIFTABLE else None


def offset_table(result: dict, source: str = "") -> dict:
    """The table the shifted estimators read, from a benchmark result (``benchmarks/results/
    guidance_estimators.json``): ``{'source', 'peak': {model: logsnr}, 'minus_peak': {estimator: {model: d}}}``
    over the rows with a sweep peak, for the estimators of :data:`SHIFTABLE` that have a value there."""
    rows = [r for r in result.get("rows", {}).values() if r.get("peak_logsnr") is not None]
    if not rows:
        raise ValueError("result: no row has a sweep peak (peak_logsnr); run the benchmark's sweep phase first")
    minus = {name: {r["model"]: float(r["estimators"][name]["minus_peak"]) for r in rows
                    if r.get("estimators", {}).get(name, {}).get("minus_peak") is not None} for name in SHIFTABLE}
    return {"source": source, "peak": {r["model"]: float(r["peak_logsnr"]) for r in rows}, "minus_peak": minus}


def load_offsets(path: "Path | str | None" = None) -> dict:
    """The offset table at ``path`` (default :data:`OFFSETS_FILE`); a one-line ValueError when it is missing."""
    p = Path(path) if path is not None else OFFSETS_FILE
    if not p.exists():
        raise ValueError(f"offsets: no offset table at {p}; write it with benchmarks/guidance_estimators.py "
                         "--export-offsets")
    return json.loads(p.read_text())


def fitted_offset(table: dict, base: str, exclude: Iterable[str] = ()) -> float:
    """``median_m (estimate_m - peak_m)`` of estimator ``base`` over the table's models not in ``exclude``."""
    if base not in SHIFTABLE:
        raise ValueError(f"tc-from: expected a shiftable estimator ({', '.join(SHIFTABLE)}), got {base!r}")
    ex = set(exclude)
    d = [v for m, v in table.get("minus_peak", {}).get(base, {}).items() if m not in ex and math.isfinite(v)]
    if not d:
        raise ValueError(f"offsets: the table has no model left to fit the offset of {base!r} (excluded: "
                         f"{', '.join(sorted(ex)) or 'none'})")
    return float(np.median(d))
