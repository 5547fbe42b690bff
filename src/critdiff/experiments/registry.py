"""Imports every experiment module, so that each result type is registered (see :mod:`.result`)."""

from . import (agreement, guide, net_criticality, probe, sample, structure_section, sweep, theory_section,  # noqa: F401
               train)
