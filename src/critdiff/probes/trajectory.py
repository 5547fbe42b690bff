"""Probes along a sampling trajectory: an observer on the sampler callback (DESIGN.md section 4).

:class:`TrajectoryProbe` is a callback (``Step(i, sigma, sigma_next, x, x0_hat)``, see
:mod:`critdiff.samplers`); at chosen step indices it records the ensemble state ``x [B, C, H, W]``, the
spectral probe of :mod:`.spectral` (stiffness ``kappa(k)``), the structure factor ``S(k)``, ``C(r)`` and
``xi_zero``, ``xi_peak`` of :mod:`.correlations`, and the Ornstein-Zernike ``xi`` of the stiffness. The samplers are not
forked: :func:`probe_trajectory` runs any sampler with this callback.

Time is the denoiser-frame ``sigma`` of each recorded step; ``logsnr = -2 log sigma``;
:meth:`Trajectory.times` converts to a schedule's ``t`` (DESIGN.md section 1). Arrays are float64 numpy
with time first: ``[T, ...]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch

from ..denoisers import CountingDenoiser, Denoiser, Label
from ..samplers import SAMPLERS, Step
from ..samplers import get as get_sampler
from ..schedules import Schedule
from ..seeding import derive
from ..io import to_jsonable
from ..times import schedule_times
from .correlations import ornstein_zernike, structure_factor
from .spectral import spectral_probe


@dataclass(frozen=True)
class Trajectory:
    """Probe signals at ``T`` recorded steps (time first). ``kappa*`` are channel means; NaN where undefined.

    ``states [T, B, C, H, W]`` (None unless kept), ``S [T, H, W]``, ``S_radial [T, nk]`` on ``k [nk]``,
    ``C_radial [T, nr]`` on ``r [nr]``, ``xi_zero [T]``, ``xi_peak [T]``; ``kappa [T, H, W]``, ``kappa_se``, ``kappa_state [T, B, H, W]``,
    ``kappa_radial [T, nk]`` (+ ``_se``), ``kappa_min [T]``, ``k_star [T, 2]``; Ornstein-Zernike ``xi_oz [T]``
    (inf at ``r = 0``, NaN when no preferred mode or ``c <= 0``), ``oz_r``, ``oz_c``, ``oz_preferred [T]``;
    ``nfe_sampler`` / ``nfe_probe``: per-sample denoiser evaluations of the sampler and of the probes.
    """

    steps: np.ndarray
    sigma: np.ndarray
    logsnr: np.ndarray
    k: np.ndarray
    r: np.ndarray
    S: Optional[np.ndarray]
    S_radial: Optional[np.ndarray]
    S_radial_se: Optional[np.ndarray]
    C_radial: Optional[np.ndarray]
    xi_zero: Optional[np.ndarray]
    xi_peak: Optional[np.ndarray]
    kappa: Optional[np.ndarray]
    kappa_se: Optional[np.ndarray]
    kappa_state: Optional[np.ndarray]
    kappa_radial: Optional[np.ndarray]
    kappa_radial_se: Optional[np.ndarray]
    kappa_min: Optional[np.ndarray]
    k_star: Optional[np.ndarray]
    xi_oz: Optional[np.ndarray]
    oz_r: Optional[np.ndarray]
    oz_c: Optional[np.ndarray]
    oz_preferred: Optional[np.ndarray]
    states: Optional[np.ndarray]
    x_final: Optional[np.ndarray]
    nfe_sampler: float
    nfe_probe: float

    def times(self, schedule: "Schedule | str") -> dict[str, np.ndarray]:
        """Recorded times under ``schedule``: ``t``, ``logsnr``, ``sigma_over_a``."""
        return schedule_times(schedule, self.sigma)

    def to_dict(self, include_states: bool = False) -> dict:
        skip = () if include_states else ("states", "x_final", "kappa_state")
        return to_jsonable({k: getattr(self, k) for k in self.__dataclass_fields__ if k not in skip})


class TrajectoryProbe:
    """Sampler callback recording probe signals at ``steps`` (step indices; None = every step).

    ``spectral``: keyword arguments of :func:`~.spectral.spectral_probe` (e.g. ``n_probes``, ``method``,
    ``probe``), or None to skip the spectral probe; the probe seed at step ``i`` is ``derive(seed, 'spectral-probe', i)``.
    ``correlations``: record ``S``, ``C(r)``, ``xi_zero``, ``xi_peak`` (needs ``B >= 2``). ``keep_states``: keep ``x``.
    """

    def __init__(self, denoiser: Denoiser, steps: Optional[Sequence[int]] = None, *, label: Label = None,
                 spectral: Optional[dict] = None, correlations: bool = True, keep_states: bool = True,
                 oz_radius: float = 2.0, seed: int = 0):
        self.denoiser = CountingDenoiser(denoiser)
        self.steps = None if steps is None else {int(s) for s in steps}
        self.label = label
        self.spectral = None if spectral is None else dict(spectral)
        self.correlations = bool(correlations)
        self.keep_states = bool(keep_states)
        self.oz_radius = float(oz_radius)
        self.seed = int(seed)
        self.records: list[dict] = []
        self.batch = 0

    def __call__(self, step: Step) -> None:
        if self.steps is not None and step.i not in self.steps:
            return
        x = step.x.detach()
        self.batch = x.shape[0]
        rec: dict = {"i": step.i, "sigma": float(step.sigma)}
        if self.keep_states:
            rec["x"] = x.to("cpu", torch.float64).numpy().copy()
        if self.correlations:
            rec["sf"] = structure_factor(x)
        if self.spectral is not None:
            kw = {"seed": derive(self.seed, "spectral-probe", step.i), **self.spectral}
            with torch.enable_grad():
                pr = spectral_probe(self.denoiser, x, step.sigma, label=self.label, **kw)
            rec["probe"] = pr
            rec["oz"] = ornstein_zernike(pr.kappa_mode, pr.kappa_mode_se if pr.method == "random" else None,
                                         radius=self.oz_radius)
        self.records.append(rec)

    def result(self, x_final: Optional[torch.Tensor] = None, nfe_sampler: float = math.nan) -> Trajectory:
        if not self.records:
            raise ValueError("steps: no step was recorded (check the step indices against the sigma grid)")
        R = self.records
        sig = np.array([r["sigma"] for r in R])
        get = lambda key, f: np.stack([f(r[key]) for r in R]) if key in R[0] else None  # noqa: E731
        sf, pr = "sf" in R[0], "probe" in R[0]
        oz = [r["oz"] for r in R] if pr else None
        nan = lambda v: math.nan if v is None else v  # noqa: E731
        return Trajectory(
            steps=np.array([r["i"] for r in R]), sigma=sig, logsnr=-2 * np.log(sig),
            k=R[0]["sf"].k if sf else (R[0]["probe"].k_radial if pr else np.zeros(0)),
            r=R[0]["sf"].r if sf else np.zeros(0),
            S=get("sf", lambda s: s.S), S_radial=get("sf", lambda s: s.S_radial),
            S_radial_se=get("sf", lambda s: s.S_radial_se), C_radial=get("sf", lambda s: s.C_radial),
            xi_zero=get("sf", lambda s: s.xi_zero), xi_peak=get("sf", lambda s: s.xi_peak),
            kappa=get("probe", lambda p: p.kappa_mode), kappa_se=get("probe", lambda p: p.kappa_mode_se),
            kappa_state=get("probe", lambda p: p.kappa_state.mean(1)),
            kappa_radial=get("probe", lambda p: p.kappa_radial), kappa_radial_se=get("probe", lambda p: p.kappa_radial_se),
            kappa_min=get("probe", lambda p: p.kappa_min), k_star=get("probe", lambda p: np.array(p.k_star)),
            xi_oz=None if oz is None else np.array([nan(o.xi) for o in oz]),
            oz_r=None if oz is None else np.array([nan(o.r) for o in oz]),
            oz_c=None if oz is None else np.array([nan(o.c) for o in oz]),
            oz_preferred=None if oz is None else np.array([o.preferred_mode for o in oz]),
            states=get("x", lambda v: v),
            x_final=None if x_final is None else x_final.detach().to("cpu", torch.float64).numpy(),
            nfe_sampler=float(nfe_sampler),
            nfe_probe=self.denoiser.evaluations / max(self.batch, 1),
        )


SamplerLike = Union[str, Callable[..., torch.Tensor]]


def resolve_sampler(sampler: SamplerLike) -> Callable[..., torch.Tensor]:
    """A sampler function from a spec (``'heun'``, ``'ddim:eta=0.5'``) or a callable with the shared signature."""
    if callable(sampler):
        return sampler
    if isinstance(sampler, str):
        return get_sampler(sampler)
    raise TypeError(f"sampler: expected a spec ({', '.join(SAMPLERS)}) or a sampler function, got {type(sampler).__name__}")


def probe_trajectory(denoiser: Denoiser, x: torch.Tensor, sigmas, *, sampler: SamplerLike = "heun",
                     steps: Optional[Sequence[int]] = None, label: Label = None, generator=None,
                     spectral: Optional[dict] = None, correlations: bool = True, keep_states: bool = True,
                     oz_radius: float = 2.0, seed: int = 0, callback=None) -> Trajectory:
    """Run ``sampler`` from ``x [B, C, H, W]`` over ``sigmas`` and record the probes at ``steps``.

    ``spectral=None`` skips the spectral probe (pass ``{}`` for its defaults). ``callback``: further callbacks
    run after the probe. Negative ``steps`` count from the end of the grid.
    """
    fn = resolve_sampler(sampler)
    n_steps = len(sigmas) - 1
    st = None if steps is None else sorted({int(s) % n_steps for s in steps})
    obs = TrajectoryProbe(denoiser, st, label=label, spectral=spectral, correlations=correlations,
                          keep_states=keep_states, oz_radius=oz_radius, seed=seed)
    counting = CountingDenoiser(denoiser)
    cbs = [obs] + ([] if callback is None else list(callback) if isinstance(callback, (list, tuple)) else [callback])
    out = fn(counting, x, sigmas, label=label, generator=generator, callback=cbs)
    return obs.result(out, counting.evaluations / x.shape[0])
