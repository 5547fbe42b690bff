"""The late start inside a real diffusers pipeline (critdiff.integrations.diffusers.late_start).

Oracle: ``StableDiffusionPipeline`` itself (a tiny random UNet2DConditionModel + CLIP + VAE folder, built and saved
by test_diffusers_pipelines.sd_pipeline; nothing is downloaded) called with the exported ``latents=`` and
``timesteps=`` must give the images of critdiff's own run of the truncated plan from the same state: float32, max
difference <= 1e-4 in [0, 1] image units (the two loops round float32 differently).
"""

import math

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from critdiff import samplers as SM  # noqa: E402
from critdiff.integrations.diffusers import load_diffusers  # noqa: E402
from critdiff.integrations.diffusers.late_start import initial_state, pipeline_late_start, truncate_plan  # noqa: E402
from critdiff.integrations.diffusers.loops import run_plan  # noqa: E402
from critdiff.integrations.diffusers.schedulers import scheduler_plan  # noqa: E402
from critdiff.late_start import fit_moments  # noqa: E402
from test_diffusers_pipelines import PROMPT, _images, sd_pipeline  # noqa: E402  (the shared tiny pipeline)

pytestmark = pytest.mark.usefixtures("one_thread")
TOL = 1e-4
STEPS, N = 8, 2


def _moments(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = 0.3 * torch.randn(40, *shape, generator=g) + 0.1
    return fit_moments(y, "stationary")


@pytest.mark.parametrize("scheduler", [pytest.param("DDPMScheduler", marks=pytest.mark.slow), "DPMSolverMultistepScheduler",
                                       pytest.param("EulerDiscreteScheduler", marks=pytest.mark.slow),
                                       pytest.param("HeunDiscreteScheduler", marks=pytest.mark.slow)])
def test_pipeline_late_start_equals_critdiffs_truncated_run(tmp_path_factory, scheduler):
    pipe, folder = sd_pipeline(tmp_path_factory, scheduler)
    model = load_diffusers(folder, prompt=PROMPT)
    full = scheduler_plan(model, STEPS)
    lam = -2 * torch.log(full.sigmas)
    start = float(lam[3]) - 1e-6  # start at the fourth evaluated level
    out = pipeline_late_start(model, _moments(model.sample_shape), STEPS, start, N, SM.seed_generators(1, N))
    assert out.steps_kept == STEPS - 3 and out.steps_skipped == 3
    assert math.isclose(out.sigma0, float(full.sigmas[3]), rel_tol=1e-12)
    calls = []
    hook = pipe.unet.register_forward_pre_hook(lambda mod, args: calls.append(float(args[1].reshape(-1)[0])))
    try:
        ref = _images(pipe(PROMPT, guidance_scale=1.0, num_images_per_prompt=N, timesteps=out.timesteps,
                           latents=out.latents.clone(), output_type="np", generator=torch.Generator().manual_seed(5)))
    finally:
        hook.remove()
    # the pipeline evaluated exactly the kept timesteps (Heun: each level but the first twice)
    per_level = [float(t) for t in out.timesteps]
    want = per_level if not scheduler.startswith("Heun") else [per_level[0]] + [t for t in per_level[1:] for _ in (0, 1)]
    assert calls == pytest.approx(want, abs=1e-6)
    with torch.no_grad():
        # DDPM draws its step noise from the call's generator (the latents are given, so only the steps draw)
        z = run_plan(model, out.plan, initial_state(out), label=0, generator=torch.Generator().manual_seed(5))
        mine = (model.decode(z) / 2 + 0.5).clamp(0, 1)
    assert float((mine - ref).abs().max()) <= TOL


def test_pipeline_late_start_draws_the_matching_gaussian(tmp_path_factory):
    """The exported latents, moved back to the denoiser frame, have the moments of N(mu, Sigma + sigma0^2 I)."""
    _, folder = sd_pipeline(tmp_path_factory, "DDPMScheduler")
    model = load_diffusers(folder, prompt=PROMPT)
    m = _moments(model.sample_shape)
    out = pipeline_late_start(model, m, STEPS, 0.0, 3000, torch.Generator().manual_seed(2))
    x = initial_state(out).to(torch.float64).reshape(3000, -1)
    cov = m.dense_covariance() + out.sigma0**2 * torch.eye(x.shape[1], dtype=torch.float64)
    # 3000 draws: an entry's standard error is <= sqrt(2 / 3000) * max variance; 5 of them
    se = math.sqrt(2 / 3000) * float(torch.diagonal(cov).max())
    assert float((torch.cov(x.T) - cov).abs().max()) < 5 * se
    assert float((x.mean(0) - m.mu.reshape(-1)).abs().max()) < 5 * math.sqrt(float(torch.diagonal(cov).max()) / 3000)


def test_refusals(tmp_path_factory):
    _, folder = sd_pipeline(tmp_path_factory, "DDIMScheduler")
    model = load_diffusers(folder, prompt=PROMPT)
    with pytest.raises(ValueError, match="^scheduler: .*timesteps="):
        pipeline_late_start(model, _moments(model.sample_shape), STEPS, 0.0, 1)
    with pytest.raises(ValueError, match="^moments:"):
        pipeline_late_start(model, _moments((1, 2, 2)), STEPS, 0.0, 1)
    with pytest.raises(ValueError, match="^start_logsnr"):
        truncate_plan(scheduler_plan(model, STEPS), 99.0)
