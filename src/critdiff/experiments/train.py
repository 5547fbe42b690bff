"""The ``train`` and ``train-classifier`` experiments: load the data, train, write checkpoints, a sample
grid (``samples.png``; one row per class for a conditional model) and a JSON record of the run.

Output folder of ``train`` (see :mod:`critdiff.nets.checkpoint`): the step folders ``ckpt-<step>/``
(``config.json``, ``weights.safetensors``, ``ema.safetensors``, ``state.pt``), the ``latest`` pointer,
``samples.png``, ``result.json`` (the run's record). The folder is then usable as ``--model net:DIR``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

import torch

from .. import samplers as SM
from .. import schedules as S
from ..data import load as load_data
from ..devices import resolve as resolve_device
from ..nets import checkpoint as ckpt
from ..nets.classifier import ClassifierTrainConfig, train_classifier
from ..denoisers import n_classes_of
from ..nets.net_denoiser import NetDenoiser
from ..nets.training import RESUMABLE, TrainConfig, train_unet
from ..nets.unet import n_params
from .finite import FiniteGuard
from .context import ContextLike, as_context
from .result import RESULT_FILE, Result


def resolve_config(out_dir: "str | Path", given: dict, resume: bool) -> TrainConfig:
    """The run's :class:`TrainConfig` from explicitly given options (``None`` = not given).

    Fresh run: defaults plus ``given``; refuses a folder that already holds a checkpoint. Resume: the
    checkpoint's config, where only ``steps`` (and logging options) may be changed; any other given
    option must equal the stored one.
    """
    given = {k: v for k, v in given.items() if v is not None}
    out = Path(out_dir)
    has_ckpt = ckpt.has_checkpoint(out)
    if not resume:
        if has_ckpt:
            step = ckpt.read_config(out).get("step")
            raise ValueError(f"out: {str(out)!r} already holds a checkpoint (step {step}); pass --resume to continue "
                             "it or choose another --out")
        return TrainConfig.from_dict({**TrainConfig().to_dict(), **given}).validate()
    if not has_ckpt:
        raise ValueError(f"resume: no checkpoint in {str(out)!r}; train without --resume first")
    stored = ckpt.read_config(out)
    if stored.get("kind") != "unet" or "train" not in stored:
        raise ValueError(f"resume: {str(out)!r} does not hold a critdiff diffusion training run")
    base = TrainConfig.from_dict(stored["train"])
    for k, v in given.items():
        old = getattr(base, k)
        if k not in RESUMABLE and (list(v) if isinstance(v, tuple) else v) != (list(old) if isinstance(old, tuple) else old):
            raise ValueError(f"resume: {k}={v!r} differs from the checkpoint's {k}={old!r}; only "
                             f"{', '.join(RESUMABLE)} may change when resuming")
    at = stored.get("step")
    if "steps" in given and isinstance(at, int) and given["steps"] < at:
        raise ValueError(f"steps: --steps {given['steps']} is below the checkpoint's step {at} in {str(out)!r}; a resumed "
                         f"run can only go on (give --steps {at} or more, or train into another --out)")
    return replace(base, **{k: v for k, v in given.items() if k in RESUMABLE}).validate()


@torch.no_grad()
def sample_grid(denoiser, path: "str | Path", schedule: str, steps: int, seed: int = 0, per_class: int = 8,
                max_classes: int = 10, n_uncond: int = 32) -> "tuple[torch.Tensor, Optional[torch.Tensor]]":
    """Heun samples on a logsnr-spaced grid of the training schedule, written as a PNG grid.

    Conditional model: ``per_class`` samples per class, one row per class (at most ``max_classes``);
    unconditional: ``n_uncond`` samples. Returns ``(samples, labels or None)``.
    """
    from ..figures import image_grid

    sigmas = S.sigma_grid(S.get(schedule), steps, "logsnr")
    K = n_classes_of(denoiser)
    if K > 0:
        labels = torch.arange(min(K, max_classes)).repeat_interleave(per_class)
        n, title = labels.numel(), "samples (one row per class)"
    else:
        labels, n, title = None, n_uncond, "samples"
    x = SM.initial_noise((n, *denoiser.sample_shape), sigmas, SM.seed_generators(seed, n))
    guard = FiniteGuard("train")
    final = guard.final(SM.sample_heun(denoiser, x, sigmas, label=labels, callback=guard))
    image_grid(final.clamp(-1, 1), path, nrow=per_class if K > 0 else 8, title=title)
    return final, labels


@dataclass(frozen=True)
class TrainResult(Result):
    """A training run: its configuration, the network's, the loss curve ``losses`` (``[step, mean loss]``), the
    timing and the files written (the checkpoint itself is in the folder)."""

    kind = "train"
    config: TrainConfig
    net: dict
    n_params: int
    n_train: int
    n_classes: int
    step: int
    final_loss: Optional[float]
    losses: tuple
    seconds: float
    images_per_s: Optional[float]
    grid_seconds: Optional[float]
    threads: int
    device: str
    files: tuple[str, ...]


def run_train(cfg: TrainConfig, ctx: ContextLike, resume: bool = False, device: "str | torch.device" = "cpu",
              on_step: Optional[Callable[[int, float], None]] = None, grid: bool = True) -> "TrainResult":
    """Train (or resume) a diffusion UNet on ``cfg.data``; write the checkpoint, ``samples.png`` and ``result.json``
    to ``ctx.out`` (a :class:`~critdiff.experiments.context.Context` or a folder)."""
    cfg.validate()
    ctx = as_context(ctx)
    device = resolve_device(device)
    out = ctx.folder()
    images, labels = load_data(cfg.data)
    res = train_unet(cfg, images, labels, out, resume=resume, progress=ctx.progress, device=device, on_step=on_step,
                     extra_config={"data_shape": list(images.shape[1:]), "n_train": int(images.shape[0])})
    denoiser = NetDenoiser(res["ema"], path=str(out), step=res["step"], train_config=cfg.to_dict())
    files = [ckpt.LATEST, ckpt.checkpoint_dir(out).name, RESULT_FILE]
    grid_seconds = None
    if grid:
        t0 = time.perf_counter()
        sample_grid(denoiser, out / "samples.png", cfg.schedule, cfg.grid_steps, seed=cfg.seed)
        grid_seconds = time.perf_counter() - t0
        files.append("samples.png")
    losses = res["losses"]
    result = TrainResult(
        config=cfg, net=res["net_config"].to_dict(), n_params=n_params(res["net"]), n_train=int(images.shape[0]),
        n_classes=res["net_config"].n_classes, step=res["step"], final_loss=losses[-1][1] if losses else None,
        losses=losses, seconds=res["seconds"], images_per_s=res["images_per_s"], grid_seconds=grid_seconds,
        threads=torch.get_num_threads(), device=str(device), files=tuple(files))
    ctx.save(result)
    return result


@dataclass(frozen=True)
class ClassifierResult(Result):
    """A training run of the evaluation classifier: its configuration, held-out and training accuracy, the
    held-out accuracy of each class (``None`` for a class absent from the held-out split), the sizes of both
    splits, the last batch's loss, the timing and the files written (the checkpoint is in the folder)."""

    kind = "train-classifier"
    config: ClassifierTrainConfig
    heldout_accuracy: float
    train_accuracy: float
    per_class_accuracy: tuple[Optional[float], ...]
    n_train: int
    n_heldout: int
    final_loss: float
    seconds: float
    features: int
    threads: int
    device: str
    files: tuple[str, ...]


def run_train_classifier(cfg: ClassifierTrainConfig, ctx: ContextLike,
                         device: "str | torch.device" = "cpu") -> ClassifierResult:
    """Train the evaluation classifier on ``cfg.data``; write ``config.json``, ``weights.safetensors``,
    ``metrics.json`` and ``result.json`` to ``ctx.out`` (a :class:`~critdiff.experiments.context.Context` or a
    folder); return the result."""
    cfg.validate()
    ctx = as_context(ctx)
    device = resolve_device(device)
    images, labels = load_data(cfg.data)
    res = train_classifier(cfg, images, labels, ctx.folder(), progress=ctx.progress, device=device)
    result = ClassifierResult(
        config=cfg, **{k: res[k] for k in ("heldout_accuracy", "train_accuracy", "per_class_accuracy", "n_train",
                                           "n_heldout", "final_loss", "seconds", "features")},
        threads=torch.get_num_threads(), device=str(device),
        files=(ckpt.CONFIG, ckpt.WEIGHTS, "metrics.json", RESULT_FILE))
    ctx.save(result)
    return result
