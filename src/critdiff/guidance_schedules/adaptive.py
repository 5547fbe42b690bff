"""The adaptive controller: a pulse that fires per sample when an online indicator of the sampler's own
trajectory reaches a threshold (see :mod:`critdiff.guidance_schedules`, "An adaptive pulse")."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..errors import check_finite
from .values import GuidanceSchedule, Pulse

Indicator = Callable[["_IndicatorState", object], torch.Tensor]


@dataclass
class _IndicatorState:
    prev_x0: Optional[torch.Tensor] = None
    prev_logsnr: Optional[float] = None


def _rms(v: torch.Tensor) -> torch.Tensor:
    return v.detach().to(torch.float64).flatten(1).pow(2).mean(1).sqrt()


def x0_rate(state: _IndicatorState, step) -> torch.Tensor:
    """Rate of change of the denoiser output per unit logsnr: ``RMS(x0_hat_i - x0_hat_{i-1}) / dlambda``.

    NaN at the first step (no previous output). In data units per logsnr unit.
    """
    lam = -2.0 * math.log(step.sigma)
    x0 = step.x0_hat.detach()
    if state.prev_x0 is None or state.prev_x0.shape != x0.shape:
        out = torch.full((x0.shape[0],), float("nan"), dtype=torch.float64)
    else:
        out = (_rms(x0 - state.prev_x0) / max(lam - state.prev_logsnr, 1e-12)).cpu()
    state.prev_x0, state.prev_logsnr = x0.clone(), lam
    return out


def x0_contrast(state: _IndicatorState, step) -> torch.Tensor:
    """Spatial contrast of the denoiser output: the pixel standard deviation of ``x0_hat`` per sample.

    It grows from ~0 (the mean image) to the data's contrast as structure is committed.
    """
    x0 = step.x0_hat.detach().to(torch.float64).flatten(1)
    return x0.std(1, unbiased=False).cpu()


INDICATORS: dict[str, Indicator] = {"x0-rate": x0_rate, "x0-contrast": x0_contrast}


class AdaptivePulse(GuidanceSchedule):
    """A pulse that fires, per sample, when an online indicator first reaches ``threshold``.

    The object is the guidance weight (``guidance=pulse``); its bound method :meth:`observe` is the sampler
    callback (``callback=[pulse.observe]``). At each step's callback
    the indicator (``'x0-rate'`` or ``'x0-contrast'``, or any function ``(state, Step) -> [B]``) is
    computed from the :class:`~critdiff.samplers.Step` record, without network calls. A sample whose
    indicator reaches ``threshold`` at the step with logsnr ``lambda_f`` (and that has not fired yet)
    gets the template's profile with its *onset* at ``lambda_f``: centre ``lambda_f + lead``, where
    ``lead`` defaults to half the width for a box (the box then runs from ``lambda_f`` to
    ``lambda_f + width``) and to ``truncate`` standard deviations for a Gaussian. Because the callback
    of step ``i`` runs after that step's denoiser call, the pulse first acts on the evaluations after
    it. ``threshold=inf`` never fires (an observer that only records ``history``). A sample that never fires keeps ``baseline`` (and its NFE). ``fired`` holds the firing logsnr
    per sample (NaN: not fired); call :meth:`reset` (or use a new object) for a new batch.
    """

    kind = "adaptive"

    def __init__(self, template: Pulse, threshold: float, indicator: "str | Indicator" = "x0-rate",
                 lead: Optional[float] = None, min_logsnr: float = -math.inf):
        if not isinstance(template, Pulse):
            raise TypeError(f"template: expected a Pulse, got {type(template).__name__}")
        self.template = template
        try:
            self.threshold = float(threshold)
        except (TypeError, ValueError):
            raise TypeError(f"threshold: expected a number, got {threshold!r}") from None
        if math.isnan(self.threshold):
            raise ValueError("threshold: expected a number (inf: never fire), got nan")
        if isinstance(indicator, str):
            if indicator not in INDICATORS:
                raise ValueError(f"indicator: expected one of {', '.join(map(repr, INDICATORS))} or a function, got {indicator!r}")
            self.indicator_name, self.indicator = indicator, INDICATORS[indicator]
        elif callable(indicator):
            self.indicator_name, self.indicator = getattr(indicator, "__name__", "custom"), indicator
        else:
            raise TypeError(f"indicator: expected a name or a function, got {type(indicator).__name__}")
        if lead is None:
            lead = 0.5 * template.width if template.profile == "box" else (template.truncate or 3.0) * template.std
        self.lead = check_finite("lead", lead)
        self.min_logsnr = float(min_logsnr)
        self.reset()

    def reset(self) -> None:
        self.fired: Optional[torch.Tensor] = None
        self.history: list[torch.Tensor] = []
        self.logsnrs: list[float] = []
        self._state = _IndicatorState()

    @property
    def batch(self) -> Optional[int]:
        return None if self.fired is None else self.fired.numel()

    # the observer (sampler callback): pulse.observe ------------------------------------------
    def observe(self, step) -> None:
        """The sampler callback: update the indicator and the firing state from a :class:`Step` record.

        Pass ``callback=[pulse.observe]``; the pulse itself (``pulse(sigma)``) is the guidance weight.
        """
        B = step.x0_hat.shape[0]
        if self.fired is None or self.fired.numel() != B:
            self.fired = torch.full((B,), float("nan"), dtype=torch.float64)
        value = torch.as_tensor(self.indicator(self._state, step), dtype=torch.float64).reshape(B).cpu()
        lam = -2.0 * math.log(step.sigma)
        self.history.append(value)
        self.logsnrs.append(lam)
        if lam >= self.min_logsnr:
            new = torch.isnan(self.fired) & (value >= self.threshold)
            self.fired[new] = lam

    # the guidance weight: pulse(sigma) ------------------------------------------------------
    def weight(self, lam):
        t = self.template
        if self.fired is None:
            return torch.full_like(lam, t.baseline)
        B = self.fired.numel()
        if lam.numel() == 1:
            lam = lam.expand(B)
        elif lam.numel() != B:
            raise ValueError(f"sigma: the adaptive pulse tracks {B} samples, got a batch of {lam.numel()}")
        fired = ~torch.isnan(self.fired)
        d = lam - torch.where(fired, self.fired + self.lead, torch.zeros_like(self.fired))
        w = t.baseline + (t.height - t.baseline) * t.envelope(d)
        return torch.where(fired, w, torch.full_like(w, t.baseline))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "template": self.template.to_dict(), "threshold": self.threshold,
                "indicator": self.indicator_name, "lead": self.lead, "min_logsnr": self.min_logsnr,
                "fired_logsnr": None if self.fired is None else self.fired.tolist()}
