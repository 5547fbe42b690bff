"""Every file critdiff reads but may not have written is an input: read and validated here, naming file and field.

One layer (docs/reliability.md, R8) for the JSON and TOML files a run reads: ``results.json`` of ``critdiff report``,
checkpoint and classifier ``config.json``, a diffusers folder's ``model_index.json``, UNet and scheduler configs,
sweep specs. A failure is one ``ValueError`` line ``WHAT: FILE: field 'KEY': expected ..., got ...`` (``WHAT``
names the argument the file came from: ``model``, ``out``, ``spec``), never a ``KeyError`` or an error from deep
inside a library that trusted the file.

- :func:`read_json` / :func:`read_toml`: the document, or one line saying why it cannot be read;
- :class:`Fields`: typed access to a document's fields (:meth:`Fields.int`, :meth:`Fields.number`,
  :meth:`Fields.text`, :meth:`Fields.choice`, :meth:`Fields.object`, :meth:`Fields.list`), each with bounds;
  :meth:`Fields.only` / :meth:`Fields.exactly` refuse unknown or missing keys.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Optional

_MISSING = object()


def read_json(path: "str | Path", what: str, kind: str = "file") -> Any:
    """The JSON document at ``path``; a one-line ``ValueError`` naming ``what``, the ``kind`` of file and the path."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{what}: missing {kind} {str(path)!r}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{what}: cannot read the {kind} {str(path)!r} ({type(e).__name__})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{what}: the {kind} {str(path)!r} is not valid JSON (line {e.lineno}: {e.msg}); it may be "
                         "truncated or corrupt") from None


def read_toml(path: "str | Path", what: str, kind: str = "file") -> dict:
    """The TOML document at ``path`` (Python >= 3.11's ``tomllib``); one-line errors as :func:`read_json`."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        raise ValueError(f"{what}: reading a TOML {kind} needs Python 3.11 or later (tomllib)") from None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no file {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what}: {path} is not valid TOML ({str(exc).splitlines()[0]})") from None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Fields:
    """Typed, bounded access to the fields of one JSON object read from ``path`` (module docstring).

    ``Fields(doc, path, what)`` refuses a document that is not an object; ``prefix`` names a nested object
    (``"sections.demo"``) in messages.
    """

    def __init__(self, doc: Any, path: "str | Path", what: str, prefix: str = ""):
        self.path, self.what, self.prefix = str(path), what, prefix
        if not isinstance(doc, dict):
            where = f"field {prefix!r}" if prefix else "the file"
            raise ValueError(f"{what}: {self.path!r}: {where}: expected a JSON object, got {type(doc).__name__}")
        self.doc = doc

    def fail(self, key: str, expected: str, value: Any = _MISSING) -> ValueError:
        name = f"{self.prefix}.{key}" if self.prefix else key
        got = "it is missing" if value is _MISSING else f"got {_show(value)}"
        return ValueError(f"{self.what}: {self.path!r}: field {name!r}: expected {expected}, {got}")

    def get(self, key: str, default: Any = _MISSING) -> Any:
        if key in self.doc:
            return self.doc[key]
        if default is _MISSING:
            raise self.fail(key, "a value")
        return default

    def int(self, key: str, lo: int = 0, hi: Optional[int] = None, default: Any = _MISSING) -> Any:
        v = self.get(key, default)
        if v is None and default is None:
            return None
        ok = not isinstance(v, bool) and (isinstance(v, int) or (isinstance(v, float) and v.is_integer()))
        if not ok or v < lo or (hi is not None and v > hi):
            raise self.fail(key, f"an integer in [{lo}, {hi}]" if hi is not None else f"an integer >= {lo}", v)
        return int(v)

    def number(self, key: str, lo: float = -math.inf, hi: float = math.inf, default: Any = _MISSING,
               open_lo: bool = False) -> Any:
        v = self.get(key, default)
        if v is None and default is None:
            return None
        ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
        if not ok or v < lo or v > hi or (open_lo and v == lo):
            raise self.fail(key, f"a finite number in {'(' if open_lo else '['}{lo:g}, {hi:g}]", v)
        return float(v)

    def boolean(self, key: str, default: Any = _MISSING) -> Any:
        v = self.get(key, default)
        if not isinstance(v, bool) and not (v is None and default is None):
            raise self.fail(key, "true or false", v)
        return v

    def text(self, key: str, default: Any = _MISSING) -> Any:
        v = self.get(key, default)
        if not isinstance(v, str) and not (v is None and default is None):
            raise self.fail(key, "a string", v)
        return v

    def choice(self, key: str, options: Iterable, default: Any = _MISSING) -> Any:
        options = list(options)
        v = self.get(key, default)
        if v not in options:
            raise self.fail(key, "one of " + ", ".join(map(repr, options)), v)
        return v

    def object(self, key: str, default: Any = _MISSING) -> "Fields":
        v = self.get(key, default)
        if not isinstance(v, dict):
            raise self.fail(key, "a JSON object", v)
        return Fields(v, self.path, self.what, f"{self.prefix}.{key}" if self.prefix else key)

    def list(self, key: str, default: Any = _MISSING, min_len: int = 0, max_len: Optional[int] = None) -> Any:
        v = self.get(key, default)
        if v is None and default is None:
            return None
        if not isinstance(v, list) or len(v) < min_len or (max_len is not None and len(v) > max_len):
            size = f"{min_len}..{max_len}" if max_len is not None else f">= {min_len}"
            raise self.fail(key, f"a list of {size} items", v)
        return v

    def only(self, allowed: Iterable[str], ignore_private: bool = True) -> "Fields":
        """Refuse keys outside ``allowed`` (``_``-prefixed keys, such as diffusers' ``_class_name``, pass when
        ``ignore_private``)."""
        allowed = set(allowed)
        extra = sorted(k for k in self.doc if k not in allowed and not (ignore_private and str(k).startswith("_")))
        if extra:
            name = f"{self.prefix}.{extra[0]}" if self.prefix else extra[0]
            raise ValueError(f"{self.what}: {self.path!r}: unknown field(s) {', '.join(map(repr, extra))} "
                             f"(first: {name!r}); expected some of {', '.join(sorted(allowed))}")
        return self

    def exactly(self, names: Iterable[str]) -> "Fields":
        """Refuse unknown keys (:meth:`only`) and missing ones: every name must be present."""
        names = list(names)
        self.only(names, ignore_private=False)
        for k in names:
            if k not in self.doc:
                raise self.fail(k, "a value (every field of this config is required)")
        return self
