"""Parity matrix: critdiff's samplers on a diffusers scheduler's plan against diffusers' own loops and pipelines.

The oracle is diffusers itself, run on tiny random-init UNets: ``for t in timesteps: z = step(unet(
scale_model_input(z, t), t), t, z, generator)`` with the noise drawn from one seeded generator, and
guidance as the pipelines make it: one call on ``[z; z]`` with ``[null; label]`` at batch 2B, the raw outputs
mixed ``out_u + w (out_c - out_u)`` before ``step`` (``w = 1``: the conditional call alone). In float64 both
sides get float64 tables (``alphas_cumprod``, ``sigmas``), and the state handed to diffusers ignores
the ``sample.to(torch.float32)`` cast in Euler/Euler-ancestral/DPM-Solver ``step()`` (:class:`_F64`),
so the comparison is of the algorithms, not of diffusers' float32 rounding. Tolerances: float64
1e-12 absolute on the final state (measured max 1.1e-13 over the full matrix), float32 1e-4 in [0, 1] image
units (``z / 2``; measured max 9.2e-5: two float32 roundings of the scheduler arithmetic, one in the VP frame,
one in the VE frame, not the guidance, which makes the same batched call on both sides). Refused cells
must give a one-line ``ValueError`` and be listed in :data:`REFUSED` (and in docs/diffusers.md).
The default suite runs a representative subset; the full matrix is ``-m slow``.
"""

import itertools
import math

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from critdiff.integrations.diffusers import DiffusersDenoiser, run_plan, scheduler_plan  # noqa: E402
from critdiff.integrations.diffusers.adapter import _quiet  # noqa: E402
from critdiff.integrations.diffusers.loops import initial_state  # noqa: E402
from critdiff.integrations.diffusers.pipeline import sample_like_pipeline  # noqa: E402
from test_diffusers import _unet as _base_unet  # noqa: E402  (the shared tiny UNet2DModel)

TOL = {torch.float64: 1e-12, torch.float32: 1e-4}
CLASSES = {"ddpm": "DDPMScheduler", "ddim": "DDIMScheduler", "euler": "EulerDiscreteScheduler",
           "heun": "HeunDiscreteScheduler", "euler-ancestral": "EulerAncestralDiscreteScheduler",
           "dpmpp-2m": "DPMSolverMultistepScheduler"}
PREDICTIONS = {"eps": "epsilon", "v": "v_prediction", "x0": "sample"}
NULL = 10
# (kind, prediction) cells that diffusers itself rejects at step() (not critdiff refusals)
DIFFUSERS_REJECTS = {("euler-ancestral", "x0")}
# critdiff refusals (one line each; docs/diffusers.md lists them)
REFUSED: set = set()


class _F64(torch.Tensor):
    """A float64 state that ignores ``.to(torch.float32)`` (diffusers' Euler-family ``step()`` casts to float32)."""

    def to(self, *args, **kwargs):
        if (args and args[0] is torch.float32) or kwargs.get("dtype") is torch.float32:
            return self
        return super().to(*args, **kwargs)


def _unet(dtype, classes=None, seed=0):
    unet = _base_unet(seed=seed, num_class_embeds=classes, dtype=dtype)
    with torch.no_grad():  # O(1) outputs, so that float32 differences are measured where pixels live
        unet.conv_out.weight.mul_(0.05)
    return unet


pytestmark = pytest.mark.usefixtures("one_thread")


_UNETS: dict = {}


def unet_for(dtype, guided):
    key = (dtype, guided)
    if key not in _UNETS:
        _UNETS[key] = _unet(dtype, classes=11 if guided else None)
    return _UNETS[key]


def _promote(sched):
    sched.alphas_cumprod = sched.alphas_cumprod.double()
    for name in ("one", "final_alpha_cumprod", "sigmas"):
        if isinstance(getattr(sched, name, None), torch.Tensor):
            setattr(sched, name, getattr(sched, name).double())


def diffusers_loop(unet, sched, z, n_steps, seed, dtype, w=None, labels=None, **step_kw):
    """diffusers' own loop from standard normal ``z``; returns the final state."""
    sched.set_timesteps(n_steps)
    if dtype == torch.float64:
        _promote(sched)
        z = z.as_subclass(_F64)
    z = z * sched.init_noise_sigma
    gen = torch.Generator().manual_seed(seed)
    if "generator" not in sched.step.__code__.co_varnames:
        gen = None
    with torch.no_grad():
        for t in sched.timesteps:
            zin = sched.scale_model_input(z, t)
            if w is None:
                out = unet(zin, t).sample
            elif w == 1:  # guidance_scale <= 1: the pipelines evaluate the conditional model alone
                out = unet(zin, t, class_labels=labels).sample
            else:  # as StableDiffusionPipeline: one call on [z; z] with [null; label], then mix
                ou, oc = unet(torch.cat([zin, zin]), t, class_labels=torch.cat([torch.full_like(labels, NULL),
                                                                                labels])).sample.chunk(2)
                out = ou + w * (oc - ou)
            kw = dict(step_kw, **({"generator": gen} if gen is not None else {}))
            z = sched.step(out, t, z, **kw).prev_sample
    return z.as_subclass(torch.Tensor)


def run_cell(kind, dtype, steps=4, prediction="eps", spacing=None, offset=None, alpha_one=None, clip=None,
             eta=None, w=None):
    """Max |difference| (in z / 2 units) between diffusers' loop and critdiff's run of one matrix cell."""
    cfg = {"num_train_timesteps": 1000, "prediction_type": PREDICTIONS[prediction]}
    for key, value in (("timestep_spacing", spacing), ("steps_offset", offset), ("set_alpha_to_one", alpha_one),
                       ("clip_sample", clip)):
        if value is not None:
            cfg[key] = value
    with _quiet(diffusers):
        sched = getattr(diffusers, CLASSES[kind])(**cfg)
    unet = unet_for(dtype, w is not None)
    model = DiffusersDenoiser(unet, sched)
    labels = torch.tensor([1, 2]) if w is not None else None
    z = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(5), dtype=dtype)
    try:
        plan = scheduler_plan(model, steps)
    except ValueError as e:
        assert "\n" not in str(e)
        REFUSED.add((kind, prediction, spacing))
        raise
    with torch.no_grad():
        mine = run_plan(model, plan, initial_state(plan, z), label=labels, guidance=w,
                        generator=torch.Generator().manual_seed(9), eta=eta or 0.0)
    ref = diffusers_loop(unet, sched, z, steps, 9, dtype, w=w, labels=labels,
                         **({"eta": eta} if eta is not None else {}))
    assert mine.dtype == ref.dtype == dtype
    return float((mine - ref).abs().max()) / 2


def _check(kind, dtype, **kw):
    if (kind, kw.get("prediction", "eps")) in DIFFUSERS_REJECTS:
        pytest.skip("diffusers' own step() rejects this prediction type")
    err = run_cell(kind, dtype, **kw)
    assert err <= TOL[dtype], f"{kind} {dtype} {kw}: max difference {err:.3g}"


DTYPES = [torch.float64, torch.float32]
KINDS = list(CLASSES)

# --- the default suite: a representative subset --------------------------------------------------
REPRESENTATIVE = [
    ("ddpm", dict()), ("ddpm", dict(prediction="v", spacing="trailing")),
    ("ddpm", dict(prediction="x0", clip=False, spacing="linspace")),
    ("ddim", dict()), ("ddim", dict(eta=0.5, alpha_one=False)), ("ddim", dict(eta=1.0, prediction="v", offset=1)),
    ("ddim", dict(spacing="trailing", alpha_one=False)), ("ddim", dict(spacing="linspace", alpha_one=False, clip=True)),
    ("ddim", dict(offset=0, alpha_one=False, prediction="x0")),
    ("euler", dict()), ("euler", dict(prediction="v", spacing="leading", offset=1)),
    ("heun", dict(spacing="trailing")), ("heun", dict(prediction="v", clip=True)),
    ("euler-ancestral", dict(spacing="trailing")), ("dpmpp-2m", dict()),
    ("dpmpp-2m", dict(prediction="v", spacing="trailing")), ("dpmpp-2m", dict(prediction="x0", spacing="leading")),
    ("ddim", dict(w=3.0)), ("ddim", dict(w=7.5, clip=True)), ("ddpm", dict(w=0.0)), ("euler", dict(w=1.0)),
    ("dpmpp-2m", dict(w=7.5)), ("euler", dict(w=7.5)), ("heun", dict(w=7.5, clip=False)),
    ("euler-ancestral", dict(w=7.5)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("kind, kw", REPRESENTATIVE, ids=[f"{k}-{'-'.join(f'{a}{b}' for a, b in kw.items())}"
                                                          for k, kw in REPRESENTATIVE])
def test_representative_cells_match_diffusers(kind, kw, dtype):
    _check(kind, dtype, **kw)


# --- the full matrix (slow) ------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("kind, prediction, spacing",
                         list(itertools.product(KINDS, PREDICTIONS, ("leading", "trailing", "linspace"))))
def test_matrix_scheduler_prediction_spacing(kind, prediction, spacing, dtype):
    _check(kind, dtype, prediction=prediction, spacing=spacing)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("eta, alpha_one, offset, clip, spacing",
                         list(itertools.product((0.0, 0.5, 1.0), (True, False), (0, 1), (True, False),
                                                ("leading", "trailing", "linspace"))))
def test_matrix_ddim_grid_and_clipping(eta, alpha_one, offset, clip, spacing, dtype):
    _check("ddim", dtype, eta=eta, alpha_one=alpha_one, offset=offset, clip=clip, spacing=spacing)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("kind, offset, clip", list(itertools.product(("ddpm", "heun"), (0, 1), (True, False))))
def test_matrix_offset_and_clipping(kind, offset, clip, dtype):
    _check(kind, dtype, offset=offset, clip=clip, spacing="leading")


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("kind, w, clip", list(itertools.product(KINDS, (0.0, 1.0, 3.0, 7.5), (True, False))))
def test_matrix_guidance(kind, w, clip, dtype):
    _check(kind, dtype, w=w, clip=clip if kind in ("ddpm", "ddim", "heun") else None)


# --- pipelines, image for image --------------------------------------------------------------------
@pytest.mark.parametrize("pipe_cls, kind", [("DDPMPipeline", "ddpm"), ("DDIMPipeline", "ddim")])
@pytest.mark.parametrize("sched_cfg", [{}, {"timestep_spacing": "trailing", "set_alpha_to_one": False},
                                       {"prediction_type": "v_prediction", "steps_offset": 1}])
def test_like_pipeline_reproduces_the_pipeline(tmp_path, pipe_cls, kind, sched_cfg):
    if kind == "ddpm":
        sched_cfg = {k: v for k, v in sched_cfg.items() if k != "set_alpha_to_one"}
    with _quiet(diffusers):
        sched = getattr(diffusers, CLASSES[kind])(num_train_timesteps=1000, **sched_cfg)
        pipe = getattr(diffusers, pipe_cls)(unet=_unet(torch.float32), scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(tmp_path / "pipe")
    ref = pipe(generator=torch.Generator().manual_seed(3), batch_size=3, num_inference_steps=5, output_type="np").images
    mine = sample_like_pipeline(str(tmp_path / "pipe"), 3, 5, 3, sampler=kind)
    ref = torch.from_numpy(ref).permute(0, 3, 1, 2)
    assert mine.shape == ref.shape
    assert float((mine - ref).abs().max()) <= 1e-4


def test_like_pipeline_cli_writes_the_pipeline_images(tmp_path, capsys):
    from safetensors.torch import load_file

    from critdiff.cli import main

    with _quiet(diffusers):
        pipe = diffusers.DDIMPipeline(unet=_unet(torch.float32), scheduler=diffusers.DDIMScheduler(num_train_timesteps=1000))
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(tmp_path / "pipe")
    rc = main(["sample", "--model", f"diffusers:{tmp_path / 'pipe'}", "--like-pipeline", "--seed", "4", "--steps",
               "6", "--n", "2", "--out", str(tmp_path / "out")])
    assert rc == 0, capsys.readouterr().err
    ref = pipe(generator=torch.Generator().manual_seed(4), batch_size=2, num_inference_steps=6, output_type="np").images
    got = load_file(str(tmp_path / "out" / "samples.safetensors"))["images"]
    assert float((got - torch.from_numpy(ref).permute(0, 3, 1, 2)).abs().max()) <= 1e-4


def test_refusals_are_one_line(tmp_path):
    unet = unet_for(torch.float32, False)
    for cls, cfg, match in [
        ("DDPMScheduler", {"variance_type": "fixed_large_log"}, "variance_type='fixed_large_log'"),
        ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}, "algorithm_type='sde-dpmsolver[+][+]'"),
        ("DPMSolverMultistepScheduler", {"solver_order": 3}, "solver_order=3"),
        ("EulerDiscreteScheduler", {"final_sigmas_type": "sigma_min"}, "final_sigmas_type"),
    ]:
        with _quiet(diffusers):
            model = DiffusersDenoiser(unet, getattr(diffusers, cls)(num_train_timesteps=1000, **cfg))
        with pytest.raises(ValueError, match=match) as info:
            scheduler_plan(model, 4)
        assert "\n" not in str(info.value) and str(info.value).startswith("scheduler: ")


def test_float32_sigma_maps_to_its_exact_integer_timestep():
    model = DiffusersDenoiser(unet_for(torch.float32, False), diffusers.DDPMScheduler(num_train_timesteps=1000))
    sig = model.sigmas()
    s32 = sig.to(torch.float32).to(torch.float64)
    # exact on purpose: the result is an integer timestep (snapped within 4 float32 ulps), not a rounded float
    assert torch.equal(model.sigma_to_timestep(s32), torch.arange(1000, dtype=torch.float64))
    mid = torch.sqrt(sig[500] * sig[501])  # between two grid values: still fractional
    t = float(model.sigma_to_timestep(mid))
    assert 500 < t < 501 and not math.isclose(t, round(t), abs_tol=1e-3)
