"""Streaming softmax-weighted average: the shared kernel of the empirical and patch models.

DESIGN.md section 2. For query rows ``q_r`` (``[G, Nq, D]``, ``G`` independent groups: one per
pixel position for the local patch model, ``G = 1`` otherwise) and a pool of keys ``p_j`` with
values ``v_j`` (``[G, M, D]`` and ``[G, M, Cv]``) it returns

    out_r = sum_j w_rj v_j,    w_rj = softmax_j( -|q_r - p_j|^2 / (2 sigma_r^2) + lw_j ),

with an optional per-key log-weight ``lw_j`` (log multiplicity of deduplicated keys).

Fast form (flash-attention style):

- logits by one GEMM: ``-|q - p|^2 / (2 s^2) = (q.p - |p|^2/2) / s^2 - |q|^2 / (2 s^2)``; the last
  term is constant per row and drops out of the softmax, so ``L = [q/s^2, 1/s^2, 1] @ [p, -|p|^2/2, lw]^T``
  (a per-row sigma is a per-row scaling of the left factor);
- the pool streams in chunks with an online softmax: running row max ``m``, accumulators rescaled by
  ``exp(m_old - m_new)``, ``e = exp(L - m)`` in place, and numerator and denominator in ONE small GEMM
  ``e @ [v, 1]``;
- tiles are sized so that one logit tile holds about ``TILE_ELEMS`` entries (a few MB).

Memory: one logit tile plus the accumulators ``[G, Nq, Cv + 1]``, whatever the pool size.
When ``differentiable=True`` every update is out of place, so autograd through ``q`` is exact
(used when the query requires grad; memory then grows with the pool, fine for small sizes).

Precision: the expansion costs absolute logit error ~ ``eps * (|q|^2 + |p|^2) / (2 s^2)``
(cancellation); callers choose the compute dtype with :func:`needs_float64`.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Optional

import torch

TILE_ELEMS = 1 << 20  # logits per tile: 4 MB in float32, 8 MB in float64
# relative logit error above which a float32 evaluation is promoted to float64
PRECISION_TOL = 1e-4
LOG_FLOOR = {torch.float32: -60.0, torch.float64: -600.0}


def needs_float64(q_norm2_max: float, p_norm2_max: float, sigma: float) -> bool:
    """True if the float32 GEMM expansion's logit error ``eps32 (|q|^2 + |p|^2) / (2 sigma^2)`` exceeds PRECISION_TOL."""
    eps32 = torch.finfo(torch.float32).eps
    return eps32 * (q_norm2_max + p_norm2_max) / (2.0 * sigma * sigma) > PRECISION_TOL


def augment_keys(p: torch.Tensor, logw: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``[..., M, D] -> [..., M, D + 1 (+1)]``: keys ``[p, -|p|^2 / 2 (, lw)]`` for the logit GEMM."""
    cols = [p, -0.5 * (p * p).sum(-1, keepdim=True)]
    if logw is not None:
        cols.append(logw.unsqueeze(-1).to(p.dtype))
    return torch.cat(cols, dim=-1)


def augment_values(v: torch.Tensor) -> torch.Tensor:
    """``[..., M, Cv] -> [..., Cv + 1, M]``: values ``[v, 1]`` transposed (the last row sums the weights).

    Transposed so that the value GEMM is ``[Cv+1, tp] @ [tp, tq]``: a skinny ``[tq, tp] @ [tp, 2]``
    product is several times slower in the BLAS libraries we measured.
    """
    return torch.cat([v, torch.ones_like(v[..., :1])], dim=-1).transpose(-1, -2).contiguous()


def augment_queries(q: torch.Tensor, inv_s2: torch.Tensor, with_logw: bool) -> torch.Tensor:
    """``q [G, Nq, D]``, ``inv_s2 [Nq]`` -> ``[G, Nq, D + 1 (+1)]``: ``[q/s^2, 1/s^2 (, 1)]``."""
    G, Nq, _ = q.shape
    s = inv_s2.to(q.dtype).reshape(1, Nq, 1).expand(G, Nq, 1)
    cols = [q * s, s]
    if with_logw:
        cols.append(torch.ones_like(s))
    return torch.cat(cols, dim=-1)


def softmax_average(
    q_aug: torch.Tensor,
    chunks: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    differentiable: bool = False,
    tile_elems: int = TILE_ELEMS,
    return_lse: bool = False,
):
    """Softmax-weighted average of pool values for every query row.

    ``q_aug [G, Nq, K]`` from :func:`augment_queries`; ``chunks`` yields ``(p_aug [G, m, K],
    vT_aug [G, Cv + 1, m])`` from :func:`augment_keys` / :func:`augment_values` (same dtype and
    device as ``q_aug``). Returns ``[G, Nq, Cv]``; with ``return_lse=True`` also the log-sum-exp of
    the (GEMM-frame) logits ``[G, Nq]``, float64.

    ``exp`` arguments are clamped at ``LOG_FLOOR`` (-60 in float32, -600 in float64): a weight
    below ``e^-60`` relative to the row's largest is replaced by ``e^-60`` (relative error of the
    result < ``M e^-60``, ~1e-19 for ten million patches), which keeps ``exp`` and the value GEMM off
    their slow underflow / subnormal paths (measured 4-6x slower) at small sigma.
    """
    G, Nq, _ = q_aug.shape
    floor = LOG_FLOOR[q_aug.dtype]
    # square-ish tiles for one group (ELS, empirical); all rows of a group at once for many groups (LS)
    tq = min(Nq, int(tile_elems**0.5)) if G == 1 else min(Nq, 64)
    q_tiles = [q_aug[:, i : i + tq] for i in range(0, Nq, tq)]
    m_list: list[Optional[torch.Tensor]] = [None] * len(q_tiles)
    acc_list: list[Optional[torch.Tensor]] = [None] * len(q_tiles)  # [G, Cv + 1, tq]
    for p_aug, vT_aug in chunks:
        M = p_aug.shape[1]
        for t, qt in enumerate(q_tiles):
            tp = max(1, tile_elems // (G * qt.shape[1]))
            for j in range(0, M, tp):
                pk, vk = p_aug[:, j : j + tp], vT_aug[:, :, j : j + tp]
                L = torch.bmm(qt, pk.transpose(1, 2))  # [G, tq, tp] logits up to a per-row constant
                m_tile = L.detach().amax(dim=-1)
                m_old = m_list[t]
                m_new = m_tile if m_old is None else torch.maximum(m_old, m_tile)
                if differentiable:
                    e = torch.exp(torch.clamp_min(L - m_new.unsqueeze(-1), floor))
                    contrib = torch.bmm(vk, e.transpose(1, 2))
                    if m_old is None:
                        acc_list[t] = contrib
                    else:
                        acc_list[t] = acc_list[t] * torch.exp(m_old - m_new).unsqueeze(1) + contrib
                else:
                    e = L.sub_(m_new.unsqueeze(-1)).clamp_min_(floor).exp_()
                    if m_old is None:
                        acc_list[t] = torch.bmm(vk, e.transpose(1, 2))
                    else:
                        acc = acc_list[t]
                        acc.mul_(torch.exp(m_old - m_new).unsqueeze(1))
                        acc.baddbmm_(vk, e.transpose(1, 2))
                m_list[t] = m_new
    if acc_list[0] is None:
        raise ValueError("pool: empty pool (no training patches to average)")
    acc = torch.cat(acc_list, dim=2)  # [G, Cv + 1, Nq]
    out = (acc[:, :-1] / acc[:, -1:]).transpose(1, 2)
    if not return_lse:
        return out
    m = torch.cat(m_list, dim=1).detach().to(torch.float64)
    return out, m + torch.log(acc[:, -1].to(torch.float64))  # differentiable when acc is


def sdpa_average(q_aug: torch.Tensor, chunks: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """The same average through ``F.scaled_dot_product_attention(q_aug, k_aug, v, scale=1.0)``.

    The augmented logits ``q_aug . p_aug`` are an attention product, so on CUDA the fused attention
    kernels evaluate the model exactly; the pool is materialised (all chunks concatenated) and the
    attention kernel does its own tiling. Same arguments and result ``[G, Nq, Cv]`` as
    :func:`softmax_average`, without the ``LOG_FLOOR`` clamp (it only matters below ``e^-60``).
    """
    import torch.nn.functional as F

    parts = list(chunks)
    if not parts:
        raise ValueError("pool: empty pool (no training patches to average)")
    p_aug = torch.cat([p for p, _ in parts], dim=1)
    v = torch.cat([vt[:, :-1] for _, vt in parts], dim=2).transpose(1, 2)  # [G, M, Cv]
    return F.scaled_dot_product_attention(q_aug, p_aug, v, scale=1.0)


def chunked(p_aug: torch.Tensor, vT_aug: torch.Tensor, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Split a materialised pool (``[G, M, K]`` keys, ``[G, Cv + 1, M]`` values) into chunks of ``size`` keys."""
    for j in range(0, p_aug.shape[1], size):
        yield p_aug[:, j : j + size], vT_aug[:, :, j : j + size]
