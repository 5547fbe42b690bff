"""Exact de-duplication and k-means clustering of a pool of patch vectors (docs/theory.md section 12).

Points ``[M, D]``, given as a tensor or as a function ``take(idx [m]) -> [m, D]`` so that a pool too
large to hold unfolded is read in chunks; both routines are deterministic (fixed seeds) and used
once per pool.
"""

from __future__ import annotations

from typing import Callable, Union

import torch

from ..seeding import derive

_ROWS = 1 << 18  # rows per chunk in the chunked passes
Points = Union[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


def dedup_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact duplicates of ``rows [M, K]`` merged: ``(first [U] indices of the unique rows, counts [U])``."""
    return dedup_source(lambda idx: rows[idx], len(rows))


def _hashes(take, idx: torch.Tensor, gen: torch.Generator, k: int) -> torch.Tensor:
    """Two float64 random projections of the rows ``idx``: ``[m, 2]``."""
    r = torch.randn(k, 2, dtype=torch.float64, generator=gen)
    return torch.cat([take(idx[a : a + _ROWS]).to(torch.float64) @ r for a in range(0, len(idx), _ROWS)])


def dedup_source(take: Callable[[torch.Tensor], torch.Tensor], M: int, chunk: int = 1 << 21) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact duplicates among ``M`` rows read by ``take(idx) -> [m, K]``: ``(first [U], counts [U])``.

    Chunk by chunk of ``chunk`` rows, then across chunks: rows are hashed by two random projections,
    sorted by hash, and every row is compared bit for bit with the first row of its hash segment;
    segments where that fails (a hash collision between different rows: never seen, possible) are
    split exactly by ``torch.unique`` on their rows. Only hashes, indices and counts are held.
    """
    firsts, counts = [], []
    for a in range(0, M, chunk):
        idx = torch.arange(a, min(M, a + chunk))
        f, c = _merge(take, idx, torch.ones(len(idx), dtype=torch.long))
        firsts.append(f)
        counts.append(c)
    if len(firsts) == 1:
        return firsts[0], counts[0]
    return _merge(take, torch.cat(firsts), torch.cat(counts))


def _merge(take, idx: torch.Tensor, cnt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``idx`` with multiplicities ``cnt`` -> unique rows (first index of each) and summed counts."""
    K = take(idx[:1]).shape[1]
    h = _hashes(take, idx, torch.Generator().manual_seed(0), K)
    order = torch.argsort(h[:, 1], stable=True)
    order = order[torch.argsort(h[order, 0], stable=True)]
    hs = h[order]
    new = torch.ones(len(hs), dtype=torch.bool)
    new[1:] = (hs[1:] != hs[:-1]).any(1)
    seg = torch.cumsum(new, 0) - 1
    head = order[new][seg]  # position (in idx) of each sorted row's segment head
    bad = torch.zeros(int(seg[-1]) + 1, dtype=torch.bool)
    for a in range(0, len(order), _ROWS):
        o, f = idx[order[a : a + _ROWS]], idx[head[a : a + _ROWS]]
        differ = (take(o) != take(f)).any(1)
        bad[seg[a : a + _ROWS][differ]] = True
    if bool(bad.any()):  # split colliding segments exactly
        rows = bad[seg].nonzero()[:, 0]
        _, inv = torch.unique(take(idx[order[rows]]), dim=0, return_inverse=True)
        key = torch.where(bad[seg], 0, seg + 1)
        key[rows] = -1 - inv  # colliding rows: their own exact classes
        _, seg = torch.unique(key, return_inverse=True)
        first = torch.full((int(seg.max()) + 1,), len(idx), dtype=torch.long).scatter_reduce_(0, seg, order, "amin")
        return idx[first], torch.zeros(len(first), dtype=torch.long).index_add_(0, seg, cnt[order])
    return idx[order[new]], torch.zeros(int(seg[-1]) + 1, dtype=torch.long).index_add_(0, seg, cnt[order])


def _as_take(points: Points):
    return (lambda idx: points[idx]) if isinstance(points, torch.Tensor) else points


def assign(points: Points, centroids: torch.Tensor, M: int | None = None) -> torch.Tensor:
    """Index ``[M]`` of the nearest centroid (squared distance by the GEMM expansion, chunked)."""
    take = _as_take(points)
    M = len(points) if M is None else M
    c2 = 0.5 * (centroids * centroids).sum(1)
    out = [torch.argmax(take(torch.arange(a, min(M, a + _ROWS))) @ centroids.T - c2, dim=1) for a in range(0, M, _ROWS)]
    return torch.cat(out)


def kmeans(points: Points, k: int, *, M: int | None = None, iters: int = 8, sample: int = 64, seed: int = 0) -> torch.Tensor:
    """Cluster labels ``[M]`` of ``points [M, D]``: Lloyd iterations on a random subsample of
    ``sample * k`` points (initialised at ``k`` random points), then one assignment of all points.

    Any assignment is valid for the certified bound (radii are measured afterwards); k-means only
    makes the clusters small.
    """
    take = _as_take(points)
    M = len(points) if M is None else M
    k = max(1, min(k, M))
    gen = torch.Generator().manual_seed(seed)
    sub = take(torch.randperm(M, generator=gen)[: sample * k])
    cent = sub[:k].clone()
    for _ in range(iters):
        lab = assign(sub, cent)
        sums = torch.zeros_like(cent).index_add_(0, lab, sub)
        cnt = torch.bincount(lab, minlength=k).to(sub.dtype)
        filled = cnt > 0
        cent[filled] = sums[filled] / cnt[filled, None]
    return assign(take, cent, M)


def kmeans_tree(points: Points, k: int, *, M: int | None = None, seed: int = 0) -> torch.Tensor:
    """Cluster labels ``[M]`` from two-level k-means: ``sqrt(k)`` coarse clusters, each split into
    a number of fine clusters proportional to its size (about ``k`` in all). Costs ``M (k1 + k2) D``
    per assignment instead of ``M k D``, so many small clusters stay cheap to build.
    """
    take = _as_take(points)
    M = len(points) if M is None else M
    k1 = max(1, min(M, round(k**0.5)))
    coarse = kmeans(take, k1, M=M, seed=seed)
    out = torch.empty(M, dtype=torch.long)
    order = torch.argsort(coarse, stable=True)
    sizes = torch.bincount(coarse, minlength=k1).tolist()
    start, next_label = 0, 0
    for c, n in enumerate(sizes):
        idx = order[start : start + n]
        start += n
        if n == 0:
            continue
        k2 = max(1, round(k * n / M))
        out[idx] = kmeans(take(idx), k2, seed=derive(seed, "fine", c)) + next_label
        next_label += k2
    return out
