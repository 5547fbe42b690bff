"""The critical time at which the guidance experiment pulses: one :class:`CriticalTime` object.

It is resolved once per run (given, from the patch-model theory of DESIGN.md section 3, or from the
probes' growth onset of DESIGN.md section 4), stored as the ``tc`` record of the trial log, and read back
from there on resume, so every arm of a run uses the same value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from ... import schedules as S
from ...config import JsonConfig
from ...denoisers import sample_shape_of
from ...seeding import derive
from ...times import Time
from .config import GuideConfig


@dataclass(frozen=True)
class CriticalTime(JsonConfig):
    """The fields of a :class:`~critdiff.times.Time` (``t``, ``logsnr``, ``sigma_over_a``; :attr:`time`
    gives it back) with the ``source`` of the estimate, its interval ``logsnr_ci`` (probe estimates) and the
    critical mode ``k_star`` (theory estimates, rad/pixel) when known: the trial log's ``tc`` record."""

    t: float
    logsnr: float
    sigma_over_a: float
    source: str
    logsnr_ci: Optional[tuple[float, float]] = None
    k_star: Optional[tuple[float, float]] = None
    window: Optional[tuple[float, float]] = None

    @classmethod
    def at_logsnr(cls, schedule, logsnr: float, source: str, **extra: Any) -> "CriticalTime":
        """The critical time at ``logsnr`` on the noise ``schedule`` (a spec or a schedule object)."""
        return cls(**Time.from_logsnr(schedule, logsnr).to_dict(), source=source, **extra)

    @property
    def time(self) -> Time:
        """The time itself (formats as the report does: :meth:`~critdiff.times.Time.format`)."""
        return Time(self.t, self.logsnr, self.sigma_over_a)

    def record(self) -> dict:
        """The ``tc`` record of the trial log and of ``summary.json`` (unknown extras left out)."""
        d = {"type": "tc", **self.to_dict()}
        return {k: v for k, v in d.items() if v is not None}

    @classmethod
    def from_record(cls, rec: dict) -> "CriticalTime":
        return cls.from_dict({k: v for k, v in rec.items() if k != "type"})


def resolve_tc(cfg: GuideConfig, images: Optional[torch.Tensor], model=None, classifier=None) -> CriticalTime:
    """The critical time: given (``--tc-logsnr``), else the estimator named by ``cfg.tc_from``
    (:func:`critdiff.experiments.guide.estimators.resolve_estimates`; default: the patch-model theory of
    DESIGN.md section 3 for the patch model, the growth probe otherwise).

    Raises a one-line ValueError when no estimate is available (then pass ``--tc-logsnr``).
    """
    from .estimators import chosen_source, estimate

    if cfg.tc_logsnr is not None:
        return CriticalTime.at_logsnr(S.get(cfg.schedule), cfg.tc_logsnr, "given")
    return estimate(chosen_source(cfg), cfg, images, model, classifier)


def probe_tc(cfg: GuideConfig, model, images) -> Optional[CriticalTime]:
    """The probes' estimate of the critical point (DESIGN.md section 4): the growth onset of small fluctuations
    about the unconditional model's symmetric branch (:func:`critdiff.probes.linear_response`, forward
    evaluations only), with its interval. On the trained digits net this sits where the class is decided
    (logsnr about -1), whereas the stiffness along the sampler's own trajectories only turns at logsnr about 7.

    The branch run has the sizes ``critdiff probe`` uses by default (``ProbeConfig.linear`` coarse steps,
    ``ProbeConfig.linear_n`` members); its seed is ``derive(cfg.seed, 'linear-response')``.
    """
    shape = sample_shape_of(model) or (None if images is None else images.shape[1:])  # latents
    if model is None or shape is None:  # a diffusers model knows its shape; a net needs its data's
        return None
    from ...probes import at_grid_edge, from_growth, linear_response
    from ..probe import ProbeConfig

    lr = linear_response(model, tuple(shape), cfg.schedule, steps=ProbeConfig.linear, n=ProbeConfig.linear_n,
                         seed=derive(cfg.seed, "linear-response"),
                         dtype=cfg.torch_dtype if images is None else images.dtype, device=cfg.torch_device,
                         keep_states=False)
    est = from_growth(lr, n_boot=200, seed=cfg.seed)
    lam = float(est.logsnr)
    if at_grid_edge(est, lr.logsnr):
        # the branch neither turned unstable nor had an interior softest point: no critical time to pulse at
        raise ValueError(f"tc-logsnr: the linear-response probe found no critical time inside the grid (estimate at "
                         f"its end, logsnr {lam:.3g}); give --tc-logsnr (e.g. from `critdiff probe`)")
    return CriticalTime.at_logsnr(cfg.schedule, lam, f"probe (branch growth, {est.method})",
                                  logsnr_ci=tuple(float(v) for v in est.logsnr_ci))
