"""Stiffness spectrum ``kappa(k, sigma)`` around the homogeneous state (docs/theory.md section 3).

At the constant image ``m`` the patch denoiser's Jacobian is block-circulant with kernel
``K(delta) = Cov_w[p_0, p_delta] / sigma^2`` (``C x C`` blocks), ``delta`` in the stencil (eq. 3.2). With
the DFT convention ``x_hat(k) = sum_j x_j e^{-i k.j}`` (torch.fft) mode ``k`` is multiplied by

    C_w(k) = sum_{delta in S} Cov_w[p_0, p_delta] e^{+i k.delta}          (C x C, eq. 3.3)

and the denoiser-frame stiffness (minus the eigenvalues of the score Jacobian ``(J_D - I)/sigma^2``) is

    kappa(k) = (1 - c(k) / sigma^2) / sigma^2,   c(k) in eig C_w(k)       (eq. 3.4)

(``sigma`` = sigma/a; the schedule frame ``z = a x`` has ``kappa_z = kappa / a^2``, eq. 3.5). A mode
is unstable once ``Re c(k) > sigma^2``, i.e. ``snr c(k) > 1``.

Shapes: ``k`` grids ``[H, W]`` in radians per pixel in ``(-pi, pi]`` (``torch.fft.fftfreq`` order); the
eigenvalues ``[H, W, C]`` complex, sorted by decreasing real part. ``weights='uniform'`` (the plain
patch covariance, the high-noise limit) or ``'exact'`` (the softmax weights at ``m``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ..errors import check_choice
from .pool import PatchPool, homogeneous_weights

Weights = Literal["exact", "uniform"]
WEIGHTS = ("exact", "uniform")


def weighted_kernel(pool: PatchPool, w: torch.Tensor) -> torch.Tensor:
    """``Cov_w[p_0^c, p_delta^c']`` ``[S, C, C]`` (on the CPU) for normalised weights ``w [M]`` (one GEMM over the
    pool, on its device)."""
    M, S, C = pool.patches.shape
    mean0 = w @ pool.centres  # [C]
    mean_p = (w @ pool.patches.reshape(M, S * C)).reshape(S, C)
    second = ((pool.centres * w[:, None]).T @ pool.patches.reshape(M, S * C)).reshape(C, S, C)
    cov = second.permute(1, 0, 2) - mean0[None, :, None] * mean_p[:, None, :]
    return cov.cpu()  # [S, C(centre), C(offset)]


def patch_kernel(pool: PatchPool, sigma: float | None = None, m=None, weights: Weights = "exact") -> torch.Tensor:
    """Kernel ``Cov_w[p_0, p_delta]`` ``[S, C, C]`` at the constant image ``m`` and noise ``sigma`` (eq. 3.2).

    ``weights='uniform'`` (or ``sigma=None``) ignores ``m`` and ``sigma``: the plain patch covariance.
    """
    check_choice("weights", weights, WEIGHTS)
    if weights == "uniform" or sigma is None:
        w = homogeneous_weights(pool, None, None)
    else:
        w = homogeneous_weights(pool, torch.zeros(pool.channels) if m is None else m, sigma)
    return weighted_kernel(pool, w)


def k_grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Wavevector components ``(ky, kx)`` ``[H, W]`` of the DFT grid, radians per pixel."""
    ky = torch.fft.fftfreq(height, dtype=torch.float64) * (2 * math.pi)
    kx = torch.fft.fftfreq(width, dtype=torch.float64) * (2 * math.pi)
    return ky[:, None].expand(height, width), kx[None, :].expand(height, width)


def kernel_transform(kernel: torch.Tensor, offsets: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``C_w(k) = sum_delta K(delta) e^{+i k.delta}`` at wavevectors ``k [..., 2]`` -> ``[..., C, C]`` complex (eq. 3.3)."""
    S, C, _ = kernel.shape
    phase = torch.exp(1j * (k.to(torch.float64) @ offsets.to(torch.float64).T))  # [..., S]
    return (phase @ kernel.reshape(S, C * C).to(torch.complex128)).reshape(*k.shape[:-1], C, C)


def is_hermitian_kernel(kernel: torch.Tensor, offsets: torch.Tensor, tol: float = 1e-12) -> bool:
    """True if ``K(-delta) = K(delta)^T`` for every offset (then every ``C_w(k)`` is Hermitian)."""
    index = {tuple(o): i for i, o in enumerate(offsets.tolist())}
    scale = float(kernel.abs().max()) or 1.0
    for i, (dy, dx) in enumerate(offsets.tolist()):
        j = index.get((-dy, -dx))
        if j is None:
            if float(kernel[i].abs().max()) > tol * scale:
                return False
            continue
        if float((kernel[j] - kernel[i].T).abs().max()) > tol * scale:
            return False
    return True


def block_eigenvalues(blocks: torch.Tensor, hermitian: bool) -> torch.Tensor:
    """Eigenvalues of ``[..., C, C]`` blocks, sorted by decreasing real part -> ``[..., C]`` complex."""
    if hermitian:
        ev = torch.linalg.eigvalsh(0.5 * (blocks + blocks.conj().transpose(-1, -2))).to(torch.complex128)
    else:
        ev = torch.linalg.eigvals(blocks)
    order = torch.argsort(ev.real, dim=-1, descending=True)
    return torch.gather(ev, -1, order)


@dataclass(frozen=True, eq=False)
class Spectrum:
    """The spectrum at one noise level ``sigma`` (denoiser frame).

    ``cov_eigs [H, W, C]``: eigenvalues ``c(k)`` of ``C_w(k)`` (complex; real when ``hermitian``);
    ``kernel [S, C, C]``; ``ky, kx [H, W]``; ``m`` the constant image it was linearised at.
    """

    sigma: float
    cov_eigs: torch.Tensor
    kernel: torch.Tensor
    offsets: torch.Tensor
    ky: torch.Tensor
    kx: torch.Tensor
    m: np.ndarray
    weights: str
    hermitian: bool

    @property
    def kappa(self) -> torch.Tensor:
        """Denoiser-frame stiffness ``(1 - c(k)/sigma^2)/sigma^2`` ``[H, W, C]`` complex (eq. 3.4)."""
        s2 = self.sigma**2
        return (1.0 - self.cov_eigs / s2) / s2

    def kappa_schedule_frame(self, a: float) -> torch.Tensor:
        """Stiffness in the schedule frame ``z = a x``: ``kappa / a^2`` (eq. 3.5)."""
        return self.kappa / float(a) ** 2

    @property
    def kabs(self) -> torch.Tensor:
        return torch.sqrt(self.ky**2 + self.kx**2)

    def score_jacobian_eigenvalues(self) -> torch.Tensor:
        """All ``H W C`` eigenvalues of the denoiser-frame score Jacobian, flattened (``= -kappa``)."""
        return (-self.kappa).reshape(-1)


def stiffness_spectrum(pool: PatchPool, sigma: float, m=None, weights: Weights = "exact") -> Spectrum:
    """``kappa(k, sigma)`` on the full ``H x W`` DFT grid at the constant image ``m`` ``[C]`` (default 0).

    One pass over the pool (a weighted GEMM) plus ``O(H W |S| C^2)`` for the transform.
    """
    check_choice("weights", weights, WEIGHTS)
    C, H, W = pool.shape
    m_vec = np.zeros(C) if m is None else np.broadcast_to(np.asarray(m, dtype=np.float64), (C,)).copy()
    kern = patch_kernel(pool, sigma, torch.from_numpy(m_vec), weights)
    offs = pool.offsets
    ky, kx = k_grid(H, W)
    blocks = kernel_transform(kern, offs, torch.stack([ky, kx], dim=-1))
    herm = is_hermitian_kernel(kern, offs)
    ev = block_eigenvalues(blocks, herm)
    return Spectrum(float(sigma), ev, kern, offs, ky, kx, m_vec, weights, herm)


def radial_average(values: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor, n_bins: int | None = None):
    """Average of ``values [H, W]`` (real) over shells of ``|k|``.

    Shells have width ``dk = 2 pi / max(H, W)`` centred on multiples of ``dk`` (shell 0 is ``k = 0``).
    Returns numpy arrays ``(k_centres, mean, std_err, count)`` of the non-empty shells.
    """
    H, W = values.shape[-2:]
    dk = 2 * math.pi / max(H, W)
    kabs = torch.sqrt(ky**2 + kx**2).reshape(-1).numpy()
    v = values.reshape(-1).detach().cpu().numpy().astype(np.float64)
    idx = np.rint(kabs / dk).astype(int)
    nb = idx.max() + 1 if n_bins is None else n_bins
    count = np.bincount(idx, minlength=nb)[:nb]
    s1 = np.bincount(idx, weights=v, minlength=nb)[:nb]
    s2 = np.bincount(idx, weights=v * v, minlength=nb)[:nb]
    keep = count > 0
    mean = s1[keep] / count[keep]
    var = np.maximum(s2[keep] / count[keep] - mean**2, 0.0)
    se = np.sqrt(var / np.maximum(count[keep] - 1, 1))
    return np.arange(nb)[keep] * dk, mean, se, count[keep]
