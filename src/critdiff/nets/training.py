"""Training a :class:`~critdiff.nets.unet.UNet` denoiser: loss, EMA, warm-up, exact checkpoints and resume.

Shapes: training images ``x0 [N, C, H, W]`` in ``[-1, 1]``, labels ``[N]`` int64 or ``None``.

Loss (DESIGN.md section 1, denoiser frame). Per example: ``t ~ U[t_min, t_max]`` of the training
schedule, ``sigma = sigma_t / a_t``, ``x = x0 + sigma n`` with ``n ~ N(0, I)``; the network sees the VP
state ``z = x / sqrt(1 + sigma^2)`` and ``logsnr = -2 log sigma`` (exactly what
:class:`critdiff.denoisers.Preconditioned` feeds it at sampling time) and regresses

- ``eps``: the target ``n``; ``|F - n|^2 = snr |D - x0|^2`` ("L_simple", Ho et al. 2020);
- ``v``: the target ``v = a n - s x0`` (``a = 1/sqrt(1+sigma^2)``, ``s = sigma a``);
  ``|F - v|^2 = (1 + snr) |D - x0|^2`` (Salimans & Ho 2022).

So the weighting of the implied x0 error is ``snr`` (eps) or ``1 + snr`` (v); no extra weight is applied.
``v`` (the default) keeps ``D`` well-conditioned at high noise, where eps-prediction multiplies the
network's error by sigma. With ``cond_drop = p`` each label is replaced by the null class with
probability ``p`` (classifier-free guidance, Ho & Salimans 2022).

Determinism: the network is initialised from ``seed``; the data order of epoch ``e`` is
``randperm(N)`` from a generator seeded by ``(seed, e)`` (nothing to store); ``t``, the noise and the
label drops come from one ``torch.Generator`` whose state is checkpointed with the optimiser state,
the global torch RNG state and the step, so a run resumed at step ``k`` reproduces the uninterrupted
run bit for bit (same device and thread count). The learning rate (linear warm-up, then constant) and
the EMA decay (``min(ema, (1 + k)/(10 + k))``) are functions of the step.
"""

from __future__ import annotations

import copy
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Optional

import torch
from torch import nn

from .. import schedules as S
from ..config import JsonConfig, arg
from ..errors import check_choice, check_int, check_positive, check_seed
from ..progress import progress_bar
from . import checkpoint as ckpt
from .unet import NET_PREDICTIONS, PADDINGS, UNet, UNetConfig

# fields that may change when a run is resumed (they do not change the trajectory of the weights)
RESUMABLE = ("steps", "checkpoint_every", "log_every", "grid_steps")


@dataclass(frozen=True)
class TrainConfig(JsonConfig):
    """Everything that determines a training run (round-trips through JSON via ``to_dict``/``from_dict``)."""

    data: str = arg("digits:size=16", "data spec, e.g. digits:size=16, textures:size=32, idx:PATH")
    steps: int = arg(2000, "total optimiser steps; with --resume, may be raised")
    batch: int = arg(64, "batch size")
    lr: float = arg(2e-3, "peak learning rate of AdamW")
    warmup: int = arg(100, "linear learning-rate warm-up steps")
    ema: float = arg(0.999, "EMA decay of the sampling weights")
    cond_drop: float = arg(0.1, "probability of dropping the label (classifier-free guidance)")
    conditional: bool = arg(True, "ignore the data's labels", flag="--unconditional")
    schedule: str = arg("vp-cosine", "training noise schedule: vp-cosine | vp-linear | ...")
    prediction: Literal["eps", "v"] = arg("v", "network target")
    width: int = arg(32, "base channel width, a multiple of 8")
    channel_mult: tuple[int, ...] = arg((1, 2, 2), "channel multiplier per resolution level, e.g. 1,2,2")
    num_res_blocks: int = arg(1, "residual blocks per level", flag="--res-blocks")
    padding: Literal["zeros", "circular"] = arg("zeros", "convolution padding")
    grad_clip: float = arg(1.0, "gradient-norm clipping threshold")
    seed: int = arg(0, "random seed; a seed reproduces a run exactly on the CPU")
    checkpoint_every: int = arg(500, "steps between checkpoints")
    log_every: int = arg(50, "steps between loss records")
    grid_steps: int = arg(30, "sampler steps of the sample grid written at the end")

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel_mult", tuple(int(m) for m in self.channel_mult))

    def validate(self) -> "TrainConfig":
        check_int("steps", self.steps, 1)
        check_int("batch", self.batch, 1)
        check_positive("lr", self.lr)
        check_int("warmup", self.warmup, 0)
        if not 0 <= float(self.ema) < 1:
            raise ValueError(f"ema: expected a decay in [0, 1), got {self.ema}")
        if not 0 <= float(self.cond_drop) < 1:
            raise ValueError(f"cond_drop: expected a probability in [0, 1), got {self.cond_drop}")
        S.get(self.schedule)
        check_choice("prediction", self.prediction, NET_PREDICTIONS)
        if check_int("width", self.width, 1) % 8:
            raise ValueError(f"width: expected a multiple of 8 (group norm with 8 groups), got {self.width}")
        check_int("num_res_blocks", self.num_res_blocks, 1)
        check_choice("padding", self.padding, PADDINGS)
        check_positive("grad_clip", self.grad_clip)
        check_seed("seed", self.seed)
        check_int("checkpoint_every", self.checkpoint_every, 1)
        check_int("log_every", self.log_every, 1)
        check_int("grid_steps", self.grid_steps, 1)
        return self


    def net_config(self, images: torch.Tensor, labels: Optional[torch.Tensor]) -> UNetConfig:
        """The architecture for these training images (channels, size, number of classes)."""
        n_classes = int(labels.max()) + 1 if (self.conditional and labels is not None) else 0
        _, C, H, W = images.shape
        return UNetConfig(channels=C, height=H, width_px=W, width=self.width, channel_mult=self.channel_mult,
                          num_res_blocks=self.num_res_blocks, n_classes=n_classes, groups=min(8, self.width),
                          padding=self.padding, prediction=self.prediction)


# --- pieces ------------------------------------------------------------------------------------
def lr_at(step: int, lr: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then constant."""
    return lr * min(1.0, (step + 1) / warmup) if warmup > 0 else lr


def ema_decay(step: int, ema: float) -> float:
    """EMA decay at ``step``: ``min(ema, (1 + k) / (10 + k))`` (short runs average over what exists)."""
    return min(ema, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def ema_update(ema_net: nn.Module, net: nn.Module, decay: float) -> None:
    """``theta_ema <- decay theta_ema + (1 - decay) theta``."""
    for pe, p in zip(ema_net.parameters(), net.parameters()):
        pe.lerp_(p, 1.0 - decay)
    for be, b in zip(ema_net.buffers(), net.buffers()):
        be.copy_(b)


def batch_indices(step: int, n: int, batch: int, seed: int) -> torch.Tensor:
    """Indices of the training batch at ``step``: epoch ``e`` is a permutation seeded by ``(seed, e)``."""
    per_epoch = max(1, n // batch)
    epoch, pos = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    b = min(batch, n)
    return perm[pos * b:(pos + 1) * b]


def diffusion_loss(net: nn.Module, x0: torch.Tensor, labels: Optional[torch.Tensor], schedule: S.Schedule,
                   prediction: str, generator: torch.Generator, cond_drop: float = 0.0,
                   null_class: Optional[int] = None) -> torch.Tensor:
    """Mean squared error of the eps / v target (module docstring). ``x0: [B, C, H, W]``."""
    B = x0.shape[0]
    u = torch.rand(B, generator=generator, dtype=torch.float64)
    t = schedule.t_min + (schedule.t_max - schedule.t_min) * u
    sigma = schedule.sigma_over_a(t).to(device=x0.device, dtype=x0.dtype)
    n = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    s = sigma.reshape(-1, 1, 1, 1)
    a = torch.rsqrt(1 + s * s)
    z = a * (x0 + s * n)  # the VP state: c_in x
    if labels is not None and null_class is not None and cond_drop > 0:
        drop = (torch.rand(B, generator=generator) < cond_drop).to(labels.device)
        labels = torch.where(drop, torch.full_like(labels, null_class), labels)
    target = n if prediction == "eps" else a * n - s * a * x0
    out = net(z, -2 * torch.log(sigma), labels)
    return (out - target).pow(2).mean()


def _rng_state(generator: torch.Generator) -> dict:
    return {"generator": generator.get_state(), "torch": torch.get_rng_state()}


@contextmanager
def _deferred_interrupt():
    """Turn the first Ctrl-C (SIGINT) or SIGTERM into a flag checked between steps (a second one interrupts at once)."""
    flag = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def build_unet(config: UNetConfig, seed: int) -> UNet:
    """A freshly initialised network; the initialisation depends only on ``seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return UNet(config)


# --- the loop ----------------------------------------------------------------------------------
def _restore(out: Path, net: UNet, ema_net: UNet, opt, gen: torch.Generator) -> tuple[int, list, list]:
    """Load the newest complete checkpoint of ``out`` into the networks, optimiser and generators (the torch RNG
    too); return ``(step, losses, window)``."""
    folder = ckpt.checkpoint_dir(out)
    if folder is None:
        raise ValueError(f"resume: no checkpoint in {str(out)!r}; train without --resume first")
    state = ckpt.read_training_state(folder)
    tensors, w_step = ckpt.read_weights(folder / ckpt.WEIGHTS)
    ema_tensors, e_step = ckpt.read_weights(folder / ckpt.EMA)
    step = int(state["step"])
    if not (w_step == e_step == step):
        raise ValueError(f"model: checkpoint files in {str(folder)!r} are from different steps "
                         f"(weights {w_step}, ema {e_step}, state {step})")
    ckpt.load_into(net, tensors, str(folder / ckpt.WEIGHTS))
    ckpt.load_into(ema_net, ema_tensors, str(folder / ckpt.EMA))
    opt.load_state_dict(state["optimizer"])
    gen.set_state(state["rng"]["generator"])
    torch.set_rng_state(state["rng"]["torch"])
    losses = [[int(row[0]), float(row[1])] for row in state.get("losses", [])]
    window = [float(v) for v in state.get("window", [])]
    return step, losses, window


def _optimise(cfg: TrainConfig, net: UNet, ema_net: UNet, opt, x0, y, schedule, gen, null_class, step: int) -> float:
    """One optimiser step on the batch ``x0 [B, C, H, W]`` (labels ``y``) and the EMA update; returns the loss."""
    loss = diffusion_loss(net, x0, y, schedule, cfg.prediction, gen, cfg.cond_drop, null_class)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
    opt.step()
    ema_update(ema_net, net, ema_decay(step, cfg.ema))
    return float(loss.detach())


def train_unet(cfg: TrainConfig, images: torch.Tensor, labels: Optional[torch.Tensor], out_dir: "str | Path",
               resume: bool = False, progress: bool = True, device: "str | torch.device" = "cpu",
               on_step: Optional[Callable[[int, float], None]] = None, extra_config: Optional[dict] = None) -> dict:
    """Train (or resume) a UNet denoiser on ``images [N, C, H, W]``; checkpoints go to ``out_dir``.

    Returns ``{"net": UNet (raw), "ema": UNet (EMA), "net_config", "step", "losses" ([step, mean loss]
    every ``log_every`` steps, plus the last partial window), "seconds", "images_per_s", "interrupted"}``. Ctrl-C (or ``KeyboardInterrupt`` raised by ``on_step(step, loss)``)
    writes a checkpoint of the last completed step and re-raises.
    """
    cfg.validate()
    out = Path(out_dir)
    schedule = S.get(cfg.schedule)
    net_cfg = cfg.net_config(images, labels)
    net = build_unet(net_cfg, cfg.seed).to(device)
    ema_net = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    gen = torch.Generator().manual_seed(int(cfg.seed) + 7919)
    step, losses, window = 0, [], []
    if resume:
        step, losses, window = _restore(out, net, ema_net, opt, gen)
    x_all = images.to(device)
    y_all = labels.to(device) if (labels is not None and net_cfg.n_classes > 0) else None
    config_record = {"kind": "unet", "net": net_cfg.to_dict(), "train": cfg.to_dict(), **(extra_config or {})}

    def save(k: int) -> None:
        ckpt.save_checkpoint(out, config_record, net, ema_net, k,
                             {"optimizer": opt.state_dict(), "rng": _rng_state(gen), "losses": losses,
                              "window": list(window)})

    N = x_all.shape[0]
    start, t0 = step, time.perf_counter()
    consistent, interrupted = True, False
    bar = progress_bar(cfg.steps, "train", progress, initial=step)
    net.train()
    try:
        with _deferred_interrupt() as flag:
            while step < cfg.steps:
                idx = batch_indices(step, N, cfg.batch, cfg.seed).to(device)
                for group in opt.param_groups:
                    group["lr"] = lr_at(step, cfg.lr, cfg.warmup)
                consistent = False
                value = _optimise(cfg, net, ema_net, opt, x_all[idx], None if y_all is None else y_all[idx],
                                  schedule, gen, net_cfg.null_class, step)
                step += 1
                consistent = True
                if not math.isfinite(value):
                    raise ValueError(f"train: the loss became {value} at step {step}; lower --lr")
                window.append(value)
                if step % cfg.log_every == 0:
                    losses.append([step, sum(window) / len(window)])
                    window = []
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4f}", refresh=False)
                if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    save(step)
                if on_step is not None:
                    on_step(step, value)
                if flag["stop"]:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        interrupted = True
        if consistent:
            save(step)
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    net.eval()
    ema_net.eval()
    done = step - start
    if window:  # the last, partial logging window (reported, not stored: a resumed run continues it)
        losses = losses + [[step, sum(window) / len(window)]]
    return {"net": net, "ema": ema_net, "net_config": net_cfg, "step": step, "losses": losses,
            "seconds": seconds, "images_per_s": done * min(cfg.batch, N) / seconds if seconds > 0 and done else None,
            "interrupted": interrupted}
