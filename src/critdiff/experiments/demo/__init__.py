"""The demo (``critdiff demo``): every section on small built-in data, one ``results.json`` and one report.

``sections`` (what each section runs: the patch model and its theory on built-in data, the reference network
``pretrained:mnist28`` and its classifier for the trained-network, guidance and agreement sections), ``run``
(:func:`run_demo`; the report: :func:`critdiff.report.folder.write_demo_report`) and ``model`` (a small digits net trained in seconds, for tests).
"""

from .run import run_demo

__all__ = ["run_demo"]
