"""The guidance experiment (``critdiff guide``): arms of guidance schedules on common random numbers.

``config`` (:class:`GuideConfig`), ``tc`` and ``estimators`` (where the pulse sits), ``arms`` (the schedules and
one arm's trial), ``metrics``, ``store`` (the resumable trial log), ``summary`` (the arms' numbers) and ``run``
(:func:`run_guide` -> :class:`GuideResult`).
"""

from .config import GuideConfig, demo_config
from .run import GuideResult, run_guide

__all__ = ["GuideConfig", "GuideResult", "demo_config", "run_guide"]
