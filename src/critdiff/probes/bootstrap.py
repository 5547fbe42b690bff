"""The one bootstrap of critdiff (DESIGN.md sections 4 and 5): intervals of means and of paired differences,
and resampling for set-level statistics. Every function is seeded, so a table is reproducible.

- Means and paired differences of means (``a [N]``, ``b [N]`` aligned by sample: sample ``j`` of every arm
  starts from the same noise and receives the same sampler noise) use :func:`scipy.stats.bootstrap`,
  percentile (default) or BCa interval, resampling samples with replacement (the same indices for both arms).
- A statistic that is no mean (a critical time located on a resampled ensemble curve, a Frechet distance or a
  diversity of a set of samples) is recomputed on resampled index sets: :func:`replicates` (plain) or
  :func:`paired_stat_diff` (stratified by class, so every class keeps its size), with :func:`percentile_ci`.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np

from ..errors import check_choice, check_int

Method = Literal["percentile", "BCa"]


def _level(ci: float) -> float:
    if not 0 < ci < 1:
        raise ValueError(f"ci: expected a level in (0, 1), got {ci}")
    return float(ci)


def replicates(stat: Callable[[np.ndarray], "float | np.ndarray"], n: int, *, n_boot: int = 1000,
               seed: int = 0) -> np.ndarray:
    """``[n_boot, ...]`` values of ``stat(idx)`` over resampled index sets ``idx [n]`` (with repeats)."""
    n = check_int("n", n)
    n_boot = check_int("n_boot", n_boot)
    rng = np.random.default_rng(seed)
    return np.array([stat(rng.integers(0, n, n)) for _ in range(n_boot)], dtype=np.float64)


def percentile_ci(reps: np.ndarray, ci: float = 0.95) -> np.ndarray:
    """``[..., 2]`` percentile interval of ``reps [n_boot, ...]`` at level ``ci`` (non-finite replicates ignored)."""
    a = (1 - _level(ci)) / 2
    reps = np.where(np.isfinite(reps), reps, np.nan)
    lo, hi = np.nanquantile(reps, [a, 1 - a], axis=0)
    return np.stack([lo, hi], -1)


def _mean_bootstrap(d: np.ndarray, n_boot: int, ci: float, seed: int, method: Method):
    """``(low, high, replicates [..., n_boot])`` of the mean over the last axis of ``d`` (scipy)."""
    check_choice("method", method, ("percentile", "BCa"))
    n_boot = check_int("n_boot", n_boot)
    m = d.mean(-1)
    if d.shape[-1] < 2 or np.all(d == d[..., :1]):  # one sample or constant: the interval is the point
        return m, m, np.repeat(np.asarray(m)[..., None], n_boot, -1)
    from scipy import stats  # scipy only when an interval is computed (keeps `critdiff --help` light)

    res = stats.bootstrap((d,), np.mean, n_resamples=n_boot, confidence_level=_level(ci), method=method,
                          vectorized=True, axis=-1, rng=np.random.default_rng(seed))
    return res.confidence_interval.low, res.confidence_interval.high, res.bootstrap_distribution


def mean_ci(values: np.ndarray, *, n_boot: int = 1000, ci: float = 0.95, seed: int = 0,
            method: Method = "percentile") -> np.ndarray:
    """Bootstrap interval ``[..., 2]`` of the mean over the LAST axis of ``values [..., B]``."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi, _ = _mean_bootstrap(values, n_boot, ci, seed, method)
    return np.stack([np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)], -1)


def paired_mean_diff(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95,
                     method: Method = "percentile") -> dict:
    """``mean(a - b)`` with a paired bootstrap interval; ``a, b [N]`` aligned by sample.

    Returns ``{'diff', 'lo', 'hi', 'n', 'p_two_sided'}``; ``p_two_sided`` is twice the smaller bootstrap tail
    beyond 0 (capped at 1).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"a, b: expected two aligned 1-D arrays, got shapes {a.shape}, {b.shape}")
    d = a - b
    lo, hi, boots = _mean_bootstrap(d, n_boot, level, seed, method)
    return {"diff": float(d.mean()), "lo": float(lo), "hi": float(hi), "n": int(d.size),
            "p_two_sided": float(min(1.0, 2 * min((boots <= 0).mean(), (boots >= 0).mean())))}


def mean_interval(a: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95,
                  method: Method = "percentile") -> dict:
    """``mean(a)`` with a bootstrap interval (as :func:`paired_mean_diff` against 0)."""
    return paired_mean_diff(np.asarray(a, dtype=np.float64), np.zeros(len(a)), n_boot, seed, level, method)


def stratified_indices(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One bootstrap draw of sample indices, resampling within each group (class)."""
    out = []
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        out.append(rng.choice(members, size=members.size, replace=True))
    return np.concatenate(out)


def paired_stat_diff(stat: Callable[[np.ndarray], float], groups: np.ndarray, n_boot: int = 200, seed: int = 0,
                     level: float = 0.95) -> dict:
    """``stat(all)`` and its paired stratified-bootstrap percentile interval; ``stat(indices)`` returns the
    difference between two arms computed on those sample indices (the same indices for both arms)."""
    groups = np.asarray(groups)
    full = float(stat(np.arange(groups.size)))
    rng = np.random.default_rng(seed)
    boots = np.array([stat(stratified_indices(groups, rng)) for _ in range(check_int("n_boot", n_boot))])
    lo, hi = percentile_ci(boots, level) if np.isfinite(boots).any() else (np.nan, np.nan)
    return {"diff": full, "lo": float(lo), "hi": float(hi), "n": int(groups.size)}


def curve_peak(x: np.ndarray, y: np.ndarray) -> float:
    """Where a sampled curve ``y(x)`` peaks: the vertex of the parabola through its largest point and the two
    neighbours (``x`` increasing, any spacing), or the grid point itself at an edge of the grid. Since the first
    maximum is taken, the three points are concave and the vertex lies between the two neighbours."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size == 0:
        raise ValueError(f"x, y: expected two 1-D arrays of one length, got shapes {x.shape}, {y.shape}")
    if x.size > 1 and not np.all(np.diff(x) > 0):
        raise ValueError("x: expected strictly increasing centres")
    i = int(np.argmax(y))
    if i == 0 or i == x.size - 1:
        return float(x[i])
    (x0, x1, x2), (y0, y1, y2) = x[i - 1:i + 2], y[i - 1:i + 2]
    d0, d2 = (y1 - y0) / (x1 - x0), (y2 - y1) / (x2 - x1)  # divided differences
    curv = (d2 - d0) / (x2 - x0)
    if not curv < 0:  # only for non-finite values
        return float(x1)
    return float((x0 + x1) / 2 - d0 / (2 * curv))  # p'(x) = 0 for p(x) = y0 + d0 (x - x0) + curv (x - x0)(x - x1)


def peak_interval(x: np.ndarray, values: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """The peak of a paired sweep: ``values [K, n]`` holds sample ``j``'s metric at centre ``x[k]`` (the same seed at
    every centre). ``peak``: :func:`curve_peak` of the mean curve; ``lo``, ``hi``: percentile interval over paired
    bootstrap resamples of the samples (one index set for all centres); ``argmax``: the best grid centre."""
    values = np.asarray(values, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != x.size or values.shape[1] < 1:
        raise ValueError(f"values: expected [K={x.size}, n >= 1] per-sample values, got shape {values.shape}")
    reps = replicates(lambda idx: curve_peak(x, values[:, idx].mean(1)), values.shape[1], n_boot=n_boot, seed=seed)
    lo, hi = percentile_ci(reps, level)
    mean = values.mean(1)
    return {"peak": curve_peak(x, mean), "lo": float(lo), "hi": float(hi), "argmax": float(x[int(np.argmax(mean))]),
            "n": int(values.shape[1])}
