"""diffusers adapter: parity with diffusers' own DDPM/DDIM loops, the denoiser contract, labels, loading.

Every model is a tiny randomly initialised ``UNet2DModel`` built here (nothing is downloaded). The
oracle for the samplers is diffusers itself: ``for t in scheduler.timesteps: z = scheduler.step(unet(z,
t).sample, t, z, generator=g).prev_sample``; critdiff runs ``sample_ddpm`` / ``sample_ddim`` on the grid
of ``diffusers_sigma_grid`` from ``x = z_T sqrt(1 + sigma_0^2)`` with a generator seeded alike (both
draw ``torch.randn(shape)`` once per noisy step), and its states are compared at every step in the
frame ``z = x / sqrt(1 + sigma^2)``.
"""

import json
import math
import sys

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from critdiff import samplers as SM  # noqa: E402
from critdiff.guidance import guided  # noqa: E402
from critdiff.nets import diffusers_adapter as DA  # noqa: E402
from critdiff.nets.diffusers_adapter import (  # noqa: E402
    DiffusersDenoiser, diffusers_sigma_grid, load_diffusers, load_diffusers_spec)
from oracles import assert_paths_close  # noqa: E402

# float32: the two loops round differently (scheduler in the VP frame, critdiff in the VE frame)
TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-9, atol=1e-10)}
SHAPE = (3, 1, 8, 8)


def _unet(seed=0, channels=1, num_class_embeds=None, dtype=torch.float32):
    torch.manual_seed(seed)
    unet = diffusers.UNet2DModel(
        sample_size=8, in_channels=channels, out_channels=channels, block_out_channels=(8, 16), layers_per_block=1,
        norm_num_groups=4, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"), attention_head_dim=4, num_class_embeds=num_class_embeds)
    with DA._quiet(diffusers):  # diffusers warns about any .to(dtype)
        return unet.to(dtype).eval().requires_grad_(False)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny UNets are far faster on one thread (and the suite shares 2 cores); restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def unet():
    return _unet()


@pytest.fixture(scope="module")
def unet_cls():
    return _unet(seed=1, num_class_embeds=11)


def _promote(sched, dtype):
    """Give a scheduler float64 tables when sampling in float64 (diffusers keeps them in float32, which
    would round its step coefficients to float32 and hide float64 parity)."""
    if dtype == torch.float64:
        sched.alphas_cumprod = sched.alphas_cumprod.double()
        sched.one = torch.tensor(1.0, dtype=torch.float64)
        if hasattr(sched, "final_alpha_cumprod"):
            sched.final_alpha_cumprod = sched.final_alpha_cumprod.double()
    return sched


def _sigma_of(abar):
    return math.sqrt((1 - abar) / abar)


def _diffusers_loop(unet, sched, z, n_steps, generator, class_labels=None, **step_kw):
    """diffusers' own sampling loop; returns the state before every step and the final state."""
    sched.set_timesteps(n_steps)
    zs = [z]
    with torch.no_grad():
        for t in sched.timesteps:
            out = unet(z, t, class_labels=class_labels).sample
            z = sched.step(out, t, z, generator=generator, **step_kw).prev_sample
            zs.append(z)
    return zs


def _critdiff_loop(sampler, D, z_T, sigmas, generator, **kw):
    """critdiff's sampler from the same VP state; returns its states mapped back to the VP frame."""
    rec = SM.Recorder()
    x = z_T * math.sqrt(1 + float(sigmas[0]) ** 2)
    with torch.no_grad():
        final = sampler(D, x, sigmas, generator=generator, callback=rec, **kw)
    zs = [xi / math.sqrt(1 + s * s) for xi, s in zip(rec.x, rec.sigma)]
    return zs + [final]


def _max_err(za, zb, dtype):
    assert len(za) == len(zb)
    worst = 0.0
    for i, (a, b) in enumerate(zip(za, zb)):
        assert a.dtype == b.dtype == dtype
        torch.testing.assert_close(a, b, **TOL[dtype], msg=lambda m: f"step {i}: {m}")
        worst = max(worst, float((a - b).abs().max()))
    return worst


def _noise(seed, dtype, per_sample=False):
    if per_sample:
        return [torch.Generator().manual_seed(seed + k) for k in range(SHAPE[0])]
    return torch.Generator().manual_seed(seed)


def _z_T(dtype, seed=123):
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


# --- parity with diffusers' samplers --------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("prediction_type, clip, per_sample", [
    ("epsilon", True, False), ("epsilon", False, True), ("v_prediction", True, False),
    ("v_prediction", False, False), ("sample", False, False)])
def test_ddpm_ancestral_reproduces_ddpmscheduler(dtype, prediction_type, clip, per_sample):
    unet = _unet(dtype=dtype)
    sched = _promote(diffusers.DDPMScheduler(num_train_timesteps=1000, prediction_type=prediction_type,
                                             clip_sample=clip), dtype)
    D = DiffusersDenoiser(unet, sched)
    assert D.clip_sample is clip  # follows the scheduler config
    n = 8
    sigmas = diffusers_sigma_grid(D, n, "ddpm")
    ref = _diffusers_loop(unet, sched, _z_T(dtype), n, _noise(7, dtype, per_sample))
    ours = _critdiff_loop(SM.sample_ddpm, D, _z_T(dtype), sigmas, _noise(7, dtype, per_sample))
    err = _max_err(ours, ref, dtype)
    print(f"ddpm {prediction_type} clip={clip} {dtype}: max abs diff {err:.2e}")
    # the chain really is stochastic and really moved (no test that cannot fail)
    assert float((ref[-1] - ref[0]).abs().max()) > 0.1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("prediction_type, eta, clip", [
    ("epsilon", 0.0, False), ("epsilon", 0.5, False), ("v_prediction", 0.0, False), ("v_prediction", 1.0, False),
    ("epsilon", 0.0, True)])
def test_ddim_reproduces_ddimscheduler(dtype, prediction_type, eta, clip):
    unet = _unet(dtype=dtype)
    sched = _promote(diffusers.DDIMScheduler(num_train_timesteps=1000, prediction_type=prediction_type,
                                             clip_sample=clip), dtype)
    D = DiffusersDenoiser(unet, sched)
    n = 8
    sigmas = diffusers_sigma_grid(D, n, "ddim")
    # critdiff's DDIM takes eps_hat from the (clipped) x0_hat: diffusers' use_clipped_model_output=True
    ref = _diffusers_loop(unet, sched, _z_T(dtype), n, _noise(3, dtype), eta=eta, use_clipped_model_output=clip)
    ours = _critdiff_loop(SM.sample_ddim, D, _z_T(dtype), sigmas, _noise(3, dtype), eta=eta)
    err = _max_err(ours, ref, dtype)
    print(f"ddim {prediction_type} eta={eta} clip={clip} {dtype}: max abs diff {err:.2e}")


@pytest.mark.parametrize("kind, config", [
    ("ddpm", dict(num_train_timesteps=40, beta_schedule="squaredcos_cap_v2")),  # every training timestep
    ("ddpm", dict(num_train_timesteps=100, timestep_spacing="trailing", beta_schedule="scaled_linear")),
    ("ddim", dict(num_train_timesteps=100, steps_offset=1, prediction_type="v_prediction")),
    ("ddim", dict(num_train_timesteps=100, timestep_spacing="linspace", beta_end=0.05))])
def test_parity_across_spacings_and_beta_schedules(kind, config):
    unet = _unet()
    cls = diffusers.DDPMScheduler if kind == "ddpm" else diffusers.DDIMScheduler
    sched = cls(clip_sample=kind == "ddpm", **config)  # unclipped DDPM chains of a random net blow up
    D = DiffusersDenoiser(unet, sched)
    n = 40 if config["num_train_timesteps"] == 40 else 10
    sigmas = diffusers_sigma_grid(D, n, kind, strict=False) if config.get("timestep_spacing") == "linspace" \
        else diffusers_sigma_grid(D, n, kind)
    sampler = SM.sample_ddpm if kind == "ddpm" else SM.sample_ddim
    if kind == "ddim" and config.get("timestep_spacing") == "linspace":
        with pytest.raises(ValueError, match="n_steps"):
            diffusers_sigma_grid(D, n, kind)
        return
    ref = _diffusers_loop(unet, sched, _z_T(torch.float32), n, _noise(5, torch.float32))
    ours = _critdiff_loop(sampler, D, _z_T(torch.float32), sigmas, _noise(5, torch.float32))
    err = _max_err(ours, ref, torch.float32)
    print(f"{kind} {config}: max abs diff {err:.2e}")


# --- the sigma grid ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["ddpm", "ddim"])
@pytest.mark.parametrize("n", [1, 7, 50])
def test_sigma_grid_matches_scheduler_timesteps(unet, kind, n):
    sched = (diffusers.DDPMScheduler if kind == "ddpm" else diffusers.DDIMScheduler)(num_train_timesteps=200)
    D = DiffusersDenoiser(unet, sched)
    grid = diffusers_sigma_grid(D, n, kind)
    sched.set_timesteps(n)
    abar = sched.alphas_cumprod.double()
    expect = [_sigma_of(float(abar[t])) for t in sched.timesteps] + [0.0]
    assert grid.dtype == torch.float64
    assert grid.tolist() == pytest.approx(expect, rel=1e-14, abs=0)
    SM.check_sigmas(grid)
    # each grid sigma maps back to exactly the scheduler's integer timestep
    assert D.sigma_to_timestep(grid[:-1]).tolist() == [float(t) for t in sched.timesteps]
    # exact on purpose: both are lookups of the same float64 table at integer timesteps (no arithmetic)
    assert torch.equal(D.timesteps_to_sigmas(sched.timesteps), grid[:-1])


def test_sigma_grid_without_final_alpha_one_ends_with_an_extra_step(unet):
    sched = diffusers.DDIMScheduler(num_train_timesteps=100, set_alpha_to_one=False)
    D = DiffusersDenoiser(unet, sched)
    grid = diffusers_sigma_grid(D, 5, "ddim")  # timesteps 80 .. 0: the level of timestep 0 once, then 0
    assert grid.numel() == 6 and float(grid[-1]) == 0.0
    assert float(grid[-2]) == pytest.approx(_sigma_of(float(sched.alphas_cumprod[0].double())), rel=1e-14)


@pytest.mark.parametrize("spacing, offset", [("leading", 0), ("linspace", 0), ("trailing", 0), ("leading", 1)])
@pytest.mark.parametrize("n", [1, 4, 10])
def test_sigma_grid_is_strictly_decreasing_when_the_last_timestep_is_0(unet, spacing, offset, n):
    # set_alpha_to_one=False with a last timestep of 0: diffusers' last DDIM step lands on the level it starts
    # from, so that level appears once (it used to appear twice and every sampler refused the grid)
    sched = diffusers.DDIMScheduler(num_train_timesteps=100, set_alpha_to_one=False, timestep_spacing=spacing,
                                    steps_offset=offset)
    D = DiffusersDenoiser(unet, sched)
    sched.set_timesteps(n)
    grid = diffusers_sigma_grid(D, n, "ddim", strict=False)
    SM.check_sigmas(grid)  # strictly decreasing, ends in 0
    abar = sched.alphas_cumprod.double()
    assert grid[: len(sched.timesteps)].tolist() == pytest.approx([_sigma_of(float(abar[t])) for t in sched.timesteps],
                                                                  rel=1e-14, abs=0)
    if int(sched.timesteps[-1]) == 0:
        assert grid.numel() == len(sched.timesteps) + 1


def test_sigma_grid_bad_arguments(unet):
    D = DiffusersDenoiser(unet, diffusers.DDPMScheduler(num_train_timesteps=50))
    for bad in (0, 51, 2.0, True):
        with pytest.raises(ValueError, match="n_steps"):
            diffusers_sigma_grid(D, bad)
    with pytest.raises(ValueError, match="kind"):
        diffusers_sigma_grid(D, 5, "euler")


# --- the denoiser against the scheduler's formulas ------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_denoiser_matches_scheduler_formulas(dtype, prediction_type):
    unet = _unet(dtype=dtype)
    sched = diffusers.DDPMScheduler(num_train_timesteps=1000, prediction_type=prediction_type, clip_sample=False)
    D = DiffusersDenoiser(unet, sched)
    ks = torch.tensor([0, 17, 500, 999])
    abar = sched.alphas_cumprod.double()[ks]
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64).to(dtype)
    sig = torch.sqrt((1 - abar) / abar)
    x = z * torch.sqrt(1 + sig**2).to(dtype).reshape(-1, 1, 1, 1)
    with torch.no_grad():
        got = D(x, sig)
        out = unet(z, ks).sample
    a, s = abar.sqrt().to(dtype).reshape(-1, 1, 1, 1), (1 - abar).sqrt().to(dtype).reshape(-1, 1, 1, 1)
    expect = {"epsilon": (z - s * out) / a, "v_prediction": a * z - s * out, "sample": out}[prediction_type]
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(got, expect, **tol)
    # a [B] sigma is per sample: the same as one call per sample
    with torch.no_grad():
        one_by_one = torch.cat([D(x[i:i + 1], float(sig[i])) for i in range(4)])
    torch.testing.assert_close(got, one_by_one, **tol)


def test_fractional_sigma_interpolates_timesteps(unet):
    D = DiffusersDenoiser(unet, diffusers.DDPMScheduler(num_train_timesteps=100, clip_sample=False))
    t = torch.tensor([0.0, 3.25, 10.5, 98.75, 99.0], dtype=torch.float64)
    s = D.timesteps_to_sigmas(t)
    assert bool((s[1:] > s[:-1]).all())
    torch.testing.assert_close(D.sigma_to_timestep(s), t, rtol=0, atol=1e-9)
    # in between grid values, log sigma is linear in t
    ls = torch.log(D.sigmas())
    assert float(torch.log(s[2])) == pytest.approx(0.5 * float(ls[10] + ls[11]), rel=1e-12)
    # the UNet receives the fractional timestep
    seen = []
    hook = unet.register_forward_pre_hook(lambda m, args, kwargs: seen.append(args[1].clone()), with_kwargs=True)
    try:
        with torch.no_grad():
            D(torch.zeros(5, 1, 8, 8), s.float().double())
    finally:
        hook.remove()
    torch.testing.assert_close(seen[0].double(), t, rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="timesteps"):
        D.timesteps_to_sigmas([100.0])


def test_clip_and_thresholding_follow_config_and_options(unet):
    g = torch.Generator().manual_seed(1)
    x = 30 * torch.randn(2, 1, 8, 8, generator=g)
    raw = DiffusersDenoiser(unet, diffusers.DDPMScheduler(clip_sample=False))
    clipped = DiffusersDenoiser(unet, diffusers.DDPMScheduler())  # DDPMScheduler clips by default
    narrow = DiffusersDenoiser(unet, diffusers.DDPMScheduler(), clip_sample_range=0.5)
    off = DiffusersDenoiser(unet, diffusers.DDPMScheduler(), clip_sample=False)
    thr = DiffusersDenoiser(unet, diffusers.DDPMScheduler(thresholding=True, sample_max_value=3.0))
    with torch.no_grad():
        r = torch.cat([raw(x[i:i + 1], 30.0) for i in range(2)])  # batch size 1, as thr below
        assert float(r.abs().max()) > 1.5  # the clipping below is active
        one = lambda D: torch.cat([D(x[i:i + 1], 30.0) for i in range(2)])  # noqa: E731
        # other denoiser instances over the same UNet (float32 precision, not bits)
        assert_paths_close(one(clipped), r.clamp(-1, 1))
        assert_paths_close(one(narrow), r.clamp(-0.5, 0.5))
        assert_paths_close(one(off), r)
        # dynamic thresholding: per sample s = clamp(quantile_0.995 |x0|, 1, max), x0 -> clamp(x0, -s, s) / s
        for i in range(2):
            q = float(torch.quantile(r[i].abs().flatten().double(), 0.995))
            s = min(max(q, 1.0), 3.0)
            torch.testing.assert_close(thr(x[i:i + 1], 30.0)[0], r[i].clamp(-s, s) / s, rtol=1e-5, atol=1e-6)
    assert clipped.schedule_info()["clip_sample"] is True and off.schedule_info()["clip_sample"] is False


def test_gradients_flow_for_jacobian_probes():
    """JVPs by double backward (what torch.autograd.functional.jvp does) through attention blocks."""
    g = torch.Generator().manual_seed(2)
    x, v = torch.randn(2, 1, 8, 8, generator=g, dtype=torch.float64), torch.randn(2, 1, 8, 8, generator=g, dtype=torch.float64)
    unet64 = _unet(dtype=torch.float64)
    D = DiffusersDenoiser(unet64, diffusers.DDPMScheduler(clip_sample=False))
    _, jv = torch.autograd.functional.jvp(lambda y: D(y, 2.0), x, v)
    h = 1e-6
    with torch.no_grad():
        fd = (D(x + h * v, 2.0) - D(x - h * v, 2.0)) / (2 * h)
    torch.testing.assert_close(jv, fd, rtol=1e-5, atol=1e-7)
    assert float(jv.abs().max()) > 0
    # vector-Jacobian products agree with the JVP: <u, J v> = <J^T u, v>
    u = torch.randn(2, 1, 8, 8, generator=g, dtype=torch.float64)
    _, vj = torch.autograd.functional.vjp(lambda y: D(y, 2.0), x, u)
    assert float((u * jv).sum()) == pytest.approx(float((vj * v).sum()), rel=1e-9)


def test_denoiser_input_errors(unet):
    D = DiffusersDenoiser(unet, diffusers.DDPMScheduler())
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="label"):
        D(x, 1.0, label=3)
    with pytest.raises(ValueError, match="x"):
        D(torch.zeros(2, 3, 8, 8), 1.0)
    with pytest.raises(ValueError, match="sigma"):
        D(x, 0.0)
    with pytest.raises(ValueError, match="sigma"):
        D(x, torch.ones(3))
    with pytest.raises(ValueError, match="null_class"):
        DiffusersDenoiser(unet, diffusers.DDPMScheduler(), null_class=0)
    with pytest.raises(ValueError, match="model"):
        DiffusersDenoiser(unet, diffusers.DDPMScheduler(rescale_betas_zero_snr=True))


# --- class labels and guidance ------------------------------------------------------------------
def test_class_labels_and_null_class(unet_cls):
    sched = diffusers.DDPMScheduler(num_train_timesteps=1000, clip_sample=False)
    D = DiffusersDenoiser(unet_cls, sched)
    assert D.n_classes == 11 and D.null_class == 10
    k = 300
    abar = float(sched.alphas_cumprod[k].double())
    sigma = _sigma_of(abar)
    z = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    x = z * math.sqrt(1 + sigma**2)
    with torch.no_grad():
        for lab in (3, torch.tensor([3, 7])):
            eps = unet_cls(z, k, class_labels=torch.as_tensor(lab).expand(2)).sample
            torch.testing.assert_close(D(x, sigma, lab), (z - math.sqrt(1 - abar) * eps) / math.sqrt(abar),
                                       rtol=1e-4, atol=1e-4)
        d3, d7, dnull = D(x, sigma, 3), D(x, sigma, 7), D(x, sigma)
        assert float((d3 - d7).abs().max()) > 1e-4  # the label matters
        # label None and the null class take two paths to the embedding; `other` is another instance
        assert_paths_close(dnull, D(x, sigma, 10))
        other = DiffusersDenoiser(unet_cls, sched, null_class=0)
        assert_paths_close(other(x, sigma), D(x, sigma, 0))
    for bad in (11, -1, torch.tensor([0, 11])):
        with pytest.raises(ValueError, match="label"):
            D(x, sigma, bad)
    with pytest.raises(ValueError, match="null_class"):
        DiffusersDenoiser(unet_cls, sched, null_class=11)


def test_guidance_on_a_class_conditional_unet(unet_cls):
    sched = diffusers.DDIMScheduler(num_train_timesteps=1000, clip_sample=False)
    D = DiffusersDenoiser(unet_cls, sched)
    x = 5 * torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    labels = torch.tensor([1, 2, 3])
    G = guided(D, 2.5)
    with torch.no_grad():
        got = G(x, 5.0, labels)
        d_u, d_c = D(x, 5.0), D(x, 5.0, labels)
    torch.testing.assert_close(got, d_u + 2.5 * (d_c - d_u))
    assert G.nfe.tolist() == [2, 2, 2]
    # a sampler run with guidance: 2 evaluations per step, 1 where w is 0
    n = 6
    sigmas = diffusers_sigma_grid(D, n, "ddim")
    pulse = lambda s: torch.where(s > 3.0, torch.zeros_like(s), torch.full_like(s, 3.0))  # noqa: E731
    G = guided(D, pulse)
    with torch.no_grad():
        out = SM.sample_ddim(G, x * float(sigmas[0]) / 5, sigmas, label=labels)
    w_zero = int((sigmas[:-1] > 3.0).sum())
    assert G.nfe.tolist() == [w_zero + 2 * (n - w_zero)] * 3
    assert out.shape == x.shape and bool(torch.isfinite(out).all())


def test_guidance_mixes_the_raw_outputs_and_clips_the_guided_x0():
    # float64 network: mixing eps then converting is D_u + w (D_c - D_u) to rounding; with clip_sample the
    # scheduler's clip applies to the guided x0_hat (as diffusers' step() clips the guided prediction)
    unet = _unet(seed=1, num_class_embeds=11, dtype=torch.float64)
    x = 40 * torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    labels, w, sigma = torch.tensor([1, 2, 3]), 7.5, 40.0
    with torch.no_grad():
        D = DiffusersDenoiser(unet, diffusers.DDPMScheduler(num_train_timesteps=1000, clip_sample=False))
        d_u, d_c = D(x, sigma), D(x, sigma, labels)
        torch.testing.assert_close(guided(D, w)(x, sigma, labels), d_u + w * (d_c - d_u), rtol=0, atol=1e-10)
        C = DiffusersDenoiser(unet, diffusers.DDPMScheduler(num_train_timesteps=1000, clip_sample=True))
        got = guided(C, w)(x, sigma, labels)
    torch.testing.assert_close(got, (d_u + w * (d_c - d_u)).clamp(-1, 1), rtol=0, atol=1e-10)
    assert float(got.abs().max()) <= 1.0
    each = d_u.clamp(-1, 1) + w * (d_c.clamp(-1, 1) - d_u.clamp(-1, 1))  # clipping each branch: not diffusers'
    assert float((got - each).abs().max()) > 1e-3


# --- loading from disk ----------------------------------------------------------------------------
def _save_pipeline(tmp_path, unet, sched):
    d = tmp_path / "pipe"
    diffusers.DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(d)
    return d


@pytest.mark.parametrize("layout", ["pipeline", "bare", "bare-subdir"])
def test_load_saved_model_gives_the_same_denoiser(tmp_path, unet, layout):
    sched = diffusers.DDIMScheduler(num_train_timesteps=500, prediction_type="v_prediction", clip_sample=False)
    if layout == "pipeline":
        d = _save_pipeline(tmp_path, unet, sched)
    else:
        d = tmp_path / "bare"
        unet.save_pretrained(d)
        sched.save_pretrained(d if layout == "bare" else d / "scheduler")
    D0 = DiffusersDenoiser(unet, sched)
    D1 = load_diffusers(d)
    assert isinstance(D1, DiffusersDenoiser) and D1.path == str(d)
    assert D1.prediction == "v" and D1.num_train_timesteps == 500 and D1.sample_shape == (1, 8, 8)
    assert not any(p.requires_grad for p in D1.unet.parameters())
    x = 3 * torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        # the loaded UNet and the saved one are two module instances: float32 precision, not bits
        assert_paths_close(D1(x, 2.0), D0(x, 2.0))
    # the loaded scheduler recomputes alphas_cumprod from its config (a cumulative product): float64 precision
    assert_paths_close(D1.sigmas(), D0.sigmas())
    json.dumps(D1.config())  # JSON-ready


def test_load_class_conditional_and_dtype(tmp_path, unet_cls):
    sched = diffusers.DDPMScheduler(num_train_timesteps=100)
    d = _save_pipeline(tmp_path, unet_cls, sched)
    D = load_diffusers(d, dtype=torch.float64, null_class=0)
    assert D.n_classes == 11 and D.null_class == 0 and D.unet.dtype == torch.float64
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        assert D(x, 1.0, 4).dtype == torch.float64


def test_load_from_spec_with_options(tmp_path, unet_cls):
    d = tmp_path / "a,b"  # a comma inside the path is kept
    diffusers.DDPMPipeline(unet=unet_cls, scheduler=diffusers.DDPMScheduler(num_train_timesteps=100)).save_pretrained(d)
    D = load_diffusers_spec(str(d))
    assert D.clip_sample is True and D.null_class == 10 and D.unet.dtype == torch.float32
    D = load_diffusers_spec(f"{d},clip_sample=false,null_class=0,dtype=float64")
    assert D.clip_sample is False and D.null_class == 0 and D.unet.dtype == torch.float64
    with pytest.raises(ValueError, match="^model: dtype"):
        load_diffusers_spec(f"{d},dtype=int8")
    with pytest.raises(ValueError, match="^model: clip_sample"):
        load_diffusers_spec(f"{d},clip_sample=2")
    with pytest.raises(ValueError, match="^model: .*does not exist"):
        load_diffusers_spec(f"{d},colour=red")  # not an option: part of the path
    with pytest.raises(ValueError, match="^model: "):
        load_diffusers_spec("")


def test_load_errors(tmp_path, unet, monkeypatch):
    with pytest.raises(ValueError, match="^model: .*does not exist"):
        load_diffusers(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="^model: .*neither model_index.json"):
        load_diffusers(tmp_path / "empty")
    bare = tmp_path / "bare"
    unet.save_pretrained(bare)
    with pytest.raises(ValueError, match="^model: .*no scheduler config"):
        load_diffusers(bare)
    sched = diffusers.DDPMScheduler(num_train_timesteps=50)
    sched.save_pretrained(bare)
    cfg_file = bare / "scheduler_config.json"
    good = json.loads(cfg_file.read_text())
    cfg_file.write_text(json.dumps({**good, "prediction_type": "flow"}))
    with pytest.raises(ValueError, match="^model: unsupported prediction_type 'flow'"):
        load_diffusers(bare)
    cfg_file.write_text(json.dumps({**good, "_class_name": "NoSuchScheduler"}))
    with pytest.raises(ValueError, match="^model: unsupported scheduler 'NoSuchScheduler'"):
        load_diffusers(bare)
    cfg_file.write_text(json.dumps(good))
    ucfg = json.loads((bare / "config.json").read_text())
    (bare / "config.json").write_text(json.dumps({**ucfg, "_class_name": "UNet3DConditionModel"}))
    with pytest.raises(ValueError, match="^model: unsupported UNet class"):
        load_diffusers(bare)
    (bare / "config.json").write_text(json.dumps(ucfg))
    for f in bare.glob("diffusion_pytorch_model.*"):
        f.unlink()
    with pytest.raises(ValueError, match="^model: cannot load"):
        load_diffusers(bare)
    # without the optional dependency: one line saying how to install it
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(ValueError) as info:
        load_diffusers(bare)
    assert str(info.value) == DA.INSTALL_HINT
    assert "pip install critdiff[diffusers]" in str(info.value) and "\n" not in str(info.value)


# --- the sample experiment and the CLI --------------------------------------------------------------
def test_sample_command_runs_a_saved_diffusers_model(tmp_path, unet_cls, capsys):
    from critdiff.cli import main

    d = _save_pipeline(tmp_path, unet_cls, diffusers.DDPMScheduler(num_train_timesteps=1000))
    out = tmp_path / "out"
    rc = main(["sample", "--model", f"diffusers:{d}", "--sampler", "ddpm", "--steps", "4", "--n", "2",
               "--label", "3", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    rec = json.loads((out / "result.json").read_text())["result"]
    assert rec["nfe_per_sample"] == 4 and rec["shape"] == [1, 8, 8]
    assert rec["model"]["kind"] == "diffusers" and rec["model"]["n_classes"] == 11
    assert (out / "samples.png").is_file()


def test_cli_without_diffusers_prints_one_line(tmp_path, unet, monkeypatch, capsys):
    from critdiff.cli import main

    d = _save_pipeline(tmp_path, unet, diffusers.DDPMScheduler(num_train_timesteps=50))
    monkeypatch.setitem(sys.modules, "diffusers", None)
    rc = main(["sample", "--model", f"diffusers:{d}", "--steps", "2", "--n", "1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == f"critdiff: error: {DA.INSTALL_HINT}"
