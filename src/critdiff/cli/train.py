"""``critdiff train``: train a convolutional diffusion UNet; the output folder is a ``--model net:DIR``."""

from __future__ import annotations

from ..experiments.train import resolve_config, run_train
from ..nets.training import TrainConfig
from .common import add_out_arg, add_run_args, threads_of
from .generate import add_config_args, given_fields

CONFIG = TrainConfig


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a convolutional diffusion model (checkpoints, EMA, resume, sample grid)")
    add_config_args(p, TrainConfig, given_only=True)
    add_out_arg(p, help_text="output folder (checkpoints, samples.png, result.json)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    add_run_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    cfg = resolve_config(args.out, given_fields(args), args.resume)
    with threads_of(args):
        rec = run_train(cfg, args.out, resume=args.resume, device=args.device)
    ips = rec.images_per_s
    print(f"wrote {args.out}: step {rec.step}, final loss {rec.final_loss:.4f}"
          + (f", {ips:.0f} images/s" if ips else "") + "; samples in samples.png; use --model net:" + str(args.out))
    return 0
