"""Imports every experiment module, so that each result type is registered (see :mod:`.result`)."""

from . import demo_sections, guide, probe, sample  # noqa: F401
