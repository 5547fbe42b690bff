"""Synthetic data with known answers (DESIGN.md section 6), made on the fly from a seed.

All loaders return images ``[N, C, size, size]`` float32 and labels ``[N]`` int64 or None.
Wave numbers are in radians per pixel on the periodic ``size x size`` grid, i.e. the FFT
frequencies ``k = 2 pi m / size`` for ``m`` in ``fftfreq`` order.

- ``twopoint``: every image is the constant ``-amp`` (label 0) or ``+amp`` (label 1): the
  data distribution is two points in image space. Classes are balanced and shuffled.
- ``stripes``: ``amp * cos(2 pi u / L + phi)`` with ``phi ~ U[0, 2 pi)``, ``u`` the column
  index (``orientation=x``: the wave vector points along x, label 0) or the row index
  (``orientation=y``, label 1); ``both`` mixes the two, balanced and shuffled. With
  ``channels=C`` every channel holds the same pattern.
- ``grf``: stationary Gaussian random fields with power spectrum ``P(|k|)``,
  ``spectrum=powerlaw``: ``P ∝ (k0^2 + |k|^2)^(-alpha/2)`` or ``spectrum=ring``:
  ``P ∝ exp(-(|k| - k0)^2 / (2 w^2))``, normalised so that the pixel standard deviation is
  exactly ``std`` (default 0.35) in expectation. Values are NOT clipped: a few pixels lie
  outside ``[-1, 1]`` (about 0.4 % at std 0.35). No labels.
"""

from __future__ import annotations

import math

import torch

from ..limits import MAX_CHANNELS, MAX_SIDE
from ..spec import Spec
from .options import fail, opt_choice, opt_float, opt_int, options


def _balanced_labels(n: int, n_classes: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` labels with class counts differing by at most one, in random order."""
    return (torch.arange(n, dtype=torch.int64) % n_classes)[torch.randperm(n, generator=generator)]


def load_twopoint(spec: Spec, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``twopoint[:size=8,channels=1,n=1000,amp=1]`` -> constant images ``±amp``, labels 0/1."""
    opts = options(spec, {"size": 8, "channels": 1, "n": 1000, "amp": 1.0})
    size = opt_int("twopoint", "size", opts["size"], minimum=2, maximum=MAX_SIDE)
    channels = opt_int("twopoint", "channels", opts["channels"], maximum=MAX_CHANNELS)
    n = opt_int("twopoint", "n", opts["n"])
    amp = opt_float("twopoint", "amp", opts["amp"], 0.0, 1.0)
    labels = _balanced_labels(n, 2, generator)
    sign = labels.to(torch.float32) * 2.0 - 1.0
    x = (amp * sign)[:, None, None, None].expand(n, channels, size, size)
    return x.contiguous(), labels


def load_stripes(spec: Spec, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``stripes[:size=32,wavelength=8,n=1000,orientation=x|y|both,amp=1,channels=1]``."""
    opts = options(spec, {"size": 32, "wavelength": 8.0, "n": 1000, "orientation": "x",
                          "amp": 1.0, "channels": 1})
    size = opt_int("stripes", "size", opts["size"], minimum=2, maximum=MAX_SIDE)
    wavelength = opt_float("stripes", "wavelength", opts["wavelength"], 2.0, math.inf, low_open=False)
    n = opt_int("stripes", "n", opts["n"])
    orientation = opt_choice("stripes", "orientation", opts["orientation"], ("x", "y", "both"))
    amp = opt_float("stripes", "amp", opts["amp"], 0.0, 1.0)
    channels = opt_int("stripes", "channels", opts["channels"], maximum=MAX_CHANNELS)

    if orientation == "both":
        labels = _balanced_labels(n, 2, generator)
    else:
        labels = torch.full((n,), 0 if orientation == "x" else 1, dtype=torch.int64)
    phase = torch.rand(n, generator=generator, dtype=torch.float64) * (2 * math.pi)
    u = torch.arange(size, dtype=torch.float64)
    # u along x (columns) for label 0, along y (rows) for label 1
    coord = torch.where(labels[:, None, None] == 0, u[None, None, :], u[None, :, None])  # [N, S, S]
    x = amp * torch.cos(2 * math.pi * coord / wavelength + phase[:, None, None])
    x = x[:, None].expand(n, channels, size, size)
    return x.to(torch.float32).contiguous(), labels


def wavenumber_grid(size: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``|k|`` on the periodic ``size x size`` FFT grid, radians per pixel, ``[size, size]``."""
    k = torch.fft.fftfreq(size, dtype=dtype) * (2 * math.pi)
    return torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2)


def grf_power(kabs: torch.Tensor, spectrum: str, *, alpha: float = 3.0, k0: float | None = None,
              w: float = 0.1) -> torch.Tensor:
    """Unnormalised power spectrum ``P(|k|)`` of the ``grf`` data set (see module docstring)."""
    if spectrum == "powerlaw":
        k0 = 0.1 if k0 is None else k0
        return (k0 ** 2 + kabs ** 2) ** (-alpha / 2)
    if spectrum == "ring":
        k0 = math.pi / 4 if k0 is None else k0
        return torch.exp(-((kabs - k0) ** 2) / (2 * w ** 2))
    raise fail(f"option 'spectrum' of 'grf' expects one of powerlaw, ring, got {spectrum!r}")


def load_grf(spec: Spec, generator: torch.Generator) -> tuple[torch.Tensor, None]:
    """``grf[:spectrum=powerlaw|ring,size=32,n=1000,channels=1,std=0.35,alpha=3,k0=...,w=0.1]``.

    ``k0`` defaults to 0.1 (powerlaw cut-off) or pi/4 (ring radius, wavelength 8 pixels).
    A white field ``eps`` is filtered in Fourier space by ``sqrt(P)``, with ``P`` scaled so
    that ``mean_k P = std^2``: then ``Var x_i = std^2`` and ``E|x_hat(k)|^2 = size^2 P(k)``.
    """
    opts = options(spec, {"spectrum": "powerlaw", "size": 32, "n": 1000, "channels": 1,
                          "std": 0.35, "alpha": None, "k0": None, "w": None})
    spectrum = opt_choice("grf", "spectrum", opts["spectrum"], ("powerlaw", "ring"))
    size = opt_int("grf", "size", opts["size"], minimum=2, maximum=MAX_SIDE)
    n = opt_int("grf", "n", opts["n"])
    channels = opt_int("grf", "channels", opts["channels"], maximum=MAX_CHANNELS)
    std = opt_float("grf", "std", opts["std"])
    wrong = "w" if spectrum == "powerlaw" else "alpha"
    if opts[wrong] is not None:
        raise fail(f"option {wrong!r} of 'grf' does not apply to spectrum={spectrum}")
    k0 = None if opts["k0"] is None else opt_float(
        "grf", "k0", opts["k0"], 0.0, math.inf, low_open=spectrum == "powerlaw")
    alpha = 3.0 if opts["alpha"] is None else opt_float("grf", "alpha", opts["alpha"], 0.0, math.inf, False)
    w = 0.1 if opts["w"] is None else opt_float("grf", "w", opts["w"])

    power = grf_power(wavenumber_grid(size), spectrum, alpha=alpha, k0=k0, w=w)
    if not bool(power.mean() > 0):
        raise fail(f"spectrum {spectrum} with these options has no power on a {size}x{size} grid")
    power = power * (std ** 2 / power.mean())
    eps = torch.randn(n, channels, size, size, generator=generator, dtype=torch.float64)
    x = torch.fft.ifft2(torch.fft.fft2(eps) * power.sqrt()).real
    return x.to(torch.float32).contiguous(), None
