"""Bootstrap over the ensemble: resample samples with replacement, recompute a statistic (DESIGN.md section 4).

A statistic is a function of sample indices ``idx [B]`` (int array, with repeats) returning a float or an
array; intervals are percentile intervals of the bootstrap replicates (non-finite replicates dropped).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import check_int


def replicates(stat: Callable[[np.ndarray], "float | np.ndarray"], n: int, *, n_boot: int = 1000,
               seed: int = 0) -> np.ndarray:
    """``[n_boot, ...]`` values of ``stat(idx)`` over resampled index sets of ``n`` samples."""
    n = check_int("n", n)
    n_boot = check_int("n_boot", n_boot)
    rng = np.random.default_rng(seed)
    return np.array([stat(rng.integers(0, n, n)) for _ in range(n_boot)], dtype=np.float64)


def percentile_ci(reps: np.ndarray, ci: float = 0.95) -> np.ndarray:
    """``[..., 2]`` percentile interval of ``reps [n_boot, ...]`` at level ``ci`` (NaN-aware)."""
    if not 0 < ci < 1:
        raise ValueError(f"ci: expected a level in (0, 1), got {ci}")
    a = (1 - ci) / 2
    reps = np.where(np.isfinite(reps), reps, np.nan)
    lo, hi = np.nanquantile(reps, [a, 1 - a], axis=0)
    return np.stack([lo, hi], -1)


def mean_ci(values: np.ndarray, *, n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> np.ndarray:
    """Percentile interval ``[..., 2]`` of the mean over the LAST axis of ``values [..., B]``."""
    values = np.asarray(values, dtype=np.float64)
    reps = replicates(lambda idx: values[..., idx].mean(-1), values.shape[-1], n_boot=n_boot, seed=seed)
    return percentile_ci(reps, ci)
