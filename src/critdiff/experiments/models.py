"""The one place where a model spec becomes a denoiser (the ``--model`` argument of every command).

Kinds: ``empirical``, ``patch``, ``gaussian`` (analytic, built from the training images of ``--data``),
``net:DIR`` (a network trained by ``critdiff train``, loaded with its EMA weights), ``pretrained:NAME`` (a
network that ships with critdiff, :mod:`critdiff.pretrained`; files checked by sha256) and ``diffusers:DIR``
(a saved diffusers model + scheduler; needs the optional extra). :func:`load_model` reads a
:class:`~critdiff.experiments.config.RunConfig`, loads the data (when the model or the command needs
it), builds the denoiser and checks that data and model agree on the image shape.

Every model is built on ``cfg.device`` (resolved once by :func:`critdiff.devices.resolve`: a one-line
error for a device this machine lacks): the analytic models keep their training images (and so their
pools) there, a network's weights are loaded there. The analytic models compute on the device of the
``x`` they are given, so a command creates its states on ``cfg.torch_device`` too (the training images
returned by :func:`load_model` stay on the CPU, where the theory, figures and metrics read them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..denoisers import LatentDecoder, sample_shape_of
from .config import ANALYTIC, KINDS, RunConfig, model_kind

__all__ = ["ANALYTIC", "KINDS", "LoadedModel", "build_model", "decode_samples", "load_model", "model_kind"]


@dataclass(frozen=True)
class LoadedModel:
    """A denoiser with the data it was built from: ``images [N, C, H, W]`` (or None; on the CPU), ``labels [N]``
    (or None), ``shape`` ``(C, H, W)`` of one sample."""

    model: Any
    images: Optional[torch.Tensor]
    labels: Optional[torch.Tensor]
    shape: tuple

    @property
    def n_classes(self) -> Optional[int]:
        return None if self.labels is None else int(self.labels.max()) + 1


def build_model(cfg: RunConfig, images: Optional[torch.Tensor] = None, labels: Optional[torch.Tensor] = None,
                chunk_size: Optional[int] = None, covariance: str = "full"):
    """Return the denoiser ``D(x, sigma, label)`` named by ``cfg.model`` (analytic ones from ``images``), built
    on ``cfg.device``."""
    kind = model_kind(cfg.model)
    device = cfg.torch_device
    if kind in ANALYTIC and images is None:
        raise ValueError(f"model: {kind!r} is built from training images; give --data")
    if kind == "empirical":
        from ..scores.empirical import EmpiricalScore

        return EmpiricalScore(images, labels=labels, chunk_size=chunk_size, device=device)
    if kind == "patch":
        from ..scores.patch import PatchScore

        return PatchScore(images, stencil=cfg.stencil, equivariant=cfg.equivariant, boundary=cfg.boundary,
                          labels=labels, pool=cfg.pool, chunk_size=chunk_size, device=device)
    if kind == "gaussian":
        from ..scores.gaussian import GaussianScore

        cov = covariance if images[0].numel() <= 4096 or covariance != "full" else "stationary"
        return GaussianScore(images, labels=labels, covariance=cov, device=device)
    if kind == "pretrained":
        from .. import pretrained

        return pretrained.load(cfg.model, device=device, kind="unet")
    path = cfg.model.split(":", 1)[1] if ":" in cfg.model else ""
    if not path:
        raise ValueError(f"model: {kind!r} needs a directory, as {kind}:DIR"
                         + (" (the --out folder of critdiff train)" if kind == "net" else ""))
    if kind == "net":
        from ..nets.net_denoiser import load_net

        return load_net(path, device=device)
    from ..integrations.diffusers.loading import load_diffusers_spec

    return load_diffusers_spec(path, device=device, cond=cfg.cond, prompt=cfg.prompt)


def decode_samples(model, x: torch.Tensor) -> torch.Tensor:
    """Images from samples: a latent-space model's VAE decodes its latents (``model.decode``); else ``x``."""
    return model.decode(x) if isinstance(model, LatentDecoder) else x


def load_model(cfg: RunConfig, *, need_data: bool = False, data_seed: Optional[int] = None) -> LoadedModel:
    """Load the data (for analytic models, or when ``need_data``) and build the model of ``cfg``.

    ``data_seed`` seeds the data's random crops and subsets (default: ``cfg.seed``; a ``seed=`` in the data
    spec wins over both). A trained model run
    with ``--data`` must take images of the data's shape.
    """
    kind = model_kind(cfg.model)
    images = labels = None
    if kind in ANALYTIC or need_data or cfg.data:
        if not cfg.data:
            raise ValueError("data: this command needs a data set (--data SPEC)")
        from ..data import load as load_data
        from ..spec import parse_spec

        # a seed= in the data spec is the data's own seed and wins; else the run's seed (or data_seed)
        spec_seeded = "seed" in parse_spec(cfg.data, "data").kwargs
        images, labels = load_data(cfg.data, seed=None if spec_seeded else (cfg.seed if data_seed is None else data_seed))
        images = images.to(cfg.torch_dtype)
    model = build_model(cfg, images, labels)
    model_shape = sample_shape_of(model)
    image_shape = model.image_shape if isinstance(model, LatentDecoder) else model_shape  # decoded images
    if images is not None and image_shape is not None and tuple(image_shape) != tuple(images.shape[1:]):
        raise ValueError(f"data: model {cfg.model!r} makes images of shape {tuple(image_shape)}, but {cfg.data!r} "
                         f"gives {tuple(images.shape[1:])}; choose the data's size= to match")
    shape = tuple(model_shape) if model_shape is not None else (tuple(images.shape[1:]) if images is not None else None)
    if shape is None:
        raise ValueError(f"model: {cfg.model!r} does not record its image size; give --data with the size it was trained on")
    return LoadedModel(model, images, labels, tuple(shape))
