"""Figures (matplotlib PNG) and the self-contained HTML report with its results.json."""

from .html import Section, write_report

__all__ = ["Section", "write_report"]
