"""Atomic file output: results are written to a temporary file and renamed, so an interrupted
run never leaves a truncated file behind."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def current_umask() -> int:
    """The process's file-mode creation mask (read without changing it for longer than a call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: "str | Path", suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a fresh temporary path next to ``path``; when the block succeeds it is fsync-ed and renamed to ``path``.

    The temporary name is unique (``tempfile.mkstemp``), so concurrent writers never share one; on any
    error (Ctrl-C included) it is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp creates 0600; results are ordinary files
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: "str | Path", data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (unique temporary file in the same folder, then rename)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: "str | Path", text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """The one JSON converter of critdiff: any result value -> plain JSON values.

    - dataclasses -> their ``to_dict()`` if they have one, else their fields; dicts -> dicts with ``str`` keys;
    - tuples, lists, numpy arrays and tensors -> lists (detached, on the CPU);
    - complex values and arrays -> ``{"re": ..., "im": ...}``;
    - numpy scalars -> Python ``int``/``float``/``bool``; ``Path`` -> ``str``;
    - non-finite floats (``nan``, ``+-inf``) -> ``null`` everywhere (JSON has no inf/nan), so a reader tests
      ``is None``; a record that must tell an infinite value from a missing one says so in another field.
    """
    import dataclasses

    import numpy as np
    import torch

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu()
        if not obj.is_complex():
            return to_jsonable(obj.tolist())
        obj = obj.numpy()
    if isinstance(obj, np.ndarray):
        if np.iscomplexobj(obj):
            return {"re": to_jsonable(obj.real), "im": to_jsonable(obj.imag)}
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (np.complexfloating, complex)):
        return {"re": to_jsonable(obj.real), "im": to_jsonable(obj.imag)}
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_json(path: "str | Path", obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON."""
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")


def sha256_file(path: "str | Path") -> str:
    """The hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def config_hash(config: Any, n: int = 12) -> str:
    """Short stable hash of a JSON-able configuration (used to find cached results)."""
    blob = json.dumps(to_jsonable(config), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:n]
