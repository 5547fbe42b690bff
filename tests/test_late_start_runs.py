"""--late-start and --spacing critical in the sample and guide commands (critdiff.experiments.start)."""

import json
import math

import pytest
import torch

from critdiff import schedules as S
from critdiff.denoisers import CountingDenoiser
from critdiff.experiments.sample import SampleConfig, run_sample
from critdiff.experiments.models import LoadedModel
from critdiff.experiments.start import AUTO_MARGIN, model_moments, moments_covariance, run_moments
from critdiff.late_start import fit_moments
from critdiff.scores.gaussian import GaussianScore
from critdiff.experiments.context import Context

pytestmark = pytest.mark.usefixtures("one_thread")


def _sample(tmp_path, **kw):
    base = dict(model="gaussian", data="grf:size=6,n=120", n=6, steps=5, sampler="dpmpp-2m", seed=3)
    base.update(kw)
    return run_sample(SampleConfig(**base), Context(tmp_path, progress=False))


def test_sample_late_start_given(tmp_path):
    r = _sample(tmp_path / "a", late_start="-1.5")
    assert r.late_start.logsnr == -1.5 and r.late_start.source == "given" and r.late_start.covariance == "full"
    assert math.isclose(r.sigma_max, math.exp(0.75), rel_tol=1e-12)
    assert r.nfe_per_sample == 5  # same number of steps, from the start level
    rec = json.loads((tmp_path / "a" / "result.json").read_text())["result"]
    assert rec["late_start"]["logsnr"] == -1.5


@pytest.mark.slow
def test_sample_late_start_auto_uses_the_measured_critical_time(tmp_path):
    """Two-point data +-1 on 4x4 images: the branch turns unstable at snr m^2 = 1, m^2 = 16 (docs/theory.md 6.2);
    'auto' starts AUTO_MARGIN before the linear-response estimate of it."""
    r = _sample(tmp_path, model="empirical", data="twopoint:size=4,n=40", late_start="auto", sampler="ddim")
    assert abs(r.late_start.tc_logsnr + math.log(16.0)) < 0.2, r.late_start
    assert math.isclose(r.late_start.logsnr, r.late_start.tc_logsnr - AUTO_MARGIN)
    assert r.late_start.margin == AUTO_MARGIN and r.late_start.source.startswith("auto")


def test_sample_critical_spacing(tmp_path):
    r = _sample(tmp_path, spacing="critical", late_start="0.5")
    from safetensors.torch import load_file

    sig = load_file(str(tmp_path / "samples.safetensors"))["sigmas"]
    sch = S.get("vp-linear")
    assert sig.shape == (6,) and math.isclose(float(sig[0]), math.exp(-0.25)) and math.isclose(float(sig[-2]), sch.sigma_min)
    assert not torch.allclose(sig, S.sigma_grid(sch, 5, "logsnr", sigma_max=math.exp(-0.25)))


def test_late_start_config_errors():
    from critdiff.experiments.probe import ProbeConfig

    with pytest.raises(ValueError, match="late_start"):
        ProbeConfig(model="gaussian", data="grf:size=6", late_start="0").validate()
    with pytest.raises(ValueError, match="spacing"):
        ProbeConfig(model="gaussian", data="grf:size=6", spacing="critical").validate()
    with pytest.raises(ValueError, match="late_start"):
        SampleConfig(model="gaussian", data="grf:size=6", late_start="later").validate()
    with pytest.raises(ValueError, match="late_start"):
        SampleConfig(model="gaussian", data="grf:size=6", late_start="nan").validate()
    with pytest.raises(ValueError, match="late_start"):
        SampleConfig(model="diffusers:/x", late_start="0", like_pipeline="auto").validate()


def test_late_start_outside_the_schedule_is_a_usage_error(tmp_path):
    with pytest.raises(ValueError, match="late_start: the start logsnr"):
        _sample(tmp_path, late_start="40")


@pytest.mark.slow
def test_cli_flags(tmp_path):
    from critdiff.cli import main

    rc = main(["sample", "--model", "gaussian", "--data", "grf:size=6,n=40", "--n", "2", "--steps", "3",
               "--late-start", "-2", "--spacing", "critical", "--out", str(tmp_path)])
    assert rc in (0, None)
    assert json.loads((tmp_path / "result.json").read_text())["result"]["late_start"]["logsnr"] == -2.0
    assert main(["probe", "--model", "gaussian", "--data", "grf:size=6", "--late-start", "1",
                 "--out", str(tmp_path / "p")]) == 2


def test_conditional_run_draws_from_its_class_gaussian():
    """--label on labelled data: the class mean with the pooled within-class covariance (eq. LS.1 of p(x | c));
    without --label the all-data fit."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 3
    images = (labels.reshape(-1, 1, 1, 1).double() + 0.3 * torch.randn(60, 1, 2, 2, generator=g, dtype=torch.float64)).float()
    loaded = LoadedModel(None, images, labels, (1, 2, 2))
    m, where = run_moments(SampleConfig(model="empirical", data="digits:size=4", label=2), loaded)
    assert torch.allclose(m.mu, images[labels == 2].double().mean(0), atol=1e-12) and "class 2" in where
    m0, where0 = run_moments(SampleConfig(model="empirical", data="digits:size=4"), loaded)
    assert torch.allclose(m0.mu, images.double().mean(0), atol=1e-12) and "class" not in where0
    # the within-class covariance is far smaller than the all-data one (the class means differ by 1 and 2)
    assert m.lambda_max() < 0.2 < m0.lambda_max()


def test_moments_covariance_rule():
    from critdiff.experiments.config import RunConfig

    assert moments_covariance(RunConfig(model="gaussian", data="x"), 1000, 64) == "full"
    assert moments_covariance(RunConfig(model="gaussian", data="x"), 50, 64) == "stationary"  # rank-deficient
    assert moments_covariance(RunConfig(model="patch", data="x"), 1000, 64) == "stationary"  # equivariant model
    assert moments_covariance(RunConfig(model="patch", data="x", equivariant=False), 1000, 64) == "full"


def test_model_moments_are_estimated_once_and_cached(tmp_path):
    """A model without data: moments of its own samples (here the exact Gaussian denoiser: its samples have the
    fitted covariance up to sampling error), written once, read back without evaluating the model."""
    y = torch.randn(300, 1, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.7 + 0.2
    model = CountingDenoiser(GaussianScore(y))
    cache = tmp_path / "m.safetensors"
    m = model_moments(model, (1, 2, 2), "vp-linear", n=2000, covariance="full", cache=cache, dtype=torch.float64)
    assert cache.exists() and model.evaluations > 0
    true = fit_moments(y).dense_covariance()
    # 2000 samples: a covariance entry's standard error is about sqrt(2/2000) * 0.5 ~ 0.016; allow 5 of them
    assert torch.allclose(m.dense_covariance(), true, atol=0.08)
    before = model.evaluations
    m2 = model_moments(model, (1, 2, 2), "vp-linear", n=2000, covariance="full", cache=cache, dtype=torch.float64)
    assert model.evaluations == before
    # U read back is contiguous, eigh's is not: the two matmuls may round differently in the last bits
    assert torch.allclose(m2.dense_covariance(), m.dense_covariance(), rtol=1e-12, atol=1e-14)


def test_guide_late_start(tmp_path):
    """The guide command starts every arm from the late-start Gaussian on the truncated grid."""
    from critdiff.data import load
    from critdiff.experiments import guide as G

    data = "textures:size=8,per_class=6"
    cfg = G.GuideConfig(model="gaussian", data=data, n=3, batch=3, steps=4, arms=("none", "tc"), tc_logsnr=0.5,
                        sampler="ddim", late_start="auto")
    r = G.run_guide(cfg, Context.quiet(tmp_path))
    assert r.status == "no-classifier"
    assert math.isclose(r.late_start.logsnr, 0.5 - AUTO_MARGIN) and r.late_start.tc_logsnr == 0.5
    x, _ = load(data)
    assert r.late_start.moments_n == x.shape[0]
