"""Executors (critdiff.experiments.executors): serial and Ray give the same records in the same order; a dead
worker's unit is retried (bounded) and then reported failed; Ray missing is a one-line usage error."""

import json
import os
import sys

import pytest

from critdiff.cli import main
from critdiff.experiments.guide import run as G
from critdiff.experiments.executors import ExecutorConfig, SerialExecutor, make_executor
from critdiff.experiments.context import Context

DATA = "textures:size=8,n=6"


def _setup():
    return {"offset": 100}


def _square(state, p):
    """A unit: its square plus the worker's state (the record must come from the worker's setup)."""
    return {"p": p, "y": p * p + state["offset"]}


def _die_once(state, p):
    """Kills its worker the first time unit 3 runs (a marker file remembers it), else a normal unit."""
    marker = state.get("marker")
    if p == 3 and marker and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return {"p": p}


def _always_die(state, p):
    if p == 1:
        os._exit(1)
    return {"p": p}


def _raise(state, p):
    raise ValueError(f"unit: bad payload {p}")


def _collect(executor, setup, work, n):
    out = []
    executor.run(setup, work, [(f"u{i}", i) for i in range(n)], lambda key, o: out.append((key, o)))
    return out


@pytest.mark.parametrize("kw, key", [(dict(executor="dask"), "executor"), (dict(executor="ray:"), "executor"),
                                     (dict(workers=0), "workers"), (dict(retries=-1), "retries")])
def test_executor_config_errors_name_the_key(kw, key):
    with pytest.raises(ValueError, match=f"^{key}:"):
        ExecutorConfig(**kw).validate()


def test_serial_runs_setup_once_and_keeps_order():
    calls = []

    def setup():
        calls.append(1)
        return {"offset": 100}

    out = _collect(SerialExecutor(), setup, _square, 5)
    assert calls == [1]
    assert [k for k, _ in out] == [f"u{i}" for i in range(5)]
    assert [o.record["y"] for _, o in out] == [i * i + 100 for i in range(5)]
    assert _collect(SerialExecutor(), lambda: calls.append(2), _square, 0) == [] and calls == [1]


def test_ray_missing_is_a_one_line_usage_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ValueError, match=r"^executor: .*pip install 'critdiff\[ray\]'"):
        make_executor(ExecutorConfig(executor="ray"))
    rc = main(["guide", "--model", "gaussian", "--data", DATA, "--n", "2", "--out", str(tmp_path / "g"),
               "--executor", "ray"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "pip install" in err[0]


# --- Ray ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_runtime():
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_matches_serial_in_order(ray_runtime):
    ray_out = _collect(make_executor(ExecutorConfig(executor="ray", workers=2)), _setup, _square, 7)
    serial_out = _collect(SerialExecutor(), _setup, _square, 7)
    assert [(k, o.record) for k, o in ray_out] == [(k, o.record) for k, o in serial_out]


def test_ray_retries_a_dead_worker_then_reports_failure(ray_runtime, tmp_path):
    marker = str(tmp_path / "died")
    out = _collect(make_executor(ExecutorConfig(executor="ray", workers=2, retries=2)),
                   lambda: {"marker": marker}, _die_once, 6)
    assert [o.record for _, o in out] == [{"p": i} for i in range(6)]
    assert os.path.exists(marker) and [o.attempts for _, o in out][3] == 2
    out = _collect(make_executor(ExecutorConfig(executor="ray", workers=2, retries=1)), _setup, _always_die, 3)
    assert [o.ok for _, o in out] == [True, False, True]
    assert out[1][1].attempts == 2 and out[1][1].error


def test_ray_unit_error_is_raised_in_the_driver(ray_runtime):
    with pytest.raises(ValueError, match="unit: bad payload"):
        _collect(make_executor(ExecutorConfig(executor="ray", workers=2)), _setup, _raise, 2)


def _guide_cfg():
    return G.GuideConfig(model="gaussian", data=DATA, n=6, batch=2, steps=6, sweep=2, calib_n=3, n_boot=50,
                         n_boot_set=10, width=2.5, tc_logsnr=0.5, sampler="ddpm", threads=1)


def _trial_records(folder):
    recs = [json.loads(line) for line in open(folder / "trials.jsonl")]
    for r in recs:
        r.pop("seconds", None)
    return recs


def test_guide_serial_and_ray_write_the_same_trials_and_summary(ray_runtime, tmp_path):
    from test_guide import MeanClassifier  # noqa: E402 - the same fixed classifier as the guide tests
    from critdiff.data import load

    clf = MeanClassifier(*load(DATA))
    cfg = _guide_cfg()
    a = G.run_guide(cfg, Context.quiet(tmp_path / "serial"), classifier=clf)
    b = G.run_guide(cfg, Context.quiet(tmp_path / "ray", executor=make_executor(ExecutorConfig(executor="ray", workers=2))), classifier=clf)
    ra, rb = _trial_records(tmp_path / "serial"), _trial_records(tmp_path / "ray")
    keys = [(r["arm"], r["start"]) for r in ra if r["type"] == "trial"]
    assert len(keys) == len(set(keys)) == 3 * (len(cfg.arms) - 1 + cfg.sweep)  # 3 batches x arms (sweep expanded)
    assert ra == rb  # the same records in the same order, samples bit-identical (float32 lists compared exactly)
    assert a.status == b.status == "complete"
    assert a.summary() | {"log": None} == b.summary() | {"log": None}
