"""Agreement of two denoisers from identical noise: Pearson r of their samples, and of their outputs per level.

The protocol of Kamb & Ganguli (2024) for "how well does an analytic (ELS) machine predict a trained network":
both models sample deterministically (DDIM, eta = 0, so the initial noise is the only randomness) from the same
initial noise ``x [B, C, H, W]`` on the same float64 sigma grid, and each pair of final images is compared by the
Pearson correlation of the mean-centred images

    r_b = <a_b - mean(a_b), b_b - mean(b_b)> / (|a_b - mean(a_b)| |b_b - mean(b_b)|)       (flattened over C, H, W)

(float64; ``nan`` where an image is constant). Per level ``sigma_i`` of the grid, the two denoisers are also
compared on the same inputs: the states ``x_i`` of model ``b``'s own trajectory (the reference, e.g. the
network), ``r_b(D_a(x_i, sigma_i), D_b(x_i, sigma_i))``. Summaries over seeds: median, interquartile range and
a percentile-bootstrap interval of the median (:mod:`critdiff.probes.bootstrap`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..denoisers import Denoiser, Label
from ..samplers import check_sigmas, sample_ddim
from .bootstrap import percentile_ci, replicates


def pearson_r(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """``[B]`` Pearson r of the mean-centred images ``a, b [B, ...]`` (module docstring), float64."""
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"a, b: expected two batches of the same shape [B, ...], got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    a = a.detach().to("cpu", torch.float64).flatten(1)
    b = b.detach().to("cpu", torch.float64).flatten(1)
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    den = a.norm(dim=1) * b.norm(dim=1)
    r = (a * b).sum(1) / den
    return torch.where(den > 0, r, torch.full_like(r, float("nan"))).numpy()


@dataclass(frozen=True)
class PairedRun:
    """Both models' final samples ``final_a, final_b [B, C, H, W]``, their Pearson ``r [B]``, and ``level_r
    [T, B]``: the denoisers' Pearson r on model ``b``'s states at ``sigma [T]`` (the grid without its final 0)."""

    final_a: torch.Tensor
    final_b: torch.Tensor
    r: np.ndarray
    sigma: np.ndarray
    level_r: np.ndarray


def paired_ddim(model_a: Denoiser, model_b: Denoiser, x: torch.Tensor, sigmas, label: Label = None) -> PairedRun:
    """Deterministic DDIM runs of ``model_a`` and ``model_b`` from the same ``x`` on ``sigmas`` (module docstring).

    ``model_a`` is also evaluated on every state of ``model_b``'s trajectory (``T`` extra evaluations).
    """
    s = check_sigmas(sigmas)
    level_r: list = []

    def compare(step) -> None:
        level_r.append(pearson_r(model_a(step.x, step.sigma, label), step.x0_hat))

    with torch.no_grad():
        final_a = sample_ddim(model_a, x, s, label=label)
        final_b = sample_ddim(model_b, x, s, label=label, callback=compare)
    return PairedRun(final_a=final_a, final_b=final_b, r=pearson_r(final_a, final_b), sigma=s[:-1].numpy(),
                     level_r=np.stack(level_r))


def median_summary(values, *, n_boot: int = 2000, ci: float = 0.95, seed: int = 0) -> dict:
    """Median, quartiles and a percentile-bootstrap interval of the median of the finite ``values [N]``.

    Returns ``{'median', 'q25', 'q75', 'median_ci': [lo, hi], 'n', 'n_nonfinite'}`` (``None`` numbers if no value
    is finite).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    ok = v[np.isfinite(v)]
    out = {"n": int(ok.size), "n_nonfinite": int(v.size - ok.size)}
    if ok.size == 0:
        return {**out, "median": None, "q25": None, "q75": None, "median_ci": [None, None]}
    reps = replicates(lambda idx: np.median(ok[idx]), ok.size, n_boot=n_boot, seed=seed)
    lo, hi = percentile_ci(reps, ci)
    q25, q50, q75 = np.quantile(ok, [0.25, 0.5, 0.75])
    return {**out, "median": float(q50), "q25": float(q25), "q75": float(q75), "median_ci": [float(lo), float(hi)]}
