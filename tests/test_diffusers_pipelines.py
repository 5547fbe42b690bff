"""``--like-pipeline`` on the pipelines users run beyond DDPM/DDIM: ``DiTPipeline`` and ``StableDiffusionPipeline``.

The oracle is the pipeline itself, called on tiny random-init models that the test builds and saves (a
``DiTTransformer2DModel`` + ``AutoencoderKL``; a ``UNet2DConditionModel`` + CLIP text encoder and tokenizer
written from configs and a vocabulary file + ``AutoencoderKL``): nothing is downloaded. critdiff loads the
saved folder and :func:`sample_like_pipeline` must give the pipeline's ``output_type='np'`` images for the same
``torch.Generator().manual_seed(S)``: float32, max difference <= 1e-4 in [0, 1] image units.
The Stable Diffusion tests need ``transformers`` (the ``text`` extra) and are skipped without it.
"""

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from safetensors.torch import load_file  # noqa: E402

from critdiff.cli import main  # noqa: E402
from critdiff.integrations.diffusers import load_diffusers  # noqa: E402
from critdiff.integrations.diffusers.adapter import _quiet  # noqa: E402
from critdiff.integrations.diffusers.pipeline import pipeline_guidance, sample_like_pipeline  # noqa: E402
from test_diffusers_conditional import dit, text_unet, tiny_clip, vae  # noqa: E402  (the shared tiny networks)

pytestmark = pytest.mark.usefixtures("one_thread")
TOL = 1e-5  # measured max 1.6e-6 (docs/diffusers.md section 3): the scheduler's float32 arithmetic in two frames
STEPS, N, SEED = 4, 2, 2
PROMPT = "a cat"


def _images(out):
    return torch.from_numpy(out.images).permute(0, 3, 1, 2)


def _scheduler(name):
    with _quiet(diffusers):
        return getattr(diffusers, name)(num_train_timesteps=1000)


_FOLDERS: dict = {}


def dit_pipeline(tmp_path_factory, scheduler):
    """A saved DiTPipeline (1000 classes: DiTPipeline's null class is the hard-coded 1000)."""
    key = ("dit", scheduler)
    if key not in _FOLDERS:
        with _quiet(diffusers):
            pipe = diffusers.DiTPipeline(transformer=dit(classes=1000), vae=vae(channels=3, latent=1),
                                         scheduler=_scheduler(scheduler))
        pipe.set_progress_bar_config(disable=True)
        folder = tmp_path_factory.mktemp("dit")
        pipe.save_pretrained(folder)
        _FOLDERS[key] = (pipe, folder)
    return _FOLDERS[key]


def sd_pipeline(tmp_path_factory, scheduler):
    """A saved StableDiffusionPipeline with its own tokenizer and text encoder (needs transformers)."""
    key = ("sd", scheduler)
    if key not in _FOLDERS:
        folder = tmp_path_factory.mktemp("sd")
        tok, enc = tiny_clip(folder)
        with _quiet(diffusers):
            pipe = diffusers.StableDiffusionPipeline(
                vae=vae(), text_encoder=enc, tokenizer=tok, unet=text_unet(channels=4, seed=1),
                scheduler=_scheduler(scheduler), safety_checker=None, feature_extractor=None,
                requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        pipe.save_pretrained(folder / "pipe")
        _FOLDERS[key] = (pipe, folder / "pipe")
    return _FOLDERS[key]


# --- DiTPipeline ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheduler", ["DDIMScheduler", "DPMSolverMultistepScheduler"])
@pytest.mark.parametrize("w", [1.0, 4.0])
def test_like_pipeline_reproduces_dit_pipeline(tmp_path_factory, scheduler, w):
    pipe, folder = dit_pipeline(tmp_path_factory, scheduler)
    labels = [3, 7]
    ref = _images(pipe(class_labels=labels, guidance_scale=w, generator=torch.Generator().manual_seed(SEED),
                       num_inference_steps=STEPS, output_type="np"))
    mine = sample_like_pipeline(load_diffusers(folder), N, STEPS, SEED, label=torch.tensor(labels),
                                guidance=pipeline_guidance(w))
    assert mine.shape == ref.shape == (N, 3, 16, 16)
    assert float((mine - ref).abs().max()) <= TOL


def test_dit_pipelines_that_are_not_samplers_are_refused(tmp_path_factory):
    _, folder = dit_pipeline(tmp_path_factory, "DDIMScheduler")
    model = load_diffusers(folder)
    for kind, eta in (("euler", 0.0), ("heun", 0.0), ("ddpm", 0.0), ("ddim", 0.5)):
        with pytest.raises(ValueError, match=f"^sampler: DiTPipeline cannot be reproduced with {kind}") as info:
            sample_like_pipeline(model, 1, 2, 0, sampler=kind, eta=eta, label=1)
        assert "\n" not in str(info.value)


def test_like_pipeline_cli_on_a_dit_folder_with_guidance_scale(tmp_path_factory, capsys):
    pipe, folder = dit_pipeline(tmp_path_factory, "DDIMScheduler")
    out = tmp_path_factory.mktemp("dit-out")
    rc = main(["sample", "--model", f"diffusers:{folder}", "--like-pipeline", "--label", "5", "--guidance-scale", "4",
               "--seed", str(SEED), "--steps", str(STEPS), "--n", str(N), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    ref = _images(pipe(class_labels=[5] * N, guidance_scale=4.0, generator=torch.Generator().manual_seed(SEED),
                       num_inference_steps=STEPS, output_type="np"))
    assert float((load_file(str(out / "samples.safetensors"))["images"] - ref).abs().max()) <= TOL


# --- StableDiffusionPipeline --------------------------------------------------------------------------
@pytest.mark.parametrize("scheduler, w", [("DDIMScheduler", 7.5), ("DPMSolverMultistepScheduler", 7.5),
                                          ("EulerAncestralDiscreteScheduler", 3.0), ("DDPMScheduler", 1.0),
                                          ("EulerDiscreteScheduler", 7.5)])
def test_like_pipeline_reproduces_stable_diffusion(tmp_path_factory, scheduler, w):
    pipe, folder = sd_pipeline(tmp_path_factory, scheduler)
    ref = _images(pipe(PROMPT, guidance_scale=w, num_images_per_prompt=N, num_inference_steps=STEPS,
                       generator=torch.Generator().manual_seed(SEED), output_type="np"))
    model = load_diffusers(folder, prompt=PROMPT)
    mine = sample_like_pipeline(model, N, STEPS, SEED, guidance=pipeline_guidance(w))
    assert mine.shape == ref.shape == (N, 3, 16, 16)
    assert float((mine - ref).abs().max()) <= TOL


def test_like_pipeline_cli_on_a_stable_diffusion_folder(tmp_path_factory, capsys):
    pipe, folder = sd_pipeline(tmp_path_factory, "DDIMScheduler")
    out = tmp_path_factory.mktemp("sd-out")
    rc = main(["sample", "--model", f"diffusers:{folder}", "--prompt", PROMPT, "--like-pipeline", "--guidance-scale",
               "7.5", "--seed", str(SEED), "--steps", str(STEPS), "--n", str(N), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    ref = _images(pipe(PROMPT, guidance_scale=7.5, num_images_per_prompt=N, num_inference_steps=STEPS,
                       generator=torch.Generator().manual_seed(SEED), output_type="np"))
    assert float((load_file(str(out / "samples.safetensors"))["images"] - ref).abs().max()) <= TOL


def test_guidance_scale_flag_needs_like_pipeline(tmp_path, capsys):
    rc = main(["sample", "--model", "patch", "--data", "digits", "--guidance-scale", "3", "--out", str(tmp_path)])
    assert rc == 2 and "guidance_scale: only --like-pipeline uses --guidance-scale" in capsys.readouterr().err
    assert pipeline_guidance(1.0) is None and pipeline_guidance(0.5) is None and pipeline_guidance(3) == 3.0
    with pytest.raises(ValueError, match="^guidance_scale: expected a finite number"):
        pipeline_guidance(float("nan"))


# --- a critdiff guidance schedule inside StableDiffusionPipeline (callbacks.guidance_callback) ----------
def _unet_batches(pipe):
    """Record the batch size of every UNet call (2N: guided, N: the conditional branch alone)."""
    sizes = []
    hook = pipe.unet.register_forward_pre_hook(lambda mod, args: sizes.append(int(args[0].shape[0])))
    return sizes, hook


@pytest.mark.parametrize("scheduler", ["DDIMScheduler", "DPMSolverMultistepScheduler", "EulerDiscreteScheduler",
                                       "HeunDiscreteScheduler"] + [
    pytest.param(name, marks=pytest.mark.slow) for name in ("UniPCMultistepScheduler", "DEISMultistepScheduler",
                                                            "LMSDiscreteScheduler", "LCMScheduler")])
@pytest.mark.parametrize("where", ["middle", "start"])
def test_guidance_callback_in_stable_diffusion_equals_critdiffs_guided_sampler(tmp_path_factory, scheduler, where):
    from critdiff.guidance_schedules import Pulse
    from critdiff.integrations.diffusers.callbacks import guidance_callback, guide_config, pipeline_levels
    from critdiff.integrations.diffusers.schedulers import scheduler_plan

    pipe, folder = sd_pipeline(tmp_path_factory, scheduler)
    steps = 6
    model = load_diffusers(folder, prompt=PROMPT)
    plan = scheduler_plan(model, steps)
    lam = [float(-2 * torch.log(s)) for s in plan.sigmas]
    lo, hi = (1, 3) if where == "middle" else (0, 1)  # a box in logsnr over steps lo..hi
    centre, width = (lam[lo] + lam[hi]) / 2, (lam[hi] - lam[lo]) * 1.02
    table = guide_config(model, centre, steps, width=width, height=5.0)["table"]  # guide-config's per-step table
    pulse = Pulse(centre, width, 5.0)
    callback, scales = guidance_callback(pulse, plan)
    assert callback.per_step == [row["guidance_scale"] for row in table]  # the table is indexed as the callback
    assert [row["step"] for row in table] == list(range(len(table)))
    expected = [1.0, 5.0, 5.0, 5.0, 1.0, 1.0] if where == "middle" else [5.0, 5.0, 1.0, 1.0, 1.0, 1.0]
    assert scales == expected
    sizes, hook = _unet_batches(pipe)
    try:
        ref = _images(pipe(PROMPT, guidance_scale=scales[0], num_images_per_prompt=N, num_inference_steps=steps,
                           generator=torch.Generator().manual_seed(SEED), output_type="np",
                           callback_on_step_end=callback, callback_on_step_end_tensor_inputs=callback.tensor_inputs))
    finally:
        hook.remove()
    per_step = [scales[k] for k in pipeline_levels(plan)]  # Heun evaluates levels 0, 1, 1, 2, 2, ...
    assert len(per_step) == (2 * steps - 1 if scheduler.startswith("Heun") else steps)
    assert callback.applied == per_step == [row["guidance_scale"] for row in table]  # each step's scale
    assert sizes == [2 * N if w > 1 else N for w in per_step]  # guided steps evaluate both branches, the others one
    mine = sample_like_pipeline(model, N, steps, SEED, guidance=pulse)  # critdiff's guided sampler, same pulse
    assert float((mine - ref).abs().max()) <= TOL


NEG = "dog"


def _pulse_callback(model, steps, lo, hi, **kw):
    from critdiff.guidance_schedules import Pulse
    from critdiff.integrations.diffusers.callbacks import guidance_callback
    from critdiff.integrations.diffusers.schedulers import scheduler_plan

    plan = scheduler_plan(model, steps)
    lam = [float(-2 * torch.log(s)) for s in plan.sigmas]
    pulse = Pulse((lam[lo] + lam[hi]) / 2, (lam[hi] - lam[lo]) * 1.02, 5.0)
    return (pulse, *guidance_callback(pulse, plan, **kw))


@pytest.mark.parametrize("scheduler", ["DDIMScheduler", "HeunDiscreteScheduler"])
def test_negative_prompt_with_a_pulse_after_step_0_equals_critdiffs_guided_sampler(tmp_path_factory, tmp_path,
                                                                                  scheduler):
    """A pulse over steps 1..3: the call starts unguided, so the pipeline never encodes its negative prompt; the
    callback encodes it and the images equal critdiff's guided sampler whose null prompt is that negative prompt."""
    from critdiff.integrations.diffusers import save_cond
    from critdiff.integrations.diffusers.conditioning import encode_prompt

    pipe, folder = sd_pipeline(tmp_path_factory, scheduler)
    steps = 6
    pulse, callback, scales = _pulse_callback(load_diffusers(folder, prompt=PROMPT), steps, 1, 3, negative_prompt=NEG)
    assert scales[0] == 1.0 and max(scales) == 5.0
    ref = _images(pipe(PROMPT, num_images_per_prompt=N, num_inference_steps=steps, output_type="np",
                       generator=torch.Generator().manual_seed(SEED), **callback.pipe_kwargs))
    text = encode_prompt(folder, PROMPT, negative_prompt=NEG)
    save_cond(tmp_path / "neg.safetensors", text.cond, text.null)
    mine = sample_like_pipeline(load_diffusers(folder, cond=tmp_path / "neg.safetensors"), N, steps, SEED,
                                label=0, guidance=pulse)
    assert float((mine - ref).abs().max()) <= TOL
    plain = sample_like_pipeline(load_diffusers(folder, prompt=PROMPT), N, steps, SEED, guidance=pulse)
    assert float((plain - ref).abs().max()) > 100 * TOL  # the negative prompt is seen (else this test is blind)


def test_callback_misuse_is_one_clear_error_at_the_first_call(tmp_path_factory):
    pipe, folder = sd_pipeline(tmp_path_factory, "DDIMScheduler")
    model = load_diffusers(folder, prompt=PROMPT)
    run = dict(num_images_per_prompt=1, num_inference_steps=6, output_type="np")

    def error(callback_kw=None, steps=None, **call):
        _, cb, _ = _pulse_callback(model, 6, 1, 3, **(callback_kw or {}))
        kw = {**cb.pipe_kwargs, **call}
        with pytest.raises(ValueError) as info:
            pipe(PROMPT, **{**run, "num_inference_steps": steps or 6}, **kw)
        assert "\n" not in str(info.value)
        return str(info.value)

    assert error(guidance_scale=7.5).startswith("guidance_scale: the pipeline was called with guidance_scale=7.5")
    assert error(callback_on_step_end_tensor_inputs=["latents"]).startswith("callback_on_step_end_tensor_inputs: ")
    assert error(negative_prompt=NEG).startswith("negative_prompt: the pipeline was given 'dog', the callback None")
    assert error({"negative_prompt": NEG}, negative_prompt=None).startswith("negative_prompt: the pipeline was given None")
    assert error(guidance_rescale=0.7).startswith("guidance_rescale: 0.7 is not supported")
    assert error(steps=8).startswith("timestep: pipeline step 0 ran at timestep")
