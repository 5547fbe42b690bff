"""``critdiff train``: train a convolutional diffusion UNet; the output folder is a ``--model net:DIR``."""

from __future__ import annotations

from ..experiments.train import resolve_config, run_train
from ..nets.training import TrainConfig
from .common import add_threads_arg, apply_threads

D = TrainConfig()


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a convolutional diffusion model (checkpoints, EMA, resume, sample grid)")
    p.add_argument("--data", default=None, help=f"data spec, e.g. digits:size=16, textures:size=32, idx:PATH (default: {D.data})")
    p.add_argument("--out", required=True, help="output folder (checkpoints, samples.png, train.json)")
    p.add_argument("--steps", type=int, default=None, help=f"total optimiser steps (default: {D.steps}); with --resume, may be raised")
    p.add_argument("--batch", type=int, default=None, help=f"batch size (default: {D.batch})")
    p.add_argument("--lr", type=float, default=None, help=f"peak learning rate of AdamW (default: {D.lr})")
    p.add_argument("--warmup", type=int, default=None, help=f"linear learning-rate warm-up steps (default: {D.warmup})")
    p.add_argument("--ema", type=float, default=None, help=f"EMA decay of the sampling weights (default: {D.ema})")
    p.add_argument("--cond-drop", type=float, default=None, dest="cond_drop",
                   help=f"probability of dropping the label (classifier-free guidance; default: {D.cond_drop})")
    p.add_argument("--unconditional", action="store_true", help="ignore the data's labels")
    p.add_argument("--schedule", default=None, help=f"training noise schedule: vp-cosine | vp-linear | ... (default: {D.schedule})")
    p.add_argument("--prediction", default=None, choices=["eps", "v"], help=f"network target (default: {D.prediction})")
    p.add_argument("--width", type=int, default=None, help=f"base channel width, a multiple of 8 (default: {D.width})")
    p.add_argument("--channel-mult", default=None, dest="channel_mult",
                   help="channel multiplier per resolution level, e.g. 1,2,2 (default: %s)" % ",".join(map(str, D.channel_mult)))
    p.add_argument("--res-blocks", type=int, default=None, dest="num_res_blocks", help=f"residual blocks per level (default: {D.num_res_blocks})")
    p.add_argument("--padding", default=None, choices=["zeros", "circular"], help=f"convolution padding (default: {D.padding})")
    p.add_argument("--seed", type=int, default=None, help="random seed; a seed reproduces a run exactly on the CPU")
    p.add_argument("--checkpoint-every", type=int, default=None, dest="checkpoint_every",
                   help=f"steps between checkpoints (default: {D.checkpoint_every})")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    add_threads_arg(p)
    p.set_defaults(run=run)


def _channel_mult(text):
    if text is None:
        return None
    try:
        mult = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"channel-mult: expected comma-separated integers such as 1,2,2, got {text!r}") from None
    return mult


def run(args) -> int:
    apply_threads(args)
    given = {k: getattr(args, k) for k in ("data", "steps", "batch", "lr", "warmup", "ema", "cond_drop", "schedule",
                                           "prediction", "width", "num_res_blocks", "padding", "seed", "checkpoint_every")}
    given["channel_mult"] = _channel_mult(args.channel_mult)
    given["conditional"] = False if args.unconditional else None
    cfg = resolve_config(args.out, given, args.resume)
    rec = run_train(cfg, args.out, resume=args.resume, device=args.device)
    ips = rec["images_per_s"]
    print(f"wrote {args.out}: step {rec['step']}, final loss {rec['final_loss']:.4f}"
          + (f", {ips:.0f} images/s" if ips else "") + "; samples in samples.png; use --model net:" + str(args.out))
    return 0
