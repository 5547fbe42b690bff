"""Classifier-free guidance as a function that returns a new denoiser (DESIGN.md section 1).

``D_w(x, sigma, label) = D_u + w(sigma) (D_c - D_u)`` with ``D_u = D(x, sigma, None)`` and
``D_c = D(x, sigma, label)``. ``w = 0`` is the unconditional model, ``w = 1`` the conditional one,
``w > 1`` guided. A guidance weight (:data:`WeightFn`) is any function ``w(sigma [B]) -> float | [B]`` of the
denoiser-frame noise level. Where ``w`` is exactly 0 or 1 only one evaluation is spent for that
sample; :class:`Guided` counts evaluations per sample (NFE).

Guidance on a network's raw output. A denoiser may offer the output its network is guided on, as
diffusers' pipelines guide ``eps_u + w (eps_c - eps_u)``: two methods ``guidance_output(x, sigma, label)
-> F [B, C, H, W]`` and ``guidance_x0(x, sigma, F) -> x0_hat`` with ``D(x, sigma, label) =
guidance_x0(x, sigma, guidance_output(x, sigma, label))``. :class:`Guided` then mixes
``F_u + w (F_c - F_u)`` and converts once. Where ``guidance_x0`` is affine in ``F`` this is the same
``D_w`` in exact arithmetic; in float32 it avoids the cancellation in ``D_c - D_u`` when ``x ~ sigma`` is
large (``D = x - sigma eps``: two numbers of size ``sigma`` whose rounding the weight multiplies), and a
clip inside ``guidance_x0`` applies to the guided result, as diffusers clips it. Every other denoiser is
guided on ``D`` itself.
"""

from __future__ import annotations

from typing import Callable, Union

import torch

from .denoisers import Denoiser, Label, as_labels, as_sigma

WeightFn = Callable[[torch.Tensor], Union[float, torch.Tensor]]
"""A guidance weight ``w(sigma [B]) -> float | [B]`` of the denoiser-frame noise level (any callable; the
schedule objects of :mod:`critdiff.guidance_schedules` are such functions)."""


def constant(w: float) -> WeightFn:
    """The weight ``w(sigma) = w`` for every noise level."""
    w = float(w)

    def weight(sigma: torch.Tensor) -> float:
        return w

    weight.__name__ = f"constant({w:g})"
    return weight


class Guided:
    """The guided denoiser ``D_u + w(sigma) (D_c - D_u)``; ``nfe`` holds per-sample evaluation counts."""

    def __init__(self, denoiser: Denoiser, w: WeightFn):
        if not callable(w):
            raise TypeError(f"guidance: expected a function of sigma, got {type(w).__name__}")
        self.denoiser = denoiser
        self.w = w
        self.nfe: torch.Tensor | None = None

    def reset(self) -> None:
        self.nfe = None

    def _count(self, batch: int, counts: torch.Tensor) -> None:
        if self.nfe is None or self.nfe.shape[0] != batch:
            self.nfe = torch.zeros(batch, dtype=torch.long)
        self.nfe += counts.to("cpu", torch.long)

    def __call__(self, x: torch.Tensor, sigma, label: Label = None) -> torch.Tensor:
        B = x.shape[0]
        s = as_sigma(sigma, x)
        lab = as_labels(label, B, x.device)
        if lab is None:
            self._count(B, torch.ones(B, dtype=torch.long))
            return self.denoiser(x, s, None)
        w = torch.as_tensor(self.w(s), dtype=x.dtype, device=x.device)
        w = w.reshape(-1).expand(B) if w.numel() == 1 else w.reshape(B)
        need_u, need_c = w != 1, w != 0
        output, finish = _guided_parts(self.denoiser)
        d_u = _subset(output, x, s, None, need_u)
        d_c = _subset(output, x, s, lab, need_c)
        self._count(B, need_u.long() + need_c.long())
        wb = w.reshape(-1, 1, 1, 1)
        mixed = d_u + wb * (d_c - d_u)
        return mixed if finish is None else finish(x, s, mixed)


def _guided_parts(denoiser: Denoiser):
    """``(output, finish)``: the raw-output protocol of the module docstring, else ``(denoiser, None)``."""
    output, finish = getattr(denoiser, "guidance_output", None), getattr(denoiser, "guidance_x0", None)
    if callable(output) and callable(finish):
        return output, finish
    return denoiser, None


def _subset(output, x, s, lab, mask):
    """``output(x, s, lab)`` on the samples where ``mask`` holds, zeros elsewhere."""
    if bool(mask.all()):
        return output(x, s, lab)
    if not bool(mask.any()):
        return torch.zeros_like(x)
    idx = mask.nonzero().squeeze(1)
    part = output(x[idx], s[idx], None if lab is None else lab[idx])
    return torch.zeros_like(x).index_put((idx,), part)


def guided(denoiser: Denoiser, w: "WeightFn | float") -> Guided:
    """Return the guided denoiser; ``w`` is a weight function of sigma or a constant."""
    return Guided(denoiser, w if callable(w) else constant(w))
