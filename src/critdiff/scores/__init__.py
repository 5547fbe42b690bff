"""Analytic score models (no training), DESIGN.md section 2.

Each is a denoiser ``D(x [B,C,H,W], sigma, label=None) -> x0_hat [B,C,H,W]`` in the
variance-exploding frame (DESIGN.md section 1):

- :class:`EmpiricalScore`  the global, memorising model (posterior mean of the empirical measure);
- :class:`PatchScore`      the local / translation-equivariant patch model (LS / ELS).
"""

from .empirical import EmpiricalScore
from .patch import PatchScore

__all__ = ["EmpiricalScore", "PatchScore"]
