"""Where a run's sampler starts and which grid it walks: ``--late-start`` and ``--spacing critical`` (DESIGN.md
section 5b; docs/samplers.md "Late start" and "Critical grid").

- :func:`run_moments`: the data moments the late start draws from: fitted to the training images when the run has
  them (analytic models, ``--data``; a run with ``--label`` on labelled data: that class's mean with the pooled
  within-class covariance, :func:`critdiff.late_start.fit_class_moments`, or the class's own stationary fit), else estimated from ``MOMENTS_N`` of the model's own samples, drawn once and
  cached beside the model (``DIR/critdiff-moments-<key>.safetensors``; ``net:`` and ``diffusers:`` models).
  Covariance (:func:`moments_covariance`): ``stationary`` for the translation-equivariant analytic patch model
  (periodic, equivariant pool; its samples are stationary) and whenever a full ``D x D`` fit is out of reach
  (``D > FULL_MAX_DIM``, or fewer than ``D + 1`` samples: a rank-deficient ``Sigma``); ``full`` otherwise.
- :func:`start_logsnr`: ``auto`` is the model's measured critical logsnr minus :data:`AUTO_MARGIN`; a number is
  taken as the start logsnr.
- :func:`run_grid`: the sigma grid, started at that level (same number of steps) and, for ``spacing='critical'``,
  placed by the measured step density (:func:`critdiff.probes.step_density.denoiser_speed`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from .. import samplers as SM
from .. import schedules as S
from ..config import JsonConfig
from ..io import atomic_write_bytes, config_hash
from ..late_start import (FULL_MAX_DIM, LATE_START_AUTO, Moments, fit_class_moments, fit_moments, parse_late_start,
                          start_state)
from ..seeding import derive

MOMENTS_N = 256  # model samples drawn once for the moments of a model without data (cached)
MOMENTS_STEPS = 20  # DPM-Solver++(2M) steps, uniform in logsnr, for those samples
AUTO_MARGIN = 2.0  # logsnr between the measured critical point and the auto start (docs/samplers.md, "Late start": measured)


@dataclass(frozen=True)
class StartPlan(JsonConfig):
    """The late start of a run: its level (``logsnr``, ``sigma`` in the denoiser frame), how it was chosen
    (``source``: ``given`` or the critical-time estimator; ``tc_logsnr``, ``margin``), and the moments used."""

    logsnr: float
    sigma: float
    source: str
    covariance: str
    moments_n: int
    moments_from: str
    tc_logsnr: Optional[float] = None
    margin: Optional[float] = None


def moments_covariance(cfg, n: int, dim: int) -> str:
    """``'stationary'`` or ``'full'`` for a run with ``n`` samples of dimension ``dim`` (module docstring)."""
    if getattr(cfg, "analytic_patch", False) or dim > FULL_MAX_DIM or n < dim + 1:
        return "stationary"
    return "full"


def _model_dir(cfg) -> Optional[Path]:
    if cfg.kind in ("net", "diffusers") and ":" in cfg.model:
        p = Path(cfg.model.split(":", 1)[1])
        return p if p.is_dir() else None
    return None


def model_moments(model, shape, schedule, *, n: int = MOMENTS_N, covariance: str = "full", seed: int = 0,
                  cache: Optional[Path] = None, dtype=torch.float32, device="cpu") -> Moments:
    """Moments of ``n`` unconditional samples of ``model`` (DPM-Solver++(2M), ``MOMENTS_STEPS`` steps uniform in
    logsnr over ``schedule``; sample ``j``'s noise ``seed_generators(seed, n)[j]``). With ``cache`` (a file),
    read it when present, else write it (atomically)."""
    if cache is not None and cache.exists():
        from safetensors.torch import load_file

        return Moments.from_tensors(load_file(str(cache)))
    sigmas = S.sigma_grid(schedule, MOMENTS_STEPS, "logsnr")
    x = SM.initial_noise((n, *shape), sigmas, SM.seed_generators(seed, n), dtype=dtype, device=device)
    with torch.no_grad():
        out = SM.sample_dpmpp_2m(model, x, sigmas)
    m = fit_moments(out, covariance)
    if cache is not None:
        from safetensors.torch import save

        try:
            atomic_write_bytes(cache, save(m.tensors()))
        except OSError:  # a read-only model folder: the moments are simply not cached
            pass
    return m


def run_moments(cfg, loaded) -> tuple[Moments, str]:
    """``(moments, where from)`` for the run ``cfg`` with its loaded model (module docstring)."""
    shape = tuple(loaded.shape)
    dim = math.prod(shape)
    if loaded.images is not None and tuple(loaded.images.shape[1:]) == shape:
        label = getattr(cfg, "label", None)
        cov = moments_covariance(cfg, int(loaded.images.shape[0]), dim)
        if label is not None and loaded.labels is not None:  # a conditional run: the Gaussian of p(x | label)
            if cov == "full":
                return (fit_class_moments(loaded.images, loaded.labels)[int(label)],
                        f"training data ({cfg.data}), class {label}: class mean, pooled within-class covariance")
            own = loaded.images[loaded.labels == int(label)]
            return fit_moments(own, "stationary"), f"training data ({cfg.data}), the {own.shape[0]} images of class {label}"
        return fit_moments(loaded.images, cov), f"training data ({cfg.data})"
    cov = moments_covariance(cfg, MOMENTS_N, dim)
    key = config_hash({"model": cfg.model, "schedule": S.get(cfg.schedule).config(), "n": MOMENTS_N,
                       "steps": MOMENTS_STEPS, "covariance": cov, "dtype": cfg.dtype, "cond": cfg.cond,
                       "prompt": cfg.prompt})
    d = _model_dir(cfg)
    cache = None if d is None else d / f"critdiff-moments-{key}.safetensors"
    m = model_moments(loaded.model, shape, cfg.schedule, covariance=cov, seed=derive(0, "late-start-moments"),
                      cache=cache, dtype=cfg.torch_dtype, device=cfg.torch_device)
    return m, f"{MOMENTS_N} model samples" + ("" if cache is None else f" (cached in {cache.name})")


def start_logsnr(cfg, tc: Optional[Callable[[], "object"]] = None) -> Optional[tuple[float, str, Optional[float], Optional[float]]]:
    """``(start logsnr, source, tc logsnr, margin)`` of ``cfg.late_start``, or None when off. ``tc``: a function
    returning the run's :class:`~critdiff.times.TimeEstimate` (called for ``auto`` only)."""
    v = parse_late_start(cfg.late_start)
    if v is None:
        return None
    if v != LATE_START_AUTO:
        return float(v), "given", None, None
    if tc is None:
        raise ValueError("late_start: 'auto' needs the model's critical time; give a start logsnr instead")
    logsnr, source = auto_reference(tc())
    return logsnr - AUTO_MARGIN, f"auto: {source} minus {AUTO_MARGIN:g}", logsnr, AUTO_MARGIN


def auto_reference(est) -> tuple[float, str]:
    """``(logsnr, source)`` that ``auto`` counts :data:`AUTO_MARGIN` from, for a critical-time estimate ``est``:
    the margin is measured from the instability's onset, so a shifted estimator (``linear-response+offset``, fitted
    to where a guidance pulse acts best) gives its measured, unshifted estimate (``extras['unshifted_logsnr']``)."""
    return float(est.extras.get("unshifted_logsnr", est.logsnr)), est.extras.get("unshifted_source", est.source)


def probe_spacing(spacing: str) -> str:
    """The spacing of a measurement run that borrows the run's (critical-time estimators): ``'critical'`` is a
    measured density of the model, so those runs use ``'logsnr'`` (the grid that density is measured on)."""
    return "logsnr" if spacing == "critical" else spacing


def run_grid(cfg, model, shape, start_sigma: Optional[float] = None) -> torch.Tensor:
    """The run's float64 sigma grid: ``cfg.steps`` steps of ``cfg.spacing`` from ``start_sigma`` (or the schedule's
    ``sigma_max``); ``'critical'`` measures the step density of ``model`` first (seed ``derive(cfg.seed,
    'step-density')``)."""
    density = None
    if cfg.spacing == "critical":
        from ..probes.step_density import denoiser_speed

        density = denoiser_speed(model, shape, cfg.schedule, seed=derive(cfg.seed, "step-density"),
                                 dtype=cfg.torch_dtype, device=cfg.torch_device)
    return S.sigma_grid(cfg.schedule, cfg.steps, cfg.spacing, sigma_max=start_sigma, density=density)


def plan_start(cfg, loaded, tc: Optional[Callable[[], "object"]] = None) -> Optional[tuple[StartPlan, Moments]]:
    """The :class:`StartPlan` and moments of ``cfg.late_start`` (None when off). The start must lie inside the
    schedule's range."""
    got = start_logsnr(cfg, tc)
    if got is None:
        return None
    lam, source, tc_lam, margin = got
    sch = S.get(cfg.schedule)
    if not sch.logsnr_min <= lam < sch.logsnr_max:
        raise ValueError(f"late_start: the start logsnr {lam:.4g} ({source}) lies outside the schedule's range "
                         f"[{sch.logsnr_min:.4g}, {sch.logsnr_max:.4g})")
    moments, where = run_moments(cfg, loaded)
    plan = StartPlan(logsnr=lam, sigma=math.exp(-0.5 * lam), source=source, covariance=moments.covariance,
                     moments_n=moments.n, moments_from=where, tc_logsnr=tc_lam, margin=margin)
    return plan, moments


def initial_state(cfg, shape, sigmas, generators, moments: Optional[Moments]) -> torch.Tensor:
    """The sampler's initial state at ``sigmas[0]``: ``sigmas[0] z`` (full range) or the late-start draw
    (:func:`critdiff.late_start.start_state`), ``z`` from ``generators`` either way."""
    if moments is None:
        return SM.initial_noise((len(generators), *shape), sigmas, generators, dtype=cfg.torch_dtype,
                                device=cfg.torch_device)
    return start_state(moments, float(sigmas[0]), len(generators), generators, dtype=cfg.torch_dtype,
                       device=cfg.torch_device)
