"""A trained critdiff UNet as a denoiser ``D(x, sigma, label) -> x0_hat`` (DESIGN.md section 1), and
:func:`load_net`, the loader behind ``--model net:DIR``.

Shapes: ``x [B, C, H, W]`` in the denoiser frame, ``sigma`` float / 0-d / ``[B]``, ``label`` None / int /
LongTensor ``[B]`` (``NULL_LABEL`` entries: the null class). The network ``F(z, logsnr, label)`` is wrapped by
:class:`critdiff.denoisers.Preconditioned` with ``c_noise = logsnr``, so the denoiser works with every
schedule and sampler. Gradients are not switched off (Jacobians through ``D`` work); call it under
``torch.no_grad()`` to sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from ..denoisers import Label, Preconditioned, as_labels, check_classes, logsnr_noise, null_mask, with_null_class
from . import checkpoint as ckpt
from .unet import UNet, UNetConfig


class NetDenoiser:
    """``D(x, sigma, label) = c_skip x + c_out F(c_in x, logsnr, label)`` for a :class:`UNet` ``F``.

    Attributes: ``net`` (the module, eval mode), ``net_config`` (:class:`UNetConfig`), ``sample_shape``
    ``(C, H, W)``, ``n_classes`` (0: unconditional), ``null_class`` (``n_classes`` or ``None``), ``path``.
    ``label=None`` evaluates the unconditional model (the null class of a conditional network), as does a
    :data:`~critdiff.denoisers.NULL_LABEL` entry of a label tensor, per sample. The input's dtype is kept: the network runs in its own dtype and the result is cast back.
    """

    def __init__(self, net: UNet, path: Optional[str] = None, step: Optional[int] = None, weights: str = "ema",
                 train_config: Optional[dict] = None):
        self.net = net.eval()
        self.net_config: UNetConfig = net.config
        self.path = path
        self.step = step
        self.weights = weights
        self.train_config = train_config or {}
        self._pre = Preconditioned(self._net_call, prediction=self.net_config.prediction, c_noise=logsnr_noise)

    @property
    def sample_shape(self) -> tuple:
        return self.net_config.sample_shape

    @property
    def n_classes(self) -> int:
        return self.net_config.n_classes

    @property
    def null_class(self) -> Optional[int]:
        return self.net_config.null_class

    def _net_call(self, z: torch.Tensor, logsnr: torch.Tensor, label: Optional[torch.Tensor]) -> torch.Tensor:
        p = next(self.net.parameters())
        out = self.net(z.to(device=p.device, dtype=p.dtype), logsnr.to(device=p.device, dtype=p.dtype),
                       None if label is None else label.to(p.device))
        return out.to(device=z.device, dtype=z.dtype)

    def to(self, device=None, dtype=None) -> "NetDenoiser":
        self.net.to(device=device, dtype=dtype)
        return self

    def __call__(self, x: torch.Tensor, sigma, label: Label = None) -> torch.Tensor:
        if tuple(x.shape[1:]) != tuple(self.sample_shape):
            raise ValueError(f"x: this network takes images {list(self.sample_shape)}, got shape {tuple(x.shape)}")
        lab = as_labels(label, x.shape[0], x.device)
        if lab is not None:
            if self.n_classes == 0:
                if not bool(null_mask(lab).all()):
                    raise ValueError("label: this network is unconditional; pass label=None")
                lab = None  # every sample unconditional: the network's only model
            else:
                check_classes(lab, self.n_classes)
                lab = with_null_class(lab, self.null_class)
        return self._pre(x, sigma, lab)

    def config(self) -> dict:
        """JSON-ready description (for run records)."""
        return {"kind": "net", "path": self.path, "step": self.step, "weights": self.weights,
                "net": self.net_config.to_dict(), "train": self.train_config}

    def __repr__(self) -> str:
        c = self.net_config
        return (f"NetDenoiser(UNet width={c.width} mult={list(c.channel_mult)}, prediction={c.prediction!r}, "
                f"shape={list(self.sample_shape)}, classes={c.n_classes}, step={self.step})")


def load_net(path: "str | Path", weights: str = "ema", device: "str | torch.device" = "cpu") -> NetDenoiser:
    """Load a trained UNet from a checkpoint folder (written by ``critdiff train``) as a denoiser.

    ``weights='ema'`` (default) or ``'raw'``. The parameters are frozen (``requires_grad=False``), so a call
    on an ``x`` that does not require grad keeps no graph; gradients with respect to ``x`` still flow. One-line ``ValueError``s for a missing folder or file, a
    truncated or corrupt file, and weights that do not match the architecture in ``config.json``.
    """
    if weights not in ("ema", "raw"):
        raise ValueError(f"weights: expected 'ema' or 'raw', got {weights!r}")
    root = Path(path)
    folder = ckpt.checkpoint_dir(ckpt.check_dir(root)) or root  # one step folder for config and weights
    cfg, net_cfg = ckpt.read_typed_config(folder, "unet", UNetConfig, "a diffusion network")
    file = folder / (ckpt.EMA if weights == "ema" else ckpt.WEIGHTS)
    tensors, step = ckpt.read_weights(file)
    with torch.random.fork_rng(devices=[]):  # the initial values are overwritten; keep the global RNG untouched
        net = UNet(net_cfg)
    ckpt.load_into(net, tensors, str(file))
    net.to(device).requires_grad_(False)  # frozen: gradients with respect to x still flow (Jacobian probes)
    return NetDenoiser(net, path=str(root), step=step, weights=weights, train_config=cfg.get("train"))
