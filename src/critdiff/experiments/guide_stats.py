"""Paired bootstrap intervals for differences between guidance arms (DESIGN.md section 5).

Arms are paired by sample: sample ``j`` of every arm starts from the same noise and receives the same
sampler noise. A difference of means is resampled by drawing sample indices with replacement (the
same indices for both arms); a set-level statistic (Frechet distance, diversity) is recomputed on the
resampled indices, stratified by class so that every class keeps its size. Percentile intervals;
the resampling is seeded, so a table is reproducible from its per-sample records.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def paired_mean_diff(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """``mean(a - b)`` with a paired percentile bootstrap interval; ``a, b [N]`` aligned by sample."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"a, b: expected two aligned 1-D arrays, got shapes {a.shape}, {b.shape}")
    d = a - b
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(n_boot, d.size))
    boots = d[idx].mean(1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return {"diff": float(d.mean()), "lo": float(lo), "hi": float(hi), "n": int(d.size),
            "p_two_sided": float(min(1.0, 2 * min((boots <= 0).mean(), (boots >= 0).mean())))}


def mean_interval(a: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """``mean(a)`` with a percentile bootstrap interval."""
    return paired_mean_diff(np.asarray(a, dtype=np.float64), np.zeros(len(a)), n_boot, seed, level)


def stratified_indices(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One bootstrap draw of sample indices, resampling within each group (class)."""
    out = []
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        out.append(rng.choice(members, size=members.size, replace=True))
    return np.concatenate(out)


def paired_stat_diff(stat: Callable[[np.ndarray], float], groups: np.ndarray, n_boot: int = 200, seed: int = 0,
                     level: float = 0.95) -> dict:
    """``stat(all)`` and its paired stratified-bootstrap interval; ``stat(indices)`` returns the difference
    between two arms computed on those sample indices (the same indices for both arms)."""
    groups = np.asarray(groups)
    full = float(stat(np.arange(groups.size)))
    rng = np.random.default_rng(seed)
    boots = np.array([stat(stratified_indices(groups, rng)) for _ in range(n_boot)])
    boots = boots[np.isfinite(boots)]
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2]) if boots.size else (np.nan, np.nan)
    return {"diff": full, "lo": float(lo), "hi": float(hi), "n": int(groups.size)}
