"""``sample_like_pipeline``: critdiff's samplers reproducing a diffusers pipeline call image for image.

``DDPMPipeline(generator=torch.Generator().manual_seed(S), batch_size=B, num_inference_steps=N)``
draws the latents ``randn_tensor((B, C, H, W), generator, dtype=unet.dtype)`` from that generator,
then the scheduler draws its per-step noise from the same generator; ``DDIMPipeline`` first turns
the folder's scheduler into a ``DDIMScheduler`` of the same config and steps with ``eta = 0.0`` and
``use_clipped_model_output=None`` (i.e. the unclipped eps). Both return ``(z / 2 + 0.5).clamp(0, 1)``
as ``[B, H, W, C]`` numpy arrays for ``output_type='np'``. Here the same draws are made in the same
order and the plan of :func:`.schedulers.scheduler_plan` is run by :func:`.loops.run_plan`.

Which pipeline is reproduced follows the network (docs/diffusers.md, section 3):

- ``UNet2DModel``: ``DDPMPipeline`` / ``DDIMPipeline`` as above (also with an ``LCMScheduler``); PNDM, UniPC and DEIS
  run their scheduler's own loop (``latents * init_noise_sigma``, ``step`` without a generator): ``PNDMPipeline``
  for PNDM, while ``DDPMPipeline`` cannot step them (their ``step()`` takes no ``generator``: a TypeError);
- ``UNet2DConditionModel``: ``StableDiffusionPipeline(prompt, guidance_scale=w, num_images_per_prompt=B,
  generator=...)``: latents ``randn_tensor(...) * init_noise_sigma`` from the generator, ``step(...,
  generator=generator, eta=0)``, guidance ``out_u + w (out_c - out_u)`` when ``w > 1``, then the VAE and
  ``(image / 2 + 0.5).clamp(0, 1)``; the prompt is the model's text conditioning (label 0);
- ``DiTTransformer2DModel``: ``DiTPipeline(class_labels, guidance_scale=w, generator=...)`` (null class
  1000, hard-coded there), with DDIM (``eta = 0``), DPM-Solver++(2M), PNDM, UniPC or DEIS only (deterministic, with
  the identity as ``scale_model_input``): ``DiTPipeline`` calls
  ``step()`` without the generator (a stochastic scheduler draws from torch's global RNG), does not scale
  its latents by ``init_noise_sigma``, and hands ``step()`` the *scaled* model input, which for the
  sigma-frame schedulers (Euler, Heun, Euler ancestral) is not a sampler of the model at all; those
  are refused with one line.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch

from ...denoisers import Label
from ...errors import check_finite
from .adapter import DIT_BACKBONE, TEXT_BACKBONE, DiffusersDenoiser
from .loading import load_diffusers
from .loops import initial_state, run_plan
from .schedulers import KIND_CLASSES, SCHEDULER_KINDS, X_FRAME_KINDS, scheduler_plan

PIPELINES = ("ddpm", "ddim")
UNET_BACKBONE = "UNet2DModel"
DIT_KINDS = ("ddim", "dpmpp-2m", "pndm", "unipc", "deis")  # the schedulers DiTPipeline runs as a sampler (docstring)


def pipeline_kind(model: DiffusersDenoiser, sampler: Optional[str] = None) -> str:
    """Which scheduler a pipeline call steps: ``sampler`` if given, else the folder's own scheduler.

    One-line refusals: a scheduler class critdiff does not reproduce (named, with the supported ones), and
    ``DDPMPipeline`` with the folder's Euler, Heun or Euler ancestral scheduler, which is not a sampler of the
    model (module docstring); ``sampler`` names such a scheduler's own loop explicitly.
    """
    kinds = ", ".join(f"{c} ({k})" for c, k in SCHEDULER_KINDS.items())
    if sampler is not None:
        if sampler not in KIND_CLASSES:
            raise ValueError(f"sampler: like-pipeline expects one of {', '.join(KIND_CLASSES)}, got {sampler!r}")
        return sampler
    kind = SCHEDULER_KINDS.get(model.scheduler_class)
    if kind is None:
        raise ValueError(f"scheduler: --like-pipeline cannot reproduce the folder's {model.scheduler_class}; supported: "
                         f"{kinds} (--like-pipeline KIND runs that scheduler instead, not the folder's)")
    if model.unet_class == UNET_BACKBONE and kind in X_FRAME_KINDS:
        raise ValueError(f"scheduler: DDPMPipeline with the folder's {model.scheduler_class} is not a sampler of the "
                         "model (it never calls scale_model_input nor scales its latents by init_noise_sigma); "
                         f"--like-pipeline {kind} runs {model.scheduler_class}'s own loop (scale_model_input, step)")
    return kind


def pipeline_guidance(guidance_scale: Optional[float]) -> Optional[float]:
    """critdiff's guidance weight for a pipeline's ``guidance_scale``: the pipelines mix the null and the
    conditional outputs only when ``guidance_scale > 1``, else they run the conditional model alone (``None``)."""
    if guidance_scale is None:
        return None
    w = check_finite("guidance_scale", guidance_scale)
    return w if w > 1 else None


def sample_like_pipeline(model: "DiffusersDenoiser | str", n: int, steps: int, seed: int, *,
                         sampler: Optional[str] = None, eta: float = 0.0, label: Label = None,
                         guidance=None, output: Literal["image", "state"] = "image") -> torch.Tensor:
    """Samples ``[B, C, H, W]`` equal to the pipeline's, for ``n`` samples, ``steps`` steps and ``seed``.

    ``sampler`` picks the scheduler (``ddpm`` = ``DDPMPipeline``, ``ddim`` = ``DDIMPipeline``, or any
    kind of :data:`.schedulers.SCHEDULER_KINDS` run as the diffusers loop ``scale_model_input`` /
    ``step``); ``None`` uses the folder's own scheduler. ``output='image'`` gives the pipeline's
    ``(z / 2 + 0.5).clamp(0, 1)`` (``z`` decoded by the VAE first for a latent model), ``'state'`` the final
    state unclamped. ``label``/``guidance`` apply classifier-free guidance to the raw model outputs
    (clipping after mixing); a pipeline's ``guidance_scale`` becomes ``guidance`` by
    :func:`pipeline_guidance`. On a text model ``label=None`` is its prompt (label 0), as
    ``StableDiffusionPipeline(prompt)`` samples the prompt.
    """
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        model = load_diffusers(model)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an int >= 1, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed: expected an int, got {seed!r}")
    if output not in ("image", "state"):
        raise ValueError(f"output: expected 'image' or 'state', got {output!r}")
    if model.sample_shape is None:
        raise ValueError("model: the UNet config has no sample_size; like-pipeline needs the image shape")
    plan = scheduler_plan(model, steps, pipeline_kind(model, sampler))
    _check_eta(model, plan.kind, eta)
    if label is None and model.unet_class == TEXT_BACKBONE:
        label = 0
    device = next(model.unet.parameters()).device
    dtype = model.unet.dtype
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((n, *model.sample_shape), generator=generator, dtype=dtype).to(device)
    with torch.no_grad():
        z = run_plan(model, plan, initial_state(plan, noise), label=label, guidance=guidance,
                     generator=generator, eta=eta)
    if output == "state":
        return z
    return (model.decode(z) / 2 + 0.5).clamp(0, 1)  # a latent model's VAE decodes first, as its pipeline does



def _check_eta(model: DiffusersDenoiser, kind: str, eta: float) -> None:
    """``eta`` acts only on DDIM, in ``[0, 1]`` (``DDIMPipeline``'s range); ``DiTPipeline`` is a sampler only with
    DDIM (eta 0) or DPM-Solver++(2M) (module docstring): the rest is refused in one line."""
    eta = check_finite("eta", eta)
    if eta != 0 and kind != "ddim":
        raise ValueError(f"eta: only DDIMScheduler takes eta; the pipeline steps {KIND_CLASSES[kind]} (eta {eta:g})")
    if not 0 <= eta <= 1:
        raise ValueError(f"eta: DDIMPipeline takes eta in [0, 1], got {eta:g}")
    if model.unet_class == DIT_BACKBONE and (kind not in DIT_KINDS or eta > 0):
        raise ValueError(f"sampler: DiTPipeline cannot be reproduced with {kind} (eta {eta}): it steps without the "
                         "generator and hands step() the scaled input; expected ddim (eta 0), dpmpp-2m, pndm, unipc or deis")
