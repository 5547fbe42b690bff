"""critdiff sweep: spec errors are one-line exit-2 errors naming the key; a rerun skips finished units; Ray gives the
same rows as serial; a Ray worker killed mid-run loses and doubles nothing (slow)."""

import csv
import json
import os
import signal
import threading
import time

import pytest

from critdiff.cli import main
from critdiff.experiments.executors import ExecutorConfig, make_executor
from critdiff.experiments.sweep import SweepResult, run_sweep, sweep_units
from critdiff.experiments.context import Context

DATA = "textures:size=8,n=6"
PROBE = {"data": DATA, "steps": 6, "n": 4, "times": 3, "homogeneous": 0, "chi": False, "linear": 0, "n_boot": 20,
         "threads": 1, "grid": {"model": ["gaussian", "patch"], "seed": [0, 1]}}
GUIDE = {"model": "gaussian", "data": DATA, "n": 4, "batch": 2, "steps": 6, "arms": ["tc", "random"],
         "tc_logsnr": 0.5, "width": 2.5, "threads": 1, "grid": {"height": [2.0, 4.0]}}
SPEC = {"probe": PROBE, "guide": GUIDE}

TOML = """
[probe]
data = "textures:size=8,n=6"
steps = 6
n = 4
times = 3
homogeneous = 0
chi = false
linear = 0
n_boot = 20
threads = 1
[probe.grid]
model = ["gaussian", "patch"]
seed = [0, 1]
"""


def _rows_without_time(result):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in result.rows]


@pytest.mark.parametrize("text, key", [
    ("[probe]\nstepz = 3\n", "probe.stepz"),
    ("[probe]\ndata = 'x'\n[probe.grid]\nseed = 3\n", "probe.grid.seed"),
    ("[probe]\n[probe.grid]\nnope = [1]\n", "probe.grid.nope"),
    ("[train]\nsteps = 3\n", r"\[train\]"),
    ("[probe]\nmodel = 'patch'\ndata = 'textures:size=8,n=6'\nsteps = 0\n", "probe: steps"),
    ("[guide]\nclassifier = 3\n", "guide.classifier"),
    ("[probe\n", "spec.toml is not valid TOML"),
])
def test_spec_errors_are_one_line_exit_2_naming_the_key(tmp_path, capsys, text, key):
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("critdiff: error: spec")
    import re

    assert re.search(key, err[0]), err[0]


def test_units_are_the_grid_in_order_with_distinct_keys():
    units = sweep_units(SPEC)
    assert [(u.kind, u.axes) for u in units] == (
        [("probe", {"model": m, "seed": s}) for m in ("gaussian", "patch") for s in (0, 1)]
        + [("guide", {"height": h}) for h in (2.0, 4.0)])
    assert len({u.key for u in units}) == 6


def test_sweep_writes_table_and_a_rerun_skips_finished_units(tmp_path):
    result = run_sweep(SPEC, Context.quiet(tmp_path))
    assert result.status == "complete" and len(result.rows) == 6
    assert all(r["status"] == "ok" for r in result.rows)
    with open(tmp_path / "sweep.csv") as fh:
        csv_rows = list(csv.DictReader(fh))
    assert [r["key"] for r in csv_rows] == [r["key"] for r in result.rows]
    for r in result.rows:  # each probe row holds what that unit's own result file says
        if r["kind"] == "probe":
            probe = json.loads((tmp_path / "units" / r["key"] / "result.json").read_text())["result"]
            assert r["logsnr_c"] == probe["combined"]["logsnr_c"]
    again = run_sweep(SPEC, Context.quiet(tmp_path))
    log = [json.loads(line) for line in open(tmp_path / "sweep.jsonl")]
    assert sum(r["type"] == "unit" for r in log) == 6  # nothing recomputed, nothing doubled
    assert again == result
    assert SweepResult.from_json(result.to_json()) == result


def test_cli_sweep_report(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(TOML)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o")]) == 0
    html = (tmp_path / "o" / "report.html").read_text()
    assert "4 of 4 runs finished" in html


@pytest.fixture(scope="module")
def ray_runtime():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_sweep_gives_the_serial_rows(ray_runtime, tmp_path):
    serial = run_sweep(SPEC, Context.quiet(tmp_path / "s"))
    ray = run_sweep(SPEC, Context.quiet(tmp_path / "r", executor=make_executor(ExecutorConfig(executor="ray", workers=2))))
    assert _rows_without_time(ray) == _rows_without_time(serial)


def _worker_pids():
    """Process ids of this user's Ray sweep workers (their process title names the actor)."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                cmd = open(f"/proc/{d}/cmdline", "rb").read()
            except OSError:
                continue
            if b"UnitWorker" in cmd:
                pids.append(int(d))
    return pids


@pytest.mark.slow
def test_killing_a_ray_worker_mid_sweep_loses_and_doubles_nothing(ray_runtime, tmp_path):
    spec = {"probe": {**PROBE, "grid": {"model": ["gaussian", "patch"], "seed": list(range(4))}}}
    killed = []

    def killer():
        log = tmp_path / "sweep.jsonl"
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            if log.exists() and log.read_text().count('"type":"unit"') >= 1 and _worker_pids():
                pid = _worker_pids()[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.05)

    t = threading.Thread(target=killer)
    t.start()
    result = run_sweep(spec, Context.quiet(tmp_path, executor=make_executor(ExecutorConfig(executor="ray", workers=2))))
    t.join()
    assert killed, "no worker was killed"
    log = [json.loads(line) for line in open(tmp_path / "sweep.jsonl")]
    keys = [r["key"] for r in log if r["type"] == "unit"]
    assert sorted(keys) == sorted(u.key for u in sweep_units(spec))  # each unit exactly once
    assert result.status == "complete" and all(r["status"] == "ok" for r in result.rows)
    serial = run_sweep(spec, Context.quiet(tmp_path / "serial"))
    assert _rows_without_time(result) == _rows_without_time(serial)
