"""NFE accounting of guidance schedules: the network evaluations per sample a sampler spends on a sigma grid
(DESIGN.md section 5), as :class:`~critdiff.guidance.Guided` spends them: one evaluation where ``w`` is exactly
0 or 1, two elsewhere. ``evals='euler'``: one evaluation at each ``sigmas[i]``, i < N; ``'heun'``: plus one at
``sigmas[i+1]`` for every step not ending at 0.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from ..times import grid_logsnr


def evaluation_sigmas(sigmas, evals: str) -> torch.Tensor:
    """The sigmas at which a sampler evaluates the denoiser on the grid ``sigmas`` (float64)."""
    s = torch.as_tensor(sigmas, dtype=torch.float64)
    grid_logsnr(s)  # validates
    if evals == "euler":
        return s[:-1]
    if evals == "heun":
        return torch.cat([s[:-1], s[1:-1]])
    raise ValueError(f"evals: expected 'euler' (one evaluation per step) or 'heun', got {evals!r}")


def grid_nfe(schedule, sigmas, evals: str = "euler", batch: Optional[int] = None) -> torch.Tensor:
    """Network evaluations per sample of ``schedule`` (its ``weight(lambda [B])``) on a grid: float64 ``[B]``
    (``B`` = ``batch``, or the schedule's number of per-sample centres, or 1)."""
    sig = evaluation_sigmas(sigmas, evals)
    B = batch or getattr(schedule, "batch", None) or 1
    total = torch.zeros(B, dtype=torch.float64)
    for s in sig.tolist():
        w = schedule.weight(torch.full((B,), -2.0 * math.log(s), dtype=torch.float64))
        total += torch.where((w == 0) | (w == 1), 1.0, 2.0)
    return total
