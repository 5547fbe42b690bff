"""One self-contained HTML report: a summary of findings, a table of contents, then sections with text,
tables and PNG figures embedded as data URIs.

A :class:`Section` opens with the one question it answers and lists its ``findings`` (plain sentences with
numbers); the report's summary box collects every section's findings, unless the report is given its own
numbered summary (the demo's: :mod:`critdiff.report.demo_summary`), in which case each section lists its
findings under its heading. Numbers are shown with 4
significant digits (:func:`critdiff.report.fmt.num`); full precision stays in ``results.json``.
"""

from __future__ import annotations

import base64
import html as _html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import atomic_write_text
from .fmt import num

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; } th { background: #f0f0f0; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; margin: 0.4em 0; } .note { color: #555; font-size: 0.92em; }
.question { font-style: italic; color: #333; }
.summary { background: #f5f8fc; border: 1px solid #9ab; border-radius: 6px; padding: 0.6em 1.2em; }
.summary li { margin: 0.3em 0; } .summary h2 { margin-top: 0.4em; }
code { background: #f4f4f4; padding: 0 3px; }
"""


@dataclass
class Section:
    """A report section. ``html`` may reference PNG files by name (``<img src="x.png">``) relative to
    ``folder`` (a path relative to the report's folder); they are embedded when the report is written.
    ``question``: the one sentence saying what the section answers; ``findings``: sentences for the summary."""

    key: str
    title: str
    html: str
    question: str = ""
    findings: list[str] = field(default_factory=list)
    folder: str = "."


def table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """An HTML table from a list of dicts; numbers with 4 significant digits (lists of numbers too)."""
    if not rows:
        return "<p class='note'>(no rows)</p>"
    columns = columns or list(rows[0])
    head = "".join(f"<th>{_html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_html.escape(num(r.get(c)))}</td>" for c in columns) + "</tr>"
                   for r in rows)
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


def _summary(sections: list[Section]) -> str:
    items = "".join(f"<li><b>{_html.escape(s.title)}</b>: {_html.escape(f)}</li>"
                    for s in sections for f in s.findings)
    if not items:
        return ""
    return f"<div class='summary'><h2 id='summary'>Summary of findings</h2><ul>{items}</ul></div>"


def _numbered_summary(findings: list, note: str) -> str:
    """An ordered list of findings (``text``, ``verdict``, ``key``), each linking to its section."""
    items = "".join(f"<li>{_html.escape(f.text)} &mdash; <b>{_html.escape(f.verdict)}</b> "
                    f"(<a href='#{_html.escape(f.key)}'>section</a>)</li>" for f in findings)
    return (f"<div class='summary'><h2 id='summary'>Summary: the paper's claims on this run</h2><ol>{items}</ol>"
            f"<p class='note'>{_html.escape(note)}</p></div>")


def _section_html(s: Section, out: Path, own_findings: bool = False) -> str:
    question = f"<p class='question'>{_html.escape(s.question)}</p>" if s.question else ""
    facts = ("<ul class='note'>" + "".join(f"<li>{_html.escape(f)}</li>" for f in s.findings) + "</ul>"
             if own_findings and s.findings else "")
    return f"<h2 id='{s.key}'>{_html.escape(s.title)}</h2>\n{question}{facts}{_embed_images(s.html, out / s.folder)}"


def render_html(out_dir: "str | Path", title: str, sections: list[Section], meta: dict[str, Any] | None = None,
                summary: "list | None" = None, summary_note: str = "") -> str:
    """The report document (figures read from ``out_dir`` and embedded). ``summary``: numbered findings
    (objects with ``text``, ``verdict``, ``key``) that replace the collected section findings."""
    out = Path(out_dir)
    toc = "".join(f"<li><a href='#{s.key}'>{_html.escape(s.title)}</a></li>" for s in sections)
    body = "".join(_section_html(s, out, own_findings=summary is not None) for s in sections)
    meta_html = ""
    if meta:
        meta_html = "<p class='note'>" + " &middot; ".join(
            f"{_html.escape(str(k))}: {_html.escape(num(v))}" for k, v in meta.items()) + "</p>"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{_html.escape(title)}</h1>{meta_html}"
            f"{_summary(sections) if summary is None else _numbered_summary(summary, summary_note)}"
            f"<h2>Contents</h2><ul>{toc}</ul>{body}</body></html>\n")


def write_report(out_dir: "str | Path", title: str, sections: list[Section], meta: dict[str, Any] | None = None) -> Path:
    """Write ``out_dir/report.html`` (self-contained); return its path."""
    return atomic_write_text(Path(out_dir) / "report.html", render_html(out_dir, title, sections, meta))
