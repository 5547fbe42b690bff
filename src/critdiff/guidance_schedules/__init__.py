"""Guidance schedules as small composable objects (DESIGN.md section 5).

Parts: :mod:`.values` (constant, interval and pulse schedules), :mod:`.adaptive` (the adaptive controller),
:mod:`.nfe` (the evaluations a schedule costs on a grid); the unit conversions (:func:`centre_logsnr`,
:func:`grid_logsnr`, :func:`logsnr_of`) live with the times in :mod:`critdiff.times`. Everything is importable
from here.

A guidance schedule is a callable ``w(sigma [B]) -> [B]`` of the denoiser-frame noise level (per
sample), used by :class:`critdiff.guidance.Guided` as ``D_w = D_u + w (D_c - D_u)``, plus
``to_dict()`` (JSON metadata). Every schedule here works on the logsnr clock
``lambda = -2 log sigma`` (computed in float64), so pulses are placed the same way on any noise schedule.

Baseline convention. ``w = 0`` is the unconditional model, ``w = 1`` the conditional model,
``w > 1`` guided. A pulse or interval is ``w = baseline + (height - baseline) * profile(lambda)``
with ``profile`` in ``[0, 1]`` and ``profile = 1`` at the centre, so ``height`` is the peak guidance
weight and ``baseline`` the weight outside the pulse. ``baseline`` must be 0 or 1 (default 1, the
conditional model): there :class:`~critdiff.guidance.Guided` spends one network evaluation per
sample, so a pulse costs two evaluations only where it is on. ``Constant(height)`` is the constant
guidance "at equal height".

Budgets. ``budget()`` is the guidance excess ``integral (w - baseline) dlambda`` over the whole
logsnr axis in closed form; ``excess(lo, hi)`` the same integral over ``[lo, hi]``;
``grid_nfe(sigmas, evals)`` the network evaluations per sample a sampler spends on a sigma grid
(``evals='euler'``: one evaluation at each ``sigmas[i]``, i < N; ``'heun'``: plus one at
``sigmas[i+1]`` for every step not ending at 0).

Profiles (``profile='box' | 'gauss'``). ``width`` is the *equivalent width* in logsnr (area / peak): a box covers
``|lambda - centre| <= width / 2``; the Gaussian ``exp(-pi (lambda - centre)^2 / width^2)`` (standard
deviation ``width / sqrt(2 pi)``) has the same area, so a box and a Gaussian of equal ``height`` and
``width`` carry the same budget. The Gaussian is cut to exactly ``baseline`` beyond ``truncate``
standard deviations (default 3) so it, too, saves evaluations far from its centre.

A centre may be a float (one pulse for the whole batch) or a tensor ``[B]`` (one centre per sample,
e.g. :func:`random_centres`); :func:`centre_logsnr` converts a centre given as ``t``, ``logsnr``,
``sigma`` or a step index of the grid in use, exactly.

An adaptive pulse (:class:`AdaptivePulse`) has two parts with two names: the pulse object is the guidance
weight (``guidance=pulse``, ``pulse(sigma) -> w``) and its method ``pulse.observe`` is the sampler callback
that watches the indicator (``callback=[pulse.observe]``). The callback fires after the denoiser call
of step ``i`` (it sees ``x0_hat`` at ``sigmas[i]``), so the indicator at step ``i`` decides ``w`` for
every later evaluation (the next step, and the second Heun evaluation of step ``i`` at
``sigmas[i+1]``). No extra network call is made.
"""

from ..times import UNITS, Unit, centre_logsnr, grid_logsnr, logsnr_of
from .adaptive import INDICATORS, AdaptivePulse, Indicator, x0_contrast, x0_rate
from .nfe import evaluation_sigmas, grid_nfe
from .values import (EDGE_TOL, PROFILES, Centre, Constant, GuidanceSchedule, Interval, Profile, Pulse, edm_interval,
                     from_dict, none, random_centres, random_pulse)

__all__ = ["UNITS", "Unit", "centre_logsnr", "grid_logsnr", "logsnr_of", "INDICATORS", "AdaptivePulse", "Indicator",
           "x0_contrast", "x0_rate", "evaluation_sigmas", "grid_nfe", "EDGE_TOL", "PROFILES", "Centre", "Constant",
           "GuidanceSchedule", "Interval", "Profile", "Pulse", "edm_interval", "from_dict", "none", "random_centres",
           "random_pulse"]
