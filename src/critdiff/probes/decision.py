"""Decision along a trajectory: entropy of the class posterior ``p(class | x_t)`` (DESIGN.md section 4).

A *posterior logits function* is ``logits(x [B, C, H, W], sigma [B], x0_hat [B, C, H, W]) -> [B, K]``
(unnormalised log-probabilities). Two are provided:

- :func:`classifier_logits` wraps any classifier ``clf(x0_hat) -> [B, K]`` (the classifier route: applicable
  to every denoiser, approximate);
- :func:`gaussian_logits` is exact for the class-conditional Gaussian model
  (:class:`~critdiff.scores.gaussian.GaussianScore` built with labels): ``log pi_k + log N(x; mu_k, Sigma_k +
  sigma^2 I)``, evaluated in the eigenbasis (``'full'``) or per Fourier mode (``'stationary'``: for circulant
  ``Sigma_k`` with ``C x C`` blocks ``P_k(q)``, ``(x - mu)^T (Sigma + s^2)^{-1} (x - mu) =
  (1/HW) sum_q dxhat^H (P(q) + s^2 I)^{-1} dxhat`` and ``log det = sum_q log det (P(q) + s^2 I)``).

The entropy ``H = -sum_k p_k log p_k`` (nats) falls from ``log K`` to 0 as the sample commits to a class;
the *decision time* is where it falls fastest: the recorded interval with the most negative
``dH / dlogsnr``, placed at that interval's logsnr midpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..denoisers import as_sigma, n_classes_of
from ..samplers import Step
from ..schedules import Schedule
from ..io import to_jsonable
from .bootstrap import percentile_ci, replicates
from ..times import TimeEstimate

LogitsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) ``[B]`` of ``softmax(logits [B, K])``, float64."""
    lp = torch.log_softmax(logits.to(torch.float64), -1)
    return -(lp.exp() * lp).sum(-1)


def classifier_logits(classifier: Callable[[torch.Tensor], torch.Tensor]) -> LogitsFn:
    """The classifier route: ``logits(x, sigma, x0_hat) = classifier(x0_hat)``."""
    return lambda x, sigma, x0_hat: classifier(x0_hat)


def _log_normal_full(fit, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``[B]`` on the CPU, computed on the fit's device."""
    B, dev = x.shape[0], fit.mu.device
    r = (x.reshape(B, -1).to(dev, torch.float64) - fit.mu) @ fit.U
    var = fit.lam + s.to(dev).reshape(B, 1) ** 2
    return (-0.5 * ((r**2 / var).sum(1) + torch.log(var).sum(1) + r.shape[1] * math.log(2 * math.pi))).cpu()


def _log_normal_stationary(fit, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``[B]`` on the CPU, computed on the fit's device."""
    (B, C, H, W), dev = x.shape, fit.P.device
    d = torch.fft.fft2(x.to(dev, torch.float64) - fit.mu.reshape(1, C, 1, 1)).permute(0, 2, 3, 1).unsqueeze(-1)
    A = fit.P.unsqueeze(0) + (s.to(dev) ** 2).reshape(B, 1, 1, 1, 1) * torch.eye(C, dtype=fit.P.dtype, device=dev)
    quad = (d.conj().transpose(-1, -2) @ torch.linalg.solve(A, d)).real.reshape(B, H, W).sum((1, 2)) / (H * W)
    logdet = torch.linalg.slogdet(A)[1].reshape(B, H, W).sum((1, 2))
    return (-0.5 * (quad + logdet + C * H * W * math.log(2 * math.pi))).cpu()


def gaussian_logits(model, log_prior: Optional[Sequence[float]] = None) -> LogitsFn:
    """Exact ``log pi_k + log N(x; mu_k, Sigma_k + sigma^2 I)`` of a labelled ``GaussianScore`` (module docstring)."""
    K = n_classes_of(model)
    if K < 1:
        raise ValueError("model: expected a GaussianScore built with labels (n_classes >= 1)")
    lp = torch.zeros(K, dtype=torch.float64) if log_prior is None else torch.as_tensor(log_prior, dtype=torch.float64)
    if lp.shape != (K,):
        raise ValueError(f"log_prior: expected {K} values, got shape {tuple(lp.shape)}")
    log_normal = _log_normal_full if model.covariance == "full" else _log_normal_stationary

    def logits(x, sigma, x0_hat=None):
        s = as_sigma(sigma, x).to(torch.float64).cpu()
        xx = x.detach().cpu()
        return torch.stack([log_normal(model.fits[k], xx, s) for k in range(K)], 1) + lp

    return logits


class EntropyRecorder:
    """Sampler callback: entropy ``[B]`` of the class posterior at every step (or at ``steps``)."""

    def __init__(self, logits: LogitsFn, steps: Optional[Sequence[int]] = None):
        self.logits = logits
        self.steps = None if steps is None else {int(s) for s in steps}
        self.sigma: list[float] = []
        self.H: list[np.ndarray] = []

    def __call__(self, step: Step) -> None:
        if self.steps is not None and step.i not in self.steps:
            return
        with torch.no_grad():
            lg = self.logits(step.x.detach(), as_sigma(step.sigma, step.x), step.x0_hat.detach())
        self.sigma.append(float(step.sigma))
        self.H.append(entropy(lg).cpu().numpy())

    def result(self, **kw) -> "Decision":
        if not self.H:
            raise ValueError("steps: nothing was recorded")
        return decision_time(np.array(self.sigma), np.stack(self.H), **kw)


SOURCE = "decision entropy (steepest drop)"


@dataclass(frozen=True)
class Decision:
    """``entropy [T, B]`` at ``sigma [T]`` (``logsnr``); per-sample decision logsnr ``[B]``; the decision time
    of the mean entropy curve (``logsnr``, ``sigma``) with a bootstrap interval ``logsnr_ci`` over samples."""

    sigma: np.ndarray
    logsnr: np.ndarray
    entropy: np.ndarray
    entropy_mean: np.ndarray
    sample_logsnr: np.ndarray
    decision_logsnr: float
    decision_sigma: float
    logsnr_ci: np.ndarray

    def estimate(self, schedule: "Schedule | str") -> TimeEstimate:
        """The decision time as a :class:`~critdiff.times.TimeEstimate` on ``schedule``, with its interval."""
        return TimeEstimate.at_logsnr(schedule, self.decision_logsnr, SOURCE, self.logsnr_ci)

    def to_dict(self) -> dict:
        return to_jsonable({k: getattr(self, k) for k in self.__dataclass_fields__})


def steepest_drop(logsnr: np.ndarray, H: np.ndarray) -> float:
    """Logsnr midpoint of the interval with the most negative ``dH / dlogsnr`` (``H [T]``, ``logsnr`` ascending)."""
    slope = np.diff(H) / np.diff(logsnr)
    j = int(np.argmin(slope))
    return float(0.5 * (logsnr[j] + logsnr[j + 1]))


def decision_time(sigma: np.ndarray, H: np.ndarray, *, n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> Decision:
    """Decision time from entropies ``H [T, B]`` at ``sigma [T]`` (module docstring)."""
    sigma = np.asarray(sigma, dtype=np.float64)
    H = np.asarray(H, dtype=np.float64)
    if H.ndim != 2 or H.shape[0] != sigma.shape[0] or sigma.shape[0] < 2:
        raise ValueError(f"H: expected entropies [T, B] with T = len(sigma) >= 2, got {H.shape}")
    order = np.argsort(-sigma)  # ascending logsnr
    sigma, H = sigma[order], H[order]
    lam = -2 * np.log(sigma)
    per = np.array([steepest_drop(lam, H[:, b]) for b in range(H.shape[1])])
    dec = steepest_drop(lam, H.mean(1))
    reps = replicates(lambda idx: steepest_drop(lam, H[:, idx].mean(1)), H.shape[1], n_boot=n_boot, seed=seed)
    return Decision(sigma=sigma, logsnr=lam, entropy=H, entropy_mean=H.mean(1), sample_logsnr=per,
                    decision_logsnr=dec, decision_sigma=math.exp(-0.5 * dec), logsnr_ci=percentile_ci(reps, ci))
