"""The commitment time: when does a trajectory decide its class? (docs/guidance.md section 2; Biroli, Bonnaire,
de Bortoli & Mezard 2024, "Dynamical regimes of diffusion models").

Cloning experiment. Sample ``B`` trajectories with a stochastic sampler; at grid step ``i`` (noise level
``sigma_i``) take each state ``x_i [C, H, W]`` and continue ``k`` clones of it from ``sigma_i`` to 0, each with
fresh sampler noise; classify the ``k`` ends. For state ``b`` with end-class counts ``n_c`` (``sum_c n_c = k``)

    phi_b = sum_c n_c (n_c - 1) / (k (k - 1))     (eq. 2.1)

is the fraction of agreeing clone pairs: an unbiased estimate of ``sum_c q_c(x_i)^2``, ``q_c(x)`` the
probability that a continuation from ``x`` ends in class ``c``. ``phi(t) = mean_b phi_b`` estimates the
probability that two continuations of the same state end in the same class (eq. 2.2). Its *chance value*
``phi_0 = sum_c p_c^2`` (``p_c`` the class frequency of all clone ends) is reached where the state carries no
class information (pure noise), and ``phi -> 1`` once the class is decided.

The **commitment time** is the first (smallest logsnr) crossing of ``phi`` through the level
``phi_0 + level (1 - phi_0)`` (``relative=True``, default ``level = 0.9``: 90% of the way from chance to a
certain decision; the rule does not depend on the number of classes) or through ``level`` itself
(``relative=False``), by linear interpolation in logsnr between recorded steps. Bands and its interval are
percentile bootstraps over states (``phi_0`` held at its full-sample value).

The **decision midpoint** (docs/guidance.md section 2.5) marks where the decision is most open to steering rather
than where it has ended: the crossing of the half level ``phi_0 + 0.5 (1 - phi_0)`` (:data:`MIDPOINT_LEVEL`), and
the logsnr of the largest slope ``d phi / d logsnr`` (the decision's susceptibility; :func:`steepest_rise`), each
with a bootstrap interval over states (:class:`DecisionMidpoint`, :func:`decision_midpoint`).

Seeds (:func:`critdiff.seeding.derive`): initial noise ``seed``, the trajectories' sampler noise
``derive(seed, "sampler")`` (one generator per sample), the clones of grid step ``i`` ``derive(seed, "clones", i)``
(one generator per clone), bootstrap ``seed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .. import samplers as SM
from ..errors import check_int
from ..io import to_jsonable
from ..seeding import derive
from .bootstrap import curve_peak, percentile_ci, replicates
from ..times import TimeEstimate

__all__ = ["Commitment", "commitment", "pair_agreement", "chance_phi", "crossing_logsnr", "phi_level", "class_ids",
           "clone_ends", "DEFAULT_LEVEL", "MIDPOINT_LEVEL", "DecisionMidpoint", "decision_midpoint",
           "steepest_rise"]

DEFAULT_LEVEL = 0.9  # fraction of the way from chance (sum_c p_c^2) to 1 where the class counts as committed
MIDPOINT_LEVEL = 0.5  # half-way from chance to 1: the midpoint of the decision


def class_ids(classify: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> np.ndarray:
    """``classify(x [B, C, H, W])`` as int class ids ``[B]``: a 1-D output is taken as ids, ``[B, K]`` as logits."""
    with torch.no_grad():
        out = torch.as_tensor(classify(x))
    if out.ndim == 2:
        out = out.argmax(1)
    if out.ndim != 1 or out.shape[0] != x.shape[0]:
        raise ValueError(f"classify: expected class ids [B] or logits [B, K] for B = {x.shape[0]}, "
                         f"got shape {tuple(out.shape)}")
    return out.detach().cpu().long().numpy()


def pair_agreement(ends: np.ndarray) -> np.ndarray:
    """Eq. 2.1: the fraction of agreeing pairs among the ``k`` clone ends of each state, ``ends [B, k]`` -> ``[B]``."""
    ends = np.asarray(ends)
    if ends.ndim != 2 or ends.shape[1] < 2:
        raise ValueError(f"ends: expected class ids [B, k] with k >= 2 clones, got shape {ends.shape}")
    k = ends.shape[1]
    same = (ends[:, :, None] == ends[:, None, :]).sum((1, 2)) - k  # ordered pairs i != j that agree
    return same / (k * (k - 1))


def chance_phi(ends: np.ndarray) -> float:
    """``sum_c p_c^2`` of the class frequencies ``p_c`` of all ends: phi of states that carry no class information."""
    _, counts = np.unique(np.asarray(ends).reshape(-1), return_counts=True)
    p = counts / counts.sum()
    return float((p**2).sum())


def phi_level(chance: float, level: float = DEFAULT_LEVEL, relative: bool = True) -> float:
    """The phi value that defines commitment: ``chance + level (1 - chance)`` (relative) or ``level``."""
    if not (0 < level < 1):
        raise ValueError(f"level: expected a number in (0, 1), got {level}")
    return chance + level * (1 - chance) if relative else float(level)


def crossing_logsnr(logsnr: np.ndarray, phi: np.ndarray, level: float) -> float:
    """The first (smallest-logsnr) upward crossing of ``phi [T]`` through ``level``, ``logsnr`` ascending; linear
    interpolation between steps. NaN when phi never reaches the level or already starts at or above it."""
    lam, phi = np.asarray(logsnr, dtype=np.float64), np.asarray(phi, dtype=np.float64)
    above = np.flatnonzero(phi >= level)
    if above.size == 0 or above[0] == 0:
        return math.nan
    j = int(above[0])
    f = (level - phi[j - 1]) / (phi[j] - phi[j - 1])
    return float(lam[j - 1] + f * (lam[j] - lam[j - 1]))


def steepest_rise(logsnr: np.ndarray, phi: np.ndarray) -> float:
    """Logsnr of the largest ``d phi / d logsnr`` of ``phi [T]`` (``logsnr`` ascending, ``T >= 2``): the slopes
    of consecutive steps, placed at their interval midpoints, and the vertex of the parabola through the largest
    slope and its two neighbours (:func:`~critdiff.probes.bootstrap.curve_peak`; the midpoint itself at an end)."""
    lam, phi = np.asarray(logsnr, dtype=np.float64), np.asarray(phi, dtype=np.float64)
    if lam.ndim != 1 or lam.shape != phi.shape or lam.size < 2 or not np.all(np.diff(lam) > 0):
        raise ValueError(f"logsnr, phi: expected two 1-D arrays of one length >= 2 with logsnr ascending, "
                         f"got shapes {lam.shape}, {phi.shape}")
    slope = np.diff(phi) / np.diff(lam)
    if not np.isfinite(slope).all():
        return math.nan
    return curve_peak(0.5 * (lam[1:] + lam[:-1]), slope)


@dataclass(frozen=True)
class DecisionMidpoint:
    """The midpoint of the decision (module docstring): ``level`` (the phi value of the half level),
    ``logsnr`` of its first crossing with interval ``logsnr_ci``; ``slope_logsnr`` of the largest
    ``d phi / d logsnr`` with interval ``slope_ci`` and that largest slope ``slope`` (per unit logsnr, from the
    mean curve). NaN where phi never crosses (interval: where fewer than half of the replicates cross)."""

    level: float
    logsnr: float
    logsnr_ci: np.ndarray
    slope_logsnr: float
    slope_ci: np.ndarray
    slope: float

    def to_dict(self) -> dict:
        return to_jsonable({k: getattr(self, k) for k in self.__dataclass_fields__})


def _ci_or_nan(reps: np.ndarray, ci: float) -> np.ndarray:
    return percentile_ci(reps, ci) if np.isfinite(reps).mean() >= 0.5 else np.array([math.nan, math.nan])


def decision_midpoint(logsnr: np.ndarray, phi_state: np.ndarray, chance: float, *, n_boot: int = 1000,
                      ci: float = 0.95, seed: int = 0) -> DecisionMidpoint:
    """The half-level crossing and the steepest rise of ``phi = mean_b phi_state [T, B]`` at ``logsnr [T]``
    (ascending), with percentile bootstrap intervals over the ``B`` states (``chance`` held fixed)."""
    lam = np.asarray(logsnr, dtype=np.float64)
    ps = np.asarray(phi_state, dtype=np.float64)
    if ps.ndim != 2 or ps.shape[0] != lam.size:
        raise ValueError(f"phi_state: expected [T={lam.size}, B] per-state values, got shape {ps.shape}")
    lvl = phi_level(chance, MIDPOINT_LEVEL)
    B = ps.shape[1]
    cross = replicates(lambda idx: crossing_logsnr(lam, ps[:, idx].mean(1), lvl), B, n_boot=n_boot, seed=seed)
    steep = replicates(lambda idx: steepest_rise(lam, ps[:, idx].mean(1)), B, n_boot=n_boot, seed=seed)
    phi = ps.mean(1)
    return DecisionMidpoint(level=lvl, logsnr=crossing_logsnr(lam, phi, lvl), logsnr_ci=_ci_or_nan(cross, ci),
                            slope_logsnr=steepest_rise(lam, phi), slope_ci=_ci_or_nan(steep, ci),
                            slope=float(np.max(np.diff(phi) / np.diff(lam))))


def clone_ends(denoiser, x: torch.Tensor, sigmas: torch.Tensor, i: int, k: int, classify, *, sampler: str,
               label=None, seed: int = 0) -> np.ndarray:
    """Continue ``k`` clones of each state ``x [B, C, H, W]`` (at ``sigmas[i]``) to 0 with fresh noise (one
    generator per clone from ``seed``); the class ids of the ends ``[B, k]``."""
    B = x.shape[0]
    xs = x.detach().repeat_interleave(k, 0)
    lab = None if label is None else torch.as_tensor(label).repeat_interleave(k, 0)
    with torch.no_grad():
        end = SM.get(sampler)(denoiser, xs, sigmas[i:], label=lab, generator=SM.seed_generators(seed, B * k))
    return class_ids(classify, end).reshape(B, k)


@dataclass(frozen=True)
class Commitment:
    """The cloning experiment (module docstring). Times ascend in logsnr: ``sigma [T]``, ``logsnr [T]``,
    ``phi [T]`` with bootstrap bands ``phi_ci [T, 2]``, per-state ``phi_state [T, B]``, the ends ``ends [T, B, k]``;
    ``chance`` (``phi_0``), ``level`` (the phi value crossed), ``commitment_logsnr`` (NaN if phi never crosses)
    and its interval ``logsnr_ci`` (NaN where fewer than half of the bootstrap replicates cross); ``midpoint``
    the decision's midpoint and steepest rise (:class:`DecisionMidpoint`)."""

    sigma: np.ndarray
    logsnr: np.ndarray
    phi: np.ndarray
    phi_ci: np.ndarray
    phi_state: np.ndarray
    ends: np.ndarray
    chance: float
    level: float
    level_rule: str
    commitment_logsnr: float
    logsnr_ci: np.ndarray
    k: int
    midpoint: DecisionMidpoint

    @property
    def found(self) -> bool:
        return math.isfinite(self.commitment_logsnr)

    def estimate(self, schedule) -> Optional[TimeEstimate]:
        """The commitment time as a :class:`~critdiff.times.TimeEstimate` on ``schedule`` with its interval
        (None when phi never crosses its level)."""
        if not self.found:
            return None
        return TimeEstimate.at_logsnr(schedule, self.commitment_logsnr, f"commitment (phi = {self.level_rule})",
                                      self.logsnr_ci, level=self.level, k=self.k)

    def to_dict(self) -> dict:
        return to_jsonable({k: getattr(self, k) for k in self.__dataclass_fields__})


def _summarise(sigma, phi_state, ends, k, level, relative, n_boot, ci, seed) -> Commitment:
    """Phi, its bands, the level and the commitment time with its bootstrap interval over states."""
    order = np.argsort(-sigma)  # ascending logsnr
    sigma, phi_state, ends = sigma[order], phi_state[order], ends[order]
    lam = -2.0 * np.log(sigma)
    chance = chance_phi(ends)
    lvl = phi_level(chance, level, relative)
    B = phi_state.shape[1]
    band = percentile_ci(replicates(lambda idx: phi_state[:, idx].mean(1), B, n_boot=n_boot, seed=seed), ci)
    reps = replicates(lambda idx: crossing_logsnr(lam, phi_state[:, idx].mean(1), lvl), B, n_boot=n_boot, seed=seed)
    lo_hi = _ci_or_nan(reps, ci)
    rule = f"{'chance + ' if relative else ''}{level:g}{' (1 - chance)' if relative else ''}"
    return Commitment(sigma=sigma, logsnr=lam, phi=phi_state.mean(1), phi_ci=band, phi_state=phi_state, ends=ends,
                      chance=chance, level=lvl, level_rule=rule, commitment_logsnr=crossing_logsnr(lam, phi_state.mean(1), lvl),
                      logsnr_ci=lo_hi, k=k,
                      midpoint=decision_midpoint(lam, phi_state, chance, n_boot=n_boot, ci=ci, seed=seed))


def commitment(denoiser, shape: Sequence[int], sigmas, steps: Sequence[int], classify, *, k: int = 8,
               sampler: str = "ddpm", label=None, seed: int = 0, level: float = DEFAULT_LEVEL, relative: bool = True,
               n_boot: int = 1000, ci: float = 0.95, dtype=torch.float32, device="cpu") -> Commitment:
    """Run the cloning experiment (module docstring) on ``B = shape[0]`` trajectories of ``denoiser``.

    ``shape`` ``[B, C, H, W]``; ``sigmas`` the float64 grid ending in 0; ``steps`` grid indices ``0 <= i < N``
    where states are cloned; ``classify(x) ->`` class ids ``[B]`` or logits ``[B, K]``; ``k >= 2`` clones per
    state; ``sampler`` a stochastic sampler spec (``ddpm``, ``euler-maruyama``, ``ddim:eta=...`` with eta > 0);
    ``label`` (``[B]`` or None) conditions every run. ``device``: where the trajectories run (the model's).
    """
    s = SM.check_sigmas(sigmas)
    k = check_int("k", k, 2)
    fn = SM.get(sampler)
    base = getattr(fn, "func", fn)
    if base not in (SM.sample_ddpm, SM.sample_euler_maruyama, SM.sample_ddim) or \
            (base is SM.sample_ddim and not getattr(fn, "keywords", {}).get("eta", 0.0) > 0):
        raise ValueError(f"sampler: the commitment time needs a stochastic sampler ({', '.join(SM.STOCHASTIC)} "
                         f"with eta > 0), got {sampler!r}")
    idx = sorted({int(i) for i in steps})
    if not idx or idx[0] < 0 or idx[-1] >= len(s) - 1:
        raise ValueError(f"steps: expected grid indices in [0, {len(s) - 2}], got {list(steps)}")
    B = int(shape[0])
    x = SM.initial_noise(tuple(shape), s, SM.seed_generators(seed, B), dtype=dtype, device=device)
    rec = SM.Recorder(idx)
    with torch.no_grad():
        SM.get(sampler)(denoiser, x, s, label=label, generator=SM.seed_generators(derive(seed, "sampler"), B), callback=rec)
    ends = np.stack([clone_ends(denoiser, xi, s, i, k, classify, sampler=sampler, label=label, seed=derive(seed, "clones", i))
                     for i, xi in zip(rec.i, rec.x)])
    phi_state = np.stack([pair_agreement(e) for e in ends])
    return _summarise(np.array(rec.sigma, dtype=np.float64), phi_state, ends, k, level, relative, n_boot, ci, seed)
