"""Stencils: the set ``S`` of pixel offsets a patch model looks at (DESIGN.md section 2).

A stencil is a set of integer offsets ``delta = (dy, dx)``; the patch of image ``x`` at pixel
``i`` is ``x_{i+S}``. Locality is the stencil's extent, sparsity its holes. Specs:

- ``square:K``      all offsets with ``|dy|, |dx| <= (K-1)/2`` (K odd);
- ``cross:R``       offsets on the two axes with ``|d| <= R``;
- ``dilated:K,D``   a ``square:K`` whose offsets are multiplied by ``D``;
- ``Stencil.from_mask(mask)`` any boolean array with odd sides, centred on its middle.

Boundaries: ``periodic`` (indices wrap) or ``zero`` (pixels outside are 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from .spec import Spec, parse_spec

Boundary = Literal["periodic", "zero"]
BOUNDARIES = ("periodic", "zero")


@dataclass(frozen=True)
class Stencil:
    """A stencil: ``offsets`` is a tuple of ``(dy, dx)`` pairs, sorted, without repeats."""

    offsets: tuple[tuple[int, int], ...]
    spec: str = "mask"

    def __post_init__(self) -> None:
        if len(self.offsets) == 0:
            raise ValueError("stencil: empty stencil (no offsets)")

    @property
    def size(self) -> int:
        """Number of offsets ``|S|``."""
        return len(self.offsets)

    @property
    def radius(self) -> tuple[int, int]:
        """Largest ``|dy|`` and ``|dx|``."""
        return (max(abs(o[0]) for o in self.offsets), max(abs(o[1]) for o in self.offsets))

    @property
    def extent(self) -> tuple[int, int]:
        """Number of rows and columns the offsets span."""
        dys = [o[0] for o in self.offsets]
        dxs = [o[1] for o in self.offsets]
        return (max(dys) - min(dys) + 1, max(dxs) - min(dxs) + 1)

    @property
    def has_center(self) -> bool:
        return (0, 0) in self.offsets

    def offsets_tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Offsets as a long tensor ``[S, 2]``."""
        return torch.tensor(self.offsets, dtype=torch.long, device=device)

    def mask(self) -> np.ndarray:
        """Boolean array ``[2 ry + 1, 2 rx + 1]`` with the stencil's offsets set."""
        ry, rx = self.radius
        m = np.zeros((2 * ry + 1, 2 * rx + 1), dtype=bool)
        for dy, dx in self.offsets:
            m[dy + ry, dx + rx] = True
        return m

    def check_fits(self, height: int, width: int, boundary: str = "periodic") -> None:
        """Raise if the stencil's extent exceeds the image (offsets would alias)."""
        ey, ex = self.extent
        if ey > height or ex > width:
            raise ValueError(
                f"stencil: {self.spec!r} spans {ey}x{ex} pixels, larger than the "
                f"{height}x{width} image"
            )

    @staticmethod
    def from_offsets(offsets, spec: str = "offsets") -> "Stencil":
        offs = sorted({(int(dy), int(dx)) for dy, dx in offsets})
        return Stencil(tuple(offs), spec)

    @staticmethod
    def from_mask(mask) -> "Stencil":
        """Stencil from a boolean array with odd sides, centred on its middle element."""
        m = np.asarray(mask)
        if m.ndim != 2:
            raise ValueError(f"stencil: mask must be 2-D, got shape {m.shape}")
        if m.shape[0] % 2 == 0 or m.shape[1] % 2 == 0:
            raise ValueError(f"stencil: mask sides must be odd (centred), got shape {m.shape}")
        m = m.astype(bool)
        if not m.any():
            raise ValueError("stencil: empty mask (no offsets set)")
        ry, rx = m.shape[0] // 2, m.shape[1] // 2
        offs = [(int(i) - ry, int(j) - rx) for i, j in zip(*np.nonzero(m))]
        return Stencil.from_offsets(offs, spec=f"mask:{m.shape[0]}x{m.shape[1]}")

    @staticmethod
    def full(height: int, width: int) -> "Stencil":
        """Every offset of a periodic ``height x width`` image once: the patch is the whole image."""
        offs = [(dy - height // 2, dx - width // 2) for dy in range(height) for dx in range(width)]
        return Stencil.from_offsets(offs, spec=f"full:{height}x{width}")


def _odd(name: str, value, spec_text: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"stencil: {name} must be an integer in {spec_text!r}")
    if value < 1 or value % 2 == 0:
        raise ValueError(f"stencil: {name} must be a positive odd integer (even stencils have no centre), got {value} in {spec_text!r}")
    return value


def parse_stencil(spec: "str | Stencil | np.ndarray | torch.Tensor") -> Stencil:
    """Build a :class:`Stencil` from a spec string, a boolean mask, or return it unchanged."""
    if isinstance(spec, Stencil):
        return spec
    if isinstance(spec, (np.ndarray, torch.Tensor)):
        return Stencil.from_mask(np.asarray(spec.cpu() if isinstance(spec, torch.Tensor) else spec))
    s: Spec = parse_spec(spec, "stencil")
    if s.kwargs:
        raise ValueError(f"stencil: expected positional values only, e.g. 'square:5', got {spec!r}")
    if s.name == "square":
        if len(s.args) != 1:
            raise ValueError(f"stencil: 'square:K' takes one odd integer K, got {spec!r}")
        k = _odd("K", s.args[0], spec)
        r = k // 2
        offs = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
    elif s.name == "cross":
        if len(s.args) != 1 or not isinstance(s.args[0], int) or s.args[0] < 0:
            raise ValueError(f"stencil: 'cross:R' takes one integer R >= 0, got {spec!r}")
        r = s.args[0]
        offs = [(d, 0) for d in range(-r, r + 1)] + [(0, d) for d in range(-r, r + 1)]
    elif s.name == "dilated":
        if len(s.args) != 2:
            raise ValueError(f"stencil: 'dilated:K,D' takes an odd K and a dilation D >= 1, got {spec!r}")
        k = _odd("K", s.args[0], spec)
        d = s.args[1]
        if not isinstance(d, int) or d < 1:
            raise ValueError(f"stencil: dilation D must be an integer >= 1, got {d!r} in {spec!r}")
        r = k // 2
        offs = [(dy * d, dx * d) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
    else:
        raise ValueError(f"stencil: unknown kind {s.name!r}; expected 'square:K', 'cross:R', 'dilated:K,D' or a boolean mask")
    return Stencil.from_offsets(offs, spec=str(spec))


def gather_patches(x: torch.Tensor, stencil: Stencil, boundary: str = "periodic") -> torch.Tensor:
    """Patches of every pixel: ``x [B, C, H, W] -> [B, H, W, S, C]`` with ``out[b,i,j,s] = x[b,:,i+dy_s,j+dx_s]``.

    ``periodic`` wraps indices; ``zero`` reads 0 outside the image.
    """
    B, C, H, W = x.shape
    if boundary == "periodic":
        stencil.check_fits(H, W)
        cols = [torch.roll(x, shifts=(-dy, -dx), dims=(2, 3)) for dy, dx in stencil.offsets]
    elif boundary == "zero":
        ry, rx = stencil.radius
        xp = torch.nn.functional.pad(x, (rx, rx, ry, ry))
        cols = [xp[:, :, ry + dy : ry + dy + H, rx + dx : rx + dx + W] for dy, dx in stencil.offsets]
    else:
        raise ValueError(f"boundary: expected one of 'periodic', 'zero', got {boundary!r}")
    return torch.stack(cols, dim=1).permute(0, 3, 4, 1, 2)  # [B, S, C, H, W] -> [B, H, W, S, C]
