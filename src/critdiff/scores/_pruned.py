"""Certified pruned evaluation of the softmax average over a large pool (docs/theory.md section 12).

Pool: keys ``p_j [M, D]`` and values ``v_j [M, C]`` in the shifted frame of the patch model. Built
once (:class:`PrunedPool`):

1. exact de-duplication: identical rows of ``[p, v]`` merge into one key with multiplicity
   ``m_j``, carried as the log-weight ``log m_j`` of the kernel (eq. 12.1);
2. two-level k-means clusters ``c`` of the unique keys, sorted so that each is a contiguous range, with
   centroid ``mu_c``, radius ``r_c = max_j |p_j - mu_c|``, mass ``W_c = sum_j m_j`` and a
   representative ``rep_c`` (the member nearest ``mu_c``).

Per query row ``q`` at noise ``sigma`` (eqs. 12.2-12.5):

    u_c = log W_c - max(0, |q - mu_c| - r_c)^2 / (2 sigma^2)   >=  log Z_c   (upper bound)
    g_c = log m_rep - |q - p_rep|^2 / (2 sigma^2)                <=  log Z_c   (lower bound)

the clusters with ``u_c < log tol + max_c' g_c' - log K`` are skipped (``K`` clusters); the kept ones are evaluated exactly by the GEMM kernel (cluster-major: each cluster for the rows
that keep it, partial results merged in log-sum-exp form). The certified error
of the output is ``|D - D_hat| <= R exp(logsumexp(u_skipped) - log Z_kept) <= tol R`` per channel,
``R`` = the range of the pool's values.
"""

from __future__ import annotations

import math

import torch

from . import _softmax as K
from ._kmeans import dedup_rows, kmeans_tree

MAX_CLUSTERS = 8192
POINTS_PER_CLUSTER = 250  # default n_clusters = n_unique / POINTS_PER_CLUSTER (at least sqrt(n_unique))
STREAM_ABOVE = 0.7  # when rows keep more than this fraction of the pool on average, stream the whole pool
ROW_BLOCK = 1024  # query rows planned at once (memory ~ ROW_BLOCK * n_clusters * 8 B per array)
_REL = 1e-12  # relative safety margin on float64 distances


class PrunedPool:
    """A de-duplicated, clustered pool with certified pruning. ``keys [M, D]``, ``values [M, C]``."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, n_clusters: int | None = None):
        first, counts = dedup_rows(torch.cat([keys, values], 1))
        keys = keys[first].to(torch.float64)
        values = values[first].to(torch.float64)
        logm = counts.to(torch.float64).log()
        self.n_pool, self.n_unique = int(counts.sum()), len(first)
        k = n_clusters or int(min(MAX_CLUSTERS, max(math.sqrt(self.n_unique), self.n_unique / POINTS_PER_CLUSTER)))
        _, lab = torch.unique(kmeans_tree(keys.to(torch.float32), k), return_inverse=True)
        order = torch.argsort(lab, stable=True)
        lab, self.values = lab[order], values[order]
        self._aug64 = K.augment_keys(keys[order], logm[order])  # [U, D + 2] float64: the keys are a view of it
        del keys
        self.cluster = lab
        size = torch.bincount(lab)
        self.n_clusters = len(size)
        self.sizes = size.to(torch.float64)  # unique keys per cluster
        self.starts = [0] + torch.cumsum(size, 0).tolist()  # cluster c holds rows starts[c]:starts[c+1]
        self.centroid = torch.zeros(self.n_clusters, self.keys.shape[1], dtype=torch.float64).index_add_(0, lab, self.keys)
        self.centroid /= size[:, None].to(torch.float64)
        step = 1 << 18
        dist = torch.cat([(self.keys[a : a + step] - self.centroid[lab[a : a + step]]).norm(dim=1) for a in range(0, len(lab), step)])
        self.radius = torch.zeros(self.n_clusters, dtype=torch.float64).scatter_reduce_(0, lab, dist, "amax")
        self.radius = self.radius * (1 + _REL) + _REL
        self.log_mass = torch.zeros(self.n_clusters, dtype=torch.float64).index_add_(0, lab, counts[order].to(torch.float64)).log()
        near = dist == torch.zeros_like(self.radius).scatter_reduce_(0, lab, dist, "amin", include_self=False)[lab]
        idx = torch.where(near, torch.arange(len(lab)), len(lab))
        rep = torch.full((self.n_clusters,), len(lab), dtype=torch.long).scatter_reduce_(0, lab, idx, "amin")
        self.rep_key, self.rep_logm = self.keys[rep], self.logm[rep]
        self.value_range = self.values.amax(0) - self.values.amin(0)  # [C]
        self._aug: dict = {}

    @property
    def keys(self) -> torch.Tensor:
        """Unique keys ``[U, D]`` float64, sorted by cluster."""
        return self._aug64[:, :-2]

    @property
    def logm(self) -> torch.Tensor:
        """Log multiplicities ``[U]`` of the unique keys."""
        return self._aug64[:, -1]

    def to(self, device) -> "PrunedPool":
        """Move the (float64) geometry to ``device``; augmented keys are made per dtype on demand."""
        for name in ("_aug64", "values", "cluster", "sizes", "centroid", "radius", "log_mass", "rep_key", "rep_logm", "value_range"):
            setattr(self, name, getattr(self, name).to(device))
        self._aug = {}
        return self

    def augmented(self, dtype: torch.dtype):
        """Kernel keys ``[1, U, D + 2]`` (with log multiplicity) and values ``[1, C + 1, U]`` in ``dtype``."""
        if dtype not in self._aug:
            p = self._aug64 if dtype == torch.float64 else K.augment_keys(self.keys.to(dtype), self.logm)
            self._aug[dtype] = (p.unsqueeze(0), K.augment_values(self.values.to(dtype)).unsqueeze(0))
        return self._aug[dtype]

    # ---- bounds -------------------------------------------------------------------------
    def bounds(self, q: torch.Tensor, inv_s2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row and cluster: upper bound ``u`` and representative lower bound ``g`` of log Z_c, ``[Nq, Kc]``."""
        q2 = (q * q).sum(1, keepdim=True)
        half = 0.5 * inv_s2[:, None]

        def d2(points):
            p2 = (points * points).sum(1)
            raw = q2 - 2.0 * q @ points.T + p2
            margin = _REL * (q2 + p2) + 1e-300
            return (raw - margin).clamp_min(0.0), raw.clamp_min(0.0) + margin

        lo, _ = d2(self.centroid)
        gap = (lo.sqrt() - self.radius).clamp_min(0.0)
        _, hi = d2(self.rep_key)
        return self.log_mass - gap * gap * half, self.rep_logm - hi * half

    def plan(self, q: torch.Tensor, inv_s2: torch.Tensor, log_tol: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Skip mask ``[Nq, Kc]`` (eq. 12.4: ``u_c < log tol + max g - log Kc``) and the upper bounds ``u``."""
        u, g = self.bounds(q, inv_s2)
        return u < log_tol + g.amax(1, keepdim=True) - math.log(u.shape[1]), u

    # ---- evaluation ---------------------------------------------------------------------
    def evaluate(self, q: torch.Tensor, inv_s2: torch.Tensor, tol: float, *, differentiable: bool = False):
        """``q [Nq, D]`` (compute dtype), ``inv_s2 [Nq]`` float64 -> ``(out [Nq, C], bound [Nq, C] float64)``.

        Cluster-major: each kept cluster is evaluated by the kernel for exactly the rows that keep it,
        and the partial results are merged per row in log-sum-exp form (eq. 12.6).
        """
        keys, vals = self.augmented(q.dtype)
        q64 = q.detach().to(torch.float64)
        with torch.no_grad():
            keep, u = self._plan_all(q64, inv_s2, math.log(tol))
        q_aug = K.augment_queries(q.unsqueeze(0), inv_s2, with_logw=True)[0]  # [Nq, D + 2]
        if keep is None:  # stream the whole pool: evaluating more only lowers the error
            out, lse = K.softmax_average(q_aug[None], K.chunked(keys, vals, 1 << 16), differentiable=differentiable, return_lse=True)
            return out[0], torch.zeros((len(q), vals.shape[1] - 1), dtype=torch.float64, device=q.device)
        out, lse = self._cluster_major(q_aug, keep, keys, vals, differentiable)
        with torch.no_grad():
            log_z = lse.detach() - 0.5 * inv_s2 * (q64 * q64).sum(1)  # true-frame log Z_kept
            log_z = log_z - (1e-3 if q.dtype == torch.float32 else 1e-9) * (1.0 + log_z.abs())
            u_skip = torch.logsumexp(u.masked_fill(keep, -math.inf), dim=1)
            bound = torch.exp(u_skip - log_z)[:, None] * self.value_range.to(q.device)[None, :]
        return out, bound

    def _plan_all(self, q64, inv_s2, log_tol):
        """Keep mask ``[Nq, Kc]`` and bounds ``u``, planned in blocks of rows; ``(None, None)`` when the rows
        planned so far keep more than ``STREAM_ABOVE`` of the pool on average (stream it all instead)."""
        keeps, us = [], []
        for a in range(0, len(q64), ROW_BLOCK):
            skip, u = self.plan(q64[a : a + ROW_BLOCK], inv_s2[a : a + ROW_BLOCK], log_tol)
            keeps.append(~skip)
            us.append(u)
            if a == 0 and float((keeps[0].double() @ self.sizes).mean()) > STREAM_ABOVE * self.n_unique:
                return None, None
        keep = torch.cat(keeps)
        if float((keep.double() @ self.sizes).mean()) > STREAM_ABOVE * self.n_unique:
            return None, None
        return keep, torch.cat(us)

    def _cluster_major(self, q_aug, keep, keys, vals, differentiable):
        """Per kept cluster, the kernel on its rows; merged per row: ``(out [Nq, C], lse [Nq] GEMM frame)``."""
        Nq, C = q_aug.shape[0], vals.shape[1] - 1
        out = torch.zeros((Nq, C), dtype=q_aug.dtype, device=q_aug.device)
        lse = torch.full((Nq,), -math.inf, dtype=torch.float64, device=q_aug.device)
        pairs = keep.T.nonzero()  # [P, 2] (cluster, row), sorted by cluster
        per_cluster = torch.bincount(pairs[:, 0], minlength=self.n_clusters).tolist()
        rows_of = torch.split(pairs[:, 1], per_cluster)
        for c, rows in enumerate(rows_of):
            if len(rows) == 0:
                continue
            lo, hi = self.starts[c], self.starts[c + 1]
            chunks = K.chunked(keys[:, lo:hi], vals[:, :, lo:hi], 1 << 16)
            o_c, l_c = K.softmax_average(q_aug[rows][None], chunks, differentiable=differentiable, return_lse=True)
            l_old = lse[rows]
            l_new = torch.logaddexp(l_old, l_c[0])
            w_old = torch.exp(l_old - l_new).to(out.dtype)[:, None]
            w_c = torch.exp(l_c[0] - l_new).to(out.dtype)[:, None]
            out = out.index_copy(0, rows, out[rows] * w_old + o_c[0] * w_c)
            lse = lse.index_copy(0, rows, l_new)
        return out, lse
