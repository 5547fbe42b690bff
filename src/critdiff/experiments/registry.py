"""Imports every experiment module, so that each result type is registered (see :mod:`.result`)."""

from . import (demo_sections, guide, net_criticality, probe, sample, structure_section, sweep,  # noqa: F401
               theory_section, train)
