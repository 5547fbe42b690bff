"""benchmarks/gpu_check.py: without CUDA it exits 0 saying so; its dry run (``--device cpu``: every path twice on
the CPU) runs end to end, so the script cannot rot on machines without a GPU (the default suite runs the paths
that take under a second, about 10 s; ``slow`` runs all, about 20 s); a path whose device result differs from
the CPU's is reported and makes the exit status non-zero."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _env() -> dict:
    return dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1",
                PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the script would run the checks")
def test_gpu_check_without_cuda_exits_zero():
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True,
                         env=_env(), timeout=300)
    assert res.returncode == 0, res.stderr
    assert "no CUDA device" in res.stdout


QUICK = "patch,empirical,gaussian,theory,spectral probe impulse,euler,guidance,unet,cli theory"


def _dry_run(only: str = "") -> None:
    prefixes = tuple(p for p in only.split(",") if p)
    n = sum(1 for name, _, _ in _module().CHECKS if not prefixes or name.startswith(prefixes))
    res = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--only", only], capture_output=True,
                         text=True, env=_env(), timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{n}/{n} paths agree on cpu" in res.stdout and "ERROR" not in res.stdout


def test_gpu_check_dry_run_of_the_quick_paths():
    _dry_run(QUICK)


@pytest.mark.slow
def test_gpu_check_dry_run_of_every_path():
    _dry_run()


def test_gpu_check_reports_a_mismatch_and_an_error(monkeypatch, capsys):
    mod = _module()
    monkeypatch.setattr(mod, "CHECKS", [
        ("same", lambda d: torch.ones(3), 1e-6),
        ("differs", lambda d: torch.ones(3) * (1.0 if d == "cpu" else 1.01), 1e-6),
        ("raises", lambda d: torch.ones(3) if d == "cpu" else 1 / 0, 1e-6)])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # only the "no CUDA device" early exit reads it
    assert mod.main(["--device", "cuda:0"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "ERROR ZeroDivisionError" in out and "1/3 paths agree" in out
    assert mod.main(["--device", "cpu", "--only", "nothing"]) == 2
