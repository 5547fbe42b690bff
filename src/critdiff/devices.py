"""Torch devices from user text: one place that turns ``--device`` into a ``torch.device`` or a clear error."""

from __future__ import annotations

import torch


def resolve(device: "str | torch.device", name: str = "device") -> torch.device:
    """``'cpu'``, ``'cuda'``, ``'cuda:1'``, ``'mps'`` -> an available ``torch.device``.

    A one-line ``ValueError`` naming ``name`` for text torch does not parse, a device type this build or
    machine lacks, and a CUDA index at or beyond ``torch.cuda.device_count()``.
    """
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        try:
            dev = torch.device(device.strip())
        except (RuntimeError, ValueError):
            raise ValueError(f"{name}: expected a torch device such as cpu, cuda or cuda:0, got {device!r}") from None
    else:
        raise TypeError(f"{name}: expected a device name such as 'cpu' or 'cuda:0', got {type(device).__name__}")
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{name}: {str(dev)!r} requested but CUDA is not available on this machine "
                             "(no CUDA device found; use cpu)")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"{name}: {str(dev)!r} requested but this machine has {count} CUDA device(s) "
                             f"(cuda:0 to cuda:{count - 1})")
        return dev
    if dev.type == "mps" and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return dev
    raise ValueError(f"{name}: device type {dev.type!r} is not available here (use cpu or cuda)")
