"""Executors for independent units of work (see :mod:`.base`): :class:`SerialExecutor` (the default) and
:class:`~.ray.RayExecutor`, built from an :class:`ExecutorConfig` by :func:`make_executor`. Ray itself is imported
only when a Ray executor runs."""

from __future__ import annotations

from .base import Executor, ExecutorConfig, Outcome, SerialExecutor
from .ray import RayExecutor

RAY_INSTALL = "pip install 'critdiff[ray]'"

__all__ = ["Executor", "ExecutorConfig", "Outcome", "RayExecutor", "SerialExecutor", "make_executor", "RAY_INSTALL"]


def make_executor(cfg: "ExecutorConfig | None" = None, *, device: str = "cpu") -> Executor:
    """The executor named by ``cfg`` (validated); ``device``: the runs' torch device (cuda: one GPU per Ray worker)."""
    cfg = (cfg or ExecutorConfig()).validate()
    if cfg.executor == "serial":
        return SerialExecutor()
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ValueError(f"executor: {cfg.executor!r} needs Ray, which is not installed; {RAY_INSTALL}") from None
    address = cfg.executor[4:] if cfg.executor.startswith("ray:") else None
    gpus = 1.0 if str(device).startswith("cuda") else 0.0
    return RayExecutor(cfg.workers, address=address, retries=cfg.retries, gpus_per_worker=gpus)
