"""Configuration as frozen dataclasses that round-trip through JSON, and the field helper ``arg``.

Every configuration of critdiff (a run, a training run, a probe, a guidance study) is a frozen
dataclass whose fields carry their help text (``arg(default, "help")``). The command line is generated
from these fields (:mod:`critdiff.cli.generate`), so a default exists in exactly one place: the
dataclass. Field metadata understood by the generator:

- ``help``: the help text (the default is appended by the generator);
- ``flag``: the flag name when it differs from ``--field-name`` (existing flags keep their names);
- ``nargs``: ``2`` for a fixed pair given as two words (``--interval LO HI``);
- ``const``: the value may be omitted after the flag, meaning ``const`` (``--like-pipeline`` alone = ``auto``);
- ``parse``: a function turning the flag's text into the value (``--arms all``);
- ``cli``: ``False`` for a field that has no flag (set from Python or by the command itself).

A boolean field with default ``False`` becomes a switch ``--name``; with default ``True`` a switch
``--no-name`` (or its ``flag``) that sets it to ``False``. A ``tuple[float, ...]`` field is given as a
comma-separated list. ``Literal[...]`` fields list their options as choices.

JSON: :meth:`JsonConfig.to_dict` gives plain JSON values (tuples as lists); :meth:`JsonConfig.from_dict`
rebuilds the dataclass, turning lists back into tuples and nested dictionaries into the nested
dataclasses named by the annotations, and rejects unknown keys with a message naming them.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import MISSING, field
from typing import Any, Literal, Optional, Union, get_args, get_origin, get_type_hints

T = typing.TypeVar("T", bound="JsonConfig")


def arg(default: Any = MISSING, help: str = "", **meta: Any) -> Any:  # noqa: A002 - mirrors argparse
    """A dataclass field with a default and its command-line metadata (module docstring)."""
    meta = {"help": help, **meta}
    if isinstance(default, (list, dict, set)):
        raise TypeError("arg: mutable defaults are not allowed; use a tuple")
    return field(default=default, metadata=meta)


def field_types(cls: type) -> dict[str, Any]:
    """The resolved annotation of every field of the dataclass ``cls``."""
    return get_type_hints(cls)


def unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """``Optional[X]`` -> ``(X, True)``; anything else -> ``(tp, False)``."""
    if get_origin(tp) is Union:
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def from_json_value(tp: Any, value: Any) -> Any:
    """Rebuild a field value of annotation ``tp`` from its JSON form."""
    if value is None:
        return None
    tp, _ = unwrap_optional(tp)
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return tp.from_dict(value) if hasattr(tp, "from_dict") else tp(**value)
    if origin is tuple or tp is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_json_value(args[0], v) for v in value)
        if args:
            return tuple(from_json_value(a, v) for a, v in zip(args, value))
        return tuple(_tupled(v) for v in value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, float) and value.is_integer():  # 3.0 from a file is the integer 3
        return int(value)
    return value


def _tupled(value: Any) -> Any:
    """Lists (nested) -> tuples, so that a frozen configuration stays hashable after a JSON round trip."""
    if isinstance(value, list):
        return tuple(_tupled(v) for v in value)
    return value


class JsonConfig:
    """Mixin for frozen configuration dataclasses: ``to_dict``, ``from_dict``, ``to_json``, ``from_json``,
    ``replace``."""

    def to_dict(self) -> dict[str, Any]:
        from .io import to_jsonable

        return to_jsonable({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    @classmethod
    def from_dict(cls: type[T], d: dict[str, Any]) -> T:
        if not isinstance(d, dict):
            raise TypeError(f"{cls.__name__}: expected a JSON object, got {type(d).__name__}")
        types = field_types(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}; expected some of {', '.join(sorted(names))}")
        return cls(**{k: from_json_value(types[k], v) for k, v in d.items()})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        return cls.from_dict(json.loads(text))

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)


__all__ = ["arg", "JsonConfig", "field_types", "unwrap_optional", "Literal", "Optional"]
