"""Imports every experiment module, so that each result type is registered (see :mod:`.result`)."""

from . import probe, sample  # noqa: F401
