"""The one spec grammar used everywhere (data sets, stencils, schedules, models).

A spec is ``name`` or ``name:item,item,...`` where each item is ``key=value`` or a bare
positional value, e.g. ``digits:size=16``, ``dilated:5,2``, ``idx:/data/train-images.gz,n=500``.
Values are parsed as int, then float, then left as strings; ``true``/``false`` become bools.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Spec:
    """A parsed spec: ``name``, positional ``args`` and keyword ``kwargs``."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        items = [str(a) for a in self.args] + [f"{k}={v}" for k, v in self.kwargs.items()]
        return self.name + (":" + ",".join(items) if items else "")


def parse_value(text: str) -> Any:
    """Parse one value: int, float, bool, or the string itself."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_spec(text: str, what: str = "spec") -> Spec:
    """Parse ``name[:item,...]``; ``what`` names the argument in error messages."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{what}: expected a spec 'name' or 'name:key=value,...', got {text!r}")
    name, sep, rest = text.strip().partition(":")
    name = name.strip().lower()
    if not name:
        raise ValueError(f"{what}: missing name in spec {text!r}")
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    if sep and rest.strip():
        for item in rest.split(","):
            item = item.strip()
            if not item:
                raise ValueError(f"{what}: empty item in spec {text!r}")
            key, eq, value = item.partition("=")
            if eq:
                key = key.strip()
                if not key:
                    raise ValueError(f"{what}: empty key in spec {text!r}")
                if key in kwargs:
                    raise ValueError(f"{what}: key {key!r} given twice in spec {text!r}")
                kwargs[key] = parse_value(value.strip())
            else:
                if kwargs:
                    raise ValueError(f"{what}: positional value {item!r} after key=value items in {text!r}")
                args.append(parse_value(item))
    return Spec(name, tuple(args), kwargs)


def take_kwargs(spec: Spec, allowed: dict[str, Any], what: str) -> dict[str, Any]:
    """Merge ``spec.kwargs`` over the defaults ``allowed``; unknown keys raise naming ``what``."""
    unknown = sorted(set(spec.kwargs) - set(allowed))
    if unknown:
        raise ValueError(
            f"{what}: unknown option(s) {', '.join(unknown)} for {spec.name!r}; "
            f"valid: {', '.join(sorted(allowed)) or '(none)'}"
        )
    out = dict(allowed)
    out.update(spec.kwargs)
    return out
