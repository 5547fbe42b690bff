"""The guidance sensitivity profile: where does a guidance weight change the outcome? (docs/guidance.md section 2.6;
DESIGN.md section 5, "Which critical time places the pulse").

Guided sampling with a per-node weight ``w(sigma_j) = b + eps_j`` at the grid nodes ``sigma_j`` (``j < N``, baseline
``b`` in {0, 1}) runs the denoiser ``D_u + (b + eps_j) (D_c - D_u)`` at every evaluation at ``sigma_j``. For one
sample with fixed initial noise and fixed sampler noise (common random numbers) the outcome ``F`` is a smooth
function of ``eps [N]``; the **profile** is its gradient at ``eps = 0``,

    r_j = dF / d eps_j |_{eps = 0}         (eq. 2.6)

the first-order change of ``F`` when a small guidance weight is switched on at node ``j`` alone. A box pulse of
height ``h`` over the nodes ``P`` then changes ``F`` by ``h sum_{j in P} r_j`` to first order (:func:`box_response`).

Two routes, one checked against the other (``tests/test_probes_guidance_sensitivity.py``):

- :func:`sensitivity_profile`: linear response by reverse-mode autograd through the sampler (samplers keep
  gradients): one forward run (two evaluations per step: both branches are needed for ``D_c - D_u`` even where
  the weight is 0) and ONE backward pass per batch. ``eps`` is ``[N, B]`` (one weight per node and sample); the
  samples of a batch are independent, so the gradient of ``sum_b F_b`` with respect to ``eps[:, b]`` is sample
  ``b``'s own profile.
- :func:`pulse_response`: central finite differences of a pulse of height ``+-delta`` at one node, sampled with
  the library's guided denoiser (:class:`critdiff.guidance.Guided`, another code path): ``2 N`` runs.

The outcome is any differentiable ``F(x_end [B, C, H, W], label [B]) -> [B]``; :func:`classifier_logp` gives the
evaluation classifier's ``log p(label | x_end)`` (the sweep's metric); without a classifier, :func:`implicit_logp`
gives the model's own implicit classifier ``log p_s(c | x)`` of noised inputs (eq. 2.7), whose gradient needs only
the conditional and null denoisers. Summaries (:func:`summarise`): the peak of the
mean profile over node logsnr (vertex of the parabola through the largest node and its neighbours,
:func:`~critdiff.probes.bootstrap.curve_peak`), the half-maximum window around it (:func:`half_max_window`), and
percentile bootstrap intervals over samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
import torch.utils.checkpoint

from .. import samplers as SM
from ..denoisers import as_labels, as_sigma
from ..errors import check_int
from ..guidance import Guided
from ..io import to_jsonable
from .bootstrap import curve_peak, percentile_ci, replicates

__all__ = ["NodeWeights", "sensitivity_profile", "pulse_response", "classifier_logp", "implicit_logp", "implicit_draws",
           "half_max_window",
           "box_response", "box_peak", "SensitivityProfile", "summarise"]

Outcome = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def classifier_logp(classifier) -> Outcome:
    """``F(x, label) = log_softmax(classifier.logits(x))[label]`` ``[B]`` (differentiable; float64)."""
    def outcome(x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        lg = torch.log_softmax(classifier.logits(x).to(torch.float64), -1)
        return lg.gather(1, label.to(lg.device, torch.long)[:, None])[:, 0]

    return outcome


def implicit_draws(shape: tuple, draws: int, seed: int) -> torch.Tensor:
    """The noise images ``n_m`` of :func:`implicit_logp`: ``[draws, *shape]`` standard normal, float64, CPU."""
    return torch.randn((int(draws), *shape), generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)


def implicit_logp(denoiser, sigma_eval: float, draws: int = 4, seed: int = 0) -> Outcome:
    """The model's own implicit classifier as the outcome (eq. 2.7 of docs/guidance.md):

        F(x, c) = mean_m log p_{s_e}(c | x + s_e n_m),
        grad_x F = mean_m (D(x + s_e n_m, s_e, c) - D(x + s_e n_m, s_e, None)) / s_e^2        (eq. 2.7)

    by Bayes, ``log p_s(c | y) = log p_s(y | c) - log p_s(y) + log p(c)``, and the scores are ``(D - y) / s^2``
    (DESIGN.md section 1), so the gradient of the model's classifier of a state at noise level ``s_e`` is the
    guidance direction itself. ``n_m`` (``draws`` standard normal images, the same for every sample, from ``seed``)
    smooth the clean end state over the noise level at which the classifier is read. A denoiser gives scores, not
    densities, so the VALUE of ``log p_s(c | y)`` is not available: the returned outcome is the first-order part
    ``grad_x F(x_end) . (x - x_end)`` (value 0 at ``x_end``, gradient exact; the gradient is evaluated without
    autograd, so no second derivative of the network is taken). That is all eq. 2.6 needs (``r = dF / d eps`` at
    ``eps = 0``); :func:`pulse_response` (differences of values) cannot use it. Cost: ``2 draws`` evaluations per
    sample, one call at batch ``2 draws B`` with ``[NULL_LABEL; label]``.
    """
    from ..denoisers import NULL_LABEL

    if not (math.isfinite(float(sigma_eval)) and float(sigma_eval) > 0):
        raise ValueError(f"sigma_eval: expected a finite noise level > 0, got {sigma_eval}")
    check_int("draws", draws, 1)
    s_e = float(sigma_eval)
    noise: dict = {}

    def outcome(x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        B, M = x.shape[0], int(draws)
        if "n" not in noise:  # one set of draws for every call, independent of the batch it meets
            noise["n"] = implicit_draws(tuple(x.shape[1:]), M, seed)
        n = noise["n"].to(x.device, x.dtype)
        lab = label.to(x.device, torch.long)
        with torch.no_grad():
            y = (x.detach()[None] + s_e * n[:, None]).reshape(M * B, *x.shape[1:])  # [M B, C, H, W], draw-major
            both = torch.cat([y, y])
            labs = torch.cat([torch.full((M * B,), NULL_LABEL, dtype=torch.long, device=x.device), lab.repeat(M)])
            d = denoiser(both, torch.full((2 * M * B,), s_e, dtype=x.dtype, device=x.device), labs)
            d_u, d_c = d[: M * B], d[M * B:]
            g = ((d_c - d_u).to(torch.float64) / s_e**2).reshape(M, B, *x.shape[1:]).mean(0)  # grad_x F [B, C, H, W]
        outcome.nfe += 2 * M * B
        return (g * (x.to(torch.float64) - x.detach().to(torch.float64))).flatten(1).sum(1)

    outcome.nfe = 0
    return outcome


def _node_index(sigma_nodes: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Index ``[B]`` of the grid node equal to each ``s [B]`` (relative 1e-5: a float32 state carries its sigma in
    float32); a one-line ValueError for a noise level that is no node."""
    rel = (s.detach().to("cpu", torch.float64)[:, None] / sigma_nodes[None, :] - 1).abs()
    err, j = rel.min(1)
    if bool((err > 1e-5).any()):
        raise ValueError(f"sigma: the denoiser was called at {float(s[int(err.argmax())]):g}, which is no node of "
                         "the grid (the profile needs a sampler that evaluates on the grid's nodes)")
    return j


class NodeWeights:
    """The denoiser ``D_u + (baseline + eps[j, b]) (D_c - D_u)`` at node ``j = index(sigma)`` for sample ``b``;
    both branches at every evaluation (eq. 2.6 needs ``D_c - D_u`` where the weight is 0). ``eps [N, B]``;
    ``nfe [B]`` counts evaluations per sample. ``recompute``: each evaluation keeps only its input and recomputes
    its intermediates in the backward pass (``torch.utils.checkpoint``), so autograd holds one evaluation's graph
    instead of all ``2 N``."""

    def __init__(self, denoiser, sigmas: torch.Tensor, baseline: float, eps: torch.Tensor, recompute: bool = False):
        self.denoiser, self.baseline, self.eps, self.recompute = denoiser, float(baseline), eps, bool(recompute)
        self.nodes = SM.check_sigmas(sigmas)[:-1]
        if eps.ndim != 2 or eps.shape[0] != self.nodes.numel():
            raise ValueError(f"eps: expected [N={self.nodes.numel()}, B] weights, got shape {tuple(eps.shape)}")
        self.nfe = torch.zeros(eps.shape[1], dtype=torch.long)

    def __call__(self, x: torch.Tensor, sigma, label=None) -> torch.Tensor:
        B = x.shape[0]
        s = as_sigma(sigma, x)
        lab = as_labels(label, B, x.device)
        if lab is None or B != self.eps.shape[1]:
            raise ValueError(f"label: the profile needs the intended labels [B={self.eps.shape[1]}], got "
                             f"{None if lab is None else tuple(lab.shape)} for a batch of {B}")
        j = _node_index(self.nodes, s)
        d_u, d_c = self._eval(x, s, None), self._eval(x, s, lab)
        self.nfe += 2
        w = self.baseline + self.eps[j.to(self.eps.device), torch.arange(B, device=self.eps.device)]
        return d_u + w.to(x.dtype).reshape(B, 1, 1, 1) * (d_c - d_u)

    def _eval(self, x: torch.Tensor, s: torch.Tensor, label) -> torch.Tensor:
        if not (self.recompute and torch.is_grad_enabled()):
            return self.denoiser(x, s, label)
        return torch.utils.checkpoint.checkpoint(self.denoiser, x, s, label, use_reentrant=False)


def _check_baseline(baseline: float) -> float:
    if float(baseline) not in (0.0, 1.0):
        raise ValueError(f"baseline: expected 0 (unconditional) or 1 (conditional), got {baseline}")
    return float(baseline)


def sensitivity_profile(denoiser, x: torch.Tensor, sigmas, label, outcome: Outcome, *, sampler: str = "ddim",
                        generator=None, baseline: float = 0.0,
                        recompute: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eq. 2.6 by autograd: ``(r [N, B], F [B], nfe [B])`` for the states ``x [B, C, H, W]`` at ``sigmas[0]``.

    ``sigmas`` the float64 grid ending in 0 (``N`` steps); ``label [B]`` the intended classes; ``outcome(x_end,
    label) -> [B]``; ``sampler`` any sampler spec whose evaluations sit on the grid's nodes (every sampler of
    :mod:`critdiff.samplers` does; Heun's second evaluation uses the next node's weight); ``generator`` the sampler noise (one per sample:
    a stochastic sampler's profile is the pathwise derivative at that noise); ``baseline`` 0 or 1.
    One forward run (``nfe``: 2 evaluations per step) and one backward pass; ``recompute`` (:class:`NodeWeights`)
    trades one more forward evaluation per evaluation, during the backward pass, for the memory of one evaluation's
    graph (the analytic patch model at 28x28 with a 100-image pool keeps > 23 GB without it, at one sample).
    """
    s = SM.check_sigmas(sigmas)
    b = _check_baseline(baseline)
    B = x.shape[0]
    lab = as_labels(label, B, x.device)
    if lab is None:
        raise ValueError("label: expected the intended classes [B], got None")
    eps = torch.zeros(s.numel() - 1, B, dtype=torch.float64, device=x.device, requires_grad=True)
    model = NodeWeights(denoiser, s, b, eps, recompute)
    with torch.enable_grad():
        end = SM.get(sampler)(model, x.detach(), s, label=lab, generator=generator)
        F = outcome(end, lab)
        if F.shape != (B,):
            raise ValueError(f"outcome: expected one value per sample [{B}], got shape {tuple(F.shape)}")
        (r,) = torch.autograd.grad(F.sum(), eps)
    return r.detach().cpu().numpy(), F.detach().to("cpu", torch.float64).numpy(), model.nfe.numpy()


def _pulse_weight(node_sigma: float, baseline: float, height: float):
    """``w(sigma) = baseline + height`` at the node ``node_sigma`` (relative 1e-5), ``baseline`` elsewhere."""
    def weight(sig: torch.Tensor) -> torch.Tensor:
        s64 = sig.to(torch.float64)
        at = (s64 / node_sigma - 1).abs() <= 1e-5
        # float64 operands: torch.where of two Python floats is float32, which rounds 1 + height (baseline 1)
        return torch.where(at, torch.full_like(s64, baseline + height), torch.full_like(s64, baseline))

    return weight


def pulse_response(denoiser, x: torch.Tensor, sigmas, label, outcome: Outcome, *, sampler: str = "ddim",
                   generator_seed: Optional[int] = None, baseline: float = 0.0, delta: float = 1e-3,
                   nodes=None) -> np.ndarray:
    """Eq. 2.6 by central finite differences: ``(F(+delta at node j) - F(-delta at node j)) / (2 delta)``
    ``[len(nodes), B]`` (default every node), each run with the library's :class:`~critdiff.guidance.Guided` and
    the same noise (``generator_seed``: one generator per sample, re-seeded for every run). ``2 N`` runs."""
    s = SM.check_sigmas(sigmas)
    b = _check_baseline(baseline)
    if not (delta > 0 and math.isfinite(delta)):
        raise ValueError(f"delta: expected a finite number > 0, got {delta}")
    B = x.shape[0]
    lab = as_labels(label, B, x.device)
    nodes = range(s.numel() - 1) if nodes is None else [int(j) for j in nodes]
    fn = SM.get(sampler)

    def run(j: int, h: float) -> torch.Tensor:
        gen = None if generator_seed is None else SM.seed_generators(generator_seed, B, device=x.device)
        with torch.no_grad():
            end = fn(Guided(denoiser, _pulse_weight(float(s[j]), b, h)), x, s, label=lab, generator=gen)
            return outcome(end, lab).to("cpu", torch.float64)

    return np.stack([((run(j, delta) - run(j, -delta)) / (2 * delta)).numpy() for j in nodes])


def half_max_window(logsnr: np.ndarray, r: np.ndarray) -> tuple[float, float]:
    """The half-maximum range of a profile ``r [N]`` at ``logsnr [N]`` (ascending): from the largest node, the
    nearest points on each side where ``r`` falls to half its maximum (linear interpolation between nodes; the grid's
    end where it never does). NaN, NaN when the maximum is not positive."""
    lam, r = np.asarray(logsnr, dtype=np.float64), np.asarray(r, dtype=np.float64)
    i = int(np.argmax(r))
    half = 0.5 * r[i]
    if not half > 0:
        return math.nan, math.nan
    lo, hi = float(lam[0]), float(lam[-1])
    for j in range(i, 0, -1):
        if r[j - 1] < half:
            lo = float(lam[j - 1] + (half - r[j - 1]) / (r[j] - r[j - 1]) * (lam[j] - lam[j - 1]))
            break
    for j in range(i, lam.size - 1):
        if r[j + 1] < half:
            hi = float(lam[j] + (r[j] - half) / (r[j] - r[j + 1]) * (lam[j + 1] - lam[j]))
            break
    return lo, hi


def box_response(logsnr: np.ndarray, r: np.ndarray, centres: np.ndarray, width: float) -> np.ndarray:
    """First-order change of ``F`` per unit height of a box pulse of ``width`` (logsnr) at each of ``centres``:
    ``sum`` of ``r`` over the nodes with ``|logsnr_j - c| <= width / 2`` (``r [N, ...]`` -> ``[len(centres), ...]``)."""
    lam, r = np.asarray(logsnr, dtype=np.float64), np.asarray(r, dtype=np.float64)
    inside = np.abs(lam[None, :] - np.asarray(centres, dtype=np.float64)[:, None]) <= width / 2 + 1e-9
    return np.tensordot(inside.astype(np.float64), r, axes=(1, 0))


def box_peak(logsnr: np.ndarray, r: np.ndarray, width: float, spacing: float = 0.01) -> float:
    """The first-order best centre of a box pulse of ``width``: the centre in ``[logsnr_0 + width/2, logsnr_-1 -
    width/2]`` (a grid of ``spacing``, as the sweep's centres stay inside the grid) maximising
    :func:`box_response` of ``r [N]``; the box sum is piecewise constant in the centre, so the middle of the
    maximising centres is returned. NaN when the box does not fit."""
    lam = np.asarray(logsnr, dtype=np.float64)
    lo, hi = lam[0] + width / 2, lam[-1] - width / 2
    if not hi >= lo:
        return math.nan
    c = np.linspace(lo, hi, max(2, int(math.ceil((hi - lo) / spacing)) + 1))
    v = box_response(lam, r, c, width)
    best = c[v >= v.max() - 1e-12 * max(1.0, abs(v.max()))]
    return float(0.5 * (best.min() + best.max()))


@dataclass(frozen=True)
class SensitivityProfile:
    """Eq. 2.6 summarised over ``B`` samples: node ``sigma [N]`` and ``logsnr [N]`` (ascending), per-sample
    ``response [N, B]``, its mean with bootstrap band ``band [N, 2]``; ``peak_logsnr`` with ``peak_ci``; the
    half-maximum ``window`` ``(lo, hi)`` with ``window_ci [2, 2]`` (rows lo, hi); the first-order best centre of
    a box pulse of ``box_width`` (:func:`box_peak`) with ``box_peak_ci``; ``baseline``; ``nfe`` forward
    evaluations per sample and ``backward`` passes (one per batch)."""

    sigma: np.ndarray
    logsnr: np.ndarray
    response: np.ndarray
    mean: np.ndarray
    band: np.ndarray
    peak_logsnr: float
    peak_ci: np.ndarray
    window: tuple
    window_ci: np.ndarray
    box_width: float
    box_peak_logsnr: float
    box_peak_ci: np.ndarray
    baseline: float
    nfe: float
    backward: int

    def to_dict(self) -> dict:
        return to_jsonable({k: getattr(self, k) for k in self.__dataclass_fields__})


def summarise(sigma: np.ndarray, r: np.ndarray, *, baseline: float = 0.0, nfe: float = math.nan, backward: int = 0,
              n_boot: int = 1000, ci: float = 0.95, seed: int = 0, box_width: float = 3.0) -> SensitivityProfile:
    """Peak, half-maximum window and best box of ``box_width`` of the mean profile of ``r [N, B]`` at nodes
    ``sigma [N]`` (any order), with percentile bootstrap intervals over samples."""
    sigma = np.asarray(sigma, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != sigma.size or sigma.size < 3:
        raise ValueError(f"r: expected [N={sigma.size} >= 3, B] per-sample responses, got shape {r.shape}")
    order = np.argsort(-sigma)
    sigma, r = sigma[order], r[order]
    lam = -2.0 * np.log(sigma)
    B = r.shape[1]
    peak = lambda idx: curve_peak(lam, r[:, idx].mean(1))  # noqa: E731
    band = percentile_ci(replicates(lambda idx: r[:, idx].mean(1), B, n_boot=n_boot, seed=seed), ci)
    peaks = replicates(peak, B, n_boot=n_boot, seed=seed)
    wins = replicates(lambda idx: np.array(half_max_window(lam, r[:, idx].mean(1))), B, n_boot=n_boot, seed=seed)
    boxes = replicates(lambda idx: box_peak(lam, r[:, idx].mean(1), box_width), B, n_boot=n_boot, seed=seed)
    return SensitivityProfile(sigma=sigma, logsnr=lam, response=r, mean=r.mean(1), band=band,
                              peak_logsnr=peak(np.arange(B)), peak_ci=percentile_ci(peaks, ci),
                              window=half_max_window(lam, r.mean(1)), window_ci=percentile_ci(wins, ci),
                              box_width=float(box_width), box_peak_logsnr=box_peak(lam, r.mean(1), box_width),
                              box_peak_ci=percentile_ci(boxes, ci),
                              baseline=float(baseline), nfe=float(nfe), backward=int(check_int("backward", backward, 0)))
