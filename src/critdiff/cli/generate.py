"""Command-line flags generated from configuration dataclasses (:mod:`critdiff.config`).

One small generator instead of a dependency: the rules fit in this module (flag names, types, choices,
help texts and defaults all come from the dataclass fields), and a library such as ``tyro`` would pull in
its own dependency tree and rename our existing flags (``--local``, ``--no-chi``, ``--res-blocks``).

:func:`add_config_args` adds one flag per field; :func:`config_from_args` builds the dataclass back from
the parsed namespace. With ``given_only=True`` flags that were not given are absent from the namespace
(``critdiff train --resume`` merges only what was given over the saved configuration).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, Literal, get_args, get_origin

from ..config import field_types, unwrap_optional

DEST_PREFIX = "cfg__"


def flag_name(f: dataclasses.Field) -> str:
    """The flag of a field: its ``flag`` metadata, else ``--name`` (``--no-name`` for a True switch)."""
    if "flag" in f.metadata:
        return f.metadata["flag"]
    base = f.name.replace("_", "-")
    return f"--no-{base}" if f.default is True else f"--{base}"


def _scalar_parser(tp: Any, name: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return tp(text)
        except ValueError:
            kind = {int: "an integer", float: "a number"}.get(tp, tp.__name__)
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None

    parse.__name__ = getattr(tp, "__name__", name)
    return parse


def _list_parser(item: Any) -> Callable[[str], tuple]:
    scalar = _scalar_parser(item, "list")

    def parse(text: str) -> tuple:
        if not text.strip():
            return ()
        parts = [p.strip() for p in text.split(",")]
        if not all(parts):
            raise argparse.ArgumentTypeError(f"expected comma-separated values without empty items, got {text!r}")
        return tuple(scalar(p) for p in parts)

    parse.__name__ = "list"
    return parse


def _default_text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "none"
    return "none" if value is None else str(value)


def _field_kwargs(f: dataclasses.Field, tp: Any) -> dict[str, Any]:
    """argparse keyword arguments for one field."""
    tp, optional = unwrap_optional(tp)
    meta = f.metadata
    help_text = meta.get("help", "")
    kw: dict[str, Any] = {}
    if tp is bool and not optional:
        kw["action"] = "store_false" if f.default is True else "store_true"
        return {"help": help_text, **kw}
    if "default" not in help_text and f.default is not dataclasses.MISSING:  # a required flag has none
        help_text += f" (default: {_default_text(f.default)})"
    if "parse" in meta:
        kw["type"] = meta["parse"]
    elif get_origin(tp) is Literal:
        options = get_args(tp)
        kw["choices"] = list(options)
        kw["type"] = _scalar_parser(type(options[0]), f.name)
    elif get_origin(tp) is tuple or tp is tuple:
        args = get_args(tp)
        item = args[0] if args else str
        if meta.get("nargs"):
            kw["nargs"] = meta["nargs"]
            kw["type"] = _scalar_parser(item, f.name)
            kw["metavar"] = meta.get("metavar")
        else:
            kw["type"] = _list_parser(item)
            kw["metavar"] = "A,B,..."
    else:
        kw["type"] = _scalar_parser(tp, f.name)
    if "const" in meta:  # an optional value: --flag alone means const
        kw.update(nargs="?", const=meta["const"], metavar=meta.get("metavar"))
    if "choices" in meta:
        kw["choices"] = list(meta["choices"])
    if "choices" not in kw:
        kw.setdefault("metavar", f.name.upper())
    return {"help": help_text, **{k: v for k, v in kw.items() if v is not None}}


def cli_fields(cls: type, skip: tuple = ()) -> list[dataclasses.Field]:
    """The fields of ``cls`` that have a flag."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True) and f.name not in skip and f.init]


def add_config_args(parser: argparse.ArgumentParser, cls: type, *, skip: tuple = (), only: "tuple | None" = None,
                    given_only: bool = False, prefix: str = DEST_PREFIX) -> None:
    """Add one flag per field of the dataclass ``cls`` (module docstring); ``only`` restricts the fields,
    ``prefix`` is put before each destination name (fields land in :func:`given_fields` only with the default)."""
    types = field_types(cls)
    for f in cli_fields(cls, skip):
        if only is not None and f.name not in only:
            continue
        kw = _field_kwargs(f, types[f.name])
        kw["dest"] = prefix + f.name
        if f.default is dataclasses.MISSING:
            kw["required"] = True
        else:
            kw["default"] = argparse.SUPPRESS if given_only else f.default
        parser.add_argument(flag_name(f), **kw)


def given_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration fields present in ``args`` (all of them, or only the given ones with ``given_only``)."""
    out = {}
    for key, value in vars(args).items():
        if key.startswith(DEST_PREFIX):
            name = key[len(DEST_PREFIX):]
            out[name] = tuple(value) if isinstance(value, list) else value
    return out


def config_from_args(cls: type, args: argparse.Namespace, **extra: Any):
    """Build ``cls`` from the parsed flags (plus ``extra`` fields set by the command)."""
    return cls(**given_fields(args), **extra)
