"""Results round-trip through JSON exactly; the demo report re-renders from results.json alone."""

import json

import pytest

from critdiff.report.folder import write_demo_report
from critdiff.experiments.result import result_from_record
from critdiff.experiments.sample import SampleConfig, SampleResult, run_sample
from critdiff.experiments.context import Context


def test_sample_result_round_trips_and_report_re_renders(tmp_path):
    cfg = SampleConfig(model="gaussian", data="stripes:size=8,n=20,wavelength=4", steps=4, n=3, sampler="ddpm")
    res = run_sample(cfg, Context(tmp_path / "s", progress=False))
    assert isinstance(res, SampleResult)
    again = SampleResult.from_json(res.to_json())
    assert again == res and again.config == cfg
    assert result_from_record(json.loads(json.dumps(res.record()))) == res
    run_json = json.loads((tmp_path / "s" / "run.json").read_text())
    assert SampleResult.from_dict(run_json) == res

    doc = {"title": "t", "meta": {"x": 0.123456789}, "sections": {
        "one": {**res.record(), "folder": "s", "render": {"title": "Samples", "blurb": "b"}}}}
    (tmp_path / "results.json").write_text(json.dumps(doc))
    first = write_demo_report(tmp_path).read_text()
    second = write_demo_report(tmp_path).read_text()
    assert first == second and "data:image/png;base64," in first
    # the demo's summary is its numbered claims (none here: no section of theirs ran); section findings stay in sections
    assert "Summary: the paper's claims on this run" in first and "0.1235" in first and "0.123456789" not in first


def test_report_of_a_folder_without_results_is_a_usage_error(tmp_path, capsys):
    from critdiff.cli import main

    assert main(["report", str(tmp_path)]) == 2
    assert "results.json" in capsys.readouterr().err


TINY = {  # every command that writes a result, at the smallest sizes that run
    "sample": ["sample", "--model", "gaussian", "--data", "stripes:size=8,n=20,wavelength=4", "--steps", "4", "--n", "2"],
    "theory": ["theory", "--data", "stripes:size=8,n=20,wavelength=4", "--stencil", "square:3"],
    "probe": ["probe", "--model", "patch", "--data", "stripes:size=8,n=20,wavelength=4", "--stencil", "square:3",
              "--n", "4", "--steps", "8", "--times", "3", "--linear", "6", "--linear-n", "2", "--homogeneous", "5",
              "--n-boot", "20", "--json"],
    "train": ["train", "--data", "digits:size=8,n=32", "--steps", "4", "--batch", "8", "--width", "8",
              "--channel-mult", "1,2", "--threads", "1"],
}


@pytest.mark.parametrize("command", sorted(TINY))
def test_every_commands_result_reloads_through_critdiff_report(command, tmp_path, capsys):
    """``OUT/result.json`` (one format, Result.record) is written by the command and ``critdiff report OUT``
    renders OUT/report.html from it alone (the guide's and the sweep's: tests/test_guide.py, tests/test_sweep.py)."""
    from critdiff.cli import main

    out = tmp_path / command
    assert main([*TINY[command], "--out", str(out)]) == 0, capsys.readouterr().err
    rec = json.loads((out / "result.json").read_text())
    assert rec["kind"] == command and result_from_record(rec).to_dict() == rec["result"]
    (out / "report.html").unlink(missing_ok=True)
    assert main(["report", str(out)]) == 0, capsys.readouterr().err
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
