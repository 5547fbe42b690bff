"""The demo (``critdiff demo``): every section on small built-in data, one ``results.json`` and one report.

``model`` (the small net the demo trains), ``sections`` (what each section runs) and ``run``
(:func:`run_demo`, :func:`write_demo_report`).
"""

from .run import run_demo, write_demo_report

__all__ = ["run_demo", "write_demo_report"]
