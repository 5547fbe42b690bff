"""Checkpoints of trained critdiff networks. Each training checkpoint is one atomic unit: a step folder.

Files of one checkpoint::

    config.json            {"kind": "unet" | "classifier", "net": <architecture>, "train": <training config>, "step": k}
    weights.safetensors    raw weights (metadata: step)
    ema.safetensors        EMA weights (metadata: step), the ones used for sampling
    state.pt               optimiser state, RNG states, step (torch.save of tensors and numbers only)

Layout of a training folder ``DIR`` (docs/reliability.md, R1)::

    ckpt-000027/           the four files above, for step 27
    ckpt-000026/           the one before (the last :data:`KEEP` are kept)
    latest                 the name of the newest complete step folder (one line)

:func:`save_checkpoint` writes the four files into a fresh hidden folder, fsyncs them, renames the folder
to ``ckpt-<step>`` (atomic) and then replaces ``latest`` (atomic), so a kill at any moment leaves either
the previous checkpoint or the new one, never a mix. :func:`checkpoint_dir` resolves ``DIR`` to the
folder to read: ``latest`` if it names a complete step folder, else the newest complete one; hidden
leftovers of a killed write are ignored and removed by the next save. A folder of the old flat layout
(the four files directly in ``DIR``) and a classifier folder (config and weights only) resolve to
``DIR`` itself. Every read failure is a one-line ``ValueError`` starting ``model:``.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..inputs import Fields, read_json
from ..io import atomic_write_bytes, current_umask, save_json, sha256_file

CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
EMA = "ema.safetensors"
STATE = "state.pt"
LATEST = "latest"
KEEP = 2  # step folders kept
KINDS = ("unet", "classifier")  # the ``kind`` of a checkpoint config
_STEP_DIR = re.compile(r"^ckpt-(\d{6,})$")


def save_weights(path: "str | Path", module_or_state, step: int) -> Path:
    """Write a module's (or a state dict's) tensors to ``path`` as safetensors, atomically."""
    from safetensors.torch import save

    sd = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    tensors = {k: v.detach().cpu().contiguous() for k, v in sd.items()}
    return atomic_write_bytes(path, save(tensors, metadata={"step": str(int(step)), "format": "critdiff"}))


def check_dir(root: "str | Path") -> Path:
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"model: checkpoint folder {str(root)!r} does not exist")
    return root


def step_dir_name(step: int) -> str:
    return f"ckpt-{int(step):06d}"


def _complete(folder: Path) -> bool:
    """A step folder holds its config and weights (it was renamed into place only after every file was written)."""
    return all((folder / f).is_file() for f in (CONFIG, WEIGHTS))


def step_dirs(root: "str | Path") -> "list[Path]":
    """The complete step folders of ``root``, oldest first."""
    root = Path(root)
    found = []
    for p in root.iterdir() if root.is_dir() else ():
        m = _STEP_DIR.match(p.name)
        if m and p.is_dir() and _complete(p):
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def checkpoint_dir(root: "str | Path") -> "Path | None":
    """The folder holding the checkpoint files of ``root``: ``latest``, else the newest complete step folder,
    else ``root`` itself when it holds a flat (old-layout or classifier) ``config.json``; ``None`` if none."""
    root = Path(root)
    try:
        name = (root / LATEST).read_text().strip()
    except (OSError, UnicodeDecodeError):
        name = ""
    if _STEP_DIR.match(name) and _complete(root / name):
        return root / name
    dirs = step_dirs(root)
    if dirs:
        return dirs[-1]
    return root if (root / CONFIG).is_file() else None


def weights_id(root: "str | Path") -> Optional[str]:
    """The identity of the weights a checkpoint folder loads today: the name of the folder :func:`checkpoint_dir`
    resolves to (``ckpt-NNNNNN``, or ``root``'s own for a flat folder), ``@``, and the first 16 hex digits of the
    sha256 of its EMA weights (its raw weights where it has no EMA file: a classifier); ``None`` when ``root`` is
    not a checkpoint folder. Run logs key on it (``experiments.config.with_weights_id``), so a run is not resumed
    on other weights under the same folder (a continued or repeated training)."""
    root = Path(root)
    folder = checkpoint_dir(root) if root.is_dir() else None
    for name in (EMA, WEIGHTS) if folder is not None else ():
        if (folder / name).is_file():
            return f"{folder.name}@{sha256_file(folder / name)[:16]}"
    return None


def has_checkpoint(root: "str | Path") -> bool:
    return checkpoint_dir(root) is not None


def read_config(root: "str | Path") -> dict:
    """The ``config.json`` of a checkpoint folder (resolved with :func:`checkpoint_dir`), validated as an input
    (:mod:`critdiff.inputs`): ``kind`` one of :data:`KINDS`, ``net`` an object, ``step`` an integer >= 0."""
    folder = checkpoint_dir(check_dir(root))
    path = (folder or Path(root)) / CONFIG
    if not path.is_file():
        raise ValueError(f"model: no checkpoint in {str(root)!r} (missing {CONFIG})")
    cfg = read_json(path, "model", "checkpoint config")
    if not isinstance(cfg, dict) or "net" not in cfg or "kind" not in cfg:
        raise ValueError(f"model: {str(path)!r} is not a critdiff checkpoint config (needs 'kind' and 'net')")
    f = Fields(cfg, path, "model")
    f.choice("kind", KINDS)
    f.object("net")
    f.int("step", 0, default=None)
    if "train" in cfg:
        f.object("train")
    return cfg


def read_typed_config(root: "str | Path", kind: str, config_cls, what: str) -> "tuple[dict, object]":
    """The stored record of a ``kind`` checkpoint in ``root`` and its network configuration ``config_cls`` (built
    with ``from_dict``); one-line ``ValueError`` naming the file and the field otherwise: every field of
    ``config_cls`` must be present (a missing one is not filled with a default) and none other. ``what`` names
    the kind for people."""
    record = read_config(root)
    if record.get("kind") != kind:
        raise ValueError(f"model: {str(root)!r} holds a {record.get('kind')!r} checkpoint, not {what}")
    path = (checkpoint_dir(root) or Path(root)) / CONFIG
    Fields(record["net"], path, "model", "net").exactly(f.name for f in dataclasses.fields(config_cls))
    try:
        return record, config_cls.from_dict(record["net"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"model: the config in {str(path)!r} is invalid (field 'net': {str(e).splitlines()[0]})") from None


def read_weights(path: "str | Path") -> "tuple[dict[str, torch.Tensor], int]":
    """``(tensors, step)`` from a safetensors file; one-line errors for a missing or corrupt file and for a tensor
    holding nan or inf."""
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
    for name, t in tensors.items():  # weights that are not finite make every output meaningless (R9)
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"model: checkpoint {str(path)!r}: tensor {name!r} holds non-finite values (nan or inf)")
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
    """The ``state.pt`` of a checkpoint folder, resolved with :func:`checkpoint_dir` (tensors and numbers only:
    ``weights_only=True``)."""
    path = (checkpoint_dir(root) or Path(root)) / STATE
    if not path.is_file():
        raise ValueError(f"model: cannot resume: {str(path)!r} is missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise ValueError(f"model: checkpoint {str(path)!r} is truncated or corrupt") from None
    if not isinstance(state, dict) or "step" not in state:
        raise ValueError(f"model: checkpoint {str(path)!r} is not a critdiff training state")
    return state


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _clean(root: Path, keep: "list[Path]") -> None:
    """Remove hidden leftovers of killed writes and the step folders beyond the newest :data:`KEEP`."""
    for p in root.iterdir():
        if p.is_dir() and p.name.startswith(".ckpt-"):
            shutil.rmtree(p, ignore_errors=True)
    for p in step_dirs(root):
        if p not in keep:
            shutil.rmtree(p, ignore_errors=True)


def save_checkpoint(root: "str | Path", config: dict, model: nn.Module, ema: Optional[nn.Module], step: int,
                    state: Optional[dict] = None) -> Path:
    """Write one checkpoint as a unit: ``root/ckpt-<step>/`` (config, weights, ema, state), then ``root/latest``.

    The files go to a fresh hidden folder, are fsync-ed, and the folder is renamed into place; an existing
    folder of the same step is swapped out. Returns the step folder.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(step)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{final.name}."))
    try:
        if state is not None:
            save_training_state(tmp, {**state, "step": int(step)})
        save_weights(tmp / WEIGHTS, model, step)
        if ema is not None:
            save_weights(tmp / EMA, ema, step)
        save_json(tmp / CONFIG, {**config, "step": int(step)})
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp creates 0700
        _fsync_dir(tmp)
        if final.exists():  # the same step saved again (e.g. on Ctrl-C right after a checkpoint)
            os.rename(final, Path(tempfile.mkdtemp(dir=root, prefix=f".{final.name}.old.")) / "old")
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(root)
    atomic_write_bytes(root / LATEST, (final.name + "\n").encode())
    _clean(root, step_dirs(root)[-KEEP:] + [final])
    return final
