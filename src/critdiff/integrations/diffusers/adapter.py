"""A HuggingFace ``diffusers`` network plus its scheduler as a critdiff denoiser (DESIGN.md section 1).

Networks (:data:`BACKBONES`): ``UNet2DModel`` (unconditional or class-conditional),
``UNet2DConditionModel`` (text-conditional: ``encoder_hidden_states`` from a
:class:`.conditioning.TextConditioning`, selected by ``label``) and ``DiTTransformer2DModel``
(class-conditional, null class ``num_embeds_ada_norm``; its learned-sigma half of the output is dropped
as ``DiTPipeline`` does). With a VAE (a pipeline folder with ``vae/``) the denoiser works on the latents
and :meth:`DiffusersDenoiser.decode` turns clean latents into images.

Shapes: ``x`` is ``[B, C, H, W]`` in critdiff's variance-exploding frame, ``sigma`` a float, 0-d or
``[B]`` tensor, ``label`` ``None``, an int or a LongTensor ``[B]``; the output ``x0_hat`` has ``x``'s
shape and dtype. ``H x W`` must be the UNet's ``sample_size`` when its config sets one (the resolution
it was trained at; any other size is a ``ValueError`` naming ``x``).

The frames. A discrete-time diffusers model is trained on the VP state ``z_k = sqrt(abar_k) x0 +
sqrt(1 - abar_k) eps`` at integer timesteps ``k = 0 .. T-1``, with ``abar = scheduler.alphas_cumprod``.
In the denoiser frame ``x = z / sqrt(abar)`` and ``sigma = sqrt((1 - abar) / abar)``, so

- the network sees ``z = x / sqrt(1 + sigma^2)`` (``c_in`` of :func:`critdiff.denoisers.vp_scalings`)
  and the timestep ``k(sigma)`` read off the scheduler's own ``alphas_cumprod``
  (:class:`critdiff.denoisers.DiscreteTimeNoise`: a sigma on the model's grid gives its integer
  timestep exactly; a sigma between two grid values gives a fractional timestep by linear
  interpolation in ``log sigma``, which the sinusoidal time embedding of a UNet accepts; sigmas beyond
  the grid are clamped to its ends);
- ``epsilon``: ``x0 = x - sigma eps``; ``v_prediction``: ``x0 = x / (1 + sigma^2) - sigma v /
  sqrt(1 + sigma^2)`` (``v = sqrt(abar) eps - sqrt(1 - abar) x0``); ``sample``: ``x0`` directly;
- then, as the scheduler does to its "predicted x_0", dynamic thresholding (``thresholding``) or
  clipping to ``[-clip_sample_range, clip_sample_range]`` (``clip_sample``; ``DDPMScheduler`` and
  ``DDIMScheduler`` default to ``clip_sample=True``). Both follow the scheduler configuration unless
  overridden. Clipping makes ``D`` flat where it is active (zero Jacobian there): pass
  ``clip_sample=False`` to probe the raw network.

Class labels. A UNet with ``num_class_embeds = K`` (an ``nn.Embedding`` class embedding) receives
``class_labels``; by convention the *null class* (``label=None``, the unconditional model used by
guidance) is the last index ``K - 1`` -- a model trained with label dropout to class ``K - 1``. Change
it with ``null_class``. A :data:`~critdiff.denoisers.NULL_LABEL` entry of a label tensor is that null class
for its sample (a text model: the null prompt's states), so guidance evaluates ``[null; label]`` at batch
``2B`` in one call, as diffusers' pipelines do. ``n_classes = K`` (the null row among them; a text model's
``n_classes`` is its number of prompts). A UNet without
a class embedding accepts only ``label=None`` (or labels that are all ``NULL_LABEL``).

With critdiff's ``sample_ddpm`` / ``sample_ddim`` on the grid of :func:`diffusers_sigma_grid`, the
trajectories are diffusers' ``DDPMScheduler`` / ``DDIMScheduler`` loops, in the frame ``z = x /
sqrt(1 + sigma^2)`` (``tests/test_diffusers.py`` checks this to float32 rounding).

``diffusers`` is an optional dependency (``pip install critdiff[diffusers]``), imported only inside
the functions that need it; nothing is ever downloaded (``local_files_only=True``, ``HF_HUB_OFFLINE``).
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Literal, Optional

import torch

from ...denoisers import NULL_LABEL, DiscreteTimeNoise, Label, as_labels, check_classes, vp_scalings, with_null_class

INSTALL_HINT = ("model: diffusers:DIR needs the optional dependency diffusers; "
                "install it with `pip install critdiff[diffusers]`")
# diffusers' prediction_type -> critdiff's prediction (critdiff.denoisers.PREDICTIONS)
PREDICTION_TYPES = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}
LEARNED_VARIANCE = ("learned", "learned_range")
GRID_KINDS = ("ddpm", "ddim")
# the diffusers network classes the adapter calls (how: DiffusersDenoiser._forward)
BACKBONES = ("UNet2DModel", "UNet2DConditionModel", "DiTTransformer2DModel")
TEXT_BACKBONE, DIT_BACKBONE = "UNet2DConditionModel", "DiTTransformer2DModel"
NEEDS_TEXT = ("cond: a UNet2DConditionModel needs its text conditioning: give --cond PATH.safetensors "
              "(encoder_hidden_states, null_encoder_hidden_states) or --prompt TEXT")
# a timestep within this distance of an integer is that integer (float64 round trip of the grid)
_SNAP = 1e-6
# a sigma within this relative distance of a grid value is that grid value (a few float32 ulps)
_SNAP_REL = 4 * torch.finfo(torch.float32).eps


def _import_diffusers():
    """Import diffusers lazily and offline; a missing install is one clear line naming ``model``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import diffusers
    except ImportError:
        raise ValueError(INSTALL_HINT) from None
    return diffusers


@contextlib.contextmanager
def _quiet(diffusers):
    """Silence diffusers' config warnings (unused keys when one scheduler reads another's config)."""
    log = diffusers.utils.logging
    level = log.get_verbosity()
    log.set_verbosity_error()
    try:
        yield
    finally:
        log.set_verbosity(level)


def _cfg(obj) -> dict:
    return dict(getattr(obj, "config", {}) or {})


class DiffusersDenoiser:
    """``D(x, sigma, label=None) -> x0_hat`` from a diffusers network and its scheduler.

    Parameters
    ----------
    unet : a ``diffusers`` network of :data:`BACKBONES` (``UNet2DModel`` is called as ``unet(z, timesteps,
        class_labels=...).sample``; module docstring for the others).
    scheduler : a diffusers scheduler instance (its ``alphas_cumprod`` and ``config`` are read; it is
        never stepped or mutated).
    clip_sample, clip_sample_range, thresholding : post-processing of ``x0_hat`` as the scheduler
        does it; ``None`` follows the scheduler configuration.
    null_class : the class index used for ``label=None`` on a class-conditional UNet (default
        ``num_class_embeds - 1``).
    quantize : round timesteps to the nearest integer instead of interpolating (forced for UNets with
        a learned, table-lookup time embedding).
    conditioning : a :class:`.conditioning.TextConditioning`, only for a ``UNet2DConditionModel`` (needed
        to evaluate it): ``label=None`` gives its null states, a label its conditional ones.
    vae : an ``AutoencoderKL`` for a latent-space model (``decode``); ``None`` for a pixel-space one.
    math_attention : run attention with PyTorch's plain "math" kernel, whose graph can be
        differentiated twice (``torch.autograd.functional.jvp`` uses a double backward; the fused CPU
        flash kernel has no such derivative). ``None`` (default): the math kernel whenever grad mode is
        on, the fast kernels under ``torch.no_grad()``. ``torch.func.jvp`` (forward-mode AD) does not
        run through diffusers' attention blocks with either kernel; use ``torch.autograd.functional``.

    See the module docstring for the frames and conventions. Classifier-free guidance
    (:class:`critdiff.guidance.Guided`) mixes the raw outputs (:meth:`guidance_output`) and clips the
    guided ``x0_hat`` once (:meth:`guidance_x0`), as diffusers' pipelines do.
    """

    def __init__(self, unet, scheduler, *, clip_sample: Optional[bool] = None,
                 clip_sample_range: Optional[float] = None, thresholding: Optional[bool] = None,
                 null_class: Optional[int] = None, quantize: bool = False,
                 math_attention: Optional[bool] = None, conditioning=None, vae=None):
        ucfg, scfg = _cfg(unet), _cfg(scheduler)
        if not callable(unet) or "in_channels" not in ucfg:
            raise TypeError(f"unet: expected a diffusers {' / '.join(BACKBONES)}, got {type(unet).__name__}")
        self.unet = unet
        self.scheduler_class = type(scheduler).__name__
        self.scheduler_config = scfg
        self.unet_class = type(unet).__name__
        self.path: Optional[str] = None
        self.math_attention = math_attention
        self.vae = vae
        self.conditioning = _check_conditioning(self.unet_class, ucfg, conditioning)

        ptype = scfg.get("prediction_type", "epsilon")
        if ptype not in PREDICTION_TYPES:
            raise ValueError(f"model: unsupported prediction_type {ptype!r} in the {self.scheduler_class} config; "
                             f"expected one of {', '.join(PREDICTION_TYPES)}")
        self.prediction_type = ptype
        self.prediction = PREDICTION_TYPES[ptype]

        if ucfg.get("time_cond_proj_dim") is not None:
            raise ValueError("model: a UNet with time_cond_proj_dim (LCM-distilled: LatentConsistencyModelPipeline feeds "
                             "it a guidance-scale embedding as timestep_cond) is not supported; expected "
                             "time_cond_proj_dim None (LCMScheduler itself is supported)")
        temb = ucfg.get("time_embedding_type", "positional")
        if temb not in ("positional", "learned"):
            raise ValueError(f"model: unsupported time_embedding_type {temb!r} (a continuous-sigma score model); "
                             "expected a discrete-timestep UNet ('positional' or 'learned')")
        self.quantize = bool(quantize) or temb == "learned"

        ac = getattr(scheduler, "alphas_cumprod", None)
        if ac is None:
            raise ValueError(f"model: scheduler {self.scheduler_class} has no alphas_cumprod; expected a "
                             "discrete-time (DDPM/DDIM-family) scheduler")
        self.alphas_cumprod = torch.as_tensor(ac).detach().to("cpu", torch.float64)
        try:
            self.noise = DiscreteTimeNoise(self.alphas_cumprod, quantize=self.quantize)
        except ValueError as e:
            raise ValueError(f"model: the scheduler's alphas_cumprod is not usable ({e}); zero-terminal-SNR "
                             "schedules (rescale_betas_zero_snr) have no finite sigma_max") from None
        abar = self.alphas_cumprod
        self._sigmas = torch.sqrt((1 - abar) / abar)  # float64 [T], ascending with the timestep

        self.channels = int(ucfg["in_channels"])
        out_ch = int(ucfg.get("out_channels", self.channels) or self.channels)
        self.learned_variance = scfg.get("variance_type") in LEARNED_VARIANCE and out_ch == 2 * self.channels
        # DiT's learned sigma without a learned-variance scheduler: DiTPipeline keeps the first half
        self.drop_variance = self.unet_class == DIT_BACKBONE and out_ch == 2 * self.channels and not self.learned_variance
        if out_ch != self.channels and not (self.learned_variance or self.drop_variance):
            raise ValueError(f"model: the UNet has {out_ch} output channels for {self.channels} input channels; "
                             "expected equal counts (or twice as many with a learned variance_type)")
        size = ucfg.get("sample_size")
        if size is None:
            self.sample_shape = None
        else:
            h, w = (size, size) if isinstance(size, int) else tuple(size)
            self.sample_shape = (self.channels, int(h), int(w))

        self._set_clipping(scfg, clip_sample, clip_sample_range, thresholding)

        K = _class_table_size(self.unet_class, ucfg)
        if ucfg.get("class_embed_type") is not None:
            raise ValueError(f"model: unsupported class_embed_type {ucfg.get('class_embed_type')!r}; "
                             "expected class labels through num_class_embeds (an embedding table)")
        self.n_classes: int = 0 if K is None else int(K)  # rows of the class table (0: no class embedding)
        if self.n_classes == 0:
            if null_class is not None:
                raise ValueError("null_class: this UNet has no class embedding (num_class_embeds is not set); expected None")
            self.null_class = None
        else:
            nc = self.n_classes - 1 if null_class is None else null_class
            if isinstance(nc, bool) or not isinstance(nc, int) or not 0 <= nc < self.n_classes:
                raise ValueError(f"null_class: expected an int in [0, {self.n_classes - 1}], got {null_class!r}")
            self.null_class = int(nc)
        if self.conditioning is not None:  # a text model: labels select the prompts (conditioning.py)
            self.n_classes = self.conditioning.prompts

    def _set_clipping(self, scfg: dict, clip_sample, clip_sample_range, thresholding) -> None:
        """The scheduler's x0 clipping and dynamic thresholding (its config, unless overridden)."""
        self.clip_sample = bool(scfg.get("clip_sample", False)) if clip_sample is None else bool(clip_sample)
        self.clip_sample_range = float(scfg.get("clip_sample_range", 1.0) if clip_sample_range is None
                                       else clip_sample_range)
        if not (self.clip_sample_range > 0 and math.isfinite(self.clip_sample_range)):
            raise ValueError(f"clip_sample_range: expected a finite number > 0, got {self.clip_sample_range}")
        self.thresholding = bool(scfg.get("thresholding", False)) if thresholding is None else bool(thresholding)
        self.dynamic_thresholding_ratio = float(scfg.get("dynamic_thresholding_ratio", 0.995))
        self.sample_max_value = float(scfg.get("sample_max_value", 1.0))

    # --- noise levels and timesteps ------------------------------------------------------------
    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.numel())

    @property
    def sigma_min(self) -> float:
        return float(self._sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self._sigmas[-1])

    def sigmas(self) -> torch.Tensor:
        """The model's own sigma grid ``sqrt((1 - abar_k) / abar_k)``, ``k = 0 .. T-1`` (ascending), float64."""
        return self._sigmas.clone()

    def timesteps_to_sigmas(self, timesteps) -> torch.Tensor:
        """Sigmas (float64) at integer or fractional timesteps in ``[0, T-1]``.

        Integers give the grid values exactly; fractions interpolate ``log sigma`` linearly (the inverse
        of the sigma -> timestep map used by the denoiser).
        """
        t = torch.as_tensor(timesteps, dtype=torch.float64).cpu()
        T = self.num_train_timesteps
        if not bool(torch.isfinite(t).all()) or bool((t < 0).any()) or bool((t > T - 1).any()):
            raise ValueError(f"timesteps: expected values in [0, {T - 1}]")
        k = t.floor().long().clamp(max=T - 2)
        frac = t - k.to(torch.float64)
        exact = self._sigmas[t.round().long()]
        ls = self.noise.log_sigmas
        interp = torch.exp(ls[k] + frac * (ls[k + 1] - ls[k]))
        return torch.where(t == t.round(), exact, interp)

    def sigma_to_timestep(self, sigma) -> torch.Tensor:
        """The (fractional, or rounded if ``quantize``) float64 timestep of each sigma; grid sigmas give integers."""
        s = torch.as_tensor(sigma, dtype=torch.float64).cpu()
        t = self.noise(s.reshape(-1)).reshape(s.shape)
        k = t.round().long().clamp(0, self.num_train_timesteps - 1)
        # a sigma that equals the grid value of timestep k to float32 rounding is that timestep (a sigma
        # stored in float32, e.g. 499.999996 -> 500)
        on_grid = (s - self._sigmas[k]).abs() <= _SNAP_REL * self._sigmas[k]
        return torch.where(on_grid | ((t - t.round()).abs() < _SNAP), t.round(), t)

    def _sigma64(self, sigma, x: torch.Tensor) -> torch.Tensor:
        # Like critdiff.denoisers.as_sigma, but kept in float64: the timestep is read from the grid before
        # any rounding to x's dtype, so on-grid sigmas map to their exact integer timesteps.
        s = sigma.detach() if isinstance(sigma, torch.Tensor) else torch.as_tensor(sigma, dtype=torch.float64)
        s = s.to("cpu", torch.float64)
        if s.ndim == 0:
            s = s.reshape(1).expand(x.shape[0])
        elif s.ndim != 1 or s.shape[0] != x.shape[0]:
            raise ValueError(f"sigma: expected a scalar or a [B] tensor with B={x.shape[0]}, got shape {tuple(s.shape)}")
        if not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
            raise ValueError("sigma: expected finite values > 0")
        return s

    def _labels(self, label: Label, batch: int, device) -> Optional[torch.Tensor]:
        lab = as_labels(label, batch, device)
        if self.unet_class == TEXT_BACKBONE:  # text: label selects the encoder states (_forward)
            return None
        if self.n_classes == 0:
            if lab is not None and not bool((lab == NULL_LABEL).all()):
                raise ValueError("label: this diffusers UNet has no class embedding (num_class_embeds is not set); "
                                 "expected None")
            return None
        if lab is None:
            return torch.full((batch,), self.null_class, dtype=torch.long, device=device)
        check_classes(lab, self.n_classes, "class indices")
        return with_null_class(lab, self.null_class)

    # --- the denoiser ---------------------------------------------------------------------------
    def _attention_kernel(self):
        use_math = torch.is_grad_enabled() if self.math_attention is None else bool(self.math_attention)
        if not use_math:
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel(SDPBackend.MATH)

    def postprocess(self, x0: torch.Tensor) -> torch.Tensor:
        """Dynamic thresholding (Saharia et al. 2022, sec. 2.3) or clipping of ``x0_hat``, as the scheduler does."""
        if self.thresholding:
            B = x0.shape[0]
            work = x0 if x0.dtype in (torch.float32, torch.float64) else x0.float()
            s = torch.quantile(work.reshape(B, -1).abs(), self.dynamic_thresholding_ratio, dim=1)
            s = s.clamp(min=1.0, max=self.sample_max_value).reshape(B, 1, 1, 1)
            return (torch.maximum(torch.minimum(work, s), -s) / s).to(x0.dtype)
        if self.clip_sample:
            return x0.clamp(-self.clip_sample_range, self.clip_sample_range)
        return x0

    def predict(self, x: torch.Tensor, sigma, label: Label = None, timestep=None):
        """The raw network prediction: ``(x0_hat, variance_channels)``, no clipping or thresholding.

        ``timestep`` (float or ``[B]``) overrides the timestep read off ``sigma`` (a diffusers scheduler
        may evaluate the model at a timestep that is not the one of its sigma, e.g. Karras sigmas with
        rounded timesteps); ``variance_channels`` is the second half of a learned-variance output, else
        ``None``.
        """
        out, var = self.raw_output(x, sigma, label, timestep)
        return self.x0_from_raw(x, sigma, out), var

    def raw_output(self, x: torch.Tensor, sigma, label: Label = None, timestep=None):
        """The network's own output ``F`` (``eps``, ``v`` or ``x0``, as ``prediction_type``) in ``x``'s dtype,
        and the learned-variance channels (else ``None``); ``timestep`` as in :meth:`predict`."""
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"x: expected a floating tensor [B, C, H, W], got {getattr(x, 'shape', type(x).__name__)}")
        if x.shape[1] != self.channels:
            raise ValueError(f"x: the UNet takes {self.channels} channel(s), got shape {tuple(x.shape)}")
        if self.sample_shape is not None and tuple(x.shape[2:]) != self.sample_shape[1:]:
            raise ValueError(f"x: the UNet's sample_size is {self.sample_shape[1]}x{self.sample_shape[2]}, "
                             f"got shape {tuple(x.shape)}")
        B = x.shape[0]
        s64 = self._sigma64(sigma, x)  # [B] float64, cpu
        t = self.sigma_to_timestep(s64) if timestep is None else \
            torch.as_tensor(timestep, dtype=torch.float64).reshape(-1).expand(B)
        labels = self._labels(label, B, x.device)
        c_in = vp_scalings(s64, self.prediction)[2].to(device=x.device, dtype=x.dtype).reshape(-1, 1, 1, 1)
        z = c_in * x  # the VP state the network was trained on
        udtype = getattr(self.unet, "dtype", x.dtype)
        t_in = t.to(x.device, torch.long if self.quantize else torch.float32)
        with self._attention_kernel():
            out = self._forward(z.to(udtype), t_in, labels, label)
        var = None
        if self.learned_variance:
            out, var = out[:, : self.channels], out[:, self.channels:]
        return out.to(x.dtype), var

    def x0_from_raw(self, x: torch.Tensor, sigma, out: torch.Tensor) -> torch.Tensor:
        """``x0_hat = c_skip x + c_out F`` of a raw output ``F`` (no clipping): affine in ``F``."""
        c_skip, c_out, _ = (c.to(device=x.device, dtype=x.dtype).reshape(-1, 1, 1, 1)
                            for c in vp_scalings(self._sigma64(sigma, x), self.prediction))
        return c_skip * x + c_out * out

    # the guidance protocol of critdiff.guidance.Guided: mix the raw outputs, clip the guided x0_hat
    def guidance_output(self, x: torch.Tensor, sigma, label: Label = None) -> torch.Tensor:
        """``F(x, sigma, label)``, the output classifier-free guidance mixes (as diffusers' pipelines do)."""
        return self.raw_output(x, sigma, label)[0]

    def guidance_x0(self, x: torch.Tensor, sigma, out: torch.Tensor) -> torch.Tensor:
        """``D`` of a (guided) raw output: :meth:`x0_from_raw`, then the scheduler's clipping/thresholding."""
        return self.postprocess(self.x0_from_raw(x, sigma, out))

    def _forward(self, z: torch.Tensor, t: torch.Tensor, labels, label: Label = None) -> torch.Tensor:
        if self.unet_class == TEXT_BACKBONE:
            if self.conditioning is None:
                raise ValueError(NEEDS_TEXT)
            lab = as_labels(label, z.shape[0], z.device)
            states = self.conditioning.states(lab, z.shape[0], z.device, z.dtype)
            return self.unet(z, t, encoder_hidden_states=states).sample
        if self.unet_class == DIT_BACKBONE:
            out = self.unet(z, timestep=t, class_labels=labels).sample
            return out[:, : self.channels] if self.drop_variance else out
        return self.unet(z, t, class_labels=labels).sample

    @property
    def image_shape(self) -> Optional[tuple]:
        """``(C, H, W)`` of a decoded sample: the VAE's output (``2^(levels - 1)`` times the latents), else
        ``sample_shape``."""
        if self.vae is None or self.sample_shape is None:
            return self.sample_shape
        vcfg = _cfg(self.vae)
        f = 2 ** (len(vcfg.get("block_out_channels", (0,))) - 1)
        return (int(vcfg.get("out_channels", 3)), self.sample_shape[1] * f, self.sample_shape[2] * f)

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """Images ``[B, 3, H', W']`` in ``[-1, 1]`` from clean latents ``x0 [B, C, H, W]`` (the VAE's
        ``decode(x0 / scaling_factor + shift_factor)``, as the pipelines do); identity without a VAE."""
        if self.vae is None:
            return x0
        vcfg = _cfg(self.vae)
        scale, shift = float(vcfg.get("scaling_factor", 1.0)), vcfg.get("shift_factor")
        z = x0 / scale + (float(shift) if shift is not None else 0.0)
        with torch.no_grad():
            return self.vae.decode(z.to(self.vae.dtype)).sample.to(x0.dtype)

    def __call__(self, x: torch.Tensor, sigma, label: Label = None) -> torch.Tensor:
        return self.postprocess(self.predict(x, sigma, label)[0])

    # --- records --------------------------------------------------------------------------------
    def schedule_info(self) -> dict:
        """JSON-ready description of the noise schedule and the timestep mapping."""
        return {
            "scheduler": self.scheduler_class,
            "num_train_timesteps": self.num_train_timesteps,
            "beta_schedule": self.scheduler_config.get("beta_schedule"),
            "beta_start": self.scheduler_config.get("beta_start"),
            "beta_end": self.scheduler_config.get("beta_end"),
            "prediction_type": self.prediction_type,
            "sigma_min": self.sigma_min,
            "sigma_max": self.sigma_max,
            "logsnr_min": -2 * math.log(self.sigma_max),
            "logsnr_max": -2 * math.log(self.sigma_min),
            "timesteps": "nearest integer" if self.quantize else "log-sigma interpolation (exact integers on the grid)",
            "clip_sample": self.clip_sample,
            "clip_sample_range": self.clip_sample_range,
            "thresholding": self.thresholding,
        }

    def config(self) -> dict:
        """JSON-ready description of the model (for run records)."""
        return {
            "kind": "diffusers",
            "path": self.path,
            "unet": self.unet_class,
            "sample_shape": None if self.sample_shape is None else list(self.sample_shape),
            "n_classes": self.n_classes,
            "null_class": self.null_class,
            "conditioning": None if self.conditioning is None else self.conditioning.record(),
            "latent": self.vae is not None,
            **self.schedule_info(),
        }

    def __repr__(self) -> str:
        return (f"DiffusersDenoiser({self.unet_class}, {self.scheduler_class}, prediction={self.prediction_type!r}, "
                f"T={self.num_train_timesteps}, classes={self.n_classes})")


def _class_table_size(unet_class: str, ucfg: dict) -> Optional[int]:
    """Rows of the class-embedding table: ``num_class_embeds`` (UNet2DModel; null class = last row) or
    ``num_embeds_ada_norm + 1`` (DiT: its label embedding has one extra row, the null class)."""
    if unet_class == DIT_BACKBONE:
        K = ucfg.get("num_embeds_ada_norm")
        if ucfg.get("norm_type", "ada_norm_zero") != "ada_norm_zero" or K is None:
            raise ValueError("model: expected a class-conditional DiTTransformer2DModel (norm_type 'ada_norm_zero' "
                             "with num_embeds_ada_norm)")
        return int(K) + 1
    if unet_class == TEXT_BACKBONE:
        if ucfg.get("num_class_embeds") is not None or ucfg.get("addition_embed_type") is not None:
            raise ValueError("model: a UNet2DConditionModel with class or added embeddings (num_class_embeds, "
                             "addition_embed_type, e.g. SDXL) is not supported; expected text conditioning only")
        return None
    K = ucfg.get("num_class_embeds")
    return None if K is None else int(K)


def _check_conditioning(unet_class: str, ucfg: dict, conditioning):
    """The text conditioning of a ``UNet2DConditionModel`` (needed there to evaluate it, refused elsewhere)."""
    if unet_class != TEXT_BACKBONE:
        if conditioning is not None:
            raise ValueError(f"cond: a {unet_class} takes no text conditioning; --cond/--prompt are for a "
                             "UNet2DConditionModel")
        return None
    if conditioning is None:  # loads (guide-config reads only the schedule); evaluating it is an error
        return None
    width = ucfg.get("cross_attention_dim")
    if isinstance(width, int) and conditioning.width != width:
        raise ValueError(f"cond: the encoder states are {conditioning.width} wide, the UNet's cross_attention_dim "
                         f"is {width}")
    return conditioning


# --- the sampling grids of diffusers' own schedulers -------------------------------------------
def diffusers_sigma_grid(model: DiffusersDenoiser, n_steps: int, kind: Literal["ddpm", "ddim"] = "ddpm",
                         strict: bool = True) -> torch.Tensor:
    """The float64 sigma grid (descending, ending in 0) of diffusers' ``set_timesteps(n_steps)``.

    A fresh ``DDPMScheduler`` (``kind='ddpm'``) or ``DDIMScheduler`` (``kind='ddim'``) is built from the
    model's scheduler configuration; ``sigmas[i]`` is the sigma of its ``timesteps[i]`` and the value
    after the last timestep is the level that scheduler steps to there: ``abar = 1`` (sigma 0) for DDPM
    and for DDIM with ``set_alpha_to_one=True``. critdiff's ``sample_ddpm`` / ``sample_ddim`` on this grid
    then run diffusers' loop step for step.

    Cases that cannot end in 0 exactly: a DDIM config with ``set_alpha_to_one=False`` ends at
    ``abar = alphas_cumprod[0]`` (sigma > 0), and a DDIM last step whose ``t - T // n_steps`` is still a
    timestep; the grid then ends ``[..., sigma_final, 0]`` and critdiff takes one extra denoising step
    (``x = D(x, sigma_final)``) that diffusers does not. When the last timestep is 0 itself, diffusers' last DDIM
    step lands on the level it starts from (a no-op), so that level appears once: the grid stays strictly
    decreasing. For diffusers' exact loop use :func:`critdiff.integrations.diffusers.schedulers.scheduler_plan`. DDIM always steps from ``t`` to
    ``t - T // n_steps``; when that is not the next timestep (e.g. ``timestep_spacing='trailing'`` with
    ``T % n_steps != 0``), diffusers' run is not one sigma grid and this raises unless ``strict=False``
    (then the grid of the evaluated timesteps is returned).
    """
    if kind not in GRID_KINDS:
        raise ValueError(f"kind: expected one of {', '.join(GRID_KINDS)}, got {kind!r}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or not 1 <= n_steps <= model.num_train_timesteps:
        raise ValueError(f"n_steps: expected an int in [1, {model.num_train_timesteps}], got {n_steps!r}")
    diffusers = _import_diffusers()
    cls = diffusers.DDPMScheduler if kind == "ddpm" else diffusers.DDIMScheduler
    with _quiet(diffusers):
        sched = cls.from_config(model.scheduler_config)
    sched.set_timesteps(n_steps)
    ts = [int(t) for t in sched.timesteps.tolist()]
    sig = model.sigmas()
    T = model.num_train_timesteps
    if kind == "ddpm":  # DDPMScheduler.previous_timestep: the next listed timestep, then abar = 1
        final = 0.0
    else:
        stride = sched.config.num_train_timesteps // n_steps
        prev = [t - stride for t in ts]
        bad = [i for i in range(len(ts) - 1) if prev[i] != ts[i + 1]]
        if bad and strict:
            i = bad[0]
            raise ValueError(
                f"n_steps: DDIMScheduler ({sched.config.timestep_spacing!r} spacing) steps from timestep {ts[i]} to "
                f"{prev[i]} but next evaluates {ts[i + 1]}; that run is not one sigma grid (strict=False gives the "
                "grid of the evaluated timesteps)")
        if prev[-1] >= 0:
            final = float(sig[prev[-1]])
        elif sched.config.set_alpha_to_one:
            final = 0.0
        else:
            final = float(sig[0])
    if any(not 0 <= t < T for t in ts):
        raise ValueError(f"n_steps: the scheduler produced timesteps outside [0, {T - 1}]")
    grid = [float(sig[t]) for t in ts]
    if final < grid[-1]:  # DDIM from timestep 0 with set_alpha_to_one=False lands on the same level: a no-op step
        grid.append(final)
    if grid[-1] > 0:
        grid.append(0.0)
    return torch.tensor(grid, dtype=torch.float64)
