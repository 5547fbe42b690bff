"""The preflight (docs/reliability.md R7, R10): the data shape it predicts is the shape that loads, and nothing
legitimate is refused -- the README's examples, the demo's sections and the benchmarks' configurations pass it."""

import ast
import importlib.util
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from critdiff.cli import COMMANDS, build_parser
from critdiff.cli.preflight import check_command
from critdiff.data import load
from critdiff.data.shapes import shape_of
from critdiff.experiments import preflight as P

ROOT = Path(__file__).resolve().parents[1]
SPECS = ["digits", "digits:size=16,n=300", "digits:classes=3+5,n=100", "mnist:size=16,n=100", "mnist",
         "textures:size=24,per_class=30,scale=2", "textures:size=12,n=7", "twopoint", "stripes:size=16,n=20,channels=3",
         "grf:spectrum=ring,k0=0.8,n=10"]


@pytest.mark.parametrize("spec", SPECS)
def test_shape_of_is_the_shape_that_loads(spec):
    x, _ = load(spec)
    sh = shape_of(spec)
    assert (sh.n, sh.c, sh.h, sh.w) == tuple(x.shape)


def test_shape_of_reads_file_headers_only(tmp_path):
    from PIL import Image

    np.save(tmp_path / "a.npy", np.zeros((7, 3, 5, 6), np.float32))
    (tmp_path / "imgs").mkdir()
    for i in range(3):
        Image.fromarray(np.full((9, 10, 3), 40 * i, np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    dims = np.array([5, 4, 4], ">u4").tobytes()
    (tmp_path / "x-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + dims + bytes(80))
    for spec in (f"npy:{tmp_path}/a.npy", f"npy:{tmp_path}/a.npy,n=3,size=8", f"folder:{tmp_path}/imgs",
                 f"folder:{tmp_path}/imgs,size=4,n=2", f"idx:{tmp_path}/x-images-idx3-ubyte,n=2"):
        x, _ = load(spec)
        sh = shape_of(spec)
        assert (sh.n, sh.h, sh.w) == (x.shape[0], x.shape[2], x.shape[3]) and sh.c >= x.shape[1], spec


def test_a_budget_refuses_what_exceeds_it_and_names_the_flag():
    from critdiff.experiments.sample import SampleConfig

    small, _ = P.run_cost(SampleConfig(model="gaussian", data="digits:size=8,n=40", n=4))
    big, _ = P.run_cost(SampleConfig(model="gaussian", data="digits:size=8,n=40", n=4_000_000))
    assert big.total() > 1000 * small.total()
    P.check_fits(small, "cpu", max_memory=1.0)
    with pytest.raises(ValueError, match=r"^memory: .*--n.*--max-memory"):
        P.check_fits(big, "cpu", max_memory=1.0)


def readme_commands() -> list:
    """Every ``critdiff ...`` command line of the README (comments removed)."""
    out = []
    for line in (ROOT / "README.md").read_text().splitlines():
        line = line.strip()
        argv = shlex.split(line.split("#")[0]) if re.match(r"^critdiff [a-z]", line) else []
        if len(argv) > 1 and argv[1] in COMMANDS:
            out.append(argv)
    return out


# README lines that name files the user makes first (a trained model, a classifier, a spec) or a placeholder
NEEDS_FILES = ("DIR", "out/digits", "out/clf", "sweep.toml", "my-ddpm", "...", "out/demo")


def test_readme_examples_pass_the_preflight(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checked, skipped = [], []
    for argv in readme_commands():
        inputs = [a for i, a in enumerate(argv) if i == 0 or argv[i - 1] != "--out"]
        if any(k in a for a in inputs for k in NEEDS_FILES):
            skipped.append(" ".join(argv))
            continue
        args = build_parser().parse_args(argv[1:])
        check_command(args)  # raises on a refusal
        checked.append(argv[1])
    assert {"sample", "theory", "train", "train-classifier", "probe", "demo"} <= set(checked), (checked, skipped)
    assert len(checked) >= 8


def test_readme_examples_that_need_files_pass_without_them():
    """The README lines that read a classifier: their memory estimate (the classifier left out) fits."""
    from critdiff.experiments.guide import GuideConfig

    for data in ("textures:size=16,per_class=10", "mnist:size=16,n=1000"):
        cost, _ = P.run_cost(GuideConfig(model="patch", data=data))
        assert cost.total() < 1e9
        P.check_fits(cost)


@pytest.mark.parametrize("quick", [True, False])
def test_the_demo_passes_the_preflight(quick):
    costs = P.demo_costs(quick)
    assert {k for k, _ in costs} >= {"textures", "digits", "theory-textures", "probe-stripes", "guidance"}
    assert all(c.total() < 1e9 for _, c in costs)
    P.check_demo(quick)


def _bench(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _literal(name, variable):
    """A module-level constant of a benchmark, read without importing the benchmark."""
    tree = ast.parse((ROOT / "benchmarks" / f"{name}.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == variable)
    return ast.literal_eval(node.value)


def test_the_benchmarks_configurations_pass_the_preflight(tmp_path):
    from critdiff.experiments.sweep import KINDS, sweep_units
    from critdiff.nets.training import TrainConfig

    gpu = _bench("gpu_check")
    for argv in (gpu.SAMPLE, gpu.PROBE, gpu.THEORY):
        check_command(build_parser().parse_args(argv + ["--out", str(tmp_path / argv[0])]))
    spec = _literal("bench_sweep", "SPEC")  # the module imports ray at the top
    P.check_grid(spec)
    P.check_units(sweep_units(spec), KINDS)
    train = _bench("bench_train")
    for _, shape, _, width, mult, batch in train.CONFIGS:
        data = f"digits:size={shape[1]}" if shape[1] == 16 else f"textures:size={shape[1]}"
        P.check_fits(P.train_cost(TrainConfig(data=data, width=width, channel_mult=mult, batch=batch)))
    est = _bench("guidance_estimators")
    for name, (fields, _, n) in {**est.MODELS, **est.VALIDATION, **est.TINY}.items():
        if fields["model"].startswith("net:"):
            continue  # trained in the benchmark's own run folder
        cost, _ = P.run_cost(est._config(fields, "", n or 48, {}))
        P.check_fits(cost)
