"""Every result kind: where its experiment, its result class and its report renderer live, as module paths
resolved on demand.

One table for both directions: :func:`critdiff.experiments.result.result_from_record` rebuilds a result of
any kind from its record without importing every experiment (no import circle: ``result`` is imported by each
experiment, and this table names them only as strings), and :func:`critdiff.report.render.render` finds the
renderer of a result's kind here; :func:`run_function` gives the experiment of a kind (every one is
``run(cfg, ctx) -> Result``). A new experiment adds one line.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    """``result``: ``'module:Class'`` under :mod:`critdiff.experiments`; ``renderer``: ``'module:function'``
    under :mod:`critdiff.report`, called as ``render(result, folder=..., key=..., **options) -> Section``;
    ``run``: ``'module:function'`` under :mod:`critdiff.experiments`, the experiment, called as
    ``run(cfg, ctx, **options) -> Result`` (``ctx``: :class:`critdiff.experiments.context.Context`)."""

    result: str
    renderer: str
    run: str = ""


KINDS: dict[str, Kind] = {
    "sample": Kind("sample:SampleResult", "sample:render_sample", "sample:run_sample"),
    "train": Kind("train:TrainResult", "train:render_train", "train:run_train"),
    "train-classifier": Kind("train:ClassifierResult", "train_classifier:render_train_classifier",
                             "train:run_train_classifier"),
    "guide": Kind("guide.run:GuideResult", "guide:render_guide", "guide.run:run_guide"),
    "probe": Kind("probe:ProbeResult", "probe:render_probe", "probe:run_probe"),
    "net-criticality": Kind("net_criticality:NetCriticalityResult", "net_criticality:render_net_criticality",
                            "net_criticality:run_net_criticality"),
    "theory": Kind("theory_section:TheoryResult", "theory:render_theory", "theory_section:run_theory"),
    "structure-factor": Kind("structure_section:StructureResult", "structure:render_structure",
                             "structure_section:run_structure"),
    "sweep": Kind("sweep:SweepResult", "sweep:render_sweep", "sweep:run_sweep"),
    "agreement": Kind("agreement:AgreementResult", "agreement:render_agreement", "agreement:run_agreement"),
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


def run_function(kind: str):
    """The experiment of ``kind``, ``run(cfg, ctx, **options) -> Result`` (its module is imported now)."""
    return resolve(__package__, kind_of(kind).run)
