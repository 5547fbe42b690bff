"""Independent float64 oracles shared by the tests: direct loops, no code from critdiff.scores.

- :func:`naive_patch`      the patch model (DESIGN.md section 2) pixel by pixel, pool patch by pool patch;
- :func:`naive_empirical`  the empirical model image by image;
- :class:`MixtureDenoiser` the exact denoiser of an equal mixture of isotropic Gaussians (one per class).
- :func:`assert_paths_close`  the comparison of two code paths that round differently.

Both evaluate ``sum_p softmax(-|q - p|^2 / (2 sigma^2)) v_p`` with explicit differences and a max-shifted
exponential, in numpy float64; a sigma far below the gap between the nearest and the second-nearest key
(e.g. 1e-9) gives the nearest key's value exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from critdiff.stencil import parse_stencil
from critdiff.denoisers import NULL_LABEL


def _weighted(q, keys, vals, sigma):
    logit = -((keys - q) ** 2).sum(1) / (2 * sigma**2)
    w = np.exp(logit - logit.max())
    return (w[:, None] * vals).sum(0) / w.sum()


def naive_patch(x, y, stencil, *, equivariant, boundary, pool="all", sigmas, y_labels=None, labels=None):
    """Direct float64 loop: every pixel, every pool patch, explicit differences and a max-shifted softmax.

    ``x [B, C, H, W]`` queries, ``y [N, C, H, W]`` training images; ``labels[b]`` (with ``y_labels [N]``)
    restricts sample ``b``'s pool to that class, ``None`` uses every image. Returns ``[B, C, H, W]`` numpy.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    offsets = parse_stencil(stencil).offsets
    B, C, H, W = x.shape
    N = y.shape[0]

    def pix(img, i, j):
        if boundary == "periodic":
            return img[:, i % H, j % W]
        if 0 <= i < H and 0 <= j < W:
            return img[:, i, j]
        return np.zeros(C)

    def patch(img, i, j):
        return np.concatenate([pix(img, i + dy, j + dx) for dy, dx in offsets])

    def inside(i, j):
        return all(0 <= i + dy < H and 0 <= j + dx < W for dy, dx in offsets)

    P = np.array([[[patch(y[n], i, j) for j in range(W)] for i in range(H)] for n in range(N)])  # [N,H,W,D]
    V = y.transpose(0, 2, 3, 1)  # [N,H,W,C]
    pos = [(a, c) for a in range(H) for c in range(W) if pool == "all" or inside(a, c)]
    out = np.zeros_like(x)
    for b in range(B):
        ns = [n for n in range(N) if labels is None or labels[b] is None or y_labels[n] == labels[b]]
        if equivariant:  # every position of every image in the pool
            keys = np.array([P[n, a, c] for n in ns for a, c in pos])
            vals = np.array([V[n, a, c] for n in ns for a, c in pos])
        for i in range(H):
            for j in range(W):
                if not equivariant:  # the patches at position (i, j) only
                    keys, vals = P[ns, i, j], V[ns, i, j]
                out[b, :, i, j] = _weighted(patch(x[b], i, j), keys, vals, sigmas[b])
    return out


def naive_empirical(x, y, sigmas, y_labels=None, labels=None):
    """Direct float64 loop over the training images ``y [N, ...]`` for each query ``x[b]``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    out = np.zeros_like(x)
    for b in range(x.shape[0]):
        ns = [n for n in range(y.shape[0]) if labels is None or labels[b] is None or y_labels[n] == labels[b]]
        flat = y[ns].reshape(len(ns), -1)
        out[b] = _weighted(x[b].reshape(-1), flat, flat, sigmas[b]).reshape(x.shape[1:])
    return out


class MixtureDenoiser:
    """Exact denoiser of a mixture of isotropic Gaussians N(mu_c, v I) (one per class), cheap for tests and smooth
    in ``x`` at every noise level (unlike a memorising denoiser); ``label=None`` (or a row of
    ``NULL_LABEL``) is the mixture."""

    def __init__(self, images, labels, v=0.1):
        K = int(labels.max()) + 1
        self.mu = torch.stack([images[labels == c].mean(0) for c in range(K)])  # [K, C, H, W]
        self.v = v

    def __call__(self, x, sigma, label=None):
        s2 = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1) ** 2
        r = self.v / (self.v + s2)
        d2 = ((x[:, None] - self.mu.to(x.dtype)[None]) ** 2).flatten(2).sum(-1)  # [B, K]
        w = torch.softmax(-d2 / (2 * (self.v + s2.reshape(-1, 1))), dim=1)
        mu = self.mu.to(x.dtype)[None]  # [1, K, C, H, W]
        mixture = (w[:, :, None, None, None] * (mu + r[:, None] * (x[:, None] - mu))).sum(1)
        if label is None:
            return mixture
        lab = torch.as_tensor(label).long().reshape(-1).expand(x.shape[0])
        null = lab == NULL_LABEL  # per-sample unconditional rows (the contract's null label)
        mu_c = self.mu.to(x.dtype)[lab.clamp(min=0)]
        return torch.where(null.reshape(-1, 1, 1, 1), mixture, mu_c + r * (x - mu_c))


def assert_paths_close(got, want, *, ulps: float = 64.0, msg=None) -> None:
    """``|got - want| <= ulps * eps(dtype) * max(1, max|want|)``, elementwise.

    For two code paths, two module instances or two batch compositions: their reductions (matmul, conv,
    sums) and vectorised transcendentals round in another order on another CPU or thread count (an AVX-512
    machine differs from an AVX2 one by a few ulps), so they agree to the dtype's precision, not bit for bit.
    ``torch.equal`` is for the *same* call repeated (determinism, resume).
    """
    got, want = torch.as_tensor(got), torch.as_tensor(want)
    dtype = want.dtype if want.is_floating_point() else torch.float64
    scale = max(1.0, float(want.detach().abs().max())) if want.numel() else 1.0
    tol = ulps * float(torch.finfo(dtype).eps) * scale
    torch.testing.assert_close(got, want, rtol=0, atol=tol, msg=msg)
