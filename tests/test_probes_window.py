"""Windowed random-probe estimate of the Fourier diagonal (critdiff.probes.spectral, ``window=``).

Oracle: the dense Jacobian's Fourier diagonal (``method='dense'``, an independent route) on a non-circulant local
linear map and on the patch model at a random state.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from critdiff.probes import spectral_probe
from critdiff.probes.spectral import window_lags

pytestmark = pytest.mark.usefixtures("one_thread")


class LocalLinear:
    """``D(x)_i = sum_{|d| <= 1} a_i(d) x_{i+d}`` (periodic) with spatially varying weights: local, not circulant."""

    def __init__(self, H, W, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.a = torch.randn(9, 1, H, W, generator=g, dtype=torch.float64) * 0.3

    def __call__(self, x, sigma, label=None):
        out = torch.zeros_like(x)
        j = 0
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                out = out + self.a[j] * torch.roll(x, shifts=(-dy, -dx), dims=(-2, -1))
                j += 1
        return out


def test_window_is_unbiased_and_cuts_the_variance_on_a_local_map():
    H = W = 16
    model = LocalLinear(H, W)
    x = torch.zeros(1, 1, H, W, dtype=torch.float64)
    dense = spectral_probe(model, x, 1.0, method="dense").kappa
    full = spectral_probe(model, x, 1.0, n_probes=400, probe="rademacher", seed=1)
    win = spectral_probe(model, x, 1.0, n_probes=400, probe="rademacher", seed=1, window=1)
    # unbiased: errors within 4.5 standard errors on every mode
    assert (np.abs(win.kappa - dense) <= 4.5 * win.kappa_se).all()
    assert (np.abs(full.kappa - dense) <= 4.5 * full.kappa_se).all()
    # variance ratio about HW / |window| = 256 / 9
    ratio = (full.kappa_se**2).mean() / (win.kappa_se**2).mean()
    assert 15 < ratio < 50, ratio


def test_window_too_small_is_biased():
    H = W = 16
    model = LocalLinear(H, W)
    x = torch.zeros(1, 1, H, W, dtype=torch.float64)
    dense = spectral_probe(model, x, 1.0, method="dense").kappa
    win = spectral_probe(model, x, 1.0, n_probes=400, probe="rademacher", seed=1, window=0)
    assert np.abs(win.kappa - dense).max() > 10 * win.kappa_se.max()


def test_window_on_the_patch_model_matches_dense():
    from critdiff.data import load
    from critdiff.scores.patch import PatchScore

    im, _ = load("textures:size=12,per_class=2", seed=0)
    im = im.double()
    model = PatchScore(im, stencil="square:5", equivariant=True, boundary="periodic")
    x = im[:1] + 0.7 * torch.randn(1, 1, 12, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    dense = spectral_probe(model, x, 0.7, method="dense").kappa
    win = spectral_probe(model, x, 0.7, n_probes=64, seed=3, window=2)
    assert (np.abs(win.kappa - dense) <= 4.5 * win.kappa_se + 1e-9).all()


def test_window_lags_and_errors():
    m = window_lags(1, 5, 6)
    assert m.sum() == 9 and m[0, 0] and m[4, 5] and not m[2, 0]
    with pytest.raises(ValueError, match="window"):
        window_lags(np.ones((3, 3), dtype=bool), 5, 6)
    bad = np.zeros((5, 6), dtype=bool)
    with pytest.raises(ValueError, match="window"):
        window_lags(bad, 5, 6)
    with pytest.raises(ValueError, match="window"):
        spectral_probe(LocalLinear(4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.float64), 1.0, method="impulse", window=1)
