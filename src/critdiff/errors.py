"""Argument checks shared by every module: one clear line naming the argument.

Errors are plain ``ValueError`` / ``TypeError`` (never ``assert``), so that library users
can catch them and the CLI can turn them into one line and exit status 2.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch


def check_choice(name: str, value: str, options: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``options``; otherwise raise naming ``name``."""
    options = list(options)
    if value not in options:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def check_images(name: str, x: object, channels: int | None = None) -> torch.Tensor:
    """Check that ``x`` is a finite floating tensor ``[B, C, H, W]`` (optionally with C channels)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor [B, C, H, W], got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name}: expected a tensor of rank 4 [B, C, H, W], got shape {tuple(x.shape)}")
    if min(x.shape) < 1:
        raise ValueError(f"{name}: expected a non-empty batch [B, C, H, W] with every size >= 1, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name}: expected {channels} channel(s), got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains non-finite values (nan or inf)")
    return x


def check_positive(name: str, value: float, allow_zero: bool = False) -> float:
    """Check that a scalar is finite and > 0 (or >= 0)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: expected a finite number {bound}, got {value!r}")
    return v


def check_finite(name: str, value: object) -> float:
    """Check that a scalar is a finite real number (not nan, not inf) and return it as a float."""
    if isinstance(value, bool):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return v


def check_int(name: str, value: object, minimum: int = 1, maximum: "int | None" = None) -> int:
    """Check an integer argument with a lower bound (and an upper one, e.g. from :mod:`critdiff.limits`)."""
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
        isinstance(value, float) and value.is_integer()
    ):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    v = int(value)
    if v < minimum or (maximum is not None and v > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name}: expected an integer {bound}, got {v}")
    return v


def check_seed(name: str, value: object) -> int:
    """A seed: an integer in ``[0, MAX_SEED]`` (63 bits, what torch and numpy generators accept)."""
    from .limits import MAX_SEED

    return check_int(name, value, 0, MAX_SEED)


def check_ints(obj: object, **bounds: "int | tuple") -> None:
    """:func:`check_int` on each named attribute of ``obj`` with its lower bound or ``(lower, upper)`` bounds
    (``check_ints(cfg, steps=1, height=(2, MAX_SIDE))``)."""
    for name, b in bounds.items():
        lo, hi = b if isinstance(b, tuple) else (b, None)
        check_int(name, getattr(obj, name), lo, hi)
