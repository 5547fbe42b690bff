"""The report's number format: :mod:`critdiff.fmt` (defined there, below every layer, so that
:meth:`critdiff.times.Time.format` shows numbers exactly as the report does)."""

from ..fmt import DIGITS, interval, num

__all__ = ["DIGITS", "interval", "num"]
