"""Tests of critdiff.experiments.net_criticality (probes of a trained network beside the patch theory) and of its
renderer critdiff.report.net_criticality."""

import json
import math
import os
import re

import numpy as np
import pytest
import torch

from critdiff.experiments.demo_model import train_demo_model
from critdiff.experiments.net_criticality import (NetCriticalityConfig, NetCriticalityResult, demo_config,
                                                  run_net_criticality)
from critdiff.experiments.result import result_from_record
from critdiff.report.net_criticality import FIGURES, render_net_criticality
from critdiff.report.render import render

NUM = re.compile(r"(?<![\w^./:=-])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.set_num_threads(1)
    return train_demo_model(tmp_path_factory.mktemp("net") / "model", quick=True)


@pytest.fixture(scope="module")
def section(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sec")
    result = run_net_criticality(demo_config(True, model).replace(data="digits:size=8"), folder, progress=False)
    sec = render_net_criticality(result, folder)
    sec.results = result.to_dict()
    return sec, folder, result


def _tokens(obj, out):
    """Every number of a results tree, formatted as the html formats it (4 significant digits) and as given."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _tokens(k, out)
            _tokens(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _tokens(v, out)
    elif isinstance(obj, bool) or obj is None:
        pass
    elif isinstance(obj, (int, float)):
        if math.isfinite(obj):
            out.update({f"{obj:.4g}", str(obj)})
    elif isinstance(obj, str):
        out.update(re.findall(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?", obj))
    return out


def test_section_end_to_end(section):
    sec, folder, _ = section
    r = sec.results
    # every figure the html references was written into the folder
    srcs = re.findall(r'src="([^"]+)"', sec.html)
    assert srcs and set(srcs) == set(FIGURES)
    for s in srcs:
        assert os.path.getsize(folder / s) > 1000
    # every number shown is in the results dict
    text = re.sub(r"<[^>]+>", " ", sec.html)
    shown = NUM.findall(text)
    assert len(shown) > 30
    known = _tokens(r, set())
    missing = [n for n in shown if n not in known]
    assert not missing, missing[:10]
    for key in ("stiffness", "xi_2", "xi_oz", "chi"):
        assert key in r["estimates"] and "feature" in r["estimates"][key]
    assert r["theory"]["stencil"] in r["calibration"]["stencils"]
    assert len(r["calibration"]["best_size"]) == len(r["calibration"]["logsnr"])


def test_low_k_contrast_recomputed_from_stored_spectra(section):
    r = section[0].results
    s2k = np.array(r["sigma2_kappa_radial"])
    k = np.array(r["k"])
    i = int(np.argmax(k > 1e-12))
    d = s2k[:, -1] - s2k[:, i]
    st = r["stiffness_low_k"]
    assert st["contrast_max"] == pytest.approx(float(d.max()))
    assert st["contrast_logsnr"] == pytest.approx(r["probe_logsnr"][int(d.argmax())])
    assert st["min"] == pytest.approx(float(s2k[:, i].min()))
    # sigma^2 kappa = 1 - Re Jhat_D: at the highest noise the denoiser is nearly constant in x
    assert st["start"] == pytest.approx(1.0, abs=0.1)
    # the combination uses exactly the signals that have a feature
    used = {k for k, v in r["estimates"].items() if v["feature"]}
    assert set(r["t_c"]["signals"]) == used
    if used:
        lo, hi = r["t_c"]["logsnr_ci"]
        assert lo <= r["t_c"]["logsnr"] <= hi


def test_train_demo_model_reuses_and_checks(model, tmp_path):
    cfg = os.path.join(model, "config.json")
    before = os.path.getmtime(cfg)
    assert train_demo_model(model, quick=True) == str(model)
    assert os.path.getmtime(cfg) == before
    with pytest.raises(ValueError, match="resume"):
        train_demo_model(model, quick=False)  # a different run in the same folder is refused
    with pytest.raises(ValueError, match="data"):
        run_net_criticality(NetCriticalityConfig(model_dir=model, data="digits:size=16"), tmp_path, progress=False)


def test_result_round_trips_and_rerenders_identically(section, tmp_path):
    sec, folder, result = section
    again = NetCriticalityResult.from_json(result.to_json())
    assert again == result
    # the record written by run rebuilds the same result
    assert result_from_record(json.loads((folder / "net_criticality.json").read_text())) == result
    a, b = render(again, out_dir=tmp_path / "a"), render(NetCriticalityResult.from_json(result.to_json()),
                                                         out_dir=tmp_path / "b")
    assert a.html == b.html == sec.html and a.findings == b.findings == sec.findings
    assert a.question and len(a.findings) == 2
    for name in FIGURES:
        assert (tmp_path / "a" / name).stat().st_size > 1000
    # no raw float in the prose: every decimal shown has at most 4 significant digits
    text = re.sub(r"<[^>]+>", " ", a.html)
    assert not [t for t in NUM.findall(text) if len(re.sub(r"[^0-9]", "", t.split("e")[0]).lstrip("0")) > 4]
