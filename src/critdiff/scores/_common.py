"""Argument handling shared by the empirical and patch models (DESIGN.md sections 1-2).

Training images ``[N, C, H, W]``, optional class labels ``[N]``; a call ``D(x, sigma, label)`` is
split into groups of samples that share a class pool and a compute dtype. A
:data:`~critdiff.denoisers.NULL_LABEL` entry selects the unconditional pool (all images) for its sample.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..denoisers import NULL_LABEL, as_labels, as_sigma
from ..errors import check_images, check_int


def check_labels(labels, n: int) -> Optional[torch.Tensor]:
    """Training labels as a LongTensor ``[N]`` of values >= 0 (or None)."""
    if labels is None:
        return None
    if not isinstance(labels, torch.Tensor):
        labels = torch.as_tensor(labels)
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels: expected an integer tensor [N], got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"labels: expected shape [{n}] (one per training image), got {tuple(labels.shape)}")
    if n and int(labels.min()) < 0:
        raise ValueError("labels: expected class indices >= 0")
    return labels.to(torch.long).cpu()


def check_chunk_size(chunk_size) -> Optional[int]:
    return None if chunk_size is None else check_int("chunk_size", chunk_size, minimum=1)


def check_dtype(dtype) -> Optional[torch.dtype]:
    if dtype is None:
        return None
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype: expected None, torch.float32 or torch.float64, got {dtype!r}")
    return dtype


class ClassIndex:
    """Training images sorted by class: ``order`` permutes them, class ``k`` occupies ``ranges[k]``."""

    def __init__(self, labels: Optional[torch.Tensor], n: int):
        self.labels = labels
        if labels is None:
            self.order = torch.arange(n)
            self.ranges: list[tuple[int, int]] = []
            return
        self.order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels).tolist()
        starts = [0]
        for c in counts:
            starts.append(starts[-1] + c)
        self.ranges = [(starts[k], starts[k + 1]) for k in range(len(counts))]
        self.n = n

    @property
    def n_classes(self) -> int:
        return len(self.ranges)

    def pool_range(self, label: Optional[int], n: int) -> tuple[int, int]:
        if label is None:
            return (0, n)
        lo, hi = self.ranges[label]
        return (lo, hi)


def prepare_call(x, sigma, label, *, channels: int, size: tuple[int, int], classes: ClassIndex):
    """Validate a call; return ``(x, sigma [B] float64 list, labels list[int|None])`` (``None``: the
    unconditional pool, for ``label=None`` and for :data:`~critdiff.denoisers.NULL_LABEL` entries)."""
    x = check_images("x", x, channels=channels)
    if tuple(x.shape[2:]) != tuple(size):
        raise ValueError(f"x: expected images of size {size[0]}x{size[1]} like the training images, got shape {tuple(x.shape)}")
    B = x.shape[0]
    if isinstance(sigma, torch.Tensor):
        sigma = sigma.detach()
    # validated in float64 (a float32 copy could round a tiny sigma to 0)
    s = as_sigma(sigma, torch.empty((B, 0), dtype=torch.float64))
    s_list = s.cpu().tolist()
    lab = as_labels(label, B)
    lab_list = None if lab is None else [None if k == NULL_LABEL else k for k in lab.cpu().tolist()]
    if lab_list is None or all(k is None for k in lab_list):
        return x, s_list, [None] * B
    if classes.labels is None:
        raise ValueError("label: this model was built without labels; pass labels= at construction or label=None")
    for k in set(lab_list) - {None}:
        if not 0 <= k < classes.n_classes or classes.ranges[k][0] == classes.ranges[k][1]:
            present = [c for c, (lo, hi) in enumerate(classes.ranges) if hi > lo]
            raise ValueError(f"label: class {k} has no training images; expected one of {present} or NULL_LABEL "
                             f"({NULL_LABEL}: unconditional)")
    return x, s_list, lab_list


def groups(keys: list) -> dict:
    """Map each distinct key to the list of sample indices that carry it (first-seen order)."""
    out: dict = {}
    for b, k in enumerate(keys):
        out.setdefault(k, []).append(b)
    return out
