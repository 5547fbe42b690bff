"""Compatibility re-export: the diffusers adapter lives in :mod:`critdiff.integrations.diffusers.adapter`."""

from ..integrations.diffusers.adapter import *  # noqa: F401,F403
from ..integrations.diffusers.adapter import (  # noqa: F401  (private names the tests use)
    _import_diffusers, _quiet)
from ..integrations.diffusers.loading import load_diffusers, load_diffusers_spec  # noqa: F401
