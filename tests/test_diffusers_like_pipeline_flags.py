"""``critdiff sample --like-pipeline`` with every sampler / eta / dtype / schedule / spacing flag: each run either
gives the images the pipeline gives for what the flags ask, or exits 2 with one line; nothing is dropped.

The oracle is diffusers itself on the saved folder (a ``UNet2DModel`` + ``DDPMScheduler``, so the folder's own
pipeline is ``DDPMPipeline``): ``DDPMPipeline`` / ``DDIMPipeline(eta=E)`` called with the seed, in float32 or
moved to float64 with ``.to(torch.float64)`` (which draws its latents in float64, so its images are not the
float32 ones: ``randn_tensor(dtype=unet.dtype)``), and for an explicit Euler the scheduler's own loop
(``scale_model_input``, ``step``). The test's own reading of the flags (:func:`expected`) says which pipeline
call a run must equal; ``result.json`` must record that call (kind, eta, dtype), not the flags' defaults.
"""

import json
import math

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from critdiff.cli import main  # noqa: E402
from critdiff.integrations.diffusers.adapter import _quiet  # noqa: E402
from test_diffusers import _unet  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SEED, N, STEPS = 3, 2, 4
# float32: the pipeline's own float32 arithmetic against critdiff's (measured <= 1e-5 in test_diffusers_parity);
# float64: critdiff's float64 tables against diffusers' float32 alphas_cumprod promoted in float64 arithmetic
# (diffusers keeps its tables in float32 even in a float64 pipeline): ~1e-7 relative, far below the 1.0
# an ignored flag makes.
TOL = {"float32": 1e-4, "float64": 1e-5}
KIND_OF_SAMPLER = {"ddpm": "ddpm", "ddim": "ddim", "euler": "euler", "heun": "heun", "dpmpp-2m": "dpmpp-2m",
                   "pndm": "pndm", "unipc": "unipc", "deis": "deis", "lms": "lms", "lcm": "lcm"}
OWN_LOOP = {"euler": "EulerDiscreteScheduler", "heun": "HeunDiscreteScheduler", "dpmpp-2m": "DPMSolverMultistepScheduler",
            "pndm": "PNDMScheduler", "unipc": "UniPCMultistepScheduler", "deis": "DEISMultistepScheduler",
            "lms": "LMSDiscreteScheduler", "lcm": "LCMScheduler"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("like") / "pipe"
    unet = _unet()
    with torch.no_grad():
        unet.conv_out.weight.mul_(0.05)
    with _quiet(diffusers):
        pipe = diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler(num_train_timesteps=1000))
    pipe.save_pretrained(path)
    return path


_ORACLE: dict = {}


def oracle(folder, kind, eta, dtype):
    """The pipeline's images ``[B, C, H, W]`` for scheduler ``kind``, DDIM ``eta`` and ``dtype`` (module docstring)."""
    key = (kind, eta, dtype)
    if key not in _ORACLE:
        with _quiet(diffusers):
            unet = diffusers.UNet2DModel.from_pretrained(folder / "unet").to(getattr(torch, dtype))
            cfg = diffusers.DDPMScheduler.load_config(folder / "scheduler")
            gen = torch.Generator().manual_seed(SEED)
            if kind in ("ddpm", "ddim"):
                cls = diffusers.DDPMPipeline if kind == "ddpm" else diffusers.DDIMPipeline
                pipe = cls(unet=unet, scheduler=diffusers.DDPMScheduler.from_config(cfg))
                pipe.set_progress_bar_config(disable=True)
                kw = {"eta": eta} if kind == "ddim" else {}
                img = pipe(generator=gen, batch_size=N, num_inference_steps=STEPS, output_type="np", **kw).images
                _ORACLE[key] = torch.from_numpy(img).permute(0, 3, 1, 2).double()
            else:  # no pipeline: the scheduler's documented loop
                sched = getattr(diffusers, OWN_LOOP[kind]).from_config(cfg)
                sched.set_timesteps(STEPS)
                z = torch.randn((N, 1, 8, 8), generator=gen, dtype=unet.dtype) * sched.init_noise_sigma
                kw = {"generator": gen} if "generator" in sched.step.__code__.co_varnames else {}
                with torch.no_grad():
                    for t in sched.timesteps:
                        z = sched.step(unet(sched.scale_model_input(z, t), t).sample, t, z, **kw).prev_sample
                _ORACLE[key] = (z / 2 + 0.5).clamp(0, 1).double()
    return _ORACLE[key]


def expected(like, sampler, dtype, schedule, spacing):
    """The pipeline call the flags ask for, ``(kind, eta, dtype)``, or ``None`` where no call matches them."""
    if spacing is not None or schedule not in (None, "model"):
        return None
    kind, eta = (None if like in ("", None) else like), 0.0
    if sampler is not None:
        name, _, opt = sampler.partition(":")
        if name not in KIND_OF_SAMPLER or (opt and name != "ddim"):
            return None
        if kind is not None and kind != name:
            return None
        kind = name
        eta = float(opt.split("=")[1]) if opt else 0.0
        if not 0 <= eta <= 1:
            return None
    return (kind or "ddpm", eta, dtype or "float32")


LIKES = ["", "ddim", "ddpm", "euler", "unipc"]
SAMPLERS = [None, "heun", "euler", "ddim", "ddim:eta=0.5", "ddim:eta=1.5", "ddpm", "euler-maruyama", "dpmpp-2m",
            "heun:eta=0.5", "pndm", "unipc", "unipc:order=3", "deis", "deis:order=3", "lms", "lms:order=2", "lcm"]
CASES = sorted({(like, s, None, None, None) for like in LIKES for s in SAMPLERS}
               | {(like, None, d, None, None) for like in LIKES for d in ("float32", "float64")}
               | {(like, None, None, sch, None) for like in ("", "ddim") for sch in ("model", "vp-linear", "edm")}
               | {(like, None, None, None, sp) for like in ("", "ddim") for sp in ("logsnr", "karras", "t")}
               | {("", "ddim:eta=0.5", "float64", None, None), ("ddim", "ddim:eta=1", "float64", "model", None),
                  ("euler", None, "float64", None, None), ("", "lcm", "float64", None, None),
                  ("", "deis", "float64", None, None)}, key=str)


# the default suite: one case per flag value; the full cross is -m slow
FAST = [("", None, None, None, None), ("", "ddim:eta=0.5", None, None, None), ("ddpm", "ddim", None, None, None),
        ("", "heun", None, None, None), ("", "ddim:eta=1.5", None, None, None), ("", "heun:eta=0.5", None, None, None),
        ("", "euler-maruyama", None, None, None), ("", None, "float64", None, None),
        ("", None, None, "vp-linear", None), ("", None, None, None, "logsnr"), ("euler", None, "float64", None, None),
        ("ddim", "ddim:eta=1", "float64", "model", None), ("", "pndm", None, None, None),
        ("", "unipc:order=3", None, None, None)]
SLOW = [c for c in CASES if c not in FAST]


@pytest.mark.parametrize("like, sampler, dtype, schedule, spacing",
                         FAST + [pytest.param(*c, marks=pytest.mark.slow) for c in SLOW], ids=str)
def test_each_flag_acts_as_the_pipeline_would_or_exits_2(folder, tmp_path, capsys, like, sampler, dtype, schedule,
                                                         spacing):
    argv = ["sample", "--model", f"diffusers:{folder}", "--like-pipeline", *([like] if like else []), "--seed",
            str(SEED), "--n", str(N), "--steps", str(STEPS), "--out", str(tmp_path / "o")]
    for flag, value in (("--sampler", sampler), ("--dtype", dtype), ("--schedule", schedule), ("--spacing", spacing)):
        if value is not None:
            argv += [flag, value]
    rc = main(argv)
    err = capsys.readouterr().err
    want = expected(like, sampler, dtype, schedule, spacing)
    if rc == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("critdiff: error: "), err
        assert want is None, f"refused a call the pipeline makes ({want}): {err}"
        return
    assert rc == 0, err
    assert want is not None, f"ran flags that no pipeline call matches: {argv}"
    from safetensors.torch import load_file

    got = load_file(str(tmp_path / "o" / "samples.safetensors"))["images"]
    kind, eta, dt = want
    assert got.dtype == getattr(torch, dt)
    diff = float((got.double() - oracle(folder, kind, eta, dt)).abs().max())
    assert diff <= TOL[dt], f"{argv}: {diff:.3g} from the pipeline's {want}"
    rec = json.loads((tmp_path / "o" / "result.json").read_text())["result"]
    assert rec["config"]["like_pipeline"] == kind and rec["config"]["dtype"] == dt
    assert rec["config"]["sampler"] == (f"ddim:eta={eta!r}" if kind == "ddim" else "auto")


def test_the_flags_change_the_images(folder):
    """The oracle itself distinguishes the calls (else the test above could not see a dropped flag)."""
    base = oracle(folder, "ddim", 0.0, "float32")
    assert float((oracle(folder, "ddim", 0.5, "float32") - base).abs().max()) > 1e-2
    # a float64 pipeline draws its latents in float64 (randn_tensor(dtype=unet.dtype)): other images
    assert float((oracle(folder, "ddim", 0.0, "float64") - base).abs().max()) > 1e-2
    assert float((oracle(folder, "ddpm", 0.0, "float32") - base).abs().max()) > 1e-2
    assert not math.isnan(float(base.sum()))


@pytest.mark.parametrize("sched_cls", ["EulerDiscreteScheduler", "HeunDiscreteScheduler",
                                       "EulerAncestralDiscreteScheduler", "LMSDiscreteScheduler"])
def test_ddpm_pipeline_with_a_sigma_frame_scheduler_is_refused(tmp_path, capsys, sched_cls):
    """``DDPMPipeline`` never calls ``scale_model_input`` nor scales by ``init_noise_sigma``: with these schedulers
    it is not a sampler of the model, so ``--like-pipeline`` refuses it and names the scheduler's own loop."""
    with _quiet(diffusers):
        pipe = diffusers.DDPMPipeline(unet=_unet(), scheduler=getattr(diffusers, sched_cls)(num_train_timesteps=1000))
    pipe.save_pretrained(tmp_path / "pipe")
    rc = main(["sample", "--model", f"diffusers:{tmp_path / 'pipe'}", "--like-pipeline", "--n", "1", "--steps", "2",
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert f"DDPMPipeline with the folder's {sched_cls} is not a sampler" in err and "scale_model_input" in err
