"""Render any experiment result: one renderer per result ``kind`` (each in its own module of report/; the table:
:data:`critdiff.experiments.kinds.KINDS`). ``folder`` is the run's folder (its artefacts; figures are drawn into it)."""

from __future__ import annotations

from ..experiments.kinds import kind_of, resolve
from .html import Section


def render(result, **options) -> Section:
    """The report section of ``result`` (a :class:`critdiff.experiments.result.Result`)."""
    return resolve(__package__, kind_of(result.kind).renderer)(result, **options)

