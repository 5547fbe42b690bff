"""The demo's section runner: two sections at a time in forked children, the same numbers as one at a time."""

import json
import os
from dataclasses import dataclass

import pytest
import torch

from critdiff.experiments.demo import run as demo_run
from critdiff.experiments.demo.sections import DemoSection
from critdiff.experiments.result import Result


@dataclass(frozen=True)
class DrawResult(Result):
    """A section result holding numbers drawn from the global torch RNG (the seed each section starts from)."""

    kind = "test-demo-draw"
    values: tuple


def _draw(folder):
    return DrawResult(values=tuple(torch.rand(3, dtype=torch.float64).tolist()))


def _fail(folder):
    raise ValueError("data: this section cannot run")


def _sections(n=3):
    return [DemoSection(f"s{i}", {"i": i}, _draw, {}, cost=float(i)) for i in range(n)]


def _records(out, sections):
    return [json.loads((demo_run._folder(out, s) / "result.json").read_text()) for s in sections]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the demo forks its sections on POSIX only")
def test_forked_sections_give_the_numbers_of_serial_ones(tmp_path):
    secs = _sections()
    logs = []
    demo_run._run_serial(tmp_path / "serial", secs, logs.append)
    demo_run._run_forked(tmp_path / "forked", secs, 2, logs.append)
    serial, forked = _records(tmp_path / "serial", secs), _records(tmp_path / "forked", secs)
    # every section starts from the demo's seed, whatever ran before it and in whichever process
    assert serial == forked
    assert serial[0] == serial[1] == serial[2]
    torch.manual_seed(demo_run.SEED)
    assert serial[0]["result"]["values"] == torch.rand(3, dtype=torch.float64).tolist()
    assert sum("running" in m for m in logs) == 6 and sum("done in" in m for m in logs) == 6


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the demo forks its sections on POSIX only")
def test_a_failed_forked_section_is_reported_and_the_others_are_kept(tmp_path):
    secs = [DemoSection("ok", {"k": 1}, _draw, {}, cost=2.0), DemoSection("bad", {"k": 2}, _fail, {}, cost=1.0)]
    with pytest.raises(RuntimeError, match=r"demo: section bad failed: ValueError: data: this section cannot run"):
        demo_run._run_forked(tmp_path, secs, 2, lambda m: None)
    assert (demo_run._folder(tmp_path, secs[0]) / "result.json").is_file()
    assert not (demo_run._folder(tmp_path, secs[1]) / "result.json").exists()


def test_the_probe_finding_names_its_signal():
    from critdiff.report.demo_summary import _probe_signal

    # the two sources run_probe writes into its combined estimate
    assert _probe_signal({"source": "linear response of the symmetric branch (linear_growth, linear_stiffness)"}) \
        == "linear response"
    assert _probe_signal({"source": "sampler ensemble (no linear-response run)"}) == "sampler ensemble"


def test_full_demo_sections_and_their_sizes():
    """The full demo's sections in report order; the textures probe runs at the smaller settings, the stripes probe
    (whose theory comparison is finding 1) at the probe's defaults; the guidance arms are paired at n = 30."""
    from critdiff.experiments.demo.sections import SMALL_PROBE, demo_sections, guide_config

    secs = demo_sections(False)
    assert [s.key for s in secs] == ["textures", "digits", "theory-textures", "theory-stripes", "structure-factor",
                                     "probe-stripes", "probe-textures", "trained-net", "guidance", "agreement"]
    probes = {s.key: s.config["probe"] for s in secs if s.key.startswith("probe-")}
    assert all(probes["probe-textures"][k] == v for k, v in SMALL_PROBE.items())
    assert probes["probe-stripes"]["linear"] > SMALL_PROBE["linear"]
    g = guide_config(False)
    assert g.n == 30 and set(g.arms) == {"cond", "constant", "interval", "tc", "random"}
