"""Parity of PNDM, UniPC, DEIS, LMS and LCM: critdiff's runs of a scheduler's plan against diffusers' own loop.

The oracle is diffusers itself on the tiny random-init ``UNet2DModel`` of ``test_diffusers_parity`` (8x8, batch 2):
``for t in timesteps: z = step(unet(scale_model_input(z, t), t), t, z[, generator])``. Each cell measures four runs
from the same standard normal start (drawn in float64; the float32 runs start from it rounded):

- ``f64``: critdiff in float64 against diffusers upcast to float64 (float64 weights and state, its
  ``alphas_cumprod``/``sigmas`` tables promoted; for LCM the timestep is handed to ``step`` as a Python int, so
  its ``c_skip``/``c_out`` are float64 too, not float32 scalars of a long tensor). Bound: 1e-10.
- ``f32``: critdiff in float32 against the same float64 reference; bound: 4x the distance of diffusers' own
  float32 run from that reference, plus 2e-7 (a few float32 ulps of O(1) pixels) so that a cell where diffusers
  happens to land very close cannot fail on rounding alone. Both distances are recorded per cell
  (:data:`MEASURED`; docs/diffusers.md, section 3, lists them).
- LCM draws noise at every step, and a float32 draw is not the float64 draw rounded: its float32 cells compare
  with a float64 diffusers run that draws in float32 and upcasts (``randn_tensor`` patched in the scheduler's
  module), i.e. the same noise.

Differences are max |.| in ``z / 2`` (image units before the clamp). The default suite runs one cell per
scheduler (both dtypes); the rest is ``-m slow``.
"""

import itertools

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from critdiff.integrations.diffusers import DiffusersDenoiser, run_plan, scheduler_plan  # noqa: E402
from critdiff.integrations.diffusers.adapter import _quiet  # noqa: E402
from critdiff.integrations.diffusers.loops import initial_state  # noqa: E402
from test_diffusers_parity import NULL, _F64, _promote, unet_for  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = {"pndm": "PNDMScheduler", "unipc": "UniPCMultistepScheduler", "deis": "DEISMultistepScheduler",
           "lms": "LMSDiscreteScheduler", "lcm": "LCMScheduler"}
PREDICTIONS = {"eps": "epsilon", "v": "v_prediction", "x0": "sample"}
TOL64, F32_FACTOR, F32_FLOOR = 1e-10, 4.0, 2e-7
MEASURED: dict = {}  # cell id -> (f64, critdiff f32, diffusers f32)


def _lcm_f32_draws(monkeypatch):
    import diffusers.schedulers.scheduling_lcm as lcm_mod

    real = lcm_mod.randn_tensor

    def draw(shape, generator=None, device=None, dtype=None, **kw):
        return real(shape, generator=generator, device=device, dtype=torch.float32, **kw).to(dtype)

    monkeypatch.setattr(lcm_mod, "randn_tensor", draw)


def diffusers_run(unet, sched, z, steps, dtype, w=None, labels=None, seed=9):
    """diffusers' loop (as ``test_diffusers_parity.diffusers_loop``) with LCM's int timesteps in float64."""
    sched.set_timesteps(steps)
    if dtype == torch.float64:
        _promote(sched)
        z = z.as_subclass(_F64)
    z = z * sched.init_noise_sigma
    gen = torch.Generator().manual_seed(seed) if "generator" in sched.step.__code__.co_varnames else None
    with torch.no_grad():
        for t in sched.timesteps:
            zin = sched.scale_model_input(z, t)
            if w is None:
                out = unet(zin, t).sample
            elif w == 1:
                out = unet(zin, t, class_labels=labels).sample
            else:
                ou, oc = unet(torch.cat([zin, zin]), t, class_labels=torch.cat([torch.full_like(labels, NULL),
                                                                                labels])).sample.chunk(2)
                out = ou + w * (oc - ou)
            tt = int(t) if isinstance(sched, diffusers.LCMScheduler) and dtype == torch.float64 else t
            kw = {"generator": gen} if gen is not None else {}
            z = sched.step(out, tt, z, **kw).prev_sample
    return z.as_subclass(torch.Tensor)


def _sched(kind, prediction, cfg):
    with _quiet(diffusers):
        return getattr(diffusers, CLASSES[kind])(num_train_timesteps=1000, prediction_type=PREDICTIONS[prediction],
                                                 **cfg)


def _critdiff(kind, prediction, cfg, z, steps, dtype, w, labels):
    unet = unet_for(dtype, w is not None)
    model = DiffusersDenoiser(unet, _sched(kind, prediction, cfg))
    plan = scheduler_plan(model, steps)
    with torch.no_grad():
        return run_plan(model, plan, initial_state(plan, z.to(dtype)), label=labels, guidance=w,
                        generator=torch.Generator().manual_seed(9))


def measure(kind, monkeypatch, steps=6, prediction="eps", w=None, **cfg):
    """``(f64 difference, critdiff f32 difference, diffusers f32 difference)`` of one cell (module docstring)."""
    labels = torch.tensor([1, 2]) if w is not None else None
    z = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)

    def ref(dtype):
        return diffusers_run(unet_for(dtype, w is not None), _sched(kind, prediction, cfg), z.to(dtype), steps, dtype,
                             w=w, labels=labels)

    ref64 = ref(torch.float64)
    mine64 = _critdiff(kind, prediction, cfg, z, steps, torch.float64, w, labels)
    ref32 = ref(torch.float32)
    mine32 = _critdiff(kind, prediction, cfg, z, steps, torch.float32, w, labels)
    if kind == "lcm":  # the float32 cells' reference: float64 arithmetic, float32 draws (module docstring)
        with monkeypatch.context() as m:
            _lcm_f32_draws(m)
            ref64_32 = ref(torch.float64)
    else:
        ref64_32 = ref64
    assert mine64.dtype == ref64.dtype == torch.float64 and mine32.dtype == ref32.dtype == torch.float32
    return (float((mine64 - ref64).abs().max()) / 2, float((mine32.double() - ref64_32).abs().max()) / 2,
            float((ref32.double() - ref64_32).abs().max()) / 2)


def check(kind, monkeypatch, **kw):
    d64, d32, ref32 = measure(kind, monkeypatch, **kw)
    MEASURED[(kind, repr(sorted(kw.items())))] = (d64, d32, ref32)
    assert d64 <= TOL64, f"{kind} {kw}: float64 difference {d64:.3g}"
    assert d32 <= F32_FACTOR * ref32 + F32_FLOOR, f"{kind} {kw}: float32 {d32:.3g}, diffusers' own float32 {ref32:.3g}"
    print(f"\n{kind} {kw}: f64 {d64:.2g}  f32 {d32:.2g} (diffusers f32 {ref32:.2g})")


# --- the default suite: one cell per scheduler --------------------------------------------------------------
FAST = [("pndm", dict(skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)),
        ("unipc", dict(solver_order=3, solver_type="bh1", final_sigmas_type="sigma_min")),
        ("deis", dict(solver_order=3)), ("lms", dict()), ("lcm", dict(steps=4))]


@pytest.mark.parametrize("kind, kw", FAST, ids=[k for k, _ in FAST])
def test_one_cell_per_scheduler_matches_diffusers(kind, kw, monkeypatch):
    check(kind, monkeypatch, **kw)


# --- the full matrix (slow) ---------------------------------------------------------------------------------
SPACINGS = ("leading", "trailing", "linspace")
SLOW = (
    [("pndm", dict(prediction=p, timestep_spacing=sp, skip_prk_steps=skip, steps=n))
     for p, sp, skip, n in itertools.product(("eps", "v"), SPACINGS, (True, False), (6, 7))]
    + [("pndm", dict(skip_prk_steps=True, steps_offset=1, set_alpha_to_one=a, beta_schedule="scaled_linear",
                     beta_start=0.00085, beta_end=0.012)) for a in (True, False)]
    + [("unipc", dict(prediction=p, solver_type=v, solver_order=o, final_sigmas_type=f))
       for p, v, o, f in itertools.product(("eps", "v", "x0"), ("bh1", "bh2"), (1, 2, 3), ("zero", "sigma_min"))
       if not (v == "bh1" and f == "zero")]
    + [("unipc", dict(timestep_spacing=sp, solver_order=3)) for sp in SPACINGS]
    + [("unipc", dict(solver_order=3, lower_order_final=False, final_sigmas_type="sigma_min")),
       ("unipc", dict(solver_order=2, disable_corrector=[1, 3])), ("unipc", dict(use_karras_sigmas=True)),
       ("unipc", dict(thresholding=True, sample_max_value=1.5)), ("unipc", dict(solver_order=3, steps=16))]
    + [("deis", dict(prediction=p, solver_order=o, timestep_spacing=sp))
       for p, o, sp in itertools.product(("eps", "v", "x0"), (1, 2, 3), SPACINGS)]
    + [("deis", dict(solver_order=3, steps=16)), ("deis", dict(solver_order=2, lower_order_final=False)),
       ("deis", dict(use_karras_sigmas=True, solver_order=3))]
    + [("lms", dict(prediction=p, timestep_spacing=sp)) for p, sp in itertools.product(("eps", "v", "x0"), SPACINGS)]
    + [("lms", dict(use_karras_sigmas=True)), ("lms", dict(steps=12))]
    + [("lcm", dict(prediction=p, steps=n)) for p, n in itertools.product(("eps", "v", "x0"), (1, 4, 8))]
    + [("lcm", dict(clip_sample=True, steps=4)), ("lcm", dict(timestep_scaling=1.0, original_inference_steps=20))]
    + [(k, dict(w=w)) for k, w in itertools.product(("pndm", "unipc", "deis", "lms", "lcm"), (1.0, 7.5))]
)


@pytest.mark.slow
@pytest.mark.parametrize("kind, kw", SLOW, ids=[f"{k}-{'-'.join(f'{a}{b}' for a, b in kw.items())}" for k, kw in SLOW])
def test_matrix_matches_diffusers(kind, kw, monkeypatch):
    check(kind, monkeypatch, **kw)


def test_unipc_bh1_to_zero_gives_the_limit_where_diffusers_gives_nan(monkeypatch):
    """bh1 with ``final_sigmas_type='zero'``: diffusers' last predictor multiplies ``B(h) = -h = -inf`` by a zero sum
    (NaN). critdiff returns the limit, ``x' = D``: diffusers' own stored data prediction of that last step."""
    z = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    unet = unet_for(torch.float64, False)
    sched = _sched("unipc", "eps", dict(solver_type="bh1", solver_order=2))
    out = diffusers_run(unet, sched, z, 5, torch.float64)
    assert torch.isnan(out).all()
    mine = _critdiff("unipc", "eps", dict(solver_type="bh1", solver_order=2), z, 5, torch.float64, None, None)
    assert float((mine - sched.model_outputs[-1]).abs().max()) <= 1e-10


@pytest.mark.parametrize("cls, cfg, match", [
    ("UniPCMultistepScheduler", {"predict_x0": False}, "UniPCMultistepScheduler with predict_x0=False"),
    ("UniPCMultistepScheduler", {"solver_order": 4}, "solver_order=4 .*supported: solver_order 1, 2, 3"),
    ("UniPCMultistepScheduler", {"lower_order_final": False}, "lower_order_final=False and final_sigmas_type='zero'"),
    ("DEISMultistepScheduler", {"solver_order": 4}, "DEISMultistepScheduler with solver_order=4"),
    ("PNDMScheduler", {"prediction_type": "sample"}, "PNDMScheduler with prediction_type='sample'"),
    ("UniPCMultistepScheduler", {"use_flow_sigmas": True}, "use_flow_sigmas"),
])
def test_unsupported_options_are_one_line_refusals(cls, cfg, match):
    with _quiet(diffusers):
        model = DiffusersDenoiser(unet_for(torch.float32, False), getattr(diffusers, cls)(num_train_timesteps=1000, **cfg))
    with pytest.raises(ValueError, match=match) as info:
        scheduler_plan(model, 4)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"scheduler: {cls} with ") and "supported: " in msg


def test_lcm_more_steps_than_its_original_schedule_is_one_line():
    with _quiet(diffusers):
        model = DiffusersDenoiser(unet_for(torch.float32, False), diffusers.LCMScheduler(original_inference_steps=8))
    with pytest.raises(ValueError, match="n_steps: LCMScheduler takes at most original_inference_steps=8 steps, got 9"):
        scheduler_plan(model, 9)


# --- the generic samplers on the scheduler's grid (float64) --------------------------------------------------
GENERIC = [("plms", "plms", dict(skip_prk_steps=True, set_alpha_to_one=True, steps_offset=1)),
           ("unipc", "unipc:order=3,variant=bh2", dict(solver_order=3)),
           ("unipc", "unipc:order=2,variant=bh1", dict(solver_order=2, solver_type="bh1")),
           ("lms", "lms", dict())]
GENERIC_FAST = ("plms",)


@pytest.mark.parametrize("kind, spec, cfg", [g if g[1] in GENERIC_FAST else pytest.param(*g, marks=pytest.mark.slow)
                                             for g in GENERIC], ids=[g[1] for g in GENERIC])
def test_generic_sampler_on_the_schedulers_grid_equals_diffusers(kind, spec, cfg):
    """``critdiff.samplers.get(spec)`` run on the scheduler's levels, with the model fed the scheduler's timesteps, is
    diffusers' loop: PLMS where PNDM's bookkeeping is a grid method (``leading`` spacing, ``skip_prk_steps``, landing
    on ``abar = 1``), UniPC wherever it ends at 0 (bh1 included: critdiff's last step is the limit ``x' = D``, so the
    reference is diffusers' loop with its last predictor, NaN for bh1, replaced by its stored ``D``), LMS always."""
    from critdiff import samplers as SM
    from critdiff.integrations.diffusers.loops import PlanDenoiser

    z = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    unet = unet_for(torch.float64, False)
    sched = _sched("pndm" if kind == "plms" else kind, "eps", cfg)
    model = DiffusersDenoiser(unet, sched)
    plan = scheduler_plan(model, 5)
    levels = torch.unique_consecutive(plan.sigmas)  # PNDM evaluates its second level twice
    grid = torch.cat([levels, torch.zeros(1, dtype=torch.float64)])
    with torch.no_grad():
        mine = SM.get(spec)(PlanDenoiser(model, plan), initial_state(plan, z), grid)
    ref = diffusers_run(unet, sched, z, 5, torch.float64)
    if cfg.get("solver_type") == "bh1":
        ref = sched.model_outputs[-1]
    final = mine / torch.sqrt(1 + grid[-1] ** 2) if plan.frame == "vp" else mine
    assert float((final - ref).abs().max()) / 2 <= TOL64
