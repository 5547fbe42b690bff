"""Global (empirical) model: speciation and the two-point bifurcation diagram (docs/theory.md section 6).

- **Speciation** (eq. 6.1): around the data mean the global denoiser's Jacobian at high noise is
  ``Cov / sigma^2`` (``Cov`` of the flattened images ``[D, D]``), so the first direction to turn unstable
  is the top principal component, at ``snr lambda_max(Cov) = 1``.
- **Two-point model** (eq. 6.2): data ``+-a`` in one dimension, ``D(x) = a tanh(a x / sigma^2)``. The
  fixed points of the denoising flow (zeros of the score) solve ``x = a tanh(a x snr)``: ``x = 0`` for
  ``snr a^2 <= 1``, plus the pair ``+-x*(snr)`` after the pitchfork at ``snr a^2 = 1``, when ``x = 0``
  turns unstable (``d(D - x)/dx = a^2 snr - 1 > 0``).
- **Global = patch with the whole image as stencil** (eq. 6.3): with periodic boundaries and the full
  stencil, the equivariant pool is every cyclic shift of every image, and its uniform-weight spectrum
  is the eigenvalue set of the covariance of the shift-augmented data set.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import torch
from scipy.optimize import brentq

from ..errors import check_images, check_positive
from ..schedules import get as get_schedule
from ..times import TimeEstimate


SOURCE = "speciation (snr lambda_max(Cov) = 1)"


@dataclass(frozen=True)
class Speciation:
    """``lambda_max`` of the data covariance and the speciation point ``snr_c = 1/lambda_max``."""

    lambda_max: float
    logsnr_c: float
    sigma_over_a_c: float
    t_c: Optional[float]
    found: bool
    message: str
    direction: list

    def estimate(self, schedule) -> TimeEstimate:
        """The speciation point as a :class:`~critdiff.times.TimeEstimate` on ``schedule`` (a closed form: no
        interval)."""
        return TimeEstimate.at_logsnr(schedule, self.logsnr_c, SOURCE, lambda_max=self.lambda_max)

    def to_dict(self) -> dict:
        return asdict(self)


def covariance_eigenvalues(images: torch.Tensor) -> torch.Tensor:
    """Eigenvalues (descending) of the covariance of the flattened images ``[N, D]`` (``1/N`` normalised)."""
    check_images("images", images)
    y = images.detach().to("cpu", torch.float64).reshape(images.shape[0], -1)
    y = y - y.mean(0)
    if y.shape[0] < y.shape[1]:  # Gram trick: the non-zero spectrum of Y^T Y / N equals that of Y Y^T / N
        ev = torch.linalg.eigvalsh(y @ y.T / y.shape[0])
    else:
        ev = torch.linalg.eigvalsh(y.T @ y / y.shape[0])
    return ev.flip(0).clamp_min(0.0)


def speciation(images: torch.Tensor, schedule=None) -> Speciation:
    """Speciation point of the global model (eq. 6.1), reported as logsnr, sigma/a and (with a schedule) t."""
    check_images("images", images)
    y = images.detach().to("cpu", torch.float64).reshape(images.shape[0], -1)
    y = y - y.mean(0)
    cov = y.T @ y / y.shape[0]
    ev, vec = torch.linalg.eigh(cov)
    lam = float(ev[-1])
    if not lam > 1e-12:
        raise ValueError("images: the data have zero variance; the global model has no speciation point")
    logsnr = -math.log(lam)
    t, found, msg = None, True, ""
    if schedule is not None:
        sch = get_schedule(schedule)
        if not sch.logsnr_min <= logsnr <= sch.logsnr_max:
            found, msg = False, "speciation lies outside the schedule's logsnr range"
        else:
            t = float(sch.t_of_logsnr(torch.tensor(logsnr, dtype=torch.float64)))
    return Speciation(lam, logsnr, math.sqrt(lam), t, found, msg, vec[:, -1].tolist())


@dataclass(frozen=True)
class Bifurcation:
    """Fixed points of the 1-D two-point denoising flow against logsnr (eq. 6.2).

    ``x_plus [T]`` is the positive branch (NaN before the pitchfork); ``zero_stable [T]`` tells whether
    ``x = 0`` is stable. ``logsnr_c = -2 log a``.
    """

    amplitude: float
    logsnr: np.ndarray
    x_plus: np.ndarray
    zero_stable: np.ndarray
    logsnr_c: float

    def to_dict(self) -> dict:
        return {"amplitude": self.amplitude, "logsnr": self.logsnr.tolist(),
                "x_plus": [None if math.isnan(v) else v for v in self.x_plus.tolist()],
                "zero_stable": self.zero_stable.tolist(), "logsnr_c": self.logsnr_c}


def twopoint_fixed_point(amplitude: float, snr: float) -> float:
    """The positive solution of ``x = a tanh(a x snr)`` (NaN when ``snr a^2 <= 1``)."""
    a = check_positive("amplitude", amplitude)
    b = a * a * snr
    if b <= 1.0:
        return math.nan
    # f(x) = x - a tanh(a snr x) is < 0 just above 0 (slope 1 - b) and > 0 at x = a
    return brentq(lambda x: x - a * math.tanh(a * x * snr), 1e-300, a, xtol=1e-300, rtol=1e-14)


def twopoint_bifurcation(amplitude: float, logsnr) -> Bifurcation:
    """The exact bifurcation diagram of the two-point model on a grid of logsnr values."""
    a = check_positive("amplitude", amplitude)
    lam = np.asarray(logsnr, dtype=np.float64)
    xp = np.array([twopoint_fixed_point(a, math.exp(v)) for v in lam])
    return Bifurcation(a, lam, xp, np.exp(lam) * a * a <= 1.0, -2.0 * math.log(a))


def twopoint_amplitude(images: torch.Tensor, tol: float = 1e-9) -> Optional[float]:
    """If the data are two constant images ``+-v`` (up to repeats), the 1-D amplitude ``|v| sqrt(D)``; else None."""
    y = images.detach().to("cpu", torch.float64).reshape(images.shape[0], -1)
    uniq = torch.unique(torch.round(y / tol) * tol, dim=0)
    if uniq.shape[0] != 2 or not torch.allclose(uniq[0], -uniq[1], atol=10 * tol):
        return None
    return float(uniq[0].norm())


def shift_augmented(images: torch.Tensor) -> torch.Tensor:
    """Every cyclic shift of every image ``[N H W, C, H, W]``: the global data set equal to the full-stencil pool."""
    N, C, H, W = images.shape
    return torch.cat([torch.roll(images, (dy, dx), (2, 3)) for dy in range(H) for dx in range(W)])
