"""The main job end to end (quick settings): report, results.json, resume from cached sections."""

import json

import pytest

from critdiff.experiments.demo import run_demo


@pytest.mark.slow
def test_quick_demo_writes_report_and_resumes(tmp_path):
    out = tmp_path / "demo"
    logs = []
    report = run_demo(out, quick=True, log=logs.append)
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html
    assert 'src="sections/' not in html  # every figure embedded: the report is self-contained
    res = json.loads((out / "results.json").read_text())
    assert {"textures", "digits", "theory-textures", "theory-stripes", "structure-factor", "probe-stripes", "probe-textures", "trained-net",
            "guidance"} <= set(res["sections"])
    logs.clear()
    run_demo(out, quick=True, log=logs.append)
    assert all("cached" in line for line in logs if ": " in line and "wrote" not in line)
