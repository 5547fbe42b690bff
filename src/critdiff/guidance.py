"""Classifier-free guidance as a function that returns a new denoiser (DESIGN.md section 1).

``D_w(x, sigma, label) = D_u + w(sigma) (D_c - D_u)`` with ``D_u = D(x, sigma, None)`` and
``D_c = D(x, sigma, label)``. ``w = 0`` is the unconditional model, ``w = 1`` the conditional one,
``w > 1`` guided. A guidance weight (:data:`WeightFn`) is any function ``w(sigma [B]) -> float | [B]`` of the
denoiser-frame noise level; it is evaluated on the CPU in float64 (the schedules keep their per-sample
state there), so choosing what to evaluate needs no device sync.

One call per step. As k-diffusion's CFGDenoiser and diffusers' pipelines do, :class:`Guided` evaluates
``[x_u; x_c]`` with labels ``[NULL_LABEL; label]`` (:data:`critdiff.denoisers.NULL_LABEL`: unconditional
for that sample) in ONE call: batch ``2B`` where every ``0 != w != 1``. A sample whose ``w`` is exactly 0
(or 1) needs only its unconditional (conditional) row, so a batch of mixed weights is one call over the
rows it needs, and a batch where every ``w`` is 0 (or 1) is one call at batch ``B`` with ``label=None``
(or ``label``). :attr:`Guided.nfe` counts the evaluated rows per sample (1 or 2 per step).

Guidance on a network's raw output. A denoiser may offer the output its network is guided on
(:class:`critdiff.denoisers.GuidanceOutput`), as diffusers' pipelines guide ``eps_u + w (eps_c - eps_u)``:
``guidance_output(x, sigma, label) -> F [B, C, H, W]`` and ``guidance_x0(x, sigma, F) -> x0_hat`` with
``D(x, sigma, label) = guidance_x0(x, sigma, guidance_output(x, sigma, label))``. :class:`Guided` then mixes
``F_u + w (F_c - F_u)`` (from the same single call) and converts once. Where ``guidance_x0`` is affine in ``F``
this is the same ``D_w`` in exact arithmetic; in float32 it avoids the cancellation in ``D_c - D_u`` when
``x ~ sigma`` is large (``D = x - sigma eps``: two numbers of size ``sigma`` whose rounding the weight
multiplies), and a clip inside ``guidance_x0`` applies to the guided result, as diffusers clips it. Every
other denoiser is guided on ``D`` itself.
"""

from __future__ import annotations

from typing import Callable, Union

import torch

from .denoisers import NULL_LABEL, Denoiser, GuidanceOutput, Label, as_labels, as_sigma

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
    """The guided denoiser ``D_u + w(sigma) (D_c - D_u)``, one model call per step (module docstring).

    ``nfe`` holds per-sample evaluation counts (``[B]`` long, on the CPU): 2 per step where ``0 != w != 1``,
    else 1. The wrapped denoiser must honour :data:`~critdiff.denoisers.NULL_LABEL` (every critdiff denoiser
    does).
    """

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

    def weights(self, sigma, batch: int) -> torch.Tensor:
        """``w`` per sample, float64 ``[B]`` on the CPU (``sigma`` a float, 0-d or ``[B]`` tensor)."""
        s = sigma.detach().to("cpu", torch.float64) if isinstance(sigma, torch.Tensor) else \
            torch.tensor(float(sigma), dtype=torch.float64)
        s = s.reshape(1).expand(batch) if s.numel() == 1 else s.reshape(batch)
        w = torch.as_tensor(self.w(s), dtype=torch.float64).detach().cpu()
        return w.reshape(1).expand(batch) if w.numel() == 1 else w.reshape(batch)

    def __call__(self, x: torch.Tensor, sigma, label: Label = None) -> torch.Tensor:
        B = x.shape[0]
        s = as_sigma(sigma, x)
        lab = as_labels(label, B, x.device)
        if lab is None:
            self._count(B, torch.ones(B, dtype=torch.long))
            return self.denoiser(x, s, None)
        w = self.weights(sigma, B)
        need_u, need_c = w != 1, w != 0
        self._count(B, need_u.long() + need_c.long())
        output, finish = _guided_parts(self.denoiser)
        f_u, f_c = _one_call(output, x, s, lab, need_u, need_c)
        if f_u is None:  # w == 1 everywhere: the conditional model
            mixed = f_c
        elif f_c is None:  # w == 0 everywhere: the unconditional model
            mixed = f_u
        else:
            wb = w.to(device=x.device, dtype=x.dtype).reshape(-1, 1, 1, 1)
            mixed = f_u + wb * (f_c - f_u)
        return mixed if finish is None else finish(x, s, mixed)


def _guided_parts(denoiser: Denoiser):
    """``(output, finish)``: the raw-output protocol (:class:`GuidanceOutput`), else ``(denoiser, None)``."""
    if isinstance(denoiser, GuidanceOutput):
        return denoiser.guidance_output, denoiser.guidance_x0
    return denoiser, None


def _one_call(output, x: torch.Tensor, s: torch.Tensor, lab: torch.Tensor, need_u: torch.Tensor,
              need_c: torch.Tensor):
    """``(F_u, F_c)``, each ``[B, ...]`` or ``None`` when no sample needs it, from ONE call of ``output``.

    The call holds the rows ``x[need_u]`` labelled ``NULL_LABEL`` then ``x[need_c]`` with their labels;
    rows a sample does not need are zeros in its ``F`` (its weight is 0 or 1 there, so they drop out of
    ``F_u + w (F_c - F_u)`` exactly). ``need_u``, ``need_c``: ``[B]`` bool on the CPU.
    """
    all_u, all_c, any_u, any_c = bool(need_u.all()), bool(need_c.all()), bool(need_u.any()), bool(need_c.any())
    B = x.shape[0]
    if all_u and all_c:  # 0 != w != 1 everywhere: [x; x] with [null; label] at batch 2B
        null = torch.full_like(lab, NULL_LABEL)
        out = output(torch.cat([x, x]), torch.cat([s, s]), torch.cat([null, lab]))
        return out[:B], out[B:]
    if not any_c:  # w == 0 everywhere
        return output(x, s, None), None
    if not any_u:  # w == 1 everywhere
        return None, output(x, s, lab)
    iu, ic = need_u.nonzero().squeeze(1), need_c.nonzero().squeeze(1)
    rows = torch.cat([iu, ic]).to(x.device)
    labs = torch.cat([torch.full((iu.numel(),), NULL_LABEL, dtype=lab.dtype, device=lab.device),
                      lab[ic.to(lab.device)]])
    out = output(x[rows], s[rows], labs)
    zeros = torch.zeros((B, *out.shape[1:]), dtype=out.dtype, device=out.device)
    f_u = zeros.index_copy(0, iu.to(out.device), out[: iu.numel()]) if any_u else None
    f_c = zeros.index_copy(0, ic.to(out.device), out[iu.numel():])
    return f_u, f_c


def guided(denoiser: Denoiser, w: "WeightFn | float") -> Guided:
    """Return the guided denoiser; ``w`` is a weight function of sigma or a constant."""
    return Guided(denoiser, w if callable(w) else constant(w))
