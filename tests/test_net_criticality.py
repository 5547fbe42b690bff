"""Tests of critdiff.experiments.net_criticality (probes of a trained network beside the patch theory)."""

import math
import os
import re

import numpy as np
import pytest
import torch

from critdiff.experiments.net_criticality import net_criticality_section, train_demo_model
from critdiff.nets import checkpoint as ckpt

NUM = re.compile(r"(?<![\w^./:=-])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.set_num_threads(1)
    return train_demo_model(tmp_path_factory.mktemp("net") / "model", quick=True)


@pytest.fixture(scope="module")
def section(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sec")
    return net_criticality_section(model, "digits:size=8", folder, quick=True), folder


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
    sec, folder = section
    r = sec.results
    # every figure the html references was written into the folder
    srcs = re.findall(r'src="([^"]+)"', sec.html)
    assert srcs and set(srcs) == set(r["figures"])
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
    cfg = os.path.join(ckpt.checkpoint_dir(model), "config.json")
    before = os.path.getmtime(cfg)
    assert train_demo_model(model, quick=True) == str(model)
    assert os.path.getmtime(cfg) == before
    with pytest.raises(ValueError, match="resume"):
        train_demo_model(model, quick=False)  # a different run in the same folder is refused
    with pytest.raises(ValueError, match="data_spec"):
        net_criticality_section(model, "digits:size=16", tmp_path, quick=True)
