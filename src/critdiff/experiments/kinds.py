"""Every result kind: where its result class and its report renderer live, as module paths resolved on demand.

One table for both directions: :func:`critdiff.experiments.result.result_from_record` rebuilds a result of
any kind from its record without importing every experiment (no import circle: ``result`` is imported by each
experiment, and this table names them only as strings), and :func:`critdiff.report.render.render` finds the
renderer of a result's kind here. A new experiment adds one line.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    """``result``: ``'module:Class'`` under :mod:`critdiff.experiments`; ``renderer``: ``'module:function'``
    under :mod:`critdiff.report`, called as ``render(result, folder=..., key=..., **options) -> Section``."""

    result: str
    renderer: str


KINDS: dict[str, Kind] = {
    "sample": Kind("sample:SampleResult", "sample:render_sample"),
    "train": Kind("train:TrainResult", "train:render_train"),
    "guide": Kind("guide.run:GuideResult", "guide:render_guide"),
    "probe": Kind("probe:ProbeResult", "probe:render_probe"),
    "net-criticality": Kind("net_criticality:NetCriticalityResult", "net_criticality:render_net_criticality"),
    "theory": Kind("theory_section:TheoryResult", "theory:render_theory"),
    "structure-factor": Kind("structure_section:StructureResult", "structure:render_structure"),
    "sweep": Kind("sweep:SweepResult", "sweep:render_sweep"),
    "agreement": Kind("agreement:AgreementResult", "agreement:render_agreement"),
}


def resolve(package: str, target: str):
    """The object ``'module:name'`` names under ``package`` (the module is imported now)."""
    module, name = target.split(":")
    return getattr(importlib.import_module(f"{package}.{module}"), name)


def kind_of(kind) -> Kind:
    """The table's entry of ``kind``; a one-line ValueError naming the known kinds otherwise."""
    if kind not in KINDS:
        raise ValueError(f"results: unknown result kind {kind!r}; expected one of {', '.join(sorted(KINDS))}")
    return KINDS[kind]


def result_type(kind: str) -> type:
    """The result class of ``kind`` (its experiment module is imported now)."""
    return resolve(__package__, kind_of(kind).result)
