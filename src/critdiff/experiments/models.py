"""Build a denoiser from a model spec (the ``--model`` argument of every command).

Kinds: ``empirical``, ``patch``, ``gaussian`` (analytic, built from training images), and
``diffusers:DIR`` (a saved diffusers UNet + scheduler, needs the optional extra), and ``net:DIR``
(a network trained by ``critdiff train``, loaded with its EMA weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..spec import parse_spec

ANALYTIC = ("empirical", "patch", "gaussian")
KINDS = ANALYTIC + ("diffusers", "net")


@dataclass(frozen=True)
class ModelOptions:
    """Options of the analytic models (ignored by the others)."""

    stencil: str = "square:5"
    equivariant: bool = True
    boundary: str = "periodic"
    pool: str = "all"
    covariance: str = "full"
    chunk_size: Optional[int] = None


def model_kind(spec: str) -> str:
    """The kind named by a model spec, validated."""
    s = parse_spec(spec, "model")
    if s.name not in KINDS:
        raise ValueError(f"model: unknown model {s.name!r}; expected one of {', '.join(KINDS)} (diffusers as diffusers:DIR, net as net:DIR)")
    return s.name


def build_model(spec: str, images: Optional[torch.Tensor] = None, labels: Optional[torch.Tensor] = None,
                options: ModelOptions = ModelOptions()):
    """Return the denoiser ``D(x, sigma, label)`` named by ``spec``."""
    kind = model_kind(spec)
    if kind in ANALYTIC and images is None:
        raise ValueError(f"model: {kind!r} is built from training images; give --data")
    if kind == "empirical":
        from ..scores.empirical import EmpiricalScore

        return EmpiricalScore(images, labels=labels, chunk_size=options.chunk_size)
    if kind == "patch":
        from ..scores.patch import PatchScore

        return PatchScore(images, stencil=options.stencil, equivariant=options.equivariant, boundary=options.boundary,
                          labels=labels, pool=options.pool, chunk_size=options.chunk_size)
    if kind == "gaussian":
        from ..scores.gaussian import GaussianScore

        cov = options.covariance if images[0].numel() <= 4096 or options.covariance != "full" else "stationary"
        return GaussianScore(images, labels=labels, covariance=cov)
    path = spec.split(":", 1)[1] if ":" in spec else ""
    if kind == "net":
        if not path:
            raise ValueError("model: 'net' needs a directory, as net:DIR (the --out folder of critdiff train)")
        from ..nets.net_denoiser import load_net

        return load_net(path)
    if not path:
        raise ValueError("model: 'diffusers' needs a directory, as diffusers:DIR")
    from ..nets.diffusers_adapter import load_diffusers_spec

    return load_diffusers_spec(path)
