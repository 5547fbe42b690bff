"""``--like-pipeline`` with PNDM, UniPC, DEIS, LMS and LCM: the pipelines themselves are the oracle.

Tiny random-init folders written by the tests (float32, max |difference| in [0, 1] image units):
``StableDiffusionPipeline`` (the UNet/CLIP/VAE of ``test_diffusers_pipelines``) with each scheduler, PNDM in Stable
Diffusion 1.x's own configuration (``skip_prk_steps=True``, ``steps_offset=1``, ``set_alpha_to_one=False``, scaled
linear betas); ``PNDMPipeline`` (PNDM with its Runge-Kutta warm-up) and ``DDPMPipeline`` with an ``LCMScheduler`` on a
``UNet2DModel`` folder, through the CLI. Bound 1e-5 as for the other schedulers in ``test_diffusers_pipelines``
(the residual is the float32 scheduler and VAE arithmetic; measured values in docs/diffusers.md, section 3).
"""

import pytest
import torch
from safetensors.torch import load_file

diffusers = pytest.importorskip("diffusers")

from critdiff.cli import main  # noqa: E402
from critdiff.integrations.diffusers import load_diffusers  # noqa: E402
from critdiff.integrations.diffusers.adapter import _quiet  # noqa: E402
from critdiff.integrations.diffusers.pipeline import pipeline_guidance, sample_like_pipeline  # noqa: E402
from test_diffusers import _unet  # noqa: E402
from test_diffusers_conditional import text_unet, tiny_clip, vae  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-5
STEPS, N, SEED, PROMPT = 5, 2, 2, "a cat"
SD_BETAS = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
SCHEDULERS = {
    "pndm": ("PNDMScheduler", dict(SD_BETAS, skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)),
    "unipc": ("UniPCMultistepScheduler", dict(SD_BETAS, solver_order=2)),
    "unipc3-bh1": ("UniPCMultistepScheduler", dict(SD_BETAS, solver_order=3, solver_type="bh1",
                                                   final_sigmas_type="sigma_min")),
    "deis": ("DEISMultistepScheduler", dict(SD_BETAS, solver_order=3)),
    "lms": ("LMSDiscreteScheduler", dict(SD_BETAS)),
    "lcm": ("LCMScheduler", dict(SD_BETAS)),
}
_FOLDERS: dict = {}


def _images(out):
    return torch.from_numpy(out.images).permute(0, 3, 1, 2)


def sd_folder(tmp_path_factory, key):
    if key not in _FOLDERS:
        cls, cfg = SCHEDULERS[key]
        folder = tmp_path_factory.mktemp("sd")
        tok, enc = tiny_clip(folder)
        with _quiet(diffusers):
            pipe = diffusers.StableDiffusionPipeline(
                vae=vae(), text_encoder=enc, tokenizer=tok, unet=text_unet(channels=4, seed=1),
                scheduler=getattr(diffusers, cls)(num_train_timesteps=1000, **cfg), safety_checker=None,
                feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        pipe.save_pretrained(folder / "pipe")
        _FOLDERS[key] = (pipe, folder / "pipe")
    return _FOLDERS[key]


def _sd_cell(tmp_path_factory, key, w):
    pipe, folder = sd_folder(tmp_path_factory, key)
    ref = _images(pipe(PROMPT, guidance_scale=w, num_images_per_prompt=N, num_inference_steps=STEPS,
                       generator=torch.Generator().manual_seed(SEED), output_type="np"))
    mine = sample_like_pipeline(load_diffusers(folder, prompt=PROMPT), N, STEPS, SEED, guidance=pipeline_guidance(w))
    assert mine.shape == ref.shape == (N, 3, 16, 16)
    err = float((mine - ref).abs().max())
    print(f"\nStableDiffusionPipeline {key} w={w}: {err:.2g}")
    assert err <= TOL


@pytest.mark.parametrize("key, w", [("pndm", 7.5)])
def test_stable_diffusion_with_its_pndm_config(tmp_path_factory, key, w):
    _sd_cell(tmp_path_factory, key, w)


@pytest.mark.slow
@pytest.mark.parametrize("key, w", [("pndm", 1.0), ("unipc", 7.5), ("unipc", 1.0), ("unipc3-bh1", 7.5), ("deis", 7.5),
                                    ("deis", 1.0), ("lms", 7.5), ("lms", 1.0), ("lcm", 1.5), ("lcm", 1.0)])
def test_stable_diffusion_with_the_multistep_schedulers(tmp_path_factory, key, w):
    _sd_cell(tmp_path_factory, key, w)


def _unet_folder(tmp_path, pipe_cls, sched):
    unet = _unet()
    with torch.no_grad():
        unet.conv_out.weight.mul_(0.05)
    with _quiet(diffusers):
        pipe = getattr(diffusers, pipe_cls)(unet=unet, scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(tmp_path / "pipe")
    return pipe, tmp_path / "pipe"


@pytest.mark.parametrize("pipe_cls, sched_cls, cfg", [
    ("PNDMPipeline", "PNDMScheduler", {}),  # the Runge-Kutta warm-up (skip_prk_steps=False, the class default)
    pytest.param("DDPMPipeline", "LCMScheduler", {}, marks=pytest.mark.slow),
])
def test_cli_like_pipeline_on_a_unet_folder_equals_the_pipeline(tmp_path, capsys, pipe_cls, sched_cls, cfg):
    with _quiet(diffusers):
        sched = getattr(diffusers, sched_cls)(num_train_timesteps=1000, **cfg)
    pipe, folder = _unet_folder(tmp_path, pipe_cls, sched)
    rc = main(["sample", "--model", f"diffusers:{folder}", "--like-pipeline", "--seed", str(SEED), "--steps", "6",
               "--n", str(N), "--out", str(tmp_path / "o")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert f"like {sched_cls}" in out.out
    ref = _images(pipe(generator=torch.Generator().manual_seed(SEED), batch_size=N, num_inference_steps=6,
                       output_type="np"))
    got = load_file(str(tmp_path / "o" / "samples.safetensors"))["images"]
    assert float((got - ref).abs().max()) <= 1e-4  # as test_like_pipeline_reproduces_the_pipeline (float32)


def test_an_lcm_distilled_unet_is_refused_in_one_line():
    """A UNet with ``time_cond_proj_dim`` expects LatentConsistencyModelPipeline's guidance embedding; run without it
    the network would silently see a zero embedding, so it is refused at load."""
    from critdiff.integrations.diffusers import DiffusersDenoiser
    from test_diffusers_conditional import WIDTH

    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=WIDTH, attention_head_dim=4, time_cond_proj_dim=16).eval()
    with pytest.raises(ValueError, match="^model: a UNet with time_cond_proj_dim .* is not supported") as info:
        DiffusersDenoiser(unet, diffusers.LCMScheduler())
    assert "\n" not in str(info.value)


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["PNDMScheduler", "UniPCMultistepScheduler", "DEISMultistepScheduler"])
def test_like_pipeline_reproduces_dit_pipeline_with_the_deterministic_multistep_schedulers(tmp_path_factory, scheduler):
    """``DiTPipeline`` steps the doubled guided batch without a generator and hands ``step()`` the scaled input: for
    these schedulers (deterministic, ``scale_model_input`` the identity) it is a sampler of the model."""
    from test_diffusers_pipelines import dit_pipeline

    pipe, folder = dit_pipeline(tmp_path_factory, scheduler)
    labels = [3, 7]
    ref = _images(pipe(class_labels=labels, guidance_scale=4.0, generator=torch.Generator().manual_seed(SEED),
                       num_inference_steps=STEPS, output_type="np"))
    mine = sample_like_pipeline(load_diffusers(folder), N, STEPS, SEED, label=torch.tensor(labels),
                                guidance=pipeline_guidance(4.0))
    err = float((mine - ref).abs().max())
    print(f"\nDiTPipeline {scheduler} w=4: {err:.2g}")
    assert err <= TOL
