"""Arguments and helpers shared by several subcommands (everything else is generated from the configs)."""

from __future__ import annotations

import argparse
import contextlib


def add_out_arg(p: argparse.ArgumentParser, required: bool = True, default: "str | None" = None,
                help_text: str = "output folder") -> None:
    p.add_argument("--out", required=required, default=default, help=help_text)


def add_run_args(p: argparse.ArgumentParser, only: tuple = ("device", "threads", "max_memory")) -> None:
    """``--device``, ``--threads`` and ``--max-memory`` for commands whose configuration is not a RunConfig (train,
    train-classifier; ``only=('device', 'max_memory')``: theory, demo; ``('device',)``: guide-config;
    ``('max_memory',)``: sweep): RunConfig's own flags, help texts and defaults, parsed into ``args.device`` etc."""
    from ..experiments.config import RunConfig
    from .generate import add_config_args

    add_config_args(p, RunConfig, only=only, prefix="")


def threads_of(cfg):
    """A context that runs the block on ``cfg.threads`` torch threads (restored afterwards; None: unchanged)."""
    from ..threads import torch_threads

    return torch_threads(getattr(cfg, "threads", None))


def add_executor_args(p: argparse.ArgumentParser) -> None:
    """``--executor``, ``--workers``, ``--retries``: ExecutorConfig's flags, parsed into ``args.executor`` etc."""
    from ..experiments.executors import ExecutorConfig
    from .generate import add_config_args

    add_config_args(p, ExecutorConfig, prefix="")


@contextlib.contextmanager
def executor_of(args, device: str = "cpu"):
    """The executor the flags name (a one-line error when Ray is asked for but missing), closed afterwards."""
    from ..experiments.executors import ExecutorConfig, make_executor

    executor = make_executor(ExecutorConfig(executor=args.executor, workers=args.workers, retries=args.retries),
                             device=device)
    try:
        yield executor
    finally:
        executor.close()
