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
    stored = json.loads((tmp_path / "s" / "result.json").read_text())
    assert stored["kind"] == "sample" and SampleResult.from_dict(stored["result"]) == res
    assert not (tmp_path / "s" / "run.json").exists()  # one record per run: result.json

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


DATA = "stripes:size=8,n=20,wavelength=4"
COMMANDS = {  # every command that writes a result, at the smallest sizes that run (guide: no classifier)
    "sample": ["sample", "--model", "gaussian", "--data", DATA, "--steps", "4", "--n", "2"],
    "theory": ["theory", "--data", DATA, "--stencil", "square:3"],
    "probe": ["probe", "--model", "gaussian", "--data", DATA, "--steps", "3", "--n", "2", "--times", "3",
              "--homogeneous", "0", "--linear", "0", "--no-chi", "--n-boot", "20", "--json"],
    "train": ["train", "--data", "digits:size=8,n=32", "--steps", "4", "--batch", "8", "--width", "8",
              "--channel-mult", "1,2", "--threads", "1"],
    "train-classifier": ["train-classifier", "--data", "digits:size=8,n=40", "--steps", "2", "--batch", "16",
                         "--width", "8", "--threads", "1"],
    "guide": ["guide", "--model", "gaussian", "--data", "digits:size=8,n=40", "--n", "2", "--batch", "2", "--steps",
              "3", "--arms", "none,tc", "--tc-logsnr", "0.5"],
}
SWEEP = """[probe]
model = "gaussian"
data = "digits:size=8,n=40"
steps = 3
n = 2
times = 3
homogeneous = 0
linear = 0
chi = false
n_boot = 20
threads = 1
"""


def _library_run(kind: str, out, net) -> None:
    """The kinds without a command of their own (demo sections, benchmarks) and the sweep (its spec is a file)."""
    from critdiff.cli import main

    if kind == "sweep":
        spec = out.parent / "spec.toml"
        spec.write_text(SWEEP)
        assert main(["sweep", str(spec), "--out", str(out)]) == 0
    elif kind == "structure-factor":
        from critdiff.experiments.structure_section import StructureConfig, run_structure

        run_structure(StructureConfig(data=DATA, steps=6, ensemble=8, samplers=("ode",)), Context.quiet(out))
    elif kind == "net-criticality":
        from critdiff.experiments.net_criticality import demo_config, run_net_criticality

        run_net_criticality(demo_config(True, net).replace(data="digits:size=8"), Context.quiet(out))
    else:
        from critdiff.experiments.agreement import AgreementConfig, run_agreement

        run_agreement(AgreementConfig(net=net, pool="digits:size=8,n=20", seeds=1, steps=3, batch=1,
                                      stencils=("square:3",), n_cal_traj=1, n_cal_train=4, n_boot=20), Context.quiet(out))


def test_every_kind_has_a_run_here():
    from critdiff.experiments.kinds import KINDS

    assert set(KINDS) == set(COMMANDS) | {"sweep", "structure-factor", "net-criticality", "agreement"}


@pytest.mark.parametrize("kind", ["sample", "theory", "probe", "train", "train-classifier", "guide", "sweep",
                                  "structure-factor", "agreement",
                                  # 12 CPU-s; its result.json reload is also in tests/test_net_criticality.py
                                  pytest.param("net-criticality", marks=pytest.mark.slow)])
def test_every_kinds_result_reloads_through_critdiff_report(kind, tmp_path, capsys, request):
    """``OUT/result.json`` (one format, Result.record) is written by every kind (each command; the library for the
    kinds without one) and ``critdiff report OUT`` renders OUT/report.html from it alone."""
    from critdiff.cli import main
    from critdiff.experiments.kinds import result_type

    out = tmp_path / kind
    if kind in COMMANDS:
        assert main([*COMMANDS[kind], "--out", str(out)]) == 0, capsys.readouterr().err
    else:
        net = request.getfixturevalue("demo_net") if kind in ("net-criticality", "agreement") else None
        _library_run(kind, out, net)
    rec = json.loads((out / "result.json").read_text())
    assert rec["kind"] == kind and set(rec) == {"kind", "result"}
    result = result_from_record(rec)
    assert isinstance(result, result_type(kind)) and json.loads(json.dumps(result.record())) == rec
    (out / "report.html").unlink(missing_ok=True)
    capsys.readouterr()
    assert main(["report", str(out)]) == 0, capsys.readouterr().err
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
