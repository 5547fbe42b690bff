"""``critdiff train-classifier``: the evaluation CNN (class alignment, features for a Frechet distance)."""

from __future__ import annotations

from ..experiments.train import run_train_classifier
from ..nets.classifier import ClassifierTrainConfig
from .common import add_out_arg, add_run_args, threads_of
from .generate import add_config_args, config_from_args

CONFIG = ClassifierTrainConfig


def add_parser(sub) -> None:
    p = sub.add_parser("train-classifier", help="train the evaluation classifier and report its held-out accuracy")
    add_config_args(p, ClassifierTrainConfig)
    add_out_arg(p, help_text="output folder (config.json, weights.safetensors, metrics.json, result.json)")
    add_run_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    cfg = config_from_args(ClassifierTrainConfig, args)
    with threads_of(args):
        rec = run_train_classifier(cfg, args.out, device=args.device)
    print(f"wrote {args.out}: held-out accuracy {rec.heldout_accuracy:.3f} on {rec.n_heldout} images "
          f"({rec.seconds:.0f} s); critdiff report {args.out} renders it")
    return 0
