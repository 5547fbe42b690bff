"""The empirical (global, memorising) score model.

DESIGN.md section 2. Training images ``y [N, C, H, W]``; for ``x [B, C, H, W]``

    D(x) = sum_n w_n y_n,    w = softmax_n( -|x - y_n|^2 / (2 sigma^2) ),

the exact posterior mean when the data distribution is the empirical measure of ``y``. With
``labels``, ``label=k`` averages over the class-``k`` images only.

Evaluated by the streaming online-softmax GEMM kernel of :mod:`critdiff.scores._softmax` with
``G = 1`` group, the ``B`` images as query rows and the ``N`` training images as keys and values.
``chunk_size`` = training images per chunk (memory ~ ``chunk_size * (2 C H W + 2)`` numbers).
Precision rule as for :class:`~critdiff.scores.patch.PatchScore`: a float32 call is computed in
float64 for samples with ``eps32 (|x - mu|^2 + max|y - mu|^2) / (2 sigma^2) > 1e-4``.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..devices import resolve as resolve_device
from ..errors import check_images
from . import _softmax as K
from ._common import ClassIndex, check_chunk_size, check_labels, groups, prepare_call

DEFAULT_CHUNK = 4096


class EmpiricalScore:
    """Empirical denoiser ``D(x [B,C,H,W], sigma, label=None) -> [B,C,H,W]`` (DESIGN.md section 2)."""

    def __init__(self, images: torch.Tensor, labels: Optional[torch.Tensor] = None, chunk_size: Optional[int] = None,
                 device=None):
        images = check_images("images", images)
        N, C, H, W = images.shape
        if N == 0:
            raise ValueError("images: expected at least one training image")
        self.chunk_size = check_chunk_size(chunk_size)
        self.image_shape = (C, H, W)
        self.n_images = N
        self._classes = ClassIndex(check_labels(labels, N), N)
        self.labels = None if labels is None else self._classes.labels
        self._images = images.detach()[self._classes.order].contiguous()
        if device is not None:  # where the training images live
            self._images = self._images.to(resolve_device(device))
        flat = self._images.reshape(N, -1).to(torch.float64)
        self._shift = flat.mean(0)  # [CHW]; exact shift, shrinks the GEMM cancellation
        self._p_norm2_max = float((flat - self._shift).pow(2).sum(1).max())
        self._cache: dict = {}

    @property
    def n_classes(self) -> int:
        return self._classes.n_classes

    def config(self) -> dict:
        C, H, W = self.image_shape
        return {"model": "empirical", "n_images": self.n_images, "image_shape": [C, H, W],
                "n_classes": self.n_classes, "chunk_size": self.chunk_size}

    def __repr__(self) -> str:
        return f"EmpiricalScore(n_images={self.n_images}, image_shape={self.image_shape})"

    def _pool(self, dtype, device):
        key = (dtype, str(device))
        if key not in self._cache:
            y = self._images.reshape(self.n_images, -1).to(device=device, dtype=dtype)
            p = y - self._shift.to(device=device, dtype=dtype)
            self._cache = {key: (K.augment_keys(p).unsqueeze(0), K.augment_values(y).unsqueeze(0))}
        return self._cache[key]

    def __call__(self, x: torch.Tensor, sigma, label=None) -> torch.Tensor:
        """Posterior mean under the empirical measure, ``[B, C, H, W]`` (DESIGN.md section 2)."""
        C, H, W = self.image_shape
        x, s_list, lab_list = prepare_call(x, sigma, label, channels=C, size=(H, W), classes=self._classes)
        B = x.shape[0]
        differentiable = torch.is_grad_enabled() and x.requires_grad
        shift = self._shift.to(x.device)
        q_all = x.reshape(B, -1)
        q_norm2 = (q_all.detach().to(torch.float64) - shift).pow(2).sum(1).cpu().tolist()
        keys = []
        for b in range(B):
            promote = x.dtype == torch.float32 and K.needs_float64(q_norm2[b], self._p_norm2_max, s_list[b])
            keys.append((lab_list[b], torch.float64 if promote else x.dtype))
        outs = [None] * B
        step = self.chunk_size or DEFAULT_CHUNK
        for (lab, cdt), idx in groups(keys).items():
            q = (q_all[idx].to(cdt) - shift.to(cdt)).unsqueeze(0)  # [1, Bg, CHW]
            inv_s2 = torch.tensor([1.0 / s_list[b] ** 2 for b in idx], dtype=torch.float64, device=x.device)
            q_aug = K.augment_queries(q, inv_s2, with_logw=False)
            lo, hi = self._classes.pool_range(lab, self.n_images)
            p_aug, v_aug = self._pool(cdt, x.device)
            out = K.softmax_average(q_aug, K.chunked(p_aug[:, lo:hi], v_aug[:, :, lo:hi], step),
                                    differentiable=differentiable)  # [1, Bg, CHW]
            out = out[0].reshape(len(idx), C, H, W).to(x.dtype)
            for j, b in enumerate(idx):
                outs[b] = out[j]
        return torch.stack(outs, 0)

    forward = __call__
