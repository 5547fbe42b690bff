"""``sample_like_pipeline``: critdiff's samplers reproducing a diffusers pipeline call image for image.

``DDPMPipeline(generator=torch.Generator().manual_seed(S), batch_size=B, num_inference_steps=N)``
draws the latents ``randn_tensor((B, C, H, W), generator, dtype=unet.dtype)`` from that generator,
then the scheduler draws its per-step noise from the same generator; ``DDIMPipeline`` first turns
the folder's scheduler into a ``DDIMScheduler`` of the same config and steps with ``eta = 0.0`` and
``use_clipped_model_output=None`` (i.e. the unclipped eps). Both return ``(z / 2 + 0.5).clamp(0, 1)``
as ``[B, H, W, C]`` numpy arrays for ``output_type='np'``. Here the same draws are made in the same
order and the plan of :func:`.schedulers.scheduler_plan` is run by :func:`.loops.run_plan`.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch

from ...denoisers import Label
from .adapter import DiffusersDenoiser
from .loading import load_diffusers
from .loops import initial_state, run_plan
from .schedulers import SCHEDULER_KINDS, scheduler_plan

PIPELINES = ("ddpm", "ddim")


def pipeline_kind(model: DiffusersDenoiser, sampler: Optional[str] = None) -> str:
    """Which scheduler a pipeline call would step: ``sampler`` if given, else the model's own scheduler."""
    kind = sampler if sampler is not None else SCHEDULER_KINDS.get(model.scheduler_class)
    if kind not in SCHEDULER_KINDS.values():
        raise ValueError(f"sampler: like-pipeline expects one of {', '.join(SCHEDULER_KINDS.values())}, got "
                         f"{kind!r}")
    return kind


def sample_like_pipeline(model: "DiffusersDenoiser | str", n: int, steps: int, seed: int, *,
                         sampler: Optional[str] = None, eta: float = 0.0, label: Label = None,
                         guidance=None, output: Literal["image", "state"] = "image") -> torch.Tensor:
    """Samples ``[B, C, H, W]`` equal to the pipeline's, for ``n`` samples, ``steps`` steps and ``seed``.

    ``sampler`` picks the scheduler (``ddpm`` = ``DDPMPipeline``, ``ddim`` = ``DDIMPipeline``, or any
    kind of :data:`.schedulers.SCHEDULER_KINDS` run as the diffusers loop ``scale_model_input`` /
    ``step``); ``None`` uses the folder's own scheduler. ``output='image'`` gives the pipeline's
    ``(z / 2 + 0.5).clamp(0, 1)`` (``z`` decoded by the VAE first for a latent model), ``'state'`` the final
    state unclamped. ``label``/``guidance`` apply
    classifier-free guidance to the raw model outputs (clipping after mixing).
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
