"""Render any experiment result: one renderer per result ``kind`` (each in its own module of report/)."""

from __future__ import annotations

import importlib

from .html import Section

# result kind -> "module:function" in critdiff.report; each renderer is render(result, folder=..., key=..., **options)
# -> Section, where ``folder`` is the run's folder (its artefacts; figures are drawn into it)
RENDERERS = {
    "sample": "sample:render_sample",
    "train": "train:render_train",
    "guide": "guide:render_guide",
    "probe": "probe:render_probe",
    "net-criticality": "net_criticality:render_net_criticality",
    "theory": "theory:render_theory",
    "structure-factor": "structure:render_structure",
    "sweep": "sweep:render_sweep",
    "agreement": "agreement:render_agreement",
}


def render(result, **options) -> Section:
    """The report section of ``result`` (a :class:`critdiff.experiments.result.Result`)."""
    target = RENDERERS.get(result.kind)
    if target is None:
        raise ValueError(f"report: no renderer for result kind {result.kind!r}; known: {', '.join(sorted(RENDERERS))}")
    module, fn = target.split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), fn)(result, **options)

