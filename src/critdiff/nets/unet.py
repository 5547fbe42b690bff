"""A compact convolutional UNet for small images, conditioned on logsnr (and optionally a class).

Shapes: images ``[B, C, H, W]``; the network is called as ``F(z, logsnr, label) -> [B, C, H, W]`` with
``z`` the VP state ``x / sqrt(1 + sigma^2)`` (``c_in`` of :func:`critdiff.denoisers.vp_scalings`),
``logsnr = -2 log sigma`` ``[B]`` (``c_noise``, so the network knows no schedule) and ``label`` a
LongTensor ``[B]`` or ``None``. ``F`` predicts ``eps`` or the VP velocity ``v`` (DESIGN.md section 1);
:class:`critdiff.denoisers.Preconditioned` turns it into a denoiser ``D(x, sigma, label)``.

Layout (Ho et al. 2020; Dhariwal & Nichol 2021, without attention): a 3x3 stem, then per resolution
level ``num_res_blocks`` residual blocks (group norm, SiLU, 3x3 convolutions, the embedding applied as
a scale and shift of the second norm) and a stride-2 convolution; a middle of two residual blocks; a
mirrored decoder with skip connections and nearest-neighbour upsampling; group norm, SiLU and a
zero-initialised 3x3 output convolution. The embedding is a sinusoidal embedding of logsnr passed
through an MLP, plus a learned class embedding with one extra *null class* (index ``n_classes``)
used for ``label=None`` (classifier-free guidance, Ho & Salimans 2022). All convolutions pad with
zeros or circularly (``padding='circular'``: translation equivariant on the torus, matching periodic
data such as textures).
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import check_choice, check_ints
from ..limits import MAX_CHANNELS, MAX_CLASS_ID, MAX_LEVELS, MAX_NET_WIDTH, MAX_SIDE

PADDINGS = ("zeros", "circular")
NET_PREDICTIONS = ("eps", "v")


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of :class:`UNet`; round-trips through JSON (``to_dict`` / ``from_dict``).

    ``n_classes = 0`` is an unconditional network; otherwise labels ``0..n_classes-1`` plus the null
    class ``n_classes``. ``channel_mult`` gives the width of each resolution level in units of
    ``width``; the image side must be divisible by ``2 ** (len(channel_mult) - 1)``.
    """

    channels: int = 1
    height: int = 16
    width_px: int = 16
    width: int = 32
    channel_mult: tuple = (1, 2, 2)
    num_res_blocks: int = 1
    n_classes: int = 0
    groups: int = 8
    padding: str = "zeros"
    prediction: str = "eps"
    emb_freqs: int = 16

    def __post_init__(self) -> None:
        if not isinstance(self.channel_mult, (list, tuple)) or not all(
                isinstance(m, numbers.Integral) and not isinstance(m, bool) for m in self.channel_mult):
            raise TypeError(f"channel_mult: expected a list of integers, got {self.channel_mult!r}")
        object.__setattr__(self, "channel_mult", tuple(int(m) for m in self.channel_mult))
        self.validate()

    def validate(self) -> "UNetConfig":
        check_ints(self, channels=(1, MAX_CHANNELS), height=(2, MAX_SIDE), width_px=(2, MAX_SIDE),
                   width=(1, MAX_NET_WIDTH), num_res_blocks=(1, MAX_LEVELS), n_classes=(0, MAX_CLASS_ID + 1),
                   groups=(1, MAX_NET_WIDTH), emb_freqs=(1, 4096))
        check_choice("padding", self.padding, PADDINGS)
        check_choice("prediction", self.prediction, NET_PREDICTIONS)
        if not self.channel_mult or len(self.channel_mult) > MAX_LEVELS or any(m < 1 for m in self.channel_mult) \
                or self.width * max(self.channel_mult) > MAX_NET_WIDTH:
            raise ValueError(f"channel_mult: expected 1..{MAX_LEVELS} integers >= 1 (width x mult <= {MAX_NET_WIDTH}), "
                             f"got {self.channel_mult}")
        for m in self.channel_mult:
            if (self.width * m) % self.groups:
                raise ValueError(f"width: every level width ({self.width} x {m}) must be divisible by groups={self.groups}")
        f = 2 ** (len(self.channel_mult) - 1)
        if self.height % f or self.width_px % f:
            raise ValueError(f"image size: {self.height}x{self.width_px} is not divisible by {f} "
                             f"({len(self.channel_mult)} resolution levels); resize the data (size=...) or use fewer levels")
        return self

    @property
    def sample_shape(self) -> tuple:
        return (self.channels, self.height, self.width_px)

    @property
    def null_class(self) -> Optional[int]:
        return self.n_classes if self.n_classes > 0 else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channel_mult"] = list(self.channel_mult)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"net config: unknown field(s) {', '.join(unknown)}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "UNetConfig":
        return cls.from_dict(json.loads(text))


def logsnr_embedding(logsnr: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """Sinusoidal features ``[sin(f_k logsnr), cos(f_k logsnr)]`` ``[B, 2 n_freqs]``.

    Frequencies are geometric in ``[1/32, 4]`` rad per unit of logsnr: the slowest resolves the whole
    range ``|logsnr| <~ 30`` without aliasing, the fastest resolves steps of ~0.4 in logsnr.
    """
    f = torch.exp(torch.linspace(math.log(1 / 32), math.log(4.0), n_freqs, device=logsnr.device, dtype=logsnr.dtype))
    arg = logsnr[:, None] * f[None]
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


def _conv(cin: int, cout: int, padding: str, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, padding_mode=padding)


class ResBlock(nn.Module):
    """``x + conv(SiLU(GN(conv(SiLU(GN(x)))) * (1 + scale) + shift))`` with ``(scale, shift)`` from the embedding."""

    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int, padding: str):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, cin), cin)
        self.conv1 = _conv(cin, cout, padding)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(min(groups, cout), cout)
        self.conv2 = _conv(cout, cout, padding)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


class UNet(nn.Module):
    """``F(z [B,C,H,W], logsnr [B], label [B] | None) -> [B,C,H,W]`` (eps or v), see the module docstring."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config.validate()
        c = config
        emb_dim = 4 * c.width
        self.time_mlp = nn.Sequential(nn.Linear(2 * c.emb_freqs, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(c.n_classes + 1, emb_dim) if c.n_classes > 0 else None
        self.stem = _conv(c.channels, c.width, c.padding)

        widths = [c.width * m for m in c.channel_mult]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips = [c.width]
        ch = c.width
        for level, w in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(c.num_res_blocks):
                blocks.append(ResBlock(ch, w, emb_dim, c.groups, c.padding))
                ch = w
                skips.append(ch)
            self.down.append(blocks)
            last = level == len(widths) - 1
            self.downsample.append(nn.Identity() if last else _conv(ch, ch, c.padding, stride=2))
            if not last:
                skips.append(ch)
        self.mid = nn.ModuleList([ResBlock(ch, ch, emb_dim, c.groups, c.padding) for _ in range(2)])
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level, w in reversed(list(enumerate(widths))):
            blocks = nn.ModuleList()
            for _ in range(c.num_res_blocks + 1):
                blocks.append(ResBlock(ch + skips.pop(), w, emb_dim, c.groups, c.padding))
                ch = w
            self.up.append(blocks)
            self.upsample.append(_conv(ch, ch, c.padding) if level > 0 else nn.Identity())
        self.out_norm = nn.GroupNorm(min(c.groups, ch), ch)
        self.out = _conv(ch, c.channels, c.padding)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def embedding(self, logsnr: torch.Tensor, label: Optional[torch.Tensor]) -> torch.Tensor:
        """``[B, 4 width]``: MLP of the logsnr features plus the class embedding (null class for ``None``)."""
        emb = self.time_mlp(logsnr_embedding(logsnr, self.config.emb_freqs))
        if self.class_emb is not None:
            if label is None:
                label = torch.full((logsnr.shape[0],), self.config.n_classes, dtype=torch.long, device=logsnr.device)
            emb = emb + self.class_emb(label)
        elif label is not None:
            raise ValueError("label: this network is unconditional (n_classes=0); pass label=None")
        return emb

    def forward(self, z: torch.Tensor, logsnr: torch.Tensor, label: Optional[torch.Tensor] = None) -> torch.Tensor:
        if label is not None and self.class_emb is not None:
            if bool((label < 0).any()) or bool((label > self.config.n_classes).any()):
                raise ValueError(f"label: expected classes in [0, {self.config.n_classes - 1}] "
                                 f"(or the null class {self.config.n_classes}), got {label.tolist()}")
        emb = self.embedding(logsnr.to(z.dtype), label)
        h = self.stem(z)
        hs = [h]
        for blocks, down in zip(self.down, self.downsample):
            for block in blocks:
                h = block(h, emb)
                hs.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)
                hs.append(h)
        for block in self.mid:
            h = block(h, emb)
        for blocks, up in zip(self.up, self.upsample):
            for block in blocks:
                h = block(torch.cat([h, hs.pop()], dim=1), emb)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(F.silu(self.out_norm(h)))


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
