"""``--device`` on every command (issue #15 point 2).

Which commands take ``--device`` (the exceptions are listed with their reason, so a new command has to decide);
a device this machine lacks is a one-line error with exit 2 on every command, and the ``--out`` folder is left
untouched; the device reaches the models (their constructors are given it) and the computation (a run on a
CUDA device that torch cannot initialise fails inside torch instead of finishing on the CPU); on a machine
with CUDA, a command run with ``--device cuda`` gives the CPU result to float32 rounding.
"""

import json

import pytest
import torch

from critdiff.cli import COMMANDS, build_parser, main

# commands without --device, and why
NO_DEVICE = {
    "report": "re-renders results.json; computes nothing",
    "sweep": "each unit's device is a field of the spec (its [probe]/[guide] table)",
}
DATA = ["--data", "digits:size=8,n=40"]
ARGS = {  # the smallest arguments that pass each command's own checks
    "sample": ["--model", "gaussian", *DATA], "probe": ["--model", "gaussian", *DATA],
    "guide": ["--model", "gaussian", *DATA], "train": [], "train-classifier": [],
    "theory": ["--data", "stripes:size=8,n=20,wavelength=4"], "demo": ["--quick"],
    "guide-config": ["--model", "diffusers:nowhere", "--tc-logsnr", "0"], "sweep": [],
}
HAS_OUT = ("sample", "probe", "guide", "train", "train-classifier", "theory", "demo", "sweep")
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _flags(command: str) -> set:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {s for a in sub.choices[command]._actions for s in a.option_strings}


def _argv(command: str, device: str, tmp_path) -> list:
    """``command`` with its smallest arguments on ``device`` (sweep: in its spec) and ``--out`` in ``tmp_path``."""
    argv = [command, *ARGS[command]]
    if command == "sweep":
        spec = tmp_path / "spec.toml"
        spec.write_text(f'[probe]\nmodel = "gaussian"\ndata = "digits:size=8,n=40"\nn = 2\nsteps = 4\ntimes = 3\n'
                        f'linear = 0\nchi = false\nhomogeneous = 0\ndevice = "{device}"\n')
        argv.append(str(spec))
    else:
        argv += ["--device", device]
    return argv + (["--out", str(tmp_path / "out")] if command in HAS_OUT else [])


def test_every_command_is_covered():
    assert set(ARGS) == set(COMMANDS) - {"report"}


@pytest.mark.parametrize("command", COMMANDS)
def test_device_flag(command):
    assert ("--device" in _flags(command)) == (command not in NO_DEVICE), NO_DEVICE.get(command, "needs --device")


@pytest.mark.parametrize("device", ["cuda", "cuda:7", "mps", "nonsense"])
@pytest.mark.parametrize("command", sorted(ARGS))
def test_unavailable_device_is_a_one_line_error(command, device, capsys, monkeypatch, tmp_path):
    """No CUDA (``cuda``), one CUDA device (``cuda:7``), no MPS, text torch does not parse: exit 2, one line
    naming the device, and no ``--out`` folder (no lock file) left behind."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: device == "cuda:7")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1 if device == "cuda:7" else 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    code = main(_argv(command, device, tmp_path))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "device" in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind, module, cls", [("empirical", "critdiff.scores.empirical", "EmpiricalScore"),
                                               ("patch", "critdiff.scores.patch", "PatchScore"),
                                               ("gaussian", "critdiff.scores.gaussian", "GaussianScore")])
def test_analytic_models_are_built_on_the_run_device(kind, module, cls, monkeypatch):
    import importlib

    from critdiff.experiments.config import RunConfig
    from critdiff.experiments.models import load_model

    mod = importlib.import_module(module)
    real, seen = getattr(mod, cls), {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(mod, cls, spy)
    loaded = load_model(RunConfig(model=kind, data="digits:size=8,n=20", device="cpu"))
    assert seen["device"] == torch.device("cpu")
    assert loaded.images.device.type == "cpu"  # the data stay where the theory, figures and metrics read them


@pytest.mark.parametrize("kind, target", [("net", "critdiff.nets.net_denoiser.load_net"),
                                          ("diffusers", "critdiff.integrations.diffusers.loading.load_diffusers_spec")])
def test_trained_models_are_loaded_on_the_run_device(kind, target, monkeypatch):
    import importlib

    from critdiff.experiments.config import RunConfig
    from critdiff.experiments.models import build_model

    module, name = target.rsplit(".", 1)
    seen = {}
    monkeypatch.setattr(importlib.import_module(module), name, lambda *a, **kw: seen.update(kw) or "model")
    assert build_model(RunConfig(model=f"{kind}:somewhere", device="cpu")) == "model"
    assert seen["device"] == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the command would run")
@pytest.mark.parametrize("command", ["sample", "probe", "guide", "theory", "train", "train-classifier", "demo", "sweep"])
def test_the_device_reaches_the_computation(command, monkeypatch, tmp_path):
    """With torch told that one CUDA device exists (it has none it can initialise), ``--device cuda`` passes
    the checks, so the command must fail where it first puts a tensor on the device. A command that ignored
    the device would finish on the CPU instead. (sweep: the unit's device, from its spec.)"""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises((AssertionError, RuntimeError), match="CUDA|cuda"):
        main(_argv(command, "cuda", tmp_path))


# --- on a machine with CUDA: the same numbers as on the CPU ------------------------------------------------
def _samples(tmp_path, device: str, dtype: str) -> torch.Tensor:
    from safetensors.torch import load_file

    out = tmp_path / f"{device.replace(':', '')}-{dtype}"
    assert main(["sample", "--model", "patch", "--data", "digits:size=8,n=40", "--stencil", "square:3", "--steps",
                 "6", "--n", "4", "--sampler", "ddpm", "--dtype", dtype, "--device", device, "--out", str(out)]) == 0
    return load_file(str(out / "samples.safetensors"))["samples"]


@CUDA
@pytest.mark.parametrize("dtype, tol", [("float32", 1e-3), ("float64", 1e-9)])  # float32: the R6.3 bound
def test_sample_on_cuda_matches_the_cpu(tmp_path, dtype, tol):
    cpu, gpu = _samples(tmp_path, "cpu", dtype), _samples(tmp_path, "cuda", dtype)
    assert gpu.device.type == "cpu" and (gpu - cpu).abs().max() <= tol


def _json_of(argv: list, capsys) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@CUDA
def test_theory_on_cuda_matches_the_cpu(tmp_path, capsys):
    argv = ["theory", "--data", "stripes:size=8,n=20,wavelength=4", "--json"]
    cpu = _json_of(argv + ["--out", str(tmp_path / "a")], capsys)
    gpu = _json_of(argv + ["--out", str(tmp_path / "b"), "--device", "cuda"], capsys)
    assert gpu["found"] == cpu["found"] and gpu["logsnr_c"] == pytest.approx(cpu["logsnr_c"], abs=1e-8)


@CUDA
def test_guide_on_cuda_matches_the_cpu(tmp_path):
    def trials(device: str) -> list:
        out = tmp_path / device
        assert main(["guide", "--model", "gaussian", "--data", "digits:size=8,n=60", "--n", "4", "--batch", "4",
                     "--steps", "6", "--arms", "none,tc,random", "--tc-logsnr", "0.5", "--device", device,
                     "--out", str(out)]) == 0
        recs = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
        return [torch.tensor(r["x"]) for r in recs if r.get("type") == "trial"]

    for a, b in zip(trials("cpu"), trials("cuda"), strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


@CUDA
def test_probe_on_cuda_matches_the_cpu(tmp_path, capsys):
    argv = ["probe", "--model", "patch", "--data", "stripes:size=8,n=20,wavelength=4", "--stencil", "square:3",
            "--n", "4", "--steps", "8", "--times", "3", "--linear", "6", "--linear-n", "2", "--homogeneous", "5",
            "--n-boot", "20", "--json"]
    cpu = _json_of(argv + ["--out", str(tmp_path / "a")], capsys)
    gpu = _json_of(argv + ["--out", str(tmp_path / "b"), "--device", "cuda"], capsys)
    assert gpu["theory"]["logsnr_c"] == pytest.approx(cpu["theory"]["logsnr_c"], abs=1e-8)
    for name in ("linear_growth", "homogeneous"):
        assert gpu["signals"][name]["logsnr_c"] == pytest.approx(cpu["signals"][name]["logsnr_c"], abs=1e-3), name
