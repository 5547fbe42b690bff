"""The main job end to end (quick settings): report, results.json, resume from cached sections."""

import json
import re

import pytest

from critdiff.experiments.demo import run_demo
from critdiff.report.folder import write_demo_report
from critdiff.experiments.context import Context

SECTIONS = ("textures", "digits", "theory-textures", "theory-stripes", "structure-factor", "probe-stripes",
            "probe-textures", "trained-net", "guidance", "agreement")
STATUS = re.compile(r"\[demo\] (\S+): (cached|running)")


def _status(logs):
    """``{section: 'cached' | 'running'}`` from the demo's log lines (each section logs exactly one)."""
    found = [m.groups() for m in map(STATUS.match, logs) if m]
    assert len(found) == len({k for k, _ in found}), found
    return dict(found)


@pytest.mark.slow
def test_quick_demo_writes_report_and_resumes(tmp_path):
    out = tmp_path / "demo"
    logs = []
    assert run_demo(Context(out, log=logs.append), quick=True) == out / "results.json"
    report = write_demo_report(out)
    assert _status(logs) == {k: "running" for k in SECTIONS}
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html
    assert 'src="sections/' not in html  # every figure embedded: the report is self-contained
    # the summary comes first: at most six numbered findings, each with a verdict and a link to its section
    summary = html[html.index("<div class='summary'>"):html.index("<h2>Contents</h2>")]
    items = re.findall(r"<li>(.*?)</li>", summary)
    assert 1 <= len(items) <= 6
    for item in items:
        verdict = re.search(r"&mdash; <b>(.*?)</b>", item).group(1)
        assert verdict in ("holds", "partly", "does not hold")
        anchor = re.search(r"href='#([^']+)'", item).group(1)
        assert f"<h2 id='{anchor}'>" in html
    res_text = (out / "results.json").read_text()
    res = json.loads(res_text)
    assert set(SECTIONS) <= set(res["sections"])
    for key in SECTIONS:
        assert isinstance(res["sections"][key], dict) and len(res["sections"][key]) > 1, key
    # the second run computes nothing: every section comes from its cache and the report is the same
    logs.clear()
    run_demo(Context(out, log=logs.append), quick=True)
    assert _status(logs) == {k: "cached" for k in SECTIONS}
    assert write_demo_report(out).read_text() == html
    assert (out / "results.json").read_text() == res_text
