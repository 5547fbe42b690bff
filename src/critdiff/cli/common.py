"""Arguments and helpers shared by several subcommands (everything else is generated from the configs)."""

from __future__ import annotations

import argparse
from contextlib import contextmanager


def add_out_arg(p: argparse.ArgumentParser, required: bool = True, default: "str | None" = None,
                help_text: str = "output folder") -> None:
    p.add_argument("--out", required=required, default=default, help=help_text)


def add_run_args(p: argparse.ArgumentParser) -> None:
    """``--device`` and ``--threads`` for commands whose configuration is not a RunConfig (train,
    train-classifier): RunConfig's own flags, help texts and defaults, parsed into ``args.device``/``args.threads``."""
    from ..experiments.config import RunConfig
    from .generate import add_config_args

    add_config_args(p, RunConfig, only=("device", "threads"), prefix="")


@contextmanager
def threads_of(cfg):
    """Run the block with torch's CPU thread count set from ``cfg.threads`` (restored afterwards)."""
    import torch

    n = getattr(cfg, "threads", None)
    if n is None:
        yield
        return
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"threads: expected an integer >= 1, got {n!r}")
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)

