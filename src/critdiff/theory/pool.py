"""The training-patch pool the linear theory is computed from (docs/theory.md section 1).

Shapes: training images ``y [N, C, H, W]``; a stencil of ``|S|`` offsets; the pool holds one patch per
image and pixel (periodic boundaries, translation-equivariant model): ``patches [M, S, C]`` with
``M = N H W`` and the centre values ``centres [M, C]`` (the training pixel at the patch's centre, carried
even when ``(0, 0)`` is not in the stencil, as in the patch model). Everything is float64.

Every spectral quantity of the theory is a weighted moment of this pool, computed in one pass over it
(no Jacobian is ever formed). The pool lives on a torch device (``patch_pool(..., device=)``, default the
CPU): the passes over it run there, and what they return (weights excepted) is small and comes back to
the CPU, where the rest of the theory runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..devices import resolve as resolve_device
from ..errors import check_images
from ..stencil import Stencil, gather_patches, parse_stencil

VARIANCE_TOL = 1e-12  # data whose pixel variance is below this (relative to 1) carry no structure


@dataclass(frozen=True, eq=False)
class PatchPool:
    """Training patches of periodic images: ``patches [M, S, C]``, ``centres [M, C]`` (float64).

    ``offsets [S, 2]`` (long) are the stencil's ``(dy, dx)``; ``shape = (C, H, W)`` of the images.
    """

    patches: torch.Tensor
    centres: torch.Tensor
    stencil: Stencil
    shape: tuple[int, int, int]
    n_images: int
    norm2: torch.Tensor  # [M] |p_S|^2
    sums: torch.Tensor  # [M, C] sum over the stencil of p_delta

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        """Number of pool patches ``M``."""
        return int(self.patches.shape[0])

    @property
    def offsets(self) -> torch.Tensor:
        return self.stencil.offsets_tensor()

    @property
    def device(self) -> torch.device:
        """Where the pool's tensors live (and the passes over it run)."""
        return self.patches.device


def patch_pool(images: torch.Tensor, stencil="square:5", device=None) -> PatchPool:
    """Build the periodic, equivariant pool of ``images [N, C, H, W]`` for ``stencil`` (DESIGN.md section 2)
    on ``device`` (default the CPU; module docstring).

    Raises ``ValueError`` for a stencil larger than the images or data with zero variance.
    """
    check_images("images", images)
    if images.shape[0] < 1:
        raise ValueError("images: expected at least one training image, got N = 0")
    st = parse_stencil(stencil)
    N, C, H, W = images.shape
    ey, ex = st.extent
    if ey > H or ex > W:
        raise ValueError(
            f"stencil: {st.spec!r} spans {ey}x{ex} pixels, larger than the {H}x{W} images "
            "(offsets would wrap onto each other)"
        )
    y = images.detach().to("cpu" if device is None else resolve_device(device), torch.float64)
    var = float(y.var(dim=(0, 2, 3), unbiased=False).max()) if y.numel() > 1 else 0.0
    if not var > VARIANCE_TOL:
        raise ValueError(
            f"images: the data have zero variance (max per-channel pixel variance {var:.3g}); "
            "every mode is equally stable and there is no critical point to compute"
        )
    patches = gather_patches(y, st, "periodic").reshape(N * H * W, st.size, C)
    centres = y.permute(0, 2, 3, 1).reshape(N * H * W, C)
    return PatchPool(patches.contiguous(), centres.contiguous(), st, (C, H, W), N,
                     (patches**2).sum(dim=(1, 2)), patches.sum(dim=1))


def homogeneous_log_weights(pool: PatchPool, m: torch.Tensor, sigma: float) -> torch.Tensor:
    """Log-weights ``-|m 1_S - p_S|^2 / (2 sigma^2)`` of every pool patch at the constant image ``m`` ``[C]``.

    At a constant image every query patch is ``m 1_S``, so these weights are the same at every pixel
    (docs/theory.md eq. (1.2)). Returns ``[M]`` (unnormalised) on the pool's device.
    """
    m = torch.as_tensor(m, dtype=torch.float64).reshape(-1).to(pool.device)
    d2 = pool.norm2 - 2.0 * (pool.sums @ m) + pool.stencil.size * float(m @ m)  # |m 1_S - p_S|^2
    return -d2 / (2.0 * float(sigma) ** 2)


def homogeneous_weights(pool: PatchPool, m, sigma: float | None) -> torch.Tensor:
    """Normalised patch weights ``w [M]`` at the constant image ``m`` (on the pool's device); ``sigma=None`` gives
    uniform weights."""
    if sigma is None:
        return torch.full((pool.size,), 1.0 / pool.size, dtype=torch.float64, device=pool.device)
    return torch.softmax(homogeneous_log_weights(pool, m, sigma), dim=0)
