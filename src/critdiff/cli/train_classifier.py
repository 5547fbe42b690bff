"""``critdiff train-classifier``: the evaluation CNN (class alignment, features for a Frechet distance)."""

from __future__ import annotations

from ..experiments.train import run_train_classifier
from ..nets.classifier import ClassifierTrainConfig
from .common import add_threads_arg, apply_threads

D = ClassifierTrainConfig()


def add_parser(sub) -> None:
    p = sub.add_parser("train-classifier", help="train the evaluation classifier and report its held-out accuracy")
    p.add_argument("--data", default=D.data, help="labelled data spec (default: %(default)s)")
    p.add_argument("--out", required=True, help="output folder (config.json, weights.safetensors, metrics.json)")
    p.add_argument("--steps", type=int, default=D.steps, help="optimiser steps (default: %(default)s)")
    p.add_argument("--batch", type=int, default=D.batch, help="batch size (default: %(default)s)")
    p.add_argument("--lr", type=float, default=D.lr, help="peak learning rate, one-cycle schedule (default: %(default)s)")
    p.add_argument("--width", type=int, default=D.width, help="base channel width (default: %(default)s)")
    p.add_argument("--holdout", type=float, default=D.holdout, help="held-out fraction (default: %(default)s)")
    p.add_argument("--seed", type=int, default=D.seed, help="random seed (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    add_threads_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    apply_threads(args)
    cfg = ClassifierTrainConfig(data=args.data, steps=args.steps, batch=args.batch, lr=args.lr, width=args.width,
                                holdout=args.holdout, seed=args.seed)
    rec = run_train_classifier(cfg, args.out, device=args.device)
    print(f"wrote {args.out}: held-out accuracy {rec['heldout_accuracy']:.3f} on {rec['n_heldout']} images "
          f"({rec['seconds']:.0f} s)")
    return 0
