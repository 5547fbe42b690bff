"""The step-density profile of the ``'critical'`` grid: how fast the denoiser output moves along the sampler's own
trajectories (docs/samplers.md, "Critical grid"; DESIGN.md section 5b).

On a fine grid uniform in logsnr ``lam``, run deterministic DDIM (the probability-flow ODE with ``D`` frozen over
a step) from ``x = sigma_max z`` and record ``x0_hat_j = D(x_j, sigma_j)``. The profile is the root-mean-square
(over samples and pixels) speed of the prediction per unit logsnr,

    v(lam_{j+1/2}) = rms(x0_hat_{j+1} - x0_hat_j) / (lam_{j+1} - lam_j),                      (CG.2)

at the midpoints. DDIM's local error over a step is the change of ``D`` it ignores, so a grid with equal
``int v dlam`` per step equalises that change; ``v`` rises where the trajectories commit (for two-point data it
peaks at the speciation point, ``snr lambda_max = 1``; for Gaussian data with eigenvalue ``l`` at
``sigma^2 = 2 l``: eq. CG.3 of docs/samplers.md, tested), i.e. around the critical window.

Seeds: the initial noise of sample ``b`` is ``seed_generators(seed, n)[b]``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..denoisers import Denoiser, Label
from ..errors import check_int
from ..samplers import initial_noise, sample_ddim, seed_generators
from ..schedules import CRITICAL_FLOOR, Schedule, StepDensity
from ..schedules import get as get_schedule

DENSITY_STEPS, DENSITY_N = 64, 8  # the default fine grid and ensemble of denoiser_speed


def denoiser_speed(denoiser: Denoiser, shape, schedule: "Schedule | str", *, steps: int = DENSITY_STEPS,
                   n: int = DENSITY_N, seed: int = 0, label: Label = None, floor: float = CRITICAL_FLOOR,
                   dtype=torch.float32, device="cpu") -> StepDensity:
    """The profile of eq. CG.2 on ``steps`` DDIM steps uniform in logsnr over the schedule's range, ``n`` samples of
    ``shape`` ``(C, H, W)``; returned as the :class:`~critdiff.schedules.StepDensity` a ``'critical'`` grid
    follows (``floor``: eq. CG.1). Costs ``steps`` evaluations per sample."""
    check_int("steps", steps, 3)
    check_int("n", n, 1)
    sch = get_schedule(schedule)
    lam = torch.linspace(sch.logsnr_min, sch.logsnr_max, steps, dtype=torch.float64)
    sigmas = torch.cat([torch.exp(-0.5 * lam), torch.zeros(1, dtype=torch.float64)])
    x = initial_noise((n, *(int(v) for v in shape)), sigmas, seed_generators(seed, n), dtype=dtype, device=device)
    preds: list[torch.Tensor] = []
    with torch.no_grad():
        sample_ddim(denoiser, x, sigmas, label=label, callback=lambda st: preds.append(st.x0_hat.to(torch.float64)))
    X = torch.stack(preds)  # [steps, n, C, H, W]
    rms = torch.sqrt(((X[1:] - X[:-1]) ** 2).mean(dim=(1, 2, 3, 4))).cpu().numpy()
    dl = np.diff(lam.numpy())
    mid = 0.5 * (lam[1:] + lam[:-1]).numpy()
    rate = rms / dl
    if not np.isfinite(rate).all():
        raise ValueError("denoiser: non-finite outputs while measuring the step density")
    return StepDensity(tuple(float(v) for v in mid), tuple(float(v) for v in rate), floor=floor)


def gaussian_speed(lam_eig, logsnr) -> np.ndarray:
    """Closed form of eq. CG.2 for Gaussian data with covariance eigenvalues ``lam_eig`` on the exact ODE from the
    matching Gaussian (eq. CG.3): ``D = mu + U diag(l / sqrt(l + sigma^2)) c`` with ``c ~ N(0, I)``, so
    ``v^2 = mean_i l_i^2 sigma^4 / (4 (l_i + sigma^2)^3)``, ``sigma^2 = exp(-logsnr)``."""
    l = np.asarray(lam_eig, dtype=np.float64)[None, :]
    s2 = np.exp(-np.asarray(logsnr, dtype=np.float64))[:, None]
    return np.sqrt((l**2 * s2**2 / (4 * (l + s2) ** 3)).mean(1))


def peak_logsnr(density: StepDensity) -> float:
    """The logsnr where the measured profile is largest (the recorded midpoint)."""
    j = int(np.argmax(density.rate))
    return float(density.logsnr[j]) if math.isfinite(density.rate[j]) else math.nan
