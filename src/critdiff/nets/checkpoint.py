"""Checkpoints of trained critdiff networks: one folder, every file written atomically.

Layout of a checkpoint folder ``DIR``::

    config.json            {"kind": "unet" | "classifier", "net": <architecture>, "train": <training config>, "step": k}
    weights.safetensors    raw weights (metadata: step)
    ema.safetensors        EMA weights (metadata: step), the ones used for sampling
    state.pt               optimiser state, RNG states, step (torch.save of tensors and numbers only)

Each file is written to a temporary file in ``DIR`` and renamed (:mod:`critdiff.io`), so an interrupted
write never leaves a truncated file; each carries the step, and :func:`read_training_state` refuses files
from different steps. Every read failure is a one-line ``ValueError`` starting ``model:``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..io import atomic_write_bytes, save_json

CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
EMA = "ema.safetensors"
STATE = "state.pt"


def save_weights(path: "str | Path", module_or_state, step: int) -> Path:
    """Write a module's (or a state dict's) tensors to ``path`` as safetensors, atomically."""
    from safetensors.torch import save

    sd = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    tensors = {k: v.detach().cpu().contiguous() for k, v in sd.items()}
    return atomic_write_bytes(path, save(tensors, metadata={"step": str(int(step)), "format": "critdiff"}))


def _check_dir(root: "str | Path") -> Path:
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"model: checkpoint folder {str(root)!r} does not exist")
    return root


def read_config(root: "str | Path") -> dict:
    """The ``config.json`` of a checkpoint folder."""
    path = _check_dir(root) / CONFIG
    if not path.is_file():
        raise ValueError(f"model: no checkpoint in {str(root)!r} (missing {CONFIG})")
    try:
        cfg = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"model: checkpoint {str(path)!r} is truncated or corrupt") from None
    if not isinstance(cfg, dict) or "net" not in cfg or "kind" not in cfg:
        raise ValueError(f"model: {str(path)!r} is not a critdiff checkpoint config (needs 'kind' and 'net')")
    return cfg


def read_weights(path: "str | Path") -> "tuple[dict[str, torch.Tensor], int]":
    """``(tensors, step)`` from a safetensors file; one-line errors for a missing or corrupt file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model: checkpoint file {str(path)!r} is missing")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception:  # safetensors raises its own error types for truncated headers and data
        raise ValueError(f"model: checkpoint {str(path)!r} is truncated or corrupt") from None
    try:
        step = int(meta.get("step", -1))
    except ValueError:
        raise ValueError(f"model: checkpoint {str(path)!r} has a malformed step in its metadata") from None
    return tensors, step


def load_into(module: nn.Module, tensors: "dict[str, torch.Tensor]", where: str) -> None:
    """Copy ``tensors`` into ``module`` exactly; a one-line error names missing, unexpected or misshaped keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    shapes = sorted(k for k in set(own) & set(tensors) if tuple(own[k].shape) != tuple(tensors[k].shape))
    if missing or unexpected or shapes:
        parts = []
        for name, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
            if keys:
                more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
                parts.append(f"{name}: {', '.join(keys[:3])}{more}")
        raise ValueError(f"model: weights do not match the config ({where}; {'; '.join(parts)})")
    module.load_state_dict(tensors, strict=True)


def save_training_state(root: "str | Path", state: dict) -> Path:
    """Atomically write the optimiser/RNG/step state with ``torch.save``."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(Path(root) / STATE, buf.getvalue())


def read_training_state(root: "str | Path") -> dict:
    """The ``state.pt`` of a checkpoint folder (tensors and numbers only: ``weights_only=True``)."""
    path = Path(root) / STATE
    if not path.is_file():
        raise ValueError(f"model: cannot resume: {str(path)!r} is missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise ValueError(f"model: checkpoint {str(path)!r} is truncated or corrupt") from None
    if not isinstance(state, dict) or "step" not in state:
        raise ValueError(f"model: checkpoint {str(path)!r} is not a critdiff training state")
    return state


def save_checkpoint(root: "str | Path", config: dict, model: nn.Module, ema: Optional[nn.Module], step: int,
                    state: Optional[dict] = None) -> Path:
    """Write ``config.json``, ``weights.safetensors``, ``ema.safetensors`` and ``state.pt`` (all atomic)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if state is not None:
        save_training_state(root, {**state, "step": int(step)})
    save_weights(root / WEIGHTS, model, step)
    if ema is not None:
        save_weights(root / EMA, ema, step)
    save_json(root / CONFIG, {**config, "step": int(step)})
    return root
