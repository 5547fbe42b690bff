"""The demo (``critdiff demo``): every section on small built-in data, one ``results.json`` and one report.

``model`` (the small net the demo trains), ``sections`` (what each section runs) and ``run``
(:func:`run_demo`); the report: :func:`critdiff.report.folder.write_demo_report`.
"""

from .run import run_demo

__all__ = ["run_demo"]
