"""Lattice helpers shared by the probes: wavevectors, radial shells.

Shapes: fields ``[..., H, W]`` on a periodic ``H x W`` lattice; wavevectors in radians per pixel
(``k = 2 pi fftfreq``, the DFT order of ``torch.fft.fft2``). Radial shells have width
``dk = 2 pi / max(H, W)`` centred on multiples of ``dk`` (shell 0 is ``k = 0``), the convention of
:func:`critdiff.theory.spectrum.radial_average`, so probe and theory curves share their ``|k|`` axis.
"""

from __future__ import annotations

import math
import numpy as np


def k_grid(H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ky, kx)`` each ``[H, W]`` float64, radians per pixel, in DFT order."""
    ky = np.fft.fftfreq(H) * 2 * math.pi
    kx = np.fft.fftfreq(W) * 2 * math.pi
    return np.broadcast_to(ky[:, None], (H, W)).copy(), np.broadcast_to(kx[None, :], (H, W)).copy()


def shells(H: int, W: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Radial shells of ``|k|``: ``(index [H, W] int, k_centres [n], count [n])`` (non-empty shells only).

    ``index`` maps every lattice point to the position of its shell in ``k_centres``.
    """
    ky, kx = k_grid(H, W)
    dk = 2 * math.pi / max(H, W)
    raw = np.rint(np.sqrt(ky**2 + kx**2) / dk).astype(int)
    used, index = np.unique(raw, return_inverse=True)
    index = index.reshape(H, W)
    return index, used * dk, np.bincount(index.ravel())


def r_shells(H: int, W: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Radial shells of the minimum-image distance ``|r|`` (unit width, centred on integers)."""
    ry = np.minimum(np.arange(H), H - np.arange(H))[:, None]
    rx = np.minimum(np.arange(W), W - np.arange(W))[None, :]
    raw = np.rint(np.sqrt(ry**2 + rx**2)).astype(int)
    used, index = np.unique(raw, return_inverse=True)
    index = index.reshape(H, W)
    return index, used.astype(np.float64), np.bincount(index.ravel())


def shell_mean(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Average of ``values [..., H, W]`` over each shell of ``index [H, W]`` -> ``[..., n]``."""
    n = int(index.max()) + 1
    flat = values.reshape(*values.shape[:-2], -1)
    onehot = np.zeros((flat.shape[-1], n))
    onehot[np.arange(flat.shape[-1]), index.ravel()] = 1.0
    return flat @ (onehot / onehot.sum(0))


def min_image(dk: np.ndarray) -> np.ndarray:
    """Wrap wavevector differences into ``[-pi, pi)``."""
    return (dk + math.pi) % (2 * math.pi) - math.pi

