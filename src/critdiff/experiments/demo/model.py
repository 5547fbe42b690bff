"""A small conditional digits UNet trained in seconds (tests; the demo itself uses the shipped reference network)."""

from __future__ import annotations

from pathlib import Path


def train_demo_model(folder: "str | Path", quick: bool = False, progress: bool = False, device="cpu") -> str:
    """Train the demo's conditional digits UNet into ``folder`` (1 thread), or reuse a finished checkpoint.

    Full: ``digits:size=16``, width 32, 300 steps, batch 64, cond-drop 0.1 (~2-3 min on one core). Quick:
    ``digits:size=8``, width 16, 20 steps, batch 16. An interrupted run is resumed (resume semantics of
    :func:`critdiff.experiments.train.run_train`); a folder holding a different run is refused. ``device``: where it
    trains. Returns ``folder``.
    """
    from ...nets import checkpoint as ckpt
    from ...threads import torch_threads
    from ..context import Context
    from ..train import resolve_config, run_train

    out = Path(folder)
    given = (dict(data="digits:size=8", width=16, steps=20, batch=16, cond_drop=0.1, warmup=5, checkpoint_every=20,
                  grid_steps=8)
             if quick else dict(data="digits:size=16", width=32, steps=300, batch=64, cond_drop=0.1,
                                checkpoint_every=100, grid_steps=20))
    has = ckpt.has_checkpoint(out)
    cfg = resolve_config(out, given, resume=has)
    if has and int(ckpt.read_config(out).get("step", 0)) >= cfg.steps:
        return str(out)
    with torch_threads(1):
        run_train(cfg, Context(out, progress=progress), resume=has, device=device)
    return str(out)
