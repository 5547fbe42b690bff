"""benchmarks/bench_agreement.py handles errors and Ctrl-C as the command line does (critdiff.cli.guarded):
one line on stderr, exit 2 or 130, no traceback, and no output folder left by a run that did nothing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_agreement.py"


@pytest.fixture()
def bench():
    spec = importlib.util.spec_from_file_location("bench_agreement", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _stopped(*args, **kwargs):
    raise KeyboardInterrupt


def test_bench_agreement_stops_on_ctrl_c_without_a_traceback(bench, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(bench, "run_agreement", _stopped)
    assert bench.main(["--net", str(tmp_path / "net"), "--out", str(tmp_path / "out")]) == 130
    err = capsys.readouterr().err.strip()
    assert err == "bench_agreement: interrupted; finished results were kept (rerun the same command to resume)"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, fragment", [(["--seeds", "0"], "seeds"), (["--device", "cuda:9"], "device")])
def test_bench_agreement_bad_input_is_one_line(bench, monkeypatch, tmp_path, capsys, argv, fragment):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(bench, "run_agreement", _stopped)  # never reached
    assert bench.main(["--net", str(tmp_path / "net"), *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench_agreement: error: ") and fragment in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_bench_agreement_prints_the_cpu_time_it_logged(bench, demo_net, tmp_path, capsys):
    import json
    import re

    import numpy as np

    from critdiff.experiments.agreement import LOG

    argv = ["--net", str(demo_net), "--pool", "digits:size=8,n=40", "--seeds", "2", "--steps", "3", "--batch", "1",
            "--stencils", "ls:square:3", "--n-cal-traj", "1", "--n-cal-train", "8", "--n-boot", "50",
            "--threads", "1", "--no-progress", "--out", str(tmp_path / "out")]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    recs = [json.loads(line) for line in (tmp_path / "out" / LOG).read_text().splitlines()]
    cpu = np.mean([r["cpu_seconds"] for r in recs if r["type"] == "seed"])
    cal = next(r for r in recs if r["type"] == "stencil-calibration")["cpu_seconds"]
    m = re.search(r", ([0-9.]+) CPU s per seed .*calibration [0-9.]+ s, ([0-9.]+) CPU s;", out)
    assert m, out
    assert float(m.group(1)) == pytest.approx(cpu, abs=0.005) and float(m.group(2)) == pytest.approx(cal, abs=0.05)
