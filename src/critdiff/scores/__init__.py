"""Analytic score models (no training), DESIGN.md section 2.

Each is a denoiser ``D(x [B,C,H,W], sigma, label=None) -> x0_hat [B,C,H,W]`` in the
variance-exploding frame (DESIGN.md section 1):

- :class:`EmpiricalScore`  the global, memorising model (posterior mean of the empirical measure);
- :class:`PatchScore`      the local / translation-equivariant patch model (LS / ELS);
- :class:`GaussianScore`   the exact denoiser of the Gaussian fitted to the data.
"""

from .empirical import EmpiricalScore
from .gaussian import GaussianScore
from .patch import PatchScore

__all__ = ["EmpiricalScore", "GaussianScore", "PatchScore"]
