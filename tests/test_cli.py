"""The command line: outputs of `sample`, one-line errors with exit status 2, no tracebacks."""

import json
import subprocess
import sys

import pytest

from critdiff.cli import main


def test_sample_writes_grids_and_record(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["sample", "--model", "gaussian", "--data", "stripes:size=8,n=50,wavelength=4", "--steps", "5",
               "--n", "4", "--sampler", "ddpm", "--out", str(out)])
    assert rc == 0
    for f in ("samples.png", "trajectory.png", "result.json", "samples.safetensors"):
        assert (out / f).stat().st_size > 0
    rec = json.loads((out / "result.json").read_text())["result"]
    assert rec["config"]["sampler"] == "ddpm" and rec["nfe_per_sample"] == 5
    assert rec["shape"] == [1, 8, 8]


def test_sample_is_reproducible(tmp_path):
    from safetensors.torch import load_file

    args = ["sample", "--model", "patch", "--data", "stripes:size=8,n=20", "--stencil", "square:3", "--steps", "4",
            "--n", "3", "--sampler", "euler-maruyama", "--seed", "5"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    a = load_file(str(tmp_path / "a" / "samples.safetensors"))["samples"]
    b = load_file(str(tmp_path / "b" / "samples.safetensors"))["samples"]
    assert (a == b).all()


@pytest.mark.parametrize(
    "args, expect",
    [
        (["--data", "nope"], "data: unknown data set"),
        (["--data", "digits", "--stencil", "square:4"], "stencil:"),
        (["--data", "digits", "--stencil", "ring:3"], "stencil: unknown kind"),
        (["--data", "digits", "--schedule", "cubic"], "schedule: unknown schedule"),
        (["--data", "digits", "--sampler", "rk4"], "sampler: unknown sampler"),
        (["--data", "digits", "--model", "unet"], "model: unknown model"),
        (["--data", "digits", "--steps", "0"], "steps"),
        (["--data", "npy:/does/not/exist.npy"], "data:"),
        (["--data", "digits:size=4", "--stencil", "square:7"], "stencil"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path, capsys, args, expect):
    rc = main(["sample", "--out", str(tmp_path / "x"), "--n", "2", "--steps", "2"] + args)
    err = capsys.readouterr().err
    assert rc == 2
    assert expect in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_console_script_exit_status_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "critdiff.cli", "sample", "--data", "nope", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "data:" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "critdiff.cli", "sample"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--out" in proc.stderr
