"""Samplers: pure functions over a float64 sigma grid ending in 0 (DESIGN.md section 1).

Every sampler has one signature::

    sample_xxx(denoiser, x, sigmas, *, label=None, guidance=None, generator=None, callback=None, ...)

- ``denoiser``  ``D(x, sigma, label) -> x0_hat`` in the denoiser frame ``x = x0 + sigma n``;
- ``x``         ``[B, C, H, W]`` initial state at ``sigmas[0]`` (``x = sigmas[0] * noise``, see
                :func:`initial_noise`);
- ``sigmas``    float64 ``[N + 1]``, strictly decreasing, ending in 0 (``schedules.sigma_grid``);
                it is used as given, never recomputed;
- ``guidance``  a guidance schedule ``w(sigma)`` (or a constant): the sampler then runs the guided
                denoiser ``D_u + w (D_c - D_u)`` of :mod:`critdiff.guidance`;
- ``generator`` a ``torch.Generator`` or a list of one generator per sample (a sample then does not
                depend on the batch it ran in); the global RNG when ``None``;
- ``callback``  called with a :class:`Step` ``(i, sigma, sigma_next, x, x0_hat)`` at every step, before
                the update (a list of callbacks is allowed).

Samplers neither show progress nor switch gradients off, so Jacobians through a step or a whole
trajectory work; the caller decides. The step to ``sigma = 0`` is the denoising step ``x = D(x)``
for the stochastic samplers (no noise is added there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch

from . import multistep as MS
from . import seeding
from .denoisers import Denoiser, Label
from .errors import check_images, check_int
from .guidance import WeightFn, guided
from .schedules import Schedule, get as get_schedule
from .spec import parse_spec, take_kwargs

GeneratorLike = Union[None, torch.Generator, Sequence[torch.Generator]]


@dataclass(frozen=True)
class Step:
    """What a callback sees at step ``i``: the state ``x`` at ``sigma`` and the denoiser output there."""

    i: int
    sigma: float
    sigma_next: float
    x: torch.Tensor
    x0_hat: torch.Tensor


Callback = Callable[[Step], None]


# --- helpers ---------------------------------------------------------------------------------
def check_sigmas(sigmas) -> torch.Tensor:
    """Validate a sigma grid: 1-D, >= 2 values, finite, strictly decreasing, last value 0."""
    if not isinstance(sigmas, torch.Tensor):
        sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError(f"sigmas: expected a 1-D grid of at least 2 values, got shape {tuple(sigmas.shape)}")
    s = sigmas.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(s).all()):
        raise ValueError("sigmas: contains non-finite values")
    if float(s[-1]) != 0.0:
        raise ValueError(f"sigmas: the grid must end in 0, got last value {float(s[-1]):g}")
    if bool((s[1:] >= s[:-1]).any()):
        raise ValueError("sigmas: expected a strictly decreasing grid")
    return s


def seed_generators(seed: int, n: int, device: "torch.device | str" = "cpu") -> list[torch.Generator]:
    """``n`` independent generators, one per sample: sample ``j`` gets ``critdiff.seeding.derive(seed, j)``
    (the same as numpy ``SeedSequence(seed).spawn(n)[j]``)."""
    check_int("n", n, 1)
    return [seeding.generator(seed, j, device=device) for j in range(int(n))]


def randn_like(x: torch.Tensor, generator: GeneratorLike = None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``: from one generator, one per sample, or the global RNG."""
    if generator is None:
        return torch.randn_like(x)
    if isinstance(generator, torch.Generator):
        return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=generator.device).to(x.device)
    gens = list(generator)
    if len(gens) != x.shape[0]:
        raise ValueError(f"generator: expected one generator per sample ({x.shape[0]}), got {len(gens)}")
    return torch.stack(
        [torch.randn(x.shape[1:], generator=g, dtype=x.dtype, device=g.device) for g in gens]
    ).to(x.device)


def initial_noise(shape, sigmas, generator: GeneratorLike = None, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """``x = sigmas[0] * n`` with ``n ~ N(0, I)`` of ``shape`` ``[B, C, H, W]``."""
    if len(shape) != 4 or any(int(d) < 1 for d in shape):
        raise ValueError(f"shape: expected [B, C, H, W] with every size >= 1, got {tuple(shape)}")
    z = randn_like(torch.empty(shape, dtype=dtype, device=device), generator)
    return z * float(check_sigmas(sigmas)[0])


def _setup(denoiser, x, sigmas, label, guidance):
    check_images("x", x)
    s = check_sigmas(sigmas)
    if guidance is not None:
        if label is None:
            raise ValueError("guidance: needs a label (guidance mixes conditional and unconditional outputs)")
        denoiser = guided(denoiser, guidance)
    return denoiser, [float(v) for v in s]


def _notify(callback, step: Step) -> None:
    if callback is None:
        return
    for cb in callback if isinstance(callback, (list, tuple)) else (callback,):
        cb(step)


# --- deterministic: probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma -----------------
def sample_euler(denoiser: Denoiser, x, sigmas, *, label: Label = None, guidance: Optional[WeightFn] = None,
                 generator: GeneratorLike = None, callback=None) -> torch.Tensor:
    """Euler steps of the probability-flow ODE ``dx/dsigma = (x - D) / sigma`` (Karras et al. 2022)."""
    denoiser, s = _setup(denoiser, x, sigmas, label, guidance)
    for i in range(len(s) - 1):
        d0 = denoiser(x, s[i], label)
        _notify(callback, Step(i, s[i], s[i + 1], x, d0))
        x = x + (s[i + 1] - s[i]) * (x - d0) / s[i]
    return x


def sample_heun(denoiser: Denoiser, x, sigmas, *, label: Label = None, guidance: Optional[WeightFn] = None,
                generator: GeneratorLike = None, callback=None) -> torch.Tensor:
    """Heun's 2nd-order method for the probability-flow ODE (Karras et al. 2022, Algorithm 1, no churn).

    The last step (to sigma = 0) is an Euler step, i.e. ``x = D(x)``.
    """
    denoiser, s = _setup(denoiser, x, sigmas, label, guidance)
    for i in range(len(s) - 1):
        sigma, sigma_next = s[i], s[i + 1]
        d0 = denoiser(x, sigma, label)
        _notify(callback, Step(i, sigma, sigma_next, x, d0))
        slope = (x - d0) / sigma  # dx/dsigma at sigma
        x_euler = x + (sigma_next - sigma) * slope
        if sigma_next == 0:
            x = x_euler
        else:
            d1 = denoiser(x_euler, sigma_next, label)
            slope_next = (x_euler - d1) / sigma_next
            x = x + (sigma_next - sigma) * 0.5 * (slope + slope_next)
    return x


def sample_dpmpp_2m(denoiser: Denoiser, x, sigmas, *, label: Label = None, guidance: Optional[WeightFn] = None,
                    generator: GeneratorLike = None, callback=None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, arXiv:2211.01095, Algorithm 2) in the denoiser frame.

    With ``lambda = -log sigma`` and ``h = lambda' - lambda = log(sigma / sigma')`` the exact solution of
    the probability-flow ODE with ``D`` frozen is ``x' = (sigma'/sigma) x + (1 - sigma'/sigma) D``; the
    multistep correction replaces ``D`` by ``D + (D - D_prev) / (2 r)`` with ``r = h_prev / h``
    (diffusers' ``solver_type='midpoint'``). The first step is first order (no history), the step to
    ``sigma = 0`` is ``x = D(x)`` (``lower_order_final``). Second order in the step size.
    """
    history = {}  # the previous step's D and h

    def update(x, d0, sigma, sigma_next):
        h = math.log(sigma / sigma_next)
        d = d0 if not history else d0 + (d0 - history["d"]) * (h / (2 * history["h"]))
        history.update(d=d0, h=h)
        return (sigma_next / sigma) * x + (1 - sigma_next / sigma) * d

    return _denoise_loop(denoiser, x, sigmas, label, guidance, callback, update)


# --- stochastic ------------------------------------------------------------------------------
def sample_euler_maruyama(denoiser: Denoiser, x, sigmas, *, label: Label = None,
                          guidance: Optional[WeightFn] = None, generator: GeneratorLike = None, callback=None,
                          schedule: "Schedule | str | None" = None) -> torch.Tensor:
    """Euler-Maruyama of the reverse SDE (Song et al. 2021, eq. 6).

    Without ``schedule``: the reverse VE SDE of the denoiser frame, ``dx = -d(sigma^2) score + sqrt(d(sigma^2)) dW``,
    ``x' = x + (sigma^2 - sigma'^2) (D - x)/sigma^2 + sqrt(sigma^2 - sigma'^2) xi``.
    With ``schedule``: exactly the EM step of that schedule's reverse SDE in its own frame
    ``z = a x``: ``z' = z - (f z - g^2 score_z) dt + g sqrt(dt) xi`` with ``dt = t - t' > 0``,
    ``score_z = (D - x) / (a sigma^2)``, then ``x' = z' / a(t')`` (times from ``schedule.t_of_sigma``).
    """
    sch = None if schedule is None else get_schedule(schedule)

    def update(x, d0, sigma, sigma_next):
        if sch is None:
            dvar = sigma**2 - sigma_next**2
            return x + dvar * (d0 - x) / sigma**2 + math.sqrt(dvar) * randn_like(x, generator)
        t, t_next = float(sch.t_of_sigma(sigma)), float(sch.t_of_sigma(sigma_next))
        a, a_next = float(sch.a(t)), float(sch.a(t_next))
        f, g2, dt = float(sch.f(t)), float(sch.g2(t)), t - t_next
        z = a * x
        score_z = (d0 - x) / (a * sigma**2)
        z = z - (f * z - g2 * score_z) * dt + math.sqrt(g2 * dt) * randn_like(x, generator)
        return z / a_next

    return _denoise_loop(denoiser, x, sigmas, label, guidance, callback, update)


def ancestral_sigma(sigma: float, sigma_next: float, eta: float = 1.0) -> float:
    """Noise injected by an ancestral/DDIM step in the denoiser frame.

    ``sigma_up = eta sqrt(sigma'^2 (sigma^2 - sigma'^2) / sigma^2)``: DDIM's ``sigma_t(eta)`` (Song et al.
    2021, eq. 16) divided by ``sqrt(abar')``, with ``abar = 1/(1 + sigma^2)``.
    """
    return eta * math.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2)


def _denoise_loop(denoiser, x, sigmas, label, guidance, callback, update) -> torch.Tensor:
    """The loop shared by DDPM and DDIM: evaluate ``x0_hat``, report the step, then ``x' = update(x, x0_hat,
    sigma, sigma')``; the last step (``sigma' = 0``) returns ``x0_hat``."""
    denoiser, s = _setup(denoiser, x, sigmas, label, guidance)
    for i in range(len(s) - 1):
        sigma, sigma_next = s[i], s[i + 1]
        d0 = denoiser(x, sigma, label)
        _notify(callback, Step(i, sigma, sigma_next, x, d0))
        x = d0 if sigma_next == 0 else update(x, d0, sigma, sigma_next)
    return x


def sample_ddpm(denoiser: Denoiser, x, sigmas, *, label: Label = None, guidance: Optional[WeightFn] = None,
                generator: GeneratorLike = None, callback=None) -> torch.Tensor:
    """DDPM ancestral sampling (Ho et al. 2020, eq. 6-7) in the denoiser frame.

    The posterior ``q(x_{t-1} | x_t, x0_hat)`` with ``abar = 1/(1 + sigma^2)``, divided by ``sqrt(abar')``:
    ``x' = (1 - sigma'^2/sigma^2) x0_hat + (sigma'^2/sigma^2) x + sigma_up xi``, ``sigma_up`` of
    :func:`ancestral_sigma` with eta = 1 (the "fixed_small" variance ``beta_tilde``).
    """
    def update(x, d0, sigma, sigma_next):
        r = sigma_next**2 / sigma**2
        return (1 - r) * d0 + r * x + ancestral_sigma(sigma, sigma_next) * randn_like(x, generator)

    return _denoise_loop(denoiser, x, sigmas, label, guidance, callback, update)


def sample_ddim(denoiser: Denoiser, x, sigmas, *, label: Label = None, guidance: Optional[WeightFn] = None,
                generator: GeneratorLike = None, callback=None, eta: float = 0.0) -> torch.Tensor:
    """DDIM (Song, Meng & Ermon 2021, eq. 12) with stochasticity ``eta`` in the denoiser frame.

    ``x' = x0_hat + sqrt(sigma'^2 - sigma_up^2) eps_hat + sigma_up xi`` with ``eps_hat = (x - x0_hat)/sigma``;
    ``eta = 0`` is deterministic DDIM, ``eta = 1`` equals DDPM ancestral sampling.
    """
    if not (eta >= 0 and math.isfinite(eta)):
        raise ValueError(f"eta: expected a finite number >= 0, got {eta}")

    def update(x, d0, sigma, sigma_next):
        up = ancestral_sigma(sigma, sigma_next, eta)
        if up > sigma_next:
            raise ValueError(f"eta: {eta} injects more noise than the step allows (sigma_up > sigma_next)")
        x = d0 + math.sqrt(sigma_next**2 - up**2) * (x - d0) / sigma
        return x + up * randn_like(x, generator) if up > 0 else x

    return _denoise_loop(denoiser, x, sigmas, label, guidance, callback, update)


# --- linear multistep (docs/samplers.md, "Multistep samplers"; weights in critdiff.multistep) ---------
# Each sampler below is a thin wrapper over a ``*_steps`` loop on a plain list of sigmas; the loops accept a
# list that ends above 0 too (a diffusers scheduler that lands on sigma_min, run by integrations.diffusers).
def _eps(x, d0, sigma):
    """The slope ``dx/dsigma = (x - D) / sigma`` (= eps_hat) of the probability-flow ODE."""
    return (x - d0) / sigma


def plms_steps(denoiser, x, s: Sequence[float], label=None, callback=None) -> torch.Tensor:
    """PLMS on the levels ``s``: see :func:`sample_plms`."""
    hist: list[torch.Tensor] = []  # eps at each level, newest last (the warm-up's predictor evaluation excluded)
    for i in range(len(s) - 1):
        sigma, sigma_next = s[i], s[i + 1]
        d0 = denoiser(x, sigma, label)
        _notify(callback, Step(i, sigma, sigma_next, x, d0))
        e = _eps(x, d0, sigma)
        if i == 0 and len(s) > 2:  # warm-up: the trapezoid ("pseudo improved Euler") step
            x_pred = x + (sigma_next - sigma) * e
            e_next = _eps(x_pred, denoiser(x_pred, sigma_next, label), sigma_next)
            x = x + (sigma_next - sigma) * 0.5 * (e + e_next)
            hist.append(e)
            continue
        hist = (hist + [e])[-4:]
        w = MS.adams_bashforth(len(hist))
        x = x + (sigma_next - sigma) * sum(wk * ek for wk, ek in zip(w, reversed(hist)))
    return x


def sample_plms(denoiser: Denoiser, x, sigmas, *, label: Label = None, guidance: Optional[WeightFn] = None,
                generator: GeneratorLike = None, callback=None) -> torch.Tensor:
    """PLMS, the pseudo linear multistep method of Liu et al. 2022 (PNDM, arXiv:2202.09778, eq. 12) in the denoiser frame.

    Every step is the DDIM transfer ``x' = x + (sigma' - sigma) E`` (PNDM's eq. 9 is this step written in the VP
    frame) with ``E`` the Adams-Bashforth combination of the last four ``eps = (x - D)/sigma``, weights for unit
    steps (55, -59, 37, -9)/24, lower orders while the history fills. The first step is the trapezoid step
    ``E = (eps(x) + eps(x_euler)) / 2`` (diffusers' ``skip_prk_steps=True`` warm-up), so a grid of N steps
    costs N + 1 evaluations. The weights assume equal steps: on a grid that is not uniform in sigma the method is
    first order (docs/samplers.md).
    """
    denoiser, s = _setup(denoiser, x, sigmas, label, guidance)
    return plms_steps(denoiser, x, s, label, callback)


def lms_steps(denoiser, x, s: Sequence[float], label=None, callback=None, order: int = 4) -> torch.Tensor:
    """LMS on the levels ``s``: see :func:`sample_lms`."""
    hist: list[torch.Tensor] = []
    for i in range(len(s) - 1):
        d0 = denoiser(x, s[i], label)
        _notify(callback, Step(i, s[i], s[i + 1], x, d0))
        hist = (hist + [_eps(x, d0, s[i])])[-order:]
        w = MS.lagrange_weights([s[i - k] for k in range(len(hist))], s[i], s[i + 1])
        x = x + sum(wk * ek for wk, ek in zip(w, reversed(hist)))
    return x


def sample_lms(denoiser: Denoiser, x, sigmas, *, label: Label = None, guidance: Optional[WeightFn] = None,
               generator: GeneratorLike = None, callback=None, order: int = 4) -> torch.Tensor:
    """Linear multistep in sigma (k-diffusion's ``sample_lms``; diffusers' ``LMSDiscreteScheduler``).

    ``x' = x + sum_j w_j d_{i-j}`` with ``d = (x - D)/sigma`` and ``w_j = int_sigma^sigma' L_j`` the Lagrange basis
    through the last ``min(i + 1, order)`` levels (:func:`critdiff.multistep.lagrange_weights`); the step to 0 is
    an LMS step like the others.
    """
    check_int("order", order, 1)
    denoiser, s = _setup(denoiser, x, sigmas, label, guidance)
    return lms_steps(denoiser, x, s, label, callback, order)


def deis_steps(denoiser, x, s: Sequence[float], label=None, callback=None, order: int = 2,
               lower_order_final: bool = True) -> torch.Tensor:
    """DEIS on the levels ``s``: see :func:`sample_deis`."""
    hist: list[torch.Tensor] = []
    n = len(s) - 1
    for i in range(n):
        d0 = denoiser(x, s[i], label)
        _notify(callback, Step(i, s[i], s[i + 1], x, d0))
        hist = (hist + [_eps(x, d0, s[i])])[-order:]
        p = min(len(hist), n - i) if lower_order_final else len(hist)
        w = MS.deis_weights([s[i - k] for k in range(p)], s[i], s[i + 1])
        x = x + sum(wk * ek for wk, ek in zip(w, reversed(hist[-p:])))
    return x


def sample_deis(denoiser: Denoiser, x, sigmas, *, label: Label = None, guidance: Optional[WeightFn] = None,
                generator: GeneratorLike = None, callback=None, order: int = 2,
                lower_order_final: bool = True) -> torch.Tensor:
    """DEIS, the ``logrho`` multistep exponential integrator (Zhang & Chen 2023, arXiv:2204.13902; diffusers'
    ``DEISMultistepScheduler``) in the denoiser frame.

    In ``rho = sigma`` the probability-flow ODE is ``dx/drho = eps``; eps is interpolated by a polynomial in
    ``log rho`` through the last ``order`` levels and integrated exactly (:func:`critdiff.multistep.deis_weights`),
    finite at ``rho' = 0``. Orders 1 (= DDIM), 2, 3; ``lower_order_final`` lowers the order of the last steps to
    the number of steps left.
    """
    if order not in (1, 2, 3):
        raise ValueError(f"order: DEIS takes order 1, 2 or 3, got {order!r}")
    denoiser, s = _setup(denoiser, x, sigmas, label, guidance)
    return deis_steps(denoiser, x, s, label, callback, order, lower_order_final)


def _unipc_update(x, ms, sig, sigma_next, order, variant, corrector=None):
    """One UniPC update from ``sig[-1]`` to ``sigma_next`` (docs/samplers.md, eq. M5-M7): the predictor, or with
    ``corrector = D(x_pred, sigma_next)`` the corrector; ``ms``/``sig`` the data predictions and their levels."""
    s0, m0 = sig[-1], ms[-1]
    ratio = sigma_next / s0
    base = ratio * x + (1 - ratio) * m0
    n_old = order - 1  # older points beside D (the corrector adds the new D as its last term)
    if sigma_next == 0:  # h = inf: only the first-order predictor is defined; it gives x' = D
        return base
    h = math.log(s0 / sigma_next)
    rks = [math.log(s0 / sig[-2 - k]) / h for k in range(n_old)]
    rho, B = MS.unipc_rhos(rks, h, variant, corrector is not None)
    terms = [(ms[-2 - k] - m0) / rk for k, rk in enumerate(rks)]
    if corrector is not None:
        terms.append(corrector - m0)
    if not rho:
        return base
    return base - B * sum(r * t for r, t in zip(rho, terms))


def unipc_steps(denoiser, x, s: Sequence[float], label=None, callback=None, order: int = 2,
                variant: MS.UniPCVariant = "bh2", lower_order_final: bool = True,
                disable_corrector: Sequence[int] = ()) -> torch.Tensor:
    """UniPC on the levels ``s``: see :func:`sample_unipc`."""
    ms: list[torch.Tensor] = []
    sig: list[float] = []
    n = len(s) - 1
    x_last, p_last = None, 0
    for i in range(n):
        d0 = denoiser(x, s[i], label)
        _notify(callback, Step(i, s[i], s[i + 1], x, d0))
        if i > 0 and (i - 1) not in disable_corrector:  # UniC: correct the state just reached, no new evaluation
            x = _unipc_update(x_last, ms, sig, s[i], p_last, variant, corrector=d0)
        ms, sig = (ms + [d0])[-order:], (sig + [s[i]])[-order:]
        p = min(order, n - i) if lower_order_final else order
        p = 1 if s[i + 1] == 0 else min(p, i + 1)
        x_last, p_last = x, p
        x = _unipc_update(x, ms, sig, s[i + 1], p, variant)
    return x


def sample_unipc(denoiser: Denoiser, x, sigmas, *, label: Label = None, guidance: Optional[WeightFn] = None,
                 generator: GeneratorLike = None, callback=None, order: int = 2, variant: MS.UniPCVariant = "bh2",
                 lower_order_final: bool = True, disable_corrector: Sequence[int] = ()) -> torch.Tensor:
    """UniPC (Zhao et al. 2023, arXiv:2302.04867): the UniP-p predictor and the UniC corrector in data prediction,
    in the denoiser frame (diffusers' ``UniPCMultistepScheduler`` with ``predict_x0=True``).

    With ``lambda = -log sigma`` and ``h = lambda' - lambda`` the predictor is DPM-Solver++'s
    ``x' = (sigma'/sigma) x + (1 - sigma'/sigma) D - B(h) sum_k rho_k D1_k`` over the divided differences
    ``D1_k = (D_k - D) / r_k`` of the last ``order`` levels; the corrector repeats the step from the previous
    state once the new ``D`` is known (no extra evaluation), before the next predictor. ``variant`` ``bh1``
    (``B(h) = h``) or ``bh2`` (``e^h - 1``); ``order`` 1, 2 or 3; the step to sigma = 0 is first order
    (``x' = D``); ``disable_corrector`` lists step indices whose result is not corrected. The callback sees the
    state the model was evaluated at (before its correction).
    """
    if order not in (1, 2, 3):
        raise ValueError(f"order: UniPC takes order 1, 2 or 3, got {order!r}")
    if variant not in MS.UNIPC_VARIANTS:
        raise ValueError(f"variant: expected one of {', '.join(MS.UNIPC_VARIANTS)}, got {variant!r}")
    denoiser, s = _setup(denoiser, x, sigmas, label, guidance)
    return unipc_steps(denoiser, x, s, label, callback, order, variant, lower_order_final, disable_corrector)


def sample_lcm(denoiser: Denoiser, x, sigmas, *, label: Label = None, guidance: Optional[WeightFn] = None,
               generator: GeneratorLike = None, callback=None) -> torch.Tensor:
    """Multistep consistency sampling (Song et al. 2023, arXiv:2303.01469, Algorithm 1; diffusers' ``LCMScheduler``)
    in the denoiser frame: ``x' = D(x) + sigma' xi`` with fresh noise at every level, ``x = D(x)`` at the end.

    For a consistency model ``D`` is its one-step map; for a diffusers LCM folder the scheduler's boundary
    condition ``c_skip z + c_out x0_hat`` is applied to ``D`` by the integration (docs/diffusers.md).
    """
    return _denoise_loop(denoiser, x, sigmas, label, guidance, callback,
                         lambda x, d0, sigma, sigma_next: d0 + sigma_next * randn_like(x, generator))


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "heun": sample_heun,
    "euler": sample_euler,
    "euler-maruyama": sample_euler_maruyama,
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "dpmpp-2m": sample_dpmpp_2m,
    "plms": sample_plms,
    "lms": sample_lms,
    "deis": sample_deis,
    "unipc": sample_unipc,
    "lcm": sample_lcm,
}
STOCHASTIC = ("euler-maruyama", "ddpm", "ddim")


def get(spec: str) -> Callable[..., torch.Tensor]:
    """A sampler by spec: ``heun``, ``euler``, ``dpmpp-2m``, ``euler-maruyama`` (alias ``em``), ``ddpm``, ``ddim:eta=0.5``,
    ``plms``, ``lms[:order=4]``, ``deis[:order=2]``, ``unipc[:order=2,variant=bh2]``, ``lcm``.

    Options are bound with ``functools.partial``; the result has the shared sampler signature.
    """
    import functools

    s = parse_spec(spec, "sampler")
    name = "euler-maruyama" if s.name == "em" else s.name
    if name not in SAMPLERS:
        raise ValueError(f"sampler: unknown sampler {s.name!r}; expected one of {', '.join(SAMPLERS)}")
    if s.args:
        raise ValueError(f"sampler: options must be key=value, got {spec!r}")
    allowed = {"ddim": {"eta": 0.0}, "euler-maruyama": {"schedule": None}, "lms": {"order": 4},
               "deis": {"order": 2}, "unipc": {"order": 2, "variant": "bh2"}}.get(name, {})
    kwargs = take_kwargs(s, allowed, "sampler")
    if name == "ddim":
        kwargs["eta"] = float(kwargs["eta"])
    orders = {"lms": (1, 2, 3, 4), "deis": (1, 2, 3), "unipc": (1, 2, 3)}.get(name)
    if orders and kwargs["order"] not in orders:
        raise ValueError(f"sampler: {name} takes order {', '.join(map(str, orders))}, got {kwargs['order']!r}")
    if name == "unipc" and kwargs["variant"] not in MS.UNIPC_VARIANTS:
        raise ValueError(f"sampler: unipc takes variant {' or '.join(MS.UNIPC_VARIANTS)}, got {kwargs['variant']!r}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return functools.partial(SAMPLERS[name], **kwargs) if kwargs else SAMPLERS[name]


class Recorder:
    """A callback that keeps the trajectory: ``x`` and ``x0_hat`` at chosen step indices.

    ``steps=None`` records every step; otherwise a set of step indices (negative indices count from
    the end of a grid of ``n_steps`` steps, which must then be given). Tensors are detached copies.
    """

    def __init__(self, steps: Optional[Sequence[int]] = None, n_steps: Optional[int] = None):
        if steps is not None:
            steps = [int(k) for k in steps]
            if any(k < 0 for k in steps):
                if n_steps is None:
                    raise ValueError("steps: negative step indices need n_steps")
                steps = [k % n_steps for k in steps]
        self.steps = None if steps is None else set(steps)
        self.i: list[int] = []
        self.sigma: list[float] = []
        self.x: list[torch.Tensor] = []
        self.x0_hat: list[torch.Tensor] = []

    def __call__(self, step: Step) -> None:
        if self.steps is None or step.i in self.steps:
            self.i.append(step.i)
            self.sigma.append(step.sigma)
            self.x.append(step.x.detach().clone())
            self.x0_hat.append(step.x0_hat.detach().clone())

    def stacked(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(sigmas [T], x [T, B, C, H, W], x0_hat [T, B, C, H, W])``."""
        if not self.x:
            raise ValueError("Recorder: nothing was recorded")
        return torch.tensor(self.sigma, dtype=torch.float64), torch.stack(self.x), torch.stack(self.x0_hat)
