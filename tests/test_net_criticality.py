"""Tests of critdiff.experiments.net_criticality (probes of a trained network beside the patch theory) and of its
renderer critdiff.report.net_criticality."""

import json
import math
import os
import re

import numpy as np
import pytest
import torch

from critdiff.denoisers import as_sigma
from critdiff.io import save_json
from critdiff.experiments.demo.model import train_demo_model
from critdiff.experiments.net_criticality import (NetCriticalityConfig, NetCriticalityResult, demo_config,
                                                  run_net_criticality)
from critdiff.experiments.result import result_from_record
from critdiff.report.net_criticality import FIGURES, render_net_criticality
from critdiff.report.render import render
from critdiff.nets import checkpoint as ckpt
from critdiff.experiments.context import Context

NUM = re.compile(r"(?<![\w^./:=-])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?")


@pytest.fixture(scope="module")
def model(demo_net):
    torch.set_num_threads(1)
    return demo_net  # the session's quick demo network (conftest.py)


@pytest.fixture(scope="module")
def section(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sec")
    result = run_net_criticality(demo_config(True, model).replace(data="digits:size=8"), Context(folder, progress=False))
    return render_net_criticality(result, folder), folder, result


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
    sec, folder, result = section
    r = result.to_dict()
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
    for key in ("stiffness", "xi_zero", "xi_oz", "chi"):
        assert key in r["estimates"] and "feature" in r["estimates"][key]
    assert r["theory"]["stencil"] in r["calibration"]["stencils"]
    assert len(r["calibration"]["best_size"]) == len(r["calibration"]["logsnr"])
    # sigma^2 kappa = 1 - Re Jhat_D: at the highest noise the denoiser is nearly constant in x
    assert r["stiffness_low_k"]["start"] == pytest.approx(1.0, abs=0.1)
    used = {k for k, v in r["estimates"].items() if v["feature"]}  # the combination is a TimeEstimate record
    assert (r["t_c"] is None and not used) or set(r["t_c"]["extras"]["components"]) == used


# --- a denoiser whose answer is known --------------------------------------------------------------------
C_LOW, C_STAR, N_STAR = 0.02, 0.2, 2  # c(k) on the shells |n| != 2 and |n| = 2 (|k| = 2 pi |n| / 8)


def c_of_shell(n):
    return np.where(np.asarray(n) == N_STAR, C_STAR, C_LOW)


class SoftModeDenoiser:
    """``D(x) = ifft(G(k, sigma) fft(x))`` with ``G = min(c(k) / sigma^2, 2)`` and ``c`` constant on each radial
    shell ``n = rint(|k| 8 / 2 pi)``: the linearised patch model's high-noise form, capped so trajectories stay
    finite. Its stiffness is known in closed form, ``sigma^2 kappa(k) = 1 - G(k, sigma)``, and the slowest mode
    (``n = 2``) turns unstable exactly at ``sigma^2 = C_STAR``, i.e. logsnr ``-log C_STAR``."""

    sample_shape = (1, 8, 8)

    def __init__(self):
        n = np.rint(np.hypot(*np.meshgrid(np.fft.fftfreq(8) * 8, np.fft.fftfreq(8) * 8, indexing="ij")))
        self.c = torch.from_numpy(c_of_shell(n))

    def __call__(self, x, sigma, label=None):
        s = as_sigma(sigma, x).to(torch.float64).reshape(-1, 1, 1, 1)
        g = torch.clamp(self.c / s**2, max=2.0)
        return torch.fft.ifft2(g * torch.fft.fft2(x.to(torch.float64))).real.to(x.dtype)


def closed_form_s2k(sigma):
    """``sigma^2 kappa = 1 - min(c / sigma^2, 2)`` for each shell n = 0 .. 6 of the 8x8 lattice, ``[T, 7]``."""
    c = c_of_shell(np.arange(7))[None, :]
    return 1 - np.minimum(c / np.asarray(sigma)[:, None] ** 2, 2.0)


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    root = tmp_path_factory.mktemp("known")
    save_json(root / "model" / "config.json", {"kind": "unet", "net": {}, "train": {"schedule": "vp-cosine"}})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("critdiff.nets.net_denoiser.load_net", lambda path, **kw: SoftModeDenoiser())
        cfg = demo_config(True, str(root / "model")).replace(data="digits:size=8")
        return run_net_criticality(cfg, Context(root, progress=False)).to_dict()


def test_stiffness_spectra_against_the_closed_form(known):
    r = known
    sigma = np.exp(-0.5 * np.asarray(r["probe_logsnr"]))
    assert np.allclose(r["k"], 2 * np.pi * np.arange(7) / 8)
    # the phase probes are exact for a circulant Jacobian: every shell at every recorded time
    np.testing.assert_allclose(np.asarray(r["sigma2_kappa_radial"]), closed_form_s2k(sigma), atol=1e-5)
    st = r["stiffness_low_k"]
    want = closed_form_s2k(sigma)[:, 1]
    assert st["start"] == pytest.approx(want[0], abs=1e-5) and st["min"] == pytest.approx(want.min(), abs=1e-5)


def test_critical_time_against_the_closed_form(known):
    r = known
    lam = np.asarray(r["probe_logsnr"])
    kappa = closed_form_s2k(np.exp(-0.5 * lam)).min(1) * np.exp(lam)  # slowest mode's kappa, ascending logsnr
    j = int(np.flatnonzero((kappa[:-1] > 0) & (kappa[1:] <= 0))[0])
    crossing = lam[j] + (lam[j + 1] - lam[j]) * kappa[j] / (kappa[j] - kappa[j + 1])
    st = r["estimates"]["stiffness"]
    assert st["feature"] and st["estimate"]["logsnr"] == pytest.approx(crossing, abs=1e-4)
    assert st["estimate"]["extras"]["method"] == "zero-crossing" and st["estimate"]["source"] == "stiffness"
    assert abs(st["estimate"]["logsnr"] + np.log(C_STAR)) <= lam[j + 1] - lam[j]  # within one step of the exact t_c
    # the combination uses exactly the signals that have a feature; stiffness is one, so t_c and its interval exist
    used = {k for k, v in r["estimates"].items() if v["feature"]}
    assert "stiffness" in used and set(r["t_c"]["extras"]["components"]) == used
    iv = r["t_c"]["interval"]
    assert iv["lo"]["logsnr"] <= r["t_c"]["logsnr"] <= iv["hi"]["logsnr"]


def test_train_demo_model_reuses_and_checks(model, tmp_path):
    cfg = os.path.join(ckpt.checkpoint_dir(model), "config.json")
    before = os.path.getmtime(cfg)
    assert train_demo_model(model, quick=True) == str(model)
    assert os.path.getmtime(cfg) == before
    with pytest.raises(ValueError, match="resume"):
        train_demo_model(model, quick=False)  # a different run in the same folder is refused
    with pytest.raises(ValueError, match="data"):
        run_net_criticality(NetCriticalityConfig(model_dir=model, data="digits:size=16"), Context(tmp_path, progress=False))


def test_result_round_trips_and_rerenders_identically(section, tmp_path):
    sec, folder, result = section
    again = NetCriticalityResult.from_json(result.to_json())
    assert again == result
    # the record written by run rebuilds the same result
    assert result_from_record(json.loads((folder / "result.json").read_text())) == result
    a, b = render(again, folder=tmp_path / "a"), render(NetCriticalityResult.from_json(result.to_json()),
                                                         folder=tmp_path / "b")
    assert a.html == b.html == sec.html and a.findings == b.findings == sec.findings
    # the critical time (one meaning: the branch instability), the softening, and the correlation growth
    assert a.question and len(a.findings) == 3 and a.findings[0].startswith("The network's critical time")
    assert a.findings[2].startswith("Correlation growth: xi_0 of the states goes from")
    lin = result.branch_growth["linear"]["estimate"]  # a TimeEstimate record, or None
    if lin is not None and lin["interval"] is not None:  # the branch instability is stated with its interval
        lo, hi = lin["interval"]["lo"]["logsnr"], lin["interval"]["hi"]["logsnr"]
        assert f"logsnr {lin['logsnr']:.4g} [{lo:.4g}, {hi:.4g}]" in a.findings[0]
    for name in FIGURES:
        assert (tmp_path / "a" / name).stat().st_size > 1000
    # no raw float in the prose: every decimal shown has at most 4 significant digits
    text = re.sub(r"<[^>]+>", " ", a.html)
    assert not [t for t in NUM.findall(text) if len(re.sub(r"[^0-9]", "", t.split("e")[0]).lstrip("0")) > 4]
