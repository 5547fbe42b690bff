"""Spectrum cost: one pass over the training patches (theory) vs the dense autograd Jacobian route.

Run: ``python benchmarks/bench_theory.py``. Prints seconds per spectrum at 16x16 and 32x32 (1 channel,
square:5, exact weights at one sigma) and their ratio; checks the two spectra agree.
"""

import time

import numpy as np
import torch

from critdiff.scores.patch import PatchScore
from critdiff.theory.pool import patch_pool
from critdiff.theory.spectrum import stiffness_spectrum


def dense_route(D, H, sigma, m):
    x = torch.full((1, 1, H, H), m, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda v: D(v.reshape(x.shape), sigma).reshape(-1), x.reshape(-1))
    return np.linalg.eigvals(((J - torch.eye(J.shape[0], dtype=J.dtype)) / sigma**2).numpy())


def dense_rows_time(D, H, sigma, m, rows=64):
    """Seconds for ``rows`` reverse-mode rows of the dense Jacobian, scaled to all ``H*H`` rows."""
    x = torch.full((1, 1, H, H), m, dtype=torch.float64, requires_grad=True)
    t0 = time.perf_counter()
    out = D(x, sigma).reshape(-1)
    for i in range(rows):
        torch.autograd.grad(out[i], x, retain_graph=True)
    return (time.perf_counter() - t0) * H * H / rows


def set_distance(a, b):
    d = np.abs(a[:, None] - b[None, :])
    return max(d.min(1).max(), d.min(0).max())


def main():
    g = torch.Generator().manual_seed(0)
    sigma, m = 0.8, 0.1
    for H in (16, 32):
        train = torch.randn(8, 1, H, H, generator=g, dtype=torch.float64) * 0.5
        t0 = time.perf_counter()
        spec = stiffness_spectrum(patch_pool(train, "square:5"), sigma, [m])
        t_theory = time.perf_counter() - t0
        D = PatchScore(train, "square:5")
        if H <= 16:
            t0 = time.perf_counter()
            ev = dense_route(D, H, sigma, m)
            t_dense = time.perf_counter() - t0
            th = spec.score_jacobian_eigenvalues().numpy()
            err = f"{set_distance(th, ev) / np.abs(ev).max():.1e}"
            how = "measured"
        else:  # the full dense route takes many minutes here: time 64 rows and scale (eigvals not included)
            t_dense, err, how = dense_rows_time(D, H, sigma, m), "n/a", "estimated from 64 rows"
        print(f"{H}x{H}: theory {t_theory:.4f} s, dense Jacobian {t_dense:.2f} s ({how}), "
              f"ratio {t_dense / t_theory:.0f}x, spectra max rel. set distance {err}")


if __name__ == "__main__":
    main()
