"""One self-contained HTML report: sections with text, tables and PNG figures embedded as data URIs.

Every number a section shows is also in its ``results`` dict, written to ``results.json``.
"""

from __future__ import annotations

import base64
import html as _html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import atomic_write_text, save_json

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; } th { background: #f0f0f0; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; margin: 0.4em 0; } .note { color: #555; font-size: 0.92em; }
code { background: #f4f4f4; padding: 0 3px; }
"""


@dataclass
class Section:
    """A report section: ``html`` may reference PNG files by name (``<img src="x.png">``) relative to
    the output folder; they are embedded when the report is written."""

    key: str
    title: str
    html: str
    results: dict[str, Any] = field(default_factory=dict)


def table(rows: list[dict[str, Any]], columns: list[str] | None = None, floatfmt: str = "{:.4g}") -> str:
    """An HTML table from a list of dicts."""
    if not rows:
        return "<p class='note'>(no rows)</p>"
    columns = columns or list(rows[0])

    def fmt(v):
        if isinstance(v, float):
            return floatfmt.format(v)
        return _html.escape("" if v is None else str(v))

    head = "".join(f"<th>{_html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _embed_images(fragment: str, folder: Path) -> str:
    def repl(m: re.Match) -> str:
        src = m.group(1)
        if src.startswith("data:"):
            return m.group(0)
        p = (folder / src).resolve()
        if not p.exists():
            raise FileNotFoundError(f"report: figure {src!r} referenced but not found in {folder}")
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    return re.sub(r'src="([^"]+\.png)"', repl, fragment)


def write_report(out_dir: "str | Path", title: str, sections: list[Section], meta: dict[str, Any] | None = None) -> Path:
    """Write ``out_dir/report.html`` (self-contained) and ``out_dir/results.json``; return the HTML path."""
    out = Path(out_dir)
    toc = "".join(f"<li><a href='#{s.key}'>{_html.escape(s.title)}</a></li>" for s in sections)
    body = "".join(f"<h2 id='{s.key}'>{_html.escape(s.title)}</h2>\n{_embed_images(s.html, out)}" for s in sections)
    meta_html = ""
    if meta:
        meta_html = "<p class='note'>" + " &middot; ".join(f"{_html.escape(str(k))}: {_html.escape(str(v))}" for k, v in meta.items()) + "</p>"
    doc = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_html.escape(title)}</title>"
           f"<style>{_STYLE}</style></head><body><h1>{_html.escape(title)}</h1>{meta_html}<ul>{toc}</ul>{body}</body></html>\n")
    save_json(out / "results.json", {"meta": meta or {}, "sections": {s.key: s.results for s in sections}})
    return atomic_write_text(out / "report.html", doc)
