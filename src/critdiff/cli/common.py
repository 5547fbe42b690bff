"""Arguments shared by several subcommands."""

from __future__ import annotations

import argparse


def add_model_args(p: argparse.ArgumentParser, default_model: str = "patch") -> None:
    p.add_argument("--model", default=default_model,
                   help="empirical | patch | gaussian | diffusers:DIR (default: %(default)s)")
    p.add_argument("--data", default=None, help="data spec, e.g. digits:size=16 or textures:size=24 (see critdiff.data.DATASETS)")
    p.add_argument("--stencil", default="square:5", help="patch stencil: square:K, cross:R, dilated:K,D (default: %(default)s)")
    p.add_argument("--local", action="store_true", help="position-specific patch pool (LS) instead of the equivariant one (ELS)")
    p.add_argument("--boundary", default="periodic", choices=["periodic", "zero"], help="patch boundary (default: %(default)s)")
    p.add_argument("--pool", default="all", choices=["all", "valid"], help="patch pool: every position, or only patches wholly inside training images")


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--schedule", default="vp-linear", help="vp-linear | vp-cosine | ve | edm, with options (default: %(default)s)")
    p.add_argument("--sampler", default="heun", help="heun | euler | euler-maruyama | ddpm | ddim[:eta=E] (default: %(default)s)")
    p.add_argument("--spacing", default="logsnr", choices=["t", "logsnr", "karras"], help="sigma grid spacing (default: %(default)s)")
    p.add_argument("--steps", type=int, default=30, help="number of sampler steps (default: %(default)s)")
    p.add_argument("--n", type=int, default=16, help="number of samples (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed; a seed reproduces a run exactly on the CPU")


def add_threads_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice; 1 is much faster on a busy machine)")


def apply_threads(args) -> None:
    """Set torch's CPU thread count from ``--threads`` (if given)."""
    if args.threads is None:
        return
    if args.threads < 1:
        raise ValueError(f"threads: expected an integer >= 1, got {args.threads}")
    import torch

    torch.set_num_threads(args.threads)
