"""Certified pruned evaluation of the softmax average over a large pool (docs/theory.md section 12).

Pool: rows of a :class:`~critdiff.scores._patchrows.PatchRows` (keys ``p_j [D]`` in the shifted frame of
the patch model, values ``v_j [C]``), read by index and never unfolded whole. Built once
(:class:`PrunedPool`):

1. exact de-duplication, chunk by chunk: identical rows of ``[p, v]`` merge into one key with
   multiplicity ``m_j``, carried as the log-weight ``log m_j`` of the kernel (eq. 12.1);
2. two-level k-means clusters ``c`` of the unique keys, sorted so that each is a contiguous range, with
   centroid ``mu_c``, radius ``r_c = max_j |p_j - mu_c|``, mass ``W_c = sum_j m_j`` and a
   representative ``rep_c`` (the member nearest ``mu_c``), all float64.

The pool keeps the row index of each unique key; kernel keys ``[p, -|p|^2/2, log m, 1]`` are cached per
dtype when they fit in ``KEY_CACHE_BYTES`` and read from the images per cluster otherwise.

Per query row ``q`` at noise ``sigma`` (eqs. 12.2-12.5):

    u_c = log W_c - max(0, |q - mu_c| - r_c)^2 / (2 sigma^2)   >=  log Z_c   (upper bound)
    g_c = log m_rep - |q - p_rep|^2 / (2 sigma^2)                <=  log Z_c   (lower bound)

the clusters with ``u_c < log tol + max_c' g_c' - log K`` are skipped (``K`` clusters); the kept ones
are evaluated exactly (cluster-major: each cluster for the rows that keep it, the partial results
merged per row in log-sum-exp form at the end, eq. 12.6). The certified error of the output is
``|D - D_hat| <= R exp(logsumexp(u_skipped) - log Z_kept) <= tol R`` per channel, ``R`` = the range
of the pool's values. When rows keep most of the pool, the whole pool streams with a fixed per-row
shift ``max_c g_c`` (a true logit, so no weight exceeds ``e^0`` by more than the gap to the true
maximum; rows that overflow are redone by the online-softmax kernel).
"""

from __future__ import annotations

import math

import torch

from . import _softmax as K
from ._kmeans import dedup_source, kmeans_tree
from ._patchrows import TensorRows, rows_to

MAX_CLUSTERS = 8192
POINTS_PER_CLUSTER = 250  # default n_clusters = n_unique / POINTS_PER_CLUSTER (at least sqrt(n_unique))
STREAM_ABOVE = 0.7  # when rows keep more than this fraction of the pool on average, stream the whole pool
ROW_BLOCK = 1024  # query rows planned at once (memory ~ ROW_BLOCK * n_clusters * 8 B per array)
KEY_CACHE_BYTES = 1 << 30  # kernel keys of a dtype are cached when they fit in this
_REL = 1e-12  # relative safety margin on float64 distances
_CHUNK = 1 << 18  # unique keys per pass in the geometry and streaming loops


class PrunedPool:
    """A de-duplicated, clustered pool with certified pruning over ``rows`` (``PatchRows`` or ``TensorRows``)."""

    def __init__(self, rows, n_clusters: int | None = None):
        if isinstance(rows, torch.Tensor):
            raise TypeError("rows: expected PatchRows or TensorRows (use PrunedPool.from_tensors for keys, values)")
        first, counts = dedup_source(lambda idx: torch.cat(rows.raw(idx), 1), rows.n_rows, chunk=1 << 20)
        self.rows = rows
        self.n_pool, self.n_unique = int(counts.sum()), len(first)
        k = n_clusters or int(min(MAX_CLUSTERS, max(math.sqrt(self.n_unique), self.n_unique / POINTS_PER_CLUSTER)))
        _, lab = torch.unique(kmeans_tree(lambda i: rows.keys(first[i], torch.float32), k, M=self.n_unique), return_inverse=True)
        order = torch.argsort(lab, stable=True)
        lab, self.src = lab[order], first[order]  # unique keys sorted by cluster; src: their row index
        self.logm = counts[order].to(torch.float64).log()
        self.values = rows.values(self.src)  # [U, C], the images' dtype
        size = torch.bincount(lab)
        self.n_clusters = len(size)
        self.sizes = size.to(torch.float64)  # unique keys per cluster
        self.starts = [0] + torch.cumsum(size, 0).tolist()  # cluster c holds rows starts[c]:starts[c+1]
        self._geometry(lab, counts[order])
        self._label = lab.to(torch.int32)  # cluster of each unique key
        self.allow32 = rows.dtype == torch.float32  # float32 pools may be evaluated in float32 where eq. 12.8 allows
        self.value_range = (self.values.amax(0) - self.values.amin(0)).to(torch.float64)  # [C]
        self._aug: dict = {}

    @classmethod
    def from_tensors(cls, keys: torch.Tensor, values: torch.Tensor, n_clusters: int | None = None) -> "PrunedPool":
        """A pool over explicit shifted ``keys [M, D]`` and ``values [M, C]``."""
        return cls(TensorRows(keys, values), n_clusters)

    def _geometry(self, lab: torch.Tensor, counts: torch.Tensor) -> None:
        """Centroids, radii, masses and representatives (float64, two chunked passes over the keys)."""
        U, D, K_ = self.n_unique, self.rows.dim, self.n_clusters
        self.centroid = torch.zeros(K_, D, dtype=torch.float64)
        for a in range(0, U, _CHUNK):
            self.centroid.index_add_(0, lab[a : a + _CHUNK], self.rows.keys(self.src[a : a + _CHUNK], torch.float64))
        self.centroid /= self.sizes[:, None]
        dist = torch.cat([(self.rows.keys(self.src[a : a + _CHUNK], torch.float64) - self.centroid[lab[a : a + _CHUNK]]).norm(dim=1)
                          for a in range(0, U, _CHUNK)])
        self.radius = torch.zeros(K_, dtype=torch.float64).scatter_reduce_(0, lab, dist, "amax") * (1 + _REL) + _REL
        self.log_mass = torch.zeros(K_, dtype=torch.float64).index_add_(0, lab, counts.to(torch.float64)).log()
        near = dist == torch.zeros(K_, dtype=torch.float64).scatter_reduce_(0, lab, dist, "amin", include_self=False)[lab]
        rep = torch.full((K_,), U, dtype=torch.long).scatter_reduce_(0, lab, torch.where(near, torch.arange(U), U), "amin")
        self.rep_key, self.rep_logm = self.rows.keys(self.src[rep], torch.float64), self.logm[rep]

    @property
    def keys(self) -> torch.Tensor:
        """Unique keys ``[U, D]`` float64, sorted by cluster (materialised: for tests and small pools)."""
        return self.rows.keys(self.src, torch.float64)

    @property
    def cluster(self) -> torch.Tensor:
        """Cluster label ``[U]`` of each unique key."""
        return self._label.to(torch.long)

    def to(self, device) -> "PrunedPool":
        """Move the pool (row source, float64 geometry) to ``device``; kernel keys are made on demand."""
        for name in ("src", "_label", "logm", "values", "sizes", "centroid", "radius", "log_mass", "rep_key", "rep_logm", "value_range"):
            setattr(self, name, getattr(self, name).to(device))
        self.rows = rows_to(self.rows, device)
        self._aug = {}
        return self

    def augmented(self, dtype: torch.dtype, lo: int, hi: int, centred: bool = False):
        """Kernel keys ``[hi - lo, D + 3]`` (``[p, -|p|^2/2, log m, 1]``; with ``centred`` ``p - mu_c`` of each key's
        cluster in place of ``p``, eq. 12.7) and values ``[C + 1, hi - lo]`` in ``dtype``."""
        key = (dtype, centred)
        if key not in self._aug:
            nbytes = self.n_unique * (self.rows.dim + 3 + self.rows.channels + 1) * torch.finfo(dtype).bits // 8
            self._aug[key] = self._make_aug(dtype, 0, self.n_unique, centred) if nbytes <= KEY_CACHE_BYTES else None
        if self._aug[key] is not None:
            k, v = self._aug[key]
            return k[lo:hi], v[:, lo:hi]
        return self._make_aug(dtype, lo, hi, centred)

    def _make_aug(self, dtype, lo, hi, centred):
        keys = torch.empty((hi - lo, self.rows.dim + 3), dtype=dtype, device=self.logm.device)
        for a in range(lo, hi, _CHUNK):
            b = min(hi, a + _CHUNK)
            if centred:  # rounded once, from float64
                p = (self.rows.keys(self.src[a:b], torch.float64) - self.centroid[self._label[a:b]]).to(dtype)
            else:
                p = self.rows.keys(self.src[a:b], dtype)
            keys[a - lo : b - lo] = torch.cat([K.augment_keys(p, self.logm[a:b]), torch.ones_like(p[:, :1])], 1)
        return keys, K.augment_values(self.values[lo:hi].to(dtype))

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

    def plan(self, q: torch.Tensor, inv_s2: torch.Tensor, log_tol: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Skip mask ``[Nq, Kc]`` (eq. 12.4: ``u_c < log tol + max g - log Kc``), the upper bounds ``u`` and ``max_c g_c [Nq]``."""
        u, g = self.bounds(q, inv_s2)
        g_max = g.amax(1)
        return u < log_tol + g_max[:, None] - math.log(u.shape[1]), u, g_max

    # ---- evaluation ---------------------------------------------------------------------
    def evaluate(self, q: torch.Tensor, inv_s2: torch.Tensor, tol: float, *, differentiable: bool = False):
        """``q [Nq, D]`` (compute dtype), ``inv_s2 [Nq]`` float64 -> ``(out [Nq, C], bound [Nq, C] float64)``."""
        q64 = q.detach().to(torch.float64)
        with torch.no_grad():
            keep, u, g_max = self._plan_all(q64, inv_s2, math.log(tol))
        q_aug = K.augment_queries(q.unsqueeze(0), inv_s2, with_logw=True)[0]  # [Nq, D + 2]
        zero = torch.zeros((len(q), self.values.shape[1]), dtype=torch.float64, device=q.device)
        if keep is None:  # stream the whole pool: evaluating more only lowers the error
            shift = g_max + 0.5 * inv_s2 * (q64 * q64).sum(1)  # a true logit, in the GEMM frame
            return self._stream(q_aug, shift, differentiable), zero
        out, lse, used32 = self._cluster_major(q_aug, q64, inv_s2, keep, differentiable)
        with torch.no_grad():
            log_z = lse.detach() - 0.5 * inv_s2 * (q64 * q64).sum(1)  # true-frame log Z_kept
            # the kernel's own rounding: float32 plain frame ~1e-7 |logit|; centred float32 <= PRECISION_TOL (eq. 12.8)
            plain32 = differentiable and q.dtype == torch.float32
            log_z = log_z - (1e-3 if plain32 else 1e-9) * (1.0 + log_z.abs()) - (1e-3 if used32 else 0.0)
            u_skip = torch.logsumexp(u.masked_fill(keep, -math.inf), dim=1)
            bound = torch.exp(u_skip - log_z)[:, None] * self.value_range[None, :]
        return out, bound

    def _plan_all(self, q64, inv_s2, log_tol):
        """Keep mask ``[Nq, Kc]``, bounds ``u`` and ``max g [Nq]``, planned in blocks of rows; the mask and ``u``
        are None when the rows keep more than ``STREAM_ABOVE`` of the pool on average (stream it all instead)."""
        keeps, us, gs = [], [], []
        for a in range(0, len(q64), ROW_BLOCK):
            skip, u, g = self.plan(q64[a : a + ROW_BLOCK], inv_s2[a : a + ROW_BLOCK], log_tol)
            keeps.append(~skip)
            us.append(u)
            gs.append(g)
        keep, g_max = torch.cat(keeps), torch.cat(gs)
        if float((keep.double() @ self.sizes).mean()) > STREAM_ABOVE * self.n_unique:
            return None, None, g_max
        return keep, torch.cat(us), g_max

    def _stream(self, q_aug, shift, differentiable):
        """All unique keys for every row, with the fixed per-row ``shift`` folded into the logit GEMM: ``[Nq, C]``."""
        if differentiable:
            chunks = (self.augmented(q_aug.dtype, a, min(a + _CHUNK, self.n_unique)) for a in range(0, self.n_unique, _CHUNK))
            chunks = ((k[None, :, :-1], v[None]) for k, v in chunks)
            return K.softmax_average(q_aug[None], chunks, differentiable=True)[0]
        floor = K.LOG_FLOOR[q_aug.dtype]
        q_ext = torch.cat([q_aug, -shift.to(q_aug.dtype)[:, None]], 1)  # [Nq, D + 3]
        C1 = self.values.shape[1] + 1
        acc = torch.zeros((C1, len(q_aug)), dtype=q_aug.dtype, device=q_aug.device)
        tq = int(K.TILE_ELEMS**0.5)
        for a in range(0, self.n_unique, _CHUNK):
            keys, vals = self.augmented(q_aug.dtype, a, min(a + _CHUNK, self.n_unique))
            for j in range(0, len(keys), tq):
                kj, vj = keys[j : j + tq], vals[:, j : j + tq]
                for i in range(0, len(q_ext), tq):
                    e = (q_ext[i : i + tq] @ kj.T).clamp_min_(floor).exp_()  # [tq, tp] weights e^{L - shift}
                    acc[:, i : i + tq].addmm_(vj, e.T)
        out = (acc[:-1] / acc[-1:]).T
        bad = ~torch.isfinite(acc).all(0)  # a key more than ~88 (float32) above the shift: redo online
        if bool(bad.any()):
            rows = bad.nonzero()[:, 0]
            chunks = (self.augmented(q_aug.dtype, a, min(a + _CHUNK, self.n_unique)) for a in range(0, self.n_unique, _CHUNK))
            out[rows] = K.softmax_average(q_aug[rows][None], ((k[None, :, :-1], v[None]) for k, v in chunks))[0]
        return out

    def _cluster_major(self, q_aug, q64, inv_s2, keep, differentiable):
        """Per kept cluster, the kernel on its rows; merged per row at the end (eq. 12.6):
        ``(out [Nq, C], lse [Nq] float64 in the GEMM frame, whether any cluster ran in float32)``.

        Not differentiable: in the cluster's centred frame (eq. 12.7), in float32 where the pool is float32 and
        eq. 12.8 allows, else float64. Differentiable: the online kernel on the plain keys in the query's dtype.
        """
        Nq, C = q_aug.shape[0], self.values.shape[1]
        pairs = keep.T.nonzero()  # [P, 2] (cluster, row), sorted by cluster
        per_cluster = torch.bincount(pairs[:, 0], minlength=self.n_clusters).tolist()
        q_ext = torch.cat([K.augment_queries(q64[None], inv_s2, with_logw=True)[0], torch.zeros_like(q64[:, :1])], 1)
        q2 = (q64 * q64).sum(1)
        outs, lses, used32 = [], [], False
        for c, rows in enumerate(torch.split(pairs[:, 1], per_cluster)):
            if len(rows) == 0:
                continue
            lo, hi = self.starts[c], self.starts[c + 1]
            if differentiable:
                keys, vals = self.augmented(q_aug.dtype, lo, hi)
                chunks = K.chunked(keys[None, :, :-1], vals[None], 1 << 16)
                o_c, l_c = K.softmax_average(q_aug[rows][None], chunks, differentiable=True, return_lse=True)
                outs.append(o_c[0])
                lses.append(l_c[0])
            else:
                o_c, l_c = self._centred(c, q_ext[rows], q2[rows], inv_s2[rows], lo, hi)
                used32 = used32 or o_c.dtype == torch.float32
                outs.append(o_c.to(q_aug.dtype))
                lses.append(l_c)
        row, lse_p, out_p = pairs[:, 1], torch.cat(lses), torch.cat(outs)
        m_row = torch.full((Nq,), -math.inf, dtype=torch.float64, device=q_aug.device)
        m_row = m_row.scatter_reduce(0, row, lse_p.detach(), "amax")
        w = torch.exp(lse_p - m_row[row])  # [P]
        z = torch.zeros(Nq, dtype=torch.float64, device=q_aug.device).index_add(0, row, w)
        out = torch.zeros((Nq, C), dtype=out_p.dtype, device=q_aug.device).index_add(0, row, out_p * w.to(out_p.dtype)[:, None])
        return out / z.to(out.dtype)[:, None], m_row + z.log(), used32

    def _centred(self, c, q_ext, q2, inv_s2, lo, hi):
        """Cluster ``c`` for rows ``q_ext [r, D + 3]`` (float64 ``[q/s^2, 1/s^2, 1, 0]``), ``q2 = |q|^2 [r]``, in its
        centred frame: ``(out [r, C], lse [r])``, lse in the GEMM frame.

        Logits ``A + ((q - mu).(p - mu) - |p - mu|^2 / 2) / sigma^2 + log m`` with ``A = (q.mu - |mu|^2/2) / sigma^2``
        (eq. 12.7); float32 when ``eps32 (max |q - mu|^2 + r^2) / (2 sigma^2) <= PRECISION_TOL`` (eq. 12.8).
        """
        mu = self.centroid[c]
        mu2 = float(mu @ mu)
        qmu_s = q_ext[:, :-3] @ mu  # q.mu / s^2  [r]
        dist2 = float((q2 - 2.0 * qmu_s / inv_s2).amax()) + mu2
        est = K.needs_float64(dist2, float(self.radius[c]) ** 2, float(inv_s2.amin()) ** -0.5)
        dtype = torch.float32 if self.allow32 and not est else torch.float64
        keys, vals = self.augmented(dtype, lo, hi, centred=True)
        q_ext[:, :-3].addcmul_(inv_s2[:, None], mu[None], value=-1.0)  # (q - mu) / s^2, in float64
        L = q_ext.to(dtype) @ keys.T  # [r, n_c]
        m = L.amax(1, keepdim=True)
        acc = vals @ L.sub_(m).clamp_min_(K.LOG_FLOOR[dtype]).exp_().T  # [C + 1, r]: the skinny GEMM is slow the other way
        A = qmu_s - 0.5 * mu2 * inv_s2
        return (acc[:-1] / acc[-1:]).T, A + m[:, 0].to(torch.float64) + acc[-1].to(torch.float64).log()
