"""Unit conversions, the guidance callback and ``critdiff guide-config`` on a saved tiny diffusers model."""

import json
import math

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from critdiff.guidance_schedules import Interval, Pulse, edm_interval  # noqa: E402
from critdiff.integrations.diffusers import DiffusersDenoiser, scheduler_plan  # noqa: E402
from critdiff.integrations.diffusers import units as U  # noqa: E402
from critdiff.integrations.diffusers.adapter import _quiet  # noqa: E402
from critdiff.integrations.diffusers.callbacks import guidance_callback, guidance_scales  # noqa: E402


def _unet():
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                                 layers_per_block=1, norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D"))
    return unet.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def model():
    return DiffusersDenoiser(_unet(), diffusers.DDIMScheduler(num_train_timesteps=1000))


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_timestep_sigma_step_round_trips_are_exact(model, spacing):
    k = torch.arange(1000, dtype=torch.float64)
    # exact on purpose: integer timesteps come back as integers (sigma_to_timestep snaps within 4 float32 ulps,
    # far above any libm difference), and k / T * T is two correctly rounded IEEE operations on every CPU
    assert torch.equal(model.sigma_to_timestep(model.timesteps_to_sigmas(k)), k)
    assert torch.equal(U.timestep_of_t(model, U.t_of_timestep(model, k)), k)
    lam = torch.linspace(-9, 9, 7, dtype=torch.float64)
    assert torch.allclose(-2 * torch.log(U.sigma_of_logsnr(lam)), lam, rtol=0, atol=1e-13)
    plan = scheduler_plan(model, 10, timestep_spacing=spacing)
    for i, s in enumerate(plan.sigmas.tolist()):
        assert U.step_of_sigma(plan, s) == i
        assert U.step_of_sigma(plan, float(torch.tensor(s, dtype=torch.float32))) == i
        assert plan.timesteps[i] == model.sigma_to_timestep(s)
    lo, hi = U.steps_to_sigma_interval(plan, 3, 6)
    assert U.sigma_interval_to_steps(plan, lo, hi) == [3, 4, 5, 6]


def test_edm2_interval_as_heun_steps_and_back():
    """EDM2's guidance interval sigma in (0.28, 5.42] on 32 Heun steps of a Karras grid, and back."""
    sched = diffusers.HeunDiscreteScheduler(num_train_timesteps=1000, use_karras_sigmas=True)
    m = DiffusersDenoiser(_unet(), sched)
    plan = scheduler_plan(m, 32)
    iv = edm_interval(2.0)
    steps = U.sigma_interval_to_steps(plan, math.exp(-iv.hi / 2), math.exp(-iv.lo / 2))
    inside = [i for i, s in enumerate(plan.sigmas.tolist()) if 0.28 <= s <= 5.42]
    assert steps == inside and steps == list(range(steps[0], steps[-1] + 1))
    lo, hi = U.steps_to_sigma_interval(plan, steps[0], steps[-1])
    assert 0.28 <= lo and hi <= 5.42 and U.sigma_interval_to_steps(plan, lo, hi) == steps


def test_callback_sets_the_scale_of_each_next_step(model):
    plan = scheduler_plan(model, 12)
    lam = [float(-2 * math.log(s)) for s in plan.sigmas.tolist()]
    pulse = Pulse(lam[5], width=abs(lam[6] - lam[4]) * 1.01, height=4.0)
    cb, scales = guidance_callback(pulse, plan)
    assert scales == [4.0 if abs(l - lam[5]) <= pulse.width / 2 else 1.0 for l in lam]

    class Pipe:  # diffusers' protocol: the pipeline reads _guidance_scale each step, then calls the callback
        _guidance_scale = scales[0]

    pipe = Pipe()
    with pytest.raises(ValueError, match="^callback_on_step_end_tensor_inputs: "):  # it could not swap the embeddings
        cb(pipe, 0, int(plan.timesteps[0]), {})
    cb.applied.clear()
    for i in range(len(scales)):
        cb(pipe, i, int(plan.timesteps[i]), {"prompt_embeds": None})
    assert cb.applied == scales
    with pytest.raises(ValueError, match="^timestep: pipeline step 0 ran at timestep 5"):
        guidance_callback(pulse, plan)[0](Pipe(), 0, 5, {"prompt_embeds": None})
    with pytest.raises(ValueError, match="^schedule: .*baseline 1"):
        guidance_scales(Interval(0.0, 1.0, 3.0, baseline=0.0), plan)


def test_guide_config_cli_table_matches_the_callback(tmp_path, capsys):
    from critdiff.cli import main

    with _quiet(diffusers):
        pipe = diffusers.DDIMPipeline(unet=_unet(), scheduler=diffusers.DDIMScheduler(num_train_timesteps=1000))
    pipe.save_pretrained(tmp_path / "pipe")
    rc = main(["guide-config", "--model", f"diffusers:{tmp_path / 'pipe'}", "--tc-logsnr", "0.5", "--steps", "20",
               "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    cfg = json.loads(out.out)
    m = DiffusersDenoiser(pipe.unet, pipe.scheduler)
    plan = scheduler_plan(m, 20)
    _, scales = guidance_callback(Pulse(0.5, 3.0, 3.0), plan)
    assert [r["guidance_scale"] for r in cfg["table"]] == scales
    assert [r["timestep"] for r in cfg["table"]] == [int(t) for t in plan.timesteps]
    assert cfg["pulse"]["steps"] == [i for i, w in enumerate(scales) if w == 3.0]
    tc = cfg["tc"]
    assert math.isclose(tc["sigma"], math.exp(-0.25), rel_tol=1e-12)
    assert math.isclose(float(m.timesteps_to_sigmas(tc["timestep"])), tc["sigma"], rel_tol=1e-9)
    rc = main(["guide-config", "--model", f"diffusers:{tmp_path / 'pipe'}", "--tc-logsnr", "0.5", "--steps", "20"])
    assert rc == 0 and "critical time: logsnr 0.5000" in capsys.readouterr().out
    # a window [lo, hi] converts with the same builder: the steps whose logsnr lies inside it, in every unit
    rc = main(["guide-config", "--model", f"diffusers:{tmp_path / 'pipe'}", "--tc-logsnr", "0.5", "--steps", "20",
               "--window", "-1", "2", "--json"])
    win = json.loads(capsys.readouterr().out)["window"]
    lam = [float(-2 * math.log(s)) for s in plan.sigmas.tolist()]
    assert rc == 0 and win["steps"] == [i for i, v in enumerate(lam) if -1 <= v <= 2]
    assert math.isclose(win["lo"]["logsnr"], -1.0, abs_tol=1e-9) and math.isclose(win["hi"]["logsnr"], 2.0, abs_tol=1e-9)
    rc = main(["guide-config", "--model", f"diffusers:{tmp_path / 'pipe'}", "--tc-logsnr", "0.5", "--steps", "20",
               "--window", "-1", "2"])
    out = capsys.readouterr().out
    assert rc == 0 and "window lo: logsnr -1.0000" in out and "window covers steps" in out
    rc = main(["guide-config", "--model", f"diffusers:{tmp_path / 'pipe'}", "--tc-logsnr", "40", "--steps", "20"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("critdiff: error: logsnr: 40 ") and "\n" not in err


def test_guide_config_measures_tc_when_not_given(tmp_path, capsys):
    """Without --tc-logsnr guide-config measures t_c with `critdiff guide`'s default estimator (here the linear
    response of a diffusers model: no data needed), deterministically, and the table equals --tc-logsnr's."""
    from critdiff.cli import main
    from critdiff.data import load
    from critdiff.experiments.guide.config import DEFAULT_TC_FROM, GuideConfig
    from critdiff.experiments.guide.estimators import chosen_source

    with _quiet(diffusers):
        pipe = diffusers.DDIMPipeline(unet=_unet(), scheduler=diffusers.DDIMScheduler(num_train_timesteps=1000))
    pipe.save_pretrained(tmp_path / "pipe")
    model = ["guide-config", "--model", f"diffusers:{tmp_path / 'pipe'}", "--steps", "10", "--json"]

    def run(*extra):
        rc = main([*model, *extra])
        out = capsys.readouterr()
        assert rc == 0, out.err
        return json.loads(out.out)

    measured = run()
    assert chosen_source(GuideConfig(model=f"diffusers:{tmp_path / 'pipe'}")) == DEFAULT_TC_FROM
    assert measured["tc"]["source"].startswith("probe (branch growth")
    lo, hi = measured["tc"]["logsnr_ci"]
    assert lo <= measured["tc"]["logsnr"] <= hi
    assert run() == measured  # a seed reproduces the measurement
    given = run("--tc-logsnr", repr(measured["tc"]["logsnr"]))
    assert given["table"] == measured["table"] and given["tc"]["source"] == "given"
    # speciation: snr * lambda_max(Cov(data)) = 1, against the eigenvalues computed here
    rc = main([*model, "--tc-from", "speciation"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("critdiff: error: data: --tc-from speciation needs --data") and "\n" not in err
    spec = run("--tc-from", "speciation", "--data", "digits:size=8")
    images = load("digits:size=8", seed=0)[0].to(torch.float64).reshape(-1, 64)
    y = images - images.mean(0)
    lam_max = float(torch.linalg.eigvalsh(y.T @ y / y.shape[0])[-1])
    assert math.isclose(spec["tc"]["logsnr"], -math.log(lam_max), rel_tol=0, abs_tol=1e-9)
    assert math.isclose(spec["tc"]["sigma"], math.sqrt(lam_max), rel_tol=1e-9)
