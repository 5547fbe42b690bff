"""Imports every experiment module, so that each result type is registered (see :mod:`.result`)."""

from . import sample  # noqa: F401
from . import net_criticality  # noqa: F401
from . import theory_section  # noqa: F401
from . import structure_section  # noqa: F401
