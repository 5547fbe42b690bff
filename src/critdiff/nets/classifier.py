"""A small evaluation CNN: class alignment of samples and features for a Frechet distance (DESIGN.md section 5).

Shapes: images ``x [B, C, H, W]`` in ``[-1, 1]`` (the data's range; samples are clamped to it);
``embed(x) -> [B, F]`` (``F = 4 width``, the globally average-pooled last feature map),
``logits(x) -> [B, K]``.

Layout: three stages of two 3x3 convolutions with group norm and SiLU (widths ``w, 2w, 4w``; the
second and third stages begin with a stride-2 convolution), global average pooling, one linear layer.
Training (:func:`train_classifier`): AdamW with cross-entropy on a random ``1 - holdout`` split, random
one-pixel circular shifts as augmentation; the held-out accuracy is measured on the remaining split,
which is never trained on. Checkpoints use :mod:`critdiff.nets.checkpoint`'s folder layout
(``config.json`` with ``kind = "classifier"``, ``weights.safetensors``) plus ``metrics.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from .. import seeding
from ..config import JsonConfig, arg
from ..errors import check_int, check_ints, check_positive, check_seed
from ..limits import MAX_CHANNELS, MAX_CLASS_ID, MAX_NET_WIDTH, MAX_SIDE
from ..io import save_json
from ..progress import progress_bar
from . import checkpoint as ckpt


@dataclass(frozen=True)
class ClassifierConfig(JsonConfig):
    """Architecture of :class:`Classifier` (round-trips through JSON)."""

    channels: int = 1
    height: int = 16
    width_px: int = 16
    n_classes: int = 10
    width: int = 32

    def validate(self) -> "ClassifierConfig":
        check_ints(self, channels=(1, MAX_CHANNELS), height=(1, MAX_SIDE), width_px=(1, MAX_SIDE),
                   width=(1, MAX_NET_WIDTH), n_classes=(2, MAX_CLASS_ID + 1))
        return self

    @property
    def sample_shape(self) -> tuple:
        return (self.channels, self.height, self.width_px)

    @property
    def features(self) -> int:
        return 4 * self.width

    @classmethod
    def from_dict(cls, d: dict) -> "ClassifierConfig":
        return super().from_dict(d).validate()


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.GroupNorm(min(8, cout), cout), nn.SiLU())


class Classifier(nn.Module):
    """CNN classifier with ``embed(x) -> [B, F]`` and ``logits(x) -> [B, K]`` (module docstring)."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config.validate()
        w = config.width
        self.body = nn.Sequential(
            _block(config.channels, w), _block(w, w),
            _block(w, 2 * w, stride=2), _block(2 * w, 2 * w),
            _block(2 * w, 4 * w, stride=2), _block(4 * w, 4 * w),
        )
        self.head = nn.Linear(4 * w, config.n_classes)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != self.config.sample_shape:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x: the classifier takes images [B, {', '.join(map(str, self.config.sample_shape))}], got {shape}")
        p = self.head.weight
        return x.to(device=p.device, dtype=p.dtype).clamp(-1, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``[B, F]``: the average-pooled last feature map (for Frechet distances)."""
        return self.body(self._check(x)).mean(dim=(2, 3))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``[B, K]``."""
        return self.head(self.embed(x))

    forward = logits

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """Predicted classes ``[B]`` (evaluated in chunks of ``batch``)."""
        return torch.cat([self.logits(x[i:i + batch]).argmax(1).cpu() for i in range(0, x.shape[0], batch)])


@dataclass(frozen=True)
class ClassifierTrainConfig(JsonConfig):
    """Training settings of :func:`train_classifier` (round-trips through JSON)."""

    data: str = arg("digits:size=16", "labelled data spec")
    steps: int = arg(600, "optimiser steps")
    batch: int = arg(128, "batch size")
    lr: float = arg(2e-3, "peak learning rate, one-cycle schedule")
    weight_decay: float = arg(1e-4, "AdamW weight decay")
    holdout: float = arg(0.2, "held-out fraction")
    width: int = arg(32, "base channel width")
    seed: int = arg(0, "random seed")

    def validate(self) -> "ClassifierTrainConfig":
        check_int("steps", self.steps, 1)
        check_int("batch", self.batch, 1)
        check_positive("lr", self.lr)
        check_positive("weight_decay", self.weight_decay, allow_zero=True)
        if not 0 < float(self.holdout) < 1:
            raise ValueError(f"holdout: expected a fraction in (0, 1), got {self.holdout}")
        check_int("width", self.width, 1)
        check_seed("seed", self.seed)
        return self


def split_indices(n: int, holdout: float, seed: int) -> "tuple[torch.Tensor, torch.Tensor]":
    """``(train, heldout)`` index sets of a seeded random split; ``heldout`` has ``round(holdout n)`` items (>= 1)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed) + 104729))
    k = max(1, min(n - 1, int(round(holdout * n))))
    return perm[k:].sort().values, perm[:k].sort().values


@torch.no_grad()
def accuracy(model: Classifier, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``x`` classified as ``y``."""
    return float((model.predict(x) == y.cpu()).double().mean())


def train_classifier(cfg: ClassifierTrainConfig, images: torch.Tensor, labels: Optional[torch.Tensor],
                     out_dir: "str | Path | None" = None, progress: bool = True, device="cpu") -> dict:
    """Train the evaluation classifier; write its checkpoint and ``metrics.json`` to ``out_dir`` if given.

    Returns ``{"model", "heldout_accuracy", "train_accuracy", "per_class_accuracy", "seconds", ...}``.
    """
    cfg.validate()
    if labels is None:
        raise ValueError(f"data: {cfg.data!r} has no labels; the classifier needs a labelled data set")
    n_classes = int(labels.max()) + 1
    if n_classes < 2:
        raise ValueError("data: the classifier needs at least 2 classes")
    _, C, H, W = images.shape
    net_cfg = ClassifierConfig(channels=C, height=H, width_px=W, n_classes=n_classes, width=cfg.width)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = Classifier(net_cfg).to(device)
    tr, ho = split_indices(images.shape[0], cfg.holdout, cfg.seed)
    x_tr, y_tr = images[tr].to(device), labels[tr].to(device)
    gen = seeding.generator(cfg.seed, "batches")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    t0 = time.perf_counter()
    model.train()
    bar = progress_bar(cfg.steps, "train-classifier", progress)
    for step in range(cfg.steps):
        idx = torch.randint(0, x_tr.shape[0], (min(cfg.batch, x_tr.shape[0]),), generator=gen).to(device)
        shift = torch.randint(-1, 2, (2,), generator=gen).tolist()
        xb = torch.roll(x_tr[idx], shifts=shift, dims=(2, 3))
        loss = F.cross_entropy(model.logits(xb), y_tr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.update(1)
    bar.close()
    seconds = time.perf_counter() - t0
    model.eval()
    pred = model.predict(images[ho])
    y_ho = labels[ho].cpu()
    per_class = [float((pred[y_ho == k] == k).double().mean()) if bool((y_ho == k).any()) else None
                 for k in range(n_classes)]
    record = {
        "heldout_accuracy": float((pred == y_ho).double().mean()),
        "train_accuracy": accuracy(model, images[tr], labels[tr]),
        "per_class_accuracy": per_class,
        "n_train": int(tr.numel()),
        "n_heldout": int(ho.numel()),
        "final_loss": float(loss.detach()),
        "seconds": seconds,
        "features": net_cfg.features,
        "heldout_indices": ho.tolist(),
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        ckpt.save_weights(out / ckpt.WEIGHTS, model, cfg.steps)
        save_json(out / ckpt.CONFIG, {"kind": "classifier", "net": net_cfg.to_dict(), "train": cfg.to_dict(),
                                      "step": cfg.steps, "heldout_accuracy": record["heldout_accuracy"]})
        save_json(out / "metrics.json", {"config": cfg.to_dict(), **record})
    return {"model": model, **record}


def load_classifier(path: "str | Path", device="cpu") -> Classifier:
    """Load a classifier written by :func:`train_classifier` (one-line ``ValueError`` on any problem)."""
    root = Path(path)
    cfg, net_cfg = ckpt.read_typed_config(root, "classifier", ClassifierConfig, "a classifier")
    tensors, _ = ckpt.read_weights(root / ckpt.WEIGHTS)
    with torch.random.fork_rng(devices=[]):
        model = Classifier(net_cfg)
    ckpt.load_into(model, tensors, str(root / ckpt.WEIGHTS))
    return model.to(device).eval()


def read_metrics(path: "str | Path") -> dict:
    """The ``metrics.json`` of a classifier folder."""
    try:
        return json.loads((Path(path) / "metrics.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise ValueError(f"model: cannot read {str(Path(path) / 'metrics.json')!r}") from None
