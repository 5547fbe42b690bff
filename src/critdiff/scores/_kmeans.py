"""Exact de-duplication and k-means clustering of a pool of patch vectors (docs/theory.md section 12).

Points ``[M, D]``; both routines are deterministic (fixed seeds) and used once per pool.
"""

from __future__ import annotations

import torch

from ..seeding import derive

_ROWS = 1 << 18  # rows per chunk in the chunked passes


def dedup_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact duplicates of ``rows [M, K]`` merged: ``(first [U] indices of the unique rows, counts [U])``.

    Rows are hashed by a random projection, sorted by hash, and every row is then compared
    bit for bit with the first row of its hash segment; a collision between different rows
    (never seen, but possible) falls back to ``torch.unique``, so the result is always exact.
    """
    gen = torch.Generator().manual_seed(0)
    r = torch.randn(rows.shape[1], dtype=torch.float64, generator=gen).to(rows.device)
    h = torch.cat([rows[a : a + _ROWS].to(torch.float64) @ r for a in range(0, len(rows), _ROWS)])
    order = torch.argsort(h, stable=True)
    hs = h[order]
    new = torch.ones_like(hs, dtype=torch.bool)
    new[1:] = hs[1:] != hs[:-1]
    seg = torch.cumsum(new, 0) - 1
    first = order[new]
    for a in range(0, len(rows), _ROWS):
        o = order[a : a + _ROWS]
        if not torch.equal(rows[o], rows[first[seg[a : a + _ROWS]]]):
            _, inv, counts = torch.unique(rows, dim=0, return_inverse=True, return_counts=True)
            firsts = torch.full((len(counts),), len(rows), dtype=torch.long, device=rows.device)
            firsts.scatter_reduce_(0, inv, torch.arange(len(rows), device=rows.device), "amin")
            return firsts, counts
    return first, torch.bincount(seg)


def assign(points: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index ``[M]`` of the nearest centroid (squared distance by the GEMM expansion, chunked)."""
    c2 = 0.5 * (centroids * centroids).sum(1)
    out = [torch.argmax(points[a : a + _ROWS] @ centroids.T - c2, dim=1) for a in range(0, len(points), _ROWS)]
    return torch.cat(out)


def kmeans(points: torch.Tensor, k: int, *, iters: int = 8, sample: int = 64, seed: int = 0) -> torch.Tensor:
    """Cluster labels ``[M]`` of ``points [M, D]``: Lloyd iterations on a random subsample of
    ``sample * k`` points (initialised at ``k`` random points), then one assignment of all points.

    Any assignment is valid for the certified bound (radii are measured afterwards); k-means only
    makes the clusters small.
    """
    M = points.shape[0]
    k = max(1, min(k, M))
    gen = torch.Generator().manual_seed(seed)
    sub = points[torch.randperm(M, generator=gen)[: sample * k].to(points.device)]
    cent = sub[:k].clone()
    for _ in range(iters):
        lab = assign(sub, cent)
        sums = torch.zeros_like(cent).index_add_(0, lab, sub)
        cnt = torch.bincount(lab, minlength=k).to(sub.dtype)
        filled = cnt > 0
        cent[filled] = sums[filled] / cnt[filled, None]
    return assign(points, cent)


def kmeans_tree(points: torch.Tensor, k: int, *, seed: int = 0) -> torch.Tensor:
    """Cluster labels ``[M]`` from two-level k-means: ``sqrt(k)`` coarse clusters, each split into
    a number of fine clusters proportional to its size (about ``k`` in all). Costs ``M (k1 + k2) D``
    per assignment instead of ``M k D``, so many small clusters stay cheap to build.
    """
    M = points.shape[0]
    k1 = max(1, min(M, round(k**0.5)))
    coarse = kmeans(points, k1, seed=seed)
    out = torch.empty(M, dtype=torch.long, device=points.device)
    order = torch.argsort(coarse, stable=True)
    sizes = torch.bincount(coarse, minlength=k1).tolist()
    start, next_label = 0, 0
    for c, n in enumerate(sizes):
        idx = order[start : start + n]
        start += n
        if n == 0:
            continue
        k2 = max(1, round(k * n / M))
        out[idx] = kmeans(points[idx], k2, seed=derive(seed, "fine", c)) + next_label
        next_label += k2
    return out
