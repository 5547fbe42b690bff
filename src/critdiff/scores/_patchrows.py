"""The ELS pool as rows addressed by index, never unfolded whole (docs/theory.md section 12).

Row ``r = n * P + k`` of the pool is the patch of training image ``n`` at the ``k``-th pool position
(row-major inside the window ``[y0:y1, x0:x1]``, ``P`` positions per image): the key ``[D]`` (``D =
|S| C``, offset-major, channel-minor, exactly the pixels :func:`~critdiff.stencil.gather_patches`
reads) and the value ``[C]`` (the centre pixel). Rows are read by a precomputed index table
``[P, S]`` into the flattened (zero-padded where the boundary is ``'zero'``) images, so any subset
of the pool costs ``|subset| * (D + C)`` numbers, whatever the pool size.

:class:`TensorRows` gives the same interface over explicit ``keys [M, D]``, ``values [M, C]``.
"""

from __future__ import annotations

import torch

from ..stencil import Stencil


class PatchRows:
    """Pool rows of ``images [N, C, H, W]`` (raw pixels, the images' dtype) for ``stencil``.

    ``window = (y0, y1, x0, x1)``: the pool positions; ``shift [C]`` float64: subtracted from keys
    by :meth:`keys` (in the requested dtype, as the exact path does).
    """

    def __init__(self, images: torch.Tensor, stencil: Stencil, boundary: str, window: tuple, shift: torch.Tensor):
        N, C, H, W = images.shape
        y0, y1, x0, x1 = window
        ry, rx = stencil.radius if boundary == "zero" else (0, 0)
        Wp = W + 2 * rx
        flat = torch.nn.functional.pad(images, (rx, rx, ry, ry)) if boundary == "zero" else images
        self._flat = flat.reshape(N, C, -1).contiguous()  # [N, C, (H + 2ry) (W + 2rx)]
        ii, jj = torch.meshgrid(torch.arange(y0, y1), torch.arange(x0, x1), indexing="ij")
        ii, jj = ii.reshape(-1, 1), jj.reshape(-1, 1)  # [P, 1]
        dy = torch.tensor([o[0] for o in stencil.offsets]).reshape(1, -1)
        dx = torch.tensor([o[1] for o in stencil.offsets]).reshape(1, -1)
        if boundary == "zero":
            self._table = (ii + ry + dy) * Wp + (jj + rx + dx)  # [P, S]
            self._centre = ((ii + ry) * Wp + (jj + rx))[:, 0]  # [P]
        else:
            self._table = ((ii + dy) % H) * W + (jj + dx) % W
            self._centre = (ii * W + jj)[:, 0]
        self.positions = self._table.shape[0]
        self.n_rows = N * self.positions
        self.dim, self.channels = stencil.size * C, C
        self.shift = shift.to(torch.float64)
        self.dtype = images.dtype

    def raw(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``idx [m]`` -> raw keys ``[m, D]`` and values ``[m, C]`` (unshifted pixels)."""
        n, k = idx // self.positions, idx % self.positions
        keys = self._flat[n[:, None], :, self._table[k]]  # [m, S, C]
        vals = self._flat[n, :, self._centre[k]]  # [m, C]
        return keys.reshape(len(idx), self.dim), vals

    def values(self, idx: torch.Tensor) -> torch.Tensor:
        """Values ``[m, C]`` (centre pixels) of rows ``idx``."""
        return self._flat[idx // self.positions, :, self._centre[idx % self.positions]]

    def keys(self, idx: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Shifted keys ``[m, D]`` in ``dtype``: ``raw.to(dtype) - shift.to(dtype)`` per channel."""
        raw, _ = self.raw(idx)
        C = self.channels
        return (raw.to(dtype).reshape(len(idx), -1, C) - self.shift.to(device=raw.device, dtype=dtype)).reshape(len(idx), self.dim)


class TensorRows:
    """The :class:`PatchRows` interface over explicit ``keys [M, D]`` (already shifted) and ``values [M, C]``."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        self._k, self._v = keys, values
        self.n_rows, self.dim = keys.shape
        self.channels = values.shape[1]
        self.positions = self.n_rows
        self.dtype = keys.dtype

    def raw(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._k[idx], self._v[idx]

    def values(self, idx: torch.Tensor) -> torch.Tensor:
        return self._v[idx]

    def keys(self, idx: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return self._k[idx].to(dtype)


def rows_to(rows, device):
    """``rows`` (either class) with its tensors on ``device``."""
    for name, value in list(vars(rows).items()):
        if isinstance(value, torch.Tensor):
            setattr(rows, name, value.to(device))
    return rows
