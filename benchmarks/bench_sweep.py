"""Benchmark: a 2-worker local Ray sweep against the serial sweep on the same grid (docs/scale.md).

The sweep: 8 probe runs of a few seconds each (patch model on 16 x 16 textures with the branch linear response,
2 stencils x 4 seeds, one torch thread each): trial-sized units, as the issue asks. Timed:

- ``serial``: ``run_sweep`` with the serial executor;
- ``ray``: the same sweep with ``RayExecutor(2)`` on a local runtime started beforehand (``ray_start_s``: its
  start, timed apart); ``speedup = serial / ray``;
- ``overhead_per_task_ms``: 40 units that do nothing through the started Ray executor, wall time per unit
  (submission, scheduling, the record's round trip; actor start included once).

The machine is shared: ``loadavg`` (os.getloadavg() before and after) says how loaded it was. Writes
``benchmarks/results/bench_sweep.json`` and prints a table. Run: ``PYTHONPATH=src python benchmarks/bench_sweep.py``.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import ray
import torch

from critdiff.experiments.context import Context
from critdiff.experiments.executors import SerialExecutor
from critdiff.experiments.executors.ray import RayExecutor
from critdiff.experiments.sweep import run_sweep

SPEC = {"probe": {"model": "patch", "data": "textures:size=16,per_class=10", "steps": 16, "n": 8, "times": 4,
                  "homogeneous": 0, "chi": False, "linear": 12, "linear_n": 2, "n_boot": 50, "threads": 1,
                  "grid": {"stencil": ["square:3", "square:5"], "seed": [0, 1, 2, 3]}}}
N_NOOP = 40


def _noop_setup():
    return None


def _noop(state, payload):
    return {"p": payload}


def _timed_sweep(executor) -> float:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        result = run_sweep(SPEC, Context.quiet(out, executor=executor))
        seconds = time.perf_counter() - t0
    if result.status != "complete":
        raise RuntimeError("bench_sweep: the sweep did not complete")
    return seconds


def main() -> dict:
    torch.set_num_threads(1)
    load0 = os.getloadavg()
    serial = _timed_sweep(SerialExecutor())
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray_start = time.perf_counter() - t0
    executor = RayExecutor(2)
    ray_s = _timed_sweep(executor)
    t0 = time.perf_counter()
    executor.run(_noop_setup, _noop, [(str(i), i) for i in range(N_NOOP)], lambda k, o: None)
    noop = time.perf_counter() - t0
    ray.shutdown()
    out = {"units": 8, "workers": 2, "serial_s": serial, "ray_s": ray_s, "speedup": serial / ray_s,
           "ray_start_s": ray_start, "overhead_per_task_ms": 1e3 * noop / N_NOOP, "noop_units": N_NOOP,
           "loadavg_before": list(load0), "loadavg_after": list(os.getloadavg()), "cpus": os.cpu_count(),
           "ray": ray.__version__, "torch": torch.__version__, "python": platform.python_version(), "spec": SPEC}
    path = Path(__file__).parent / "results" / "bench_sweep.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{'serial s':>9} {'ray(2) s':>9} {'speedup':>8} {'ray start s':>12} {'overhead/task ms':>17} {'loadavg':>16}")
    print(f"{serial:9.2f} {ray_s:9.2f} {serial / ray_s:8.2f} {ray_start:12.2f} {1e3 * noop / N_NOOP:17.1f} "
          f"{' '.join(f'{v:.2f}' for v in load0):>16}")
    return out


if __name__ == "__main__":
    main()
