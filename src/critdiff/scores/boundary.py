"""The boundary-aware patch model: equivariant (ELS) in the interior, position-specific (LS) near the frame.

docs/theory.md section 14. Zero boundary, training images ``y [N, C, H, W]``, stencil ``S``. The pixels are
split into the **interior** ``I`` (pixels ``i`` whose window ``i + S`` lies wholly inside the frame) and the
**border band** (the others: within the stencil's reach of the frame). The denoiser is

    D_i(x) = sum_p w_i(p) p[0],   w_i(p) = softmax_{p in P(i)} ( -|x_{i+S} - p_S|^2 / (2 sigma^2) ),     (14.2)

with the pool ``P(i)`` = the patches of every training image at every interior position (the ELS model
with ``pool='valid'``) for ``i`` in ``I``, and the zero-padded patches of every training image at ``i``
itself (the LS model) for ``i`` in the band. It is the posterior mean of the centre pixel given the local
patch under the class pools of the partition ``{I} + {{i} : i in band}`` (the optimal denoiser of the
local models that share one function across the interior and are free at each band pixel; theory.md
section 14). ``labels``: class pools, as :class:`~critdiff.scores.patch.PatchScore`.

Evaluated by two :class:`PatchScore` models (ELS ``valid`` on the certified pruned path at ``tol``; LS by
the window kernel, exact) whose outputs are combined by the interior mask; ``els``/``ls`` may be passed
in to share pools already built with the same images (:class:`~critdiff.probes.calibration.CalibratedPatchScore`).
"""

from __future__ import annotations

from typing import Optional

import torch

from ..stencil import parse_stencil
from .patch import PatchScore


class BoundaryPatchScore:
    """``D(x [B, C, H, W], sigma, label=None) -> [B, C, H, W]`` (module docstring). ``interior [H, W]``: the
    mask of ``I``; ``last_bound``: the ELS part's certified bound of the last call (the LS part is exact)."""

    def __init__(self, images: torch.Tensor, stencil="square:5", labels: Optional[torch.Tensor] = None,
                 tol: Optional[float] = None, device=None, els: Optional[PatchScore] = None,
                 ls: Optional[PatchScore] = None, **patch_kwargs):
        self.stencil = parse_stencil(stencil)
        if "boundary" in patch_kwargs and patch_kwargs.pop("boundary") != "zero":
            raise ValueError("boundary: the boundary-aware model is defined for the 'zero' boundary only")
        patch_kwargs.pop("pool", None)  # the interior pool is 'valid' by definition
        patch_kwargs.pop("equivariant", None)
        self.els = els if els is not None else PatchScore(
            images, self.stencil, equivariant=True, boundary="zero", pool="valid", labels=labels, tol=tol,
            device=device, **patch_kwargs)
        self.ls = ls if ls is not None else PatchScore(
            images, self.stencil, equivariant=False, boundary="zero", labels=labels, device=device, **patch_kwargs)
        for name, part, eq in (("els", self.els, True), ("ls", self.ls, False)):
            if (part.equivariant != eq or part.boundary != "zero" or part.stencil.offsets != self.stencil.offsets
                    or (eq and part.pool != "valid")):
                raise ValueError(f"{name}: expected the {'ELS valid' if eq else 'LS'} zero-boundary model of "
                                 f"{self.stencil.spec!r}, got {part!r}")
        C, H, W = self.els.image_shape
        y0, y1, x0, x1 = self.els._valid
        self.interior = torch.zeros(H, W, dtype=torch.bool)
        self.interior[y0:y1, x0:x1] = True
        self.image_shape = (C, H, W)
        self.last_bound = 0.0

    @property
    def n_classes(self) -> int:
        return self.els.n_classes

    def config(self) -> dict:
        return {**self.els.config(), "model": "patch-boundary", "pool": "valid-interior+ls-band",
                "n_band": int((~self.interior).sum())}

    def __repr__(self) -> str:
        return f"BoundaryPatchScore(stencil={self.stencil.spec!r}, n_images={self.els.n_images})"

    def __call__(self, x: torch.Tensor, sigma, label=None) -> torch.Tensor:
        """Posterior-mean estimate ``x0_hat [B, C, H, W]`` (eq. 14.2)."""
        d_els = self.els(x, sigma, label)
        self.last_bound = self.els.last_bound
        d_ls = self.ls(x, sigma, label)
        return torch.where(self.interior.to(x.device), d_els, d_ls.to(d_els.dtype))

    forward = __call__
