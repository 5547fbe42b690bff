"""``--schedule`` defaults to the model's own timesteps for diffusers models (``auto`` -> ``model``), and only there.

Oracle: diffusers' own ``DDPMScheduler`` / ``DDIMScheduler`` loop on the saved tiny UNet, from the same standard
normal ``z_T`` and with the same per-sample noise generators as ``critdiff sample`` (``seed_generators(seed, n)``
for ``z_T``, ``seed_generators(derive(seed, 'sampler-noise'), n)`` for the step noise; diffusers' ``randn_tensor``
draws one ``randn(shape[1:])`` per generator, as critdiff does). Nothing is downloaded.
"""

import json
import math

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from safetensors.torch import load_file  # noqa: E402

from critdiff import samplers as SM  # noqa: E402
from critdiff.cli import main  # noqa: E402
from critdiff.experiments.config import DEFAULT_SCHEDULE, MODEL_SCHEDULE, resolve_schedule  # noqa: E402
from critdiff.experiments.guide.config import GuideConfig  # noqa: E402
from critdiff.experiments.probe import ProbeConfig  # noqa: E402
from critdiff.experiments.sample import SampleConfig  # noqa: E402
from critdiff.integrations.diffusers import diffusers_sigma_grid, load_diffusers  # noqa: E402
from critdiff.integrations.diffusers.adapter import _quiet  # noqa: E402
from critdiff.seeding import derive  # noqa: E402
from test_diffusers import _unet  # noqa: E402  (the shared tiny UNet2DModel)

pytestmark = pytest.mark.usefixtures("one_thread")
N, SEED = 2, 7


# --- the one resolution ------------------------------------------------------------------------------
def test_auto_is_model_for_diffusers_in_sample_only():
    assert SampleConfig().schedule == DEFAULT_SCHEDULE == "vp-linear"  # the analytic models: unchanged
    assert SampleConfig(model="diffusers:/some/dir").schedule == MODEL_SCHEDULE
    assert SampleConfig(model="diffusers:/d", schedule="vp-cosine").schedule == "vp-cosine"  # given: kept
    for cls in (ProbeConfig, GuideConfig):  # these run on continuous schedules: auto keeps vp-linear
        assert cls(model="diffusers:/d").schedule == DEFAULT_SCHEDULE
    assert resolve_schedule("auto", "no-such-model", True) == "auto"  # validate reports the model itself
    cfg = SampleConfig(model="diffusers:/d")
    assert cfg.replace(model="patch").schedule == DEFAULT_SCHEDULE  # 'auto' follows the model
    assert cfg.replace(model="patch").replace(model="diffusers:/e").schedule == MODEL_SCHEDULE
    assert SampleConfig(model="diffusers:/d", schedule="ve").replace(model="patch").schedule == "ve"
    assert SampleConfig.from_json(cfg.to_json()) == cfg and cfg.to_dict()["schedule"] == MODEL_SCHEDULE


def test_model_schedule_is_refused_where_a_command_cannot_run_it():
    with pytest.raises(ValueError, match="^schedule: 'model' is supported by sample only"):
        ProbeConfig(model="diffusers:/d", schedule="model").validate()
    with pytest.raises(ValueError, match="^schedule: 'model' needs a diffusers:DIR model"):
        SampleConfig(model="patch", data="digits", schedule="model").validate()


# --- end to end through the CLI, against diffusers' loop ----------------------------------------------
def _folder(tmp_path, sched):
    with _quiet(diffusers):
        diffusers.DDPMPipeline(unet=_unet(), scheduler=sched).save_pretrained(tmp_path / "pipe")
    return tmp_path / "pipe"


def _sample(folder, out, capsys, *flags):
    rc = main(["sample", "--model", f"diffusers:{folder}", "--n", str(N), "--seed", str(SEED), *flags,
               "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    rec = json.loads((out / "result.json").read_text())["result"]
    return load_file(str(out / "samples.safetensors"))["samples"], rec


def _diffusers_run(folder, steps, **step_kw):
    """diffusers' loop on the folder's UNet and scheduler, with critdiff sample's generators; (final, timesteps)."""
    pipe = diffusers.DDPMPipeline.from_pretrained(folder) if (folder / "model_index.json").is_file() else None
    unet, sched = pipe.unet, pipe.scheduler
    z = SM.randn_like(torch.empty(N, 1, 8, 8), SM.seed_generators(SEED, N))
    gens = SM.seed_generators(derive(SEED, "sampler-noise"), N)
    sched.set_timesteps(steps)
    seen = []
    with torch.no_grad():
        for t in sched.timesteps:
            seen.append(int(t))
            z = sched.step(unet(z, t).sample, t, z, generator=gens, **step_kw).prev_sample
    return z, seen


def test_ddpm_without_schedule_flag_is_the_models_own_ddpm_loop(tmp_path, capsys):
    folder = _folder(tmp_path, diffusers.DDPMScheduler(num_train_timesteps=1000))
    got, rec = _sample(folder, tmp_path / "out", capsys, "--sampler", "ddpm", "--steps", "50")
    assert rec["config"]["schedule"] == MODEL_SCHEDULE and rec["schedule"]["name"] == MODEL_SCHEDULE
    assert rec["nfe_per_sample"] == 50
    ref, seen = _diffusers_run(folder, 50)
    assert len(seen) == 50 and float((got - ref).abs().max()) / 2 <= 1e-4
    # the same run as critdiff's own sample_ddpm on the model's DDPM grid (its integer timesteps)
    model = load_diffusers(folder)
    grid = diffusers_sigma_grid(model, 50, "ddpm")
    z = SM.randn_like(torch.empty(N, 1, 8, 8), SM.seed_generators(SEED, N))
    with torch.no_grad():
        own = SM.sample_ddpm(model, z * math.sqrt(1 + float(grid[0]) ** 2), grid,
                             generator=SM.seed_generators(derive(SEED, "sampler-noise"), N))
    assert float((got - own).abs().max()) / 2 <= 1e-4


@pytest.mark.parametrize("sched_cfg", [dict(timestep_spacing="trailing"), dict(steps_offset=1)],
                         ids=["trailing", "offset1"])
def test_the_extra_step_case_takes_exactly_the_ddim_steps(tmp_path, capsys, sched_cfg):
    """set_alpha_to_one=False: diffusers' last DDIM step lands on abar_0 (no final denoising step); so does critdiff."""
    with _quiet(diffusers):
        sched = diffusers.DDIMScheduler(num_train_timesteps=1000, set_alpha_to_one=False, **sched_cfg)
    folder = _folder(tmp_path, sched)
    got, rec = _sample(folder, tmp_path / "out", capsys, "--sampler", "ddim", "--steps", "7")
    ref, seen = _diffusers_run(folder, 7)
    assert rec["nfe_per_sample"] == len(seen) == 7
    assert rec["sigma_min"] > 0  # the state ends on abar_0's level, as diffusers' does
    assert float((got - ref).abs().max()) / 2 <= 1e-4
    # the old default (vp-linear) is a different run: it does not reproduce diffusers
    old, _ = _sample(folder, tmp_path / "old", capsys, "--sampler", "ddim", "--steps", "7", "--schedule", "vp-linear")
    assert float((old - ref).abs().max()) / 2 > 1e-3
