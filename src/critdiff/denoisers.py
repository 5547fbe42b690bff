"""The one denoiser contract, conversions between parametrisations, and edge wrappers.

DESIGN.md section 1. A *denoiser* is any callable ``D(x, sigma, label=None) -> x0_hat``:

- ``x``      ``[B, C, H, W]`` state in the variance-exploding frame ``x = x0 + sigma n``
             (a VP state ``x_t`` enters as ``x_t / a_t``);
- ``sigma``  noise level ``sigma_t / a_t`` as a float, 0-d tensor or ``[B]`` tensor;
             ``logsnr = -2 log sigma``;
- ``label``  ``None`` (unconditional), an int, or a LongTensor ``[B]`` in which the value
             :data:`NULL_LABEL` (``-1``) means "unconditional for this sample" (so one call can hold
             conditional and unconditional samples: classifier-free guidance evaluates ``[x; x]`` with
             ``[null; label]`` at batch ``2B``, :mod:`critdiff.guidance`);
- returns the posterior mean ``E[x0 | x]``, same shape as ``x``.

Every denoiser honours :data:`NULL_LABEL` per sample: a network feeds its null class (the class its label
dropout trained), a text model the negative (empty-prompt) states, an analytic model the unconditional pool.
``label=None`` stays the all-unconditional call.

Capabilities beyond ``__call__`` are declared as runtime-checkable protocols (one name each), never found
with ``getattr``: :class:`ClassConditional` (``n_classes``), :class:`GuidanceOutput` (the raw output a
network is guided on), :class:`LatentDecoder` (a VAE's ``decode``), :class:`SampleShaped` (``sample_shape``).

Conversions (all in that frame): ``score = (D - x) / sigma^2``, ``eps = (x - D) / sigma``, and the
VP velocity ``v = a eps - s x0`` with ``a = 1/sqrt(1 + sigma^2)``, ``s = sigma/sqrt(1 + sigma^2)``.

Networks trained in another parametrisation are wrapped once, at the edge, by
:class:`Preconditioned`: ``D(x) = c_skip x + c_out F(c_in x, c_noise, label)`` (Karras et al. 2022,
eq. 7), with the scalings of eps-, v- and x0-prediction networks and of discrete-timestep models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Optional, Protocol, Union, runtime_checkable

import torch

Label = Union[None, int, torch.Tensor]
NULL_LABEL = -1
"""The label value, inside a LongTensor ``[B]``, of a sample to be evaluated unconditionally."""
Prediction = Literal["eps", "v", "x0"]
PREDICTIONS = ("eps", "v", "x0")


class Denoiser(Protocol):
    """``D(x [B,C,H,W], sigma float | [B], label=None) -> x0_hat [B,C,H,W]`` (DESIGN.md section 1)."""

    def __call__(self, x: torch.Tensor, sigma, label: Label = None) -> torch.Tensor: ...


@runtime_checkable
class ClassConditional(Protocol):
    """A denoiser that accepts the labels ``0 .. n_classes - 1`` (and :data:`NULL_LABEL`); ``n_classes = 0``:
    unconditional. (A diffusers class table counts its null row among them.)"""

    @property
    def n_classes(self) -> int: ...


@runtime_checkable
class GuidanceOutput(Protocol):
    """A denoiser offering the output its network is guided on (as diffusers' pipelines guide ``eps``):
    ``D(x, sigma, label) = guidance_x0(x, sigma, guidance_output(x, sigma, label))`` with ``F [B, C, H, W]``
    (:mod:`critdiff.guidance` mixes ``F_u + w (F_c - F_u)`` and converts once)."""

    def guidance_output(self, x: torch.Tensor, sigma, label: Label = None) -> torch.Tensor: ...

    def guidance_x0(self, x: torch.Tensor, sigma, out: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class LatentDecoder(Protocol):
    """A denoiser whose states may be latents: ``decode(x0 [B, C, h, w]) -> images [B, C', H, W]`` (identity
    when ``vae`` is None); ``image_shape`` ``(C', H, W)`` of a decoded sample (``None``: unknown)."""

    vae: object

    @property
    def image_shape(self) -> Optional[tuple]: ...

    def decode(self, x0: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class SampleShaped(Protocol):
    """A denoiser that records the shape ``(C, H, W)`` of one sample (``None``: any size)."""

    @property
    def sample_shape(self) -> Optional[tuple]: ...


def as_sigma(sigma, x: torch.Tensor) -> torch.Tensor:
    """Noise level as a ``[B]`` tensor in ``x``'s dtype and device; raises unless finite and > 0."""
    s = sigma if isinstance(sigma, torch.Tensor) else torch.as_tensor(sigma, dtype=torch.float64)
    if s.ndim == 0:
        s = s.reshape(1).expand(x.shape[0])
    elif s.ndim != 1 or s.shape[0] != x.shape[0]:
        raise ValueError(f"sigma: expected a scalar or a [B] tensor with B={x.shape[0]}, got shape {tuple(s.shape)}")
    s = s.to(dtype=x.dtype)  # checked where it lives (no device sync for a float or a CPU tensor), then moved
    if not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
        raise ValueError("sigma: expected finite values > 0")
    return s.to(device=x.device)


def as_labels(label: Label, batch: int, device=None) -> Optional[torch.Tensor]:
    """Labels as a LongTensor ``[B]`` (an int >= 0 is broadcast), or ``None``; a tensor may hold
    :data:`NULL_LABEL` entries (each model checks the rest against its classes)."""
    if label is None:
        return None
    if isinstance(label, bool):
        raise TypeError("label: expected None, an int or a LongTensor [B], got a bool")
    if isinstance(label, int):
        if label < 0:  # the whole batch unconditional is label=None; NULL_LABEL marks samples inside a tensor
            raise ValueError(f"label: expected an int >= 0 (None: unconditional), got {label}")
        return torch.full((batch,), label, dtype=torch.long, device=device)
    if not isinstance(label, torch.Tensor):
        raise TypeError(f"label: expected None, an int or a LongTensor [B], got {type(label).__name__}")
    if label.is_floating_point():
        raise TypeError(f"label: expected an integer tensor, got dtype {label.dtype}")
    lab = label.to(device=device, dtype=torch.long)
    if lab.ndim == 0:
        lab = lab.reshape(1).expand(batch)
    if lab.shape != (batch,):
        raise ValueError(f"label: expected shape [{batch}], got {tuple(lab.shape)}")
    return lab


def sample_shape_of(model) -> Optional[tuple]:
    """``model.sample_shape`` of a :class:`SampleShaped` denoiser, else ``None`` (the data's shape applies)."""
    return tuple(model.sample_shape) if isinstance(model, SampleShaped) and model.sample_shape is not None else None


def n_classes_of(model) -> int:
    """``model.n_classes`` of a :class:`ClassConditional` denoiser, else 0 (unconditional)."""
    return int(model.n_classes or 0) if isinstance(model, ClassConditional) else 0


def null_mask(lab: torch.Tensor) -> torch.Tensor:
    """``[B]`` bool: the samples of a label tensor to be evaluated unconditionally (:data:`NULL_LABEL`)."""
    return lab == NULL_LABEL


def check_classes(lab: Optional[torch.Tensor], n_classes: int, what: str = "classes") -> None:
    """Raise unless every label is in ``[0, n_classes)`` or :data:`NULL_LABEL` (one line naming ``label``)."""
    if lab is None:
        return
    bad = (lab != NULL_LABEL) & ((lab < 0) | (lab >= n_classes))
    if bool(bad.any()):
        raise ValueError(f"label: expected {what} in [0, {n_classes - 1}] or NULL_LABEL ({NULL_LABEL}: unconditional), "
                         f"got {sorted(set(lab[bad].tolist()))}")


def with_null_class(lab: torch.Tensor, null_class: int) -> torch.Tensor:
    """Labels with :data:`NULL_LABEL` replaced by a network's ``null_class`` index (no device sync)."""
    return torch.where(lab == NULL_LABEL, torch.full_like(lab, null_class), lab)


def _bc(s: torch.Tensor) -> torch.Tensor:
    return s.reshape(-1, 1, 1, 1)


# --- conversions (DESIGN.md section 1) -------------------------------------------------------
def x0_to_eps(x, x0, sigma):
    """``eps = (x - x0) / sigma``."""
    return (x - x0) / _bc(as_sigma(sigma, x))


def eps_to_x0(x, eps, sigma):
    """``x0 = x - sigma eps``."""
    return x - _bc(as_sigma(sigma, x)) * eps


def x0_to_score(x, x0, sigma):
    """``score = grad log p_sigma(x) = (x0 - x) / sigma^2``."""
    return (x0 - x) / _bc(as_sigma(sigma, x)) ** 2


def score_to_x0(x, score, sigma):
    """``x0 = x + sigma^2 score`` (Tweedie)."""
    return x + _bc(as_sigma(sigma, x)) ** 2 * score


def x0_to_v(x, x0, sigma):
    """VP velocity ``v = a eps - s x0`` with ``a = 1/sqrt(1+sigma^2)``, ``s = sigma a``."""
    s = _bc(as_sigma(sigma, x))
    a = torch.rsqrt(1 + s * s)
    return a * (x - x0) / s - s * a * x0


def v_to_x0(x, v, sigma):
    """Inverse of :func:`x0_to_v`: ``x0 = a z - s v`` with the VP state ``z = a x``."""
    s = _bc(as_sigma(sigma, x))
    return x / (1 + s * s) - s * torch.rsqrt(1 + s * s) * v


# --- edge wrappers ---------------------------------------------------------------------------
def vp_scalings(sigma: torch.Tensor, prediction: str):
    """``(c_skip, c_out, c_in)`` for a network fed the VP state ``z = x / sqrt(1 + sigma^2)``."""
    c_in = torch.rsqrt(1 + sigma * sigma)
    if prediction == "eps":
        return torch.ones_like(sigma), -sigma, c_in
    if prediction == "v":
        return 1 / (1 + sigma * sigma), -sigma * c_in, c_in
    if prediction == "x0":
        return torch.zeros_like(sigma), torch.ones_like(sigma), c_in
    raise ValueError(f"prediction: expected one of {', '.join(PREDICTIONS)}, got {prediction!r}")


def logsnr_noise(sigma: torch.Tensor) -> torch.Tensor:
    """``c_noise = logsnr = -2 log sigma`` (the schedule-independent time input)."""
    return -2 * torch.log(sigma)


@dataclass
class Preconditioned:
    """Wrap a network ``F(x_in, c_noise, label)`` into a denoiser (Karras et al. 2022, eq. 7).

    ``D(x, sigma) = c_skip x + c_out F(c_in x, c_noise(sigma), label)`` with the VP scalings of
    :func:`vp_scalings` for ``prediction`` in ``eps`` / ``v`` / ``x0``; ``c_noise`` maps the ``[B]``
    sigmas to the network's time input (default: logsnr). ``label`` is passed through as a
    LongTensor ``[B]`` or ``None``; ``null_class`` (if given) replaces :data:`NULL_LABEL` entries, else
    the network receives them as they are and must honour them itself.
    """

    net: Callable[..., torch.Tensor]
    prediction: Prediction = "eps"
    c_noise: Callable[[torch.Tensor], torch.Tensor] = logsnr_noise
    null_class: Optional[int] = None

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction: expected one of {', '.join(PREDICTIONS)}, got {self.prediction!r}")

    def __call__(self, x, sigma, label: Label = None):
        s = as_sigma(sigma, x)
        c_skip, c_out, c_in = (_bc(c) for c in vp_scalings(s, self.prediction))
        lab = as_labels(label, x.shape[0], x.device)
        if lab is not None and self.null_class is not None:
            lab = with_null_class(lab, self.null_class)
        out = self.net(c_in * x, self.c_noise(s), lab)
        return c_skip * x + c_out * out


@dataclass
class DiscreteTimeNoise:
    """Map a denoiser-frame sigma to the (fractional) timestep of a discrete-time model.

    ``alphas_cumprod [T]`` defines ``sigma_k = sqrt((1 - abar_k) / abar_k)``; a sigma between two
    grid values is mapped by linear interpolation in ``log sigma`` (k-diffusion's convention), so
    sigmas taken from the model's own grid give exact integer timesteps. With ``quantize=True`` the
    timestep is rounded to the nearest integer (models that only accept integer timesteps).
    """

    alphas_cumprod: torch.Tensor
    quantize: bool = False
    log_sigmas: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        ac = torch.as_tensor(self.alphas_cumprod, dtype=torch.float64)
        if ac.ndim != 1 or ac.numel() < 2 or bool((ac <= 0).any()) or bool((ac >= 1).any()):
            raise ValueError("alphas_cumprod: expected a 1-D tensor of values in (0, 1)")
        if bool((ac[1:] > ac[:-1]).any()):
            raise ValueError("alphas_cumprod: expected a non-increasing sequence")
        self.log_sigmas = 0.5 * (torch.log1p(-ac) - torch.log(ac))

    def sigmas(self) -> torch.Tensor:
        """The model's own sigma grid (ascending with the timestep), float64."""
        return torch.exp(self.log_sigmas)

    def __call__(self, sigma: torch.Tensor) -> torch.Tensor:
        ls = self.log_sigmas.to(sigma.device)
        x = torch.log(sigma.to(torch.float64)).clamp(ls[0], ls[-1])
        idx = torch.searchsorted(ls, x).clamp(1, ls.numel() - 1)
        lo, hi = ls[idx - 1], ls[idx]
        frac = torch.where(hi > lo, (x - lo) / (hi - lo), torch.zeros_like(x))
        t = (idx - 1).to(torch.float64) + frac
        if self.quantize:
            t = t.round()
        return t.to(sigma.dtype)


class CountingDenoiser:
    """Wrap a denoiser and count its evaluations (NFE).

    ``calls`` counts invocations; ``evaluations`` counts sample evaluations (the batch size of each
    call), so ``evaluations / B`` is the per-sample NFE of a run over ``B`` samples.
    """

    def __init__(self, denoiser: Denoiser):
        self.denoiser = denoiser
        self.calls = 0
        self.evaluations = 0

    def reset(self) -> None:
        self.calls = 0
        self.evaluations = 0

    def __call__(self, x, sigma, label: Label = None):
        self.calls += 1
        self.evaluations += int(x.shape[0])
        return self.denoiser(x, sigma, label)
