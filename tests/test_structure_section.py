"""Tests of critdiff.experiments.structure_section (predicted S(k, t) against the nonlinear ensemble) and of its
renderer critdiff.report.structure."""

import json
import math

import pytest

from critdiff.experiments.result import result_from_record
from critdiff.experiments.structure_section import StructureConfig, StructureResult, run_structure
from critdiff.report.render import render
from critdiff.experiments.context import Context

TINY = StructureConfig(steps=12, ensemble=60)


@pytest.fixture(scope="module")
def result(tmp_path_factory, one_thread):
    folder = tmp_path_factory.mktemp("sf")
    return run_structure(TINY, Context(folder, progress=False)), folder


def test_linear_prediction_holds_before_tc(result):
    res, _ = result
    assert res.critical["found"]
    for name in ("ode", "sde"):
        s = res.samplers[name]
        assert len(s["z_max_per_time"]) == len(s["sigma"]) == len(s["logsnr"])
        for sig, lam in zip(s["sigma"], s["logsnr"]):
            assert lam == pytest.approx(-2 * math.log(sig))
        # before the theory's t_c the ensemble's S(k, t) agrees with the linear prediction within its error
        assert s["max_z_before_tc"] is not None and s["max_z_before_tc"] < TINY.z_threshold


def test_result_round_trips_and_rerenders_identically(result, tmp_path):
    res, folder = result
    again = StructureResult.from_json(res.to_json())
    assert again == res
    assert result_from_record(json.loads((folder / "result.json").read_text())) == res
    a, b = render(res, folder=tmp_path / "a"), render(again, folder=tmp_path / "b")
    assert a.html == b.html and a.findings == b.findings and len(a.findings) == 2 and a.question
    assert (tmp_path / "a" / "structure_factor_z.png").stat().st_size > 1000
