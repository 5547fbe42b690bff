"""Validation of data-spec options: every failure is one ``ValueError`` line starting ``data:``.

The spec grammar (``critdiff.spec``) turns ``digits:size=16,n=500`` into typed values; these
helpers check one option each and name it in the message, e.g.
``data: option 'size' of 'digits' expects an integer >= 2, got 'abc'``.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable

from ..spec import Spec, take_kwargs

WHAT = "data"


def fail(message: str) -> ValueError:
    """A one-line ``ValueError`` for the ``data`` argument (to be raised by the caller)."""
    return ValueError(f"{WHAT}: {' '.join(str(message).split())}")


def options(spec: Spec, defaults: dict[str, Any], n_args: int = 0) -> dict[str, Any]:
    """Merge ``spec.kwargs`` over ``defaults``; reject unknown keys and extra positional items."""
    if len(spec.args) > n_args:
        extra = ", ".join(map(repr, spec.args[n_args:]))
        raise fail(f"{spec.name!r} takes {n_args} positional item(s), got extra {extra} in {str(spec)!r}")
    return take_kwargs(spec, defaults, WHAT)


def opt_int(name: str, key: str, value: Any, minimum: int = 1, maximum: "int | None" = None) -> int:
    """An integer option ``>= minimum`` (and ``<= maximum``; floats such as ``4.0`` are accepted)."""
    ok = not isinstance(value, bool) and (
        isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    )
    if not ok or int(value) < minimum or (maximum is not None and int(value) > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise fail(f"option {key!r} of {name!r} expects an integer {bound}, got {value!r}")
    return int(value)


def opt_float(name: str, key: str, value: Any, low: float = 0.0, high: float = math.inf,
              low_open: bool = True) -> float:
    """A finite float option in ``(low, high]`` (or ``[low, high]`` when ``low_open`` is False)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise fail(f"option {key!r} of {name!r} expects a number in {bracket}{low}, {high}], got {value!r}")
    return float(value)


def opt_choice(name: str, key: str, value: Any, choices: Iterable[str]) -> str:
    """A string option among ``choices``."""
    choices = list(choices)
    text = str(value).lower()
    if isinstance(value, bool) or text not in choices:
        raise fail(f"option {key!r} of {name!r} expects one of {', '.join(choices)}, got {value!r}")
    return text


def opt_bool(name: str, key: str, value: Any) -> bool:
    """A boolean option (``true``/``false``, also ``1``/``0``)."""
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    raise fail(f"option {key!r} of {name!r} expects true or false, got {value!r}")


def path_arg(spec: Spec) -> str:
    """The first positional item of a file spec: an existing path (``~`` expanded)."""
    if not spec.args:
        raise fail(f"{spec.name!r} needs a path as its first item, e.g. '{spec.name}:/path/to/data'")
    path = os.path.expanduser(str(spec.args[0]))
    if not os.path.exists(path):
        raise fail(f"file not found for {spec.name!r}: {path}")
    return path
