"""Samplers against the exact solutions for Gaussian data.

For ``x0 ~ N(mu, Sigma)`` the exact denoiser is linear, ``D(x) = mu + U g(sigma) U^T (x - mu)`` with
``g = lambda / (lambda + sigma^2)`` per eigenmode, so (i) the probability-flow ODE has the closed-form
solution ``y(sigma) = y(sigma_0) sqrt((lambda + sigma^2)/(lambda + sigma_0^2))`` and (ii) every
stochastic sampler is a linear Gaussian recursion per eigenmode whose variance we propagate exactly
(independent of the tensor code) and compare with a large ensemble; as steps grow, that variance
tends to the data's ``lambda``.
"""

import math

import pytest
import torch

from critdiff import samplers as SM
from critdiff import schedules as S
from critdiff.scores.gaussian import GaussianScore


def _gaussian_data(n=4000, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    A = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.6, 0.5, 0.0, 0.0], [0.1, -0.3, 0.2, 0.0], [0.0, 0.2, 0.1, 0.05]], dtype=torch.float64)
    y = (torch.randn(n, 4, generator=g, dtype=torch.float64) @ A.T + torch.tensor([0.3, -0.2, 0.1, 0.0], dtype=torch.float64))
    return y.reshape(n, 1, 2, 2).to(dtype)


def _model(dtype=torch.float64):
    return GaussianScore(_gaussian_data(dtype=dtype))


def _exact_start(model, n, sigma0, seed):
    """Samples of the exact marginal N(mu, Sigma + sigma0^2 I)."""
    fit = model.fits[None]
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, fit.lam.numel(), generator=g, dtype=torch.float64)
    y = (z * torch.sqrt(fit.lam + sigma0**2)) @ fit.U.T + fit.mu
    return y.reshape(n, 1, 2, 2)


def _eig_coords(model, x):
    fit = model.fits[None]
    return (x.reshape(x.shape[0], -1).to(torch.float64) - fit.mu) @ fit.U


def _ode_errors(sampler):
    """Max error at the last nonzero level against the closed-form ODE solution, for 20, 40, 80 Karras steps, and
    the two observed rates ``log2(err_n / err_2n)``."""
    model = _model()
    lam = model.fits[None].lam
    x0 = _exact_start(model, 16, 20.0, seed=1)
    errs = []
    for n in (20, 40, 80):
        sig = S.sigma_grid("edm:t_min=0.05,t_max=20", n, "karras")
        rec = SM.Recorder(steps=[n - 1])
        sampler(model, x0.clone(), sig, callback=rec)
        s_end = float(sig[-2])
        exact = _eig_coords(model, x0) * torch.sqrt((lam + s_end**2) / (lam + 20.0**2))
        errs.append(float((_eig_coords(model, rec.x[0]) - exact).abs().max()))
    return errs, [math.log2(errs[i] / errs[i + 1]) for i in range(2)]


# UniPC-p with its corrector is of order p + 1 (Zhao et al. 2023, Theorem 3.3); PLMS's fixed weights on this
# non-uniform grid and DEIS-2 are second order (measured rates 2.0 .. 2.2 and 3.1 .. 3.3 for UniPC-2)
@pytest.mark.parametrize("sampler, order", [
    (SM.sample_euler, 1), (SM.sample_heun, 2), (SM.sample_dpmpp_2m, 2), (SM.sample_plms, 2),
    (SM.get("deis:order=2"), 2), (SM.get("unipc:order=1"), 2), (SM.get("unipc:order=2"), 3),
    (SM.get("unipc:order=2,variant=bh1"), 3)])
def test_ode_samplers_converge_to_closed_form_with_their_order(sampler, order):
    errs, rates = _ode_errors(sampler)
    assert all(abs(r - order) < 0.35 for r in rates), (errs, rates)
    assert errs[-1] < (0.1 if order == 1 else 5e-3)


@pytest.mark.parametrize("spec, floor", [("lms", 3.3), ("deis:order=3", 2.2), ("unipc:order=3", 3.2)])
def test_higher_order_multistep_samplers_converge_at_least_at_their_warm_up_limited_rate(spec, floor):
    """LMS-4, DEIS-3 and UniPC-3 start with lower orders while the history fills; the first steps' errors then bound
    the observed rate below the nominal order (measured on this grid: LMS 3.6, 3.7; DEIS-3 2.3, 2.9; UniPC-3 3.9,
    3.3), so only a floor is asserted."""
    errs, rates = _ode_errors(SM.get(spec))
    assert all(r > floor for r in rates) and errs[-1] < 2e-4, (errs, rates)


def test_lcm_is_denoise_then_renoise():
    """``x' = D(x) + sigma' xi`` with the sampler's own draws, ``D`` at the end (written out in float64)."""
    model = _model()
    sig = S.sigma_grid("ve", 4)
    x = _exact_start(model, 3, float(sig[0]), seed=6)
    got = SM.sample_lcm(model, x, sig, generator=torch.Generator().manual_seed(8))
    g, want = torch.Generator().manual_seed(8), x
    for i in range(4):
        d = model(want, float(sig[i]))
        want = d if i == 3 else d + float(sig[i + 1]) * torch.randn(want.shape, generator=g, dtype=want.dtype)
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)


def test_multistep_sampler_options_are_checked():
    for spec, match in [("unipc:order=4", "unipc takes order 1, 2, 3"), ("unipc:variant=bh3", "variant bh1 or bh2"),
                        ("deis:order=0", "deis takes order"), ("lms:order=5", "lms takes order"),
                        ("plms:order=2", "unknown option")]:
        with pytest.raises(ValueError, match=match):
            SM.get(spec)


def _variance_recursion(name, lam, sig, sch=None, eta=0.0, final=True):
    """Exact per-mode variance of the sampler's linear recursion, started at lam + sigma0^2.

    With ``final=False`` it stops before the last (denoising) step, at ``sig[-2]``."""
    v = lam + float(sig[0]) ** 2
    s = sig.tolist()
    for i in range(len(s) - 1):
        a, b = s[i], s[i + 1]
        g = lam / (lam + a * a)
        if b == 0:
            return g * g * v if final else v
        if name == "ddpm":
            r = b * b / (a * a)
            A, q = (1 - r) * g + r, b * b * (a * a - b * b) / (a * a)
        elif name == "ddim":
            up = eta * math.sqrt(b * b * (a * a - b * b) / (a * a))
            A, q = g + math.sqrt(b * b - up * up) * (1 - g) / a, up * up
        elif name == "em" and sch is None:
            dv = a * a - b * b
            A, q = 1 + dv * (g - 1) / (a * a), dv
        else:  # em in the schedule's own frame
            t, tn = float(sch.t_of_sigma(a)), float(sch.t_of_sigma(b))
            al, aln = float(sch.a(t)), float(sch.a(tn))
            f, g2, dt = float(sch.f(t)), float(sch.g2(t)), t - tn
            A = (al - f * al * dt + g2 * dt * (g - 1) / (al * a * a)) / aln
            q = g2 * dt / aln**2
        v = A * A * v + q
    return v


STOCH = [
    ("ddpm", SM.sample_ddpm, {}, None),
    ("ddim", SM.sample_ddim, {"eta": 0.0}, None),
    ("ddim", SM.sample_ddim, {"eta": 0.5}, None),
    ("em", SM.sample_euler_maruyama, {}, None),
    ("em", SM.sample_euler_maruyama, {"schedule": "vp-linear"}, "vp-linear"),
]


@pytest.mark.parametrize("name, sampler, kw, schname", STOCH)
def test_stochastic_samplers_match_exact_moment_recursion(name, sampler, kw, schname):
    model = _model()
    lam = model.fits[None].lam
    sch = S.get(schname or "vp-linear")
    sig = S.sigma_grid(sch, 30, "t")
    n = 6000
    x = _exact_start(model, n, float(sig[0]), seed=2)
    out = sampler(model, x, sig, generator=torch.Generator().manual_seed(3), **kw)
    emp = _eig_coords(model, out).var(0)
    eta = kw.get("eta", 0.0)
    want = torch.tensor([_variance_recursion(name, float(l), sig, S.get(schname) if schname else None, eta) for l in lam], dtype=torch.float64)
    # statistical error of a variance estimate: sqrt(2/n) relative
    assert torch.allclose(emp, want, rtol=5 * math.sqrt(2 / n)), (emp, want)


@pytest.mark.parametrize("name, sampler, kw, schname", STOCH)
def test_stochastic_samplers_converge_to_data_distribution(name, sampler, kw, schname):
    model = _model()
    lam = model.fits[None].lam
    sch = S.get(schname or "vp-linear")
    sig = S.sigma_grid(sch, 2000, "logsnr")
    eta = kw.get("eta", 0.0)
    v = torch.tensor([_variance_recursion(name, float(l), sig, S.get(schname) if schname else None, eta, final=False)
                      for l in lam], dtype=torch.float64)
    # the exact marginal at the last nonzero sigma is N(mu, Sigma + sigma^2 I)
    assert torch.allclose(v, lam + float(sig[-2]) ** 2, rtol=0.02), (v, lam)


def test_ddim_eta_one_equals_ddpm():
    model = _model()
    sig = S.sigma_grid("vp-linear", 25)
    x = _exact_start(model, 8, float(sig[0]), seed=4)
    a = SM.sample_ddpm(model, x, sig, generator=torch.Generator().manual_seed(5))
    b = SM.sample_ddim(model, x, sig, generator=torch.Generator().manual_seed(5), eta=1.0)
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", list(SM.SAMPLERS))
def test_seeded_runs_are_bit_reproducible_and_batch_independent(name):
    model = _model(torch.float32)
    sampler = SM.get(name)
    sig = S.sigma_grid("vp-cosine", 10)
    x = SM.initial_noise((4, 1, 2, 2), sig, SM.seed_generators(0, 4))
    a = sampler(model, x, sig, generator=SM.seed_generators(7, 4))
    b = sampler(model, x, sig, generator=SM.seed_generators(7, 4))
    assert torch.equal(a, b)
    one = sampler(model, x[1:2], sig, generator=SM.seed_generators(7, 4)[1:2])
    assert torch.allclose(one, a[1:2], rtol=1e-5, atol=1e-6)


def test_callback_sees_every_step_and_x0_hat():
    model = _model()
    sig = S.sigma_grid("ve", 6)
    seen = []
    rec = SM.Recorder()
    x = SM.initial_noise((2, 1, 2, 2), sig, torch.Generator().manual_seed(0), dtype=torch.float64)
    SM.sample_heun(model, x, sig, callback=[seen.append, rec])
    assert [s.i for s in seen] == list(range(6))
    assert [s.sigma for s in seen] == sig[:-1].tolist()
    for s in seen:
        assert torch.allclose(s.x0_hat, model(s.x, s.sigma))
    sigmas, xs, x0s = rec.stacked()
    assert xs.shape == (6, 2, 1, 2, 2) and x0s.shape == xs.shape


def test_gradients_flow_through_a_whole_trajectory():
    model = _model()
    sig = S.sigma_grid("ve", 5)
    x = SM.initial_noise((1, 1, 2, 2), sig, torch.Generator().manual_seed(0), dtype=torch.float64).requires_grad_(True)
    out = SM.sample_heun(model, x, sig)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


@pytest.mark.parametrize(
    "sigmas, match",
    [([3.0, 1.0], "end in 0"), ([1.0, 2.0, 0.0], "decreasing"), ([float("nan"), 0.0], "non-finite"), ([0.0], "at least 2")],
)
def test_bad_grids(sigmas, match):
    with pytest.raises(ValueError, match="sigmas: .*" + match):
        SM.sample_heun(_model(), torch.zeros(1, 1, 2, 2, dtype=torch.float64), torch.tensor(sigmas, dtype=torch.float64))


def test_bad_state_and_sampler_spec():
    with pytest.raises(ValueError, match="x: expected a tensor of rank 4"):
        SM.sample_heun(_model(), torch.zeros(4), S.sigma_grid("ve", 3))
    with pytest.raises(ValueError, match="x: contains non-finite"):
        SM.sample_heun(_model(), torch.full((1, 1, 2, 2), float("nan")), S.sigma_grid("ve", 3))
    with pytest.raises(ValueError, match="sampler: unknown sampler"):
        SM.get("rk45")
    with pytest.raises(ValueError, match="unknown option"):
        SM.get("heun:eta=1")


def test_dpmpp_2m_step_is_its_closed_form():
    """One 2M step against the formula written out in float64 (Lu et al. 2022, Algorithm 2)."""
    model = _model()
    x = _exact_start(model, 3, 5.0, seed=4)
    sig = torch.tensor([5.0, 2.0, 0.7, 0.0], dtype=torch.float64)
    rec = SM.Recorder()
    out = SM.sample_dpmpp_2m(model, x.clone(), sig, callback=rec)
    d0, d1 = model(x, 5.0), None
    x1 = (2.0 / 5.0) * x + (1 - 2.0 / 5.0) * d0  # first order
    d1 = model(x1, 2.0)
    h0, h1 = math.log(5.0 / 2.0), math.log(2.0 / 0.7)
    x2 = (0.7 / 2.0) * x1 - math.expm1(-h1) * (d1 + 0.5 * (h1 / h0) * (d1 - d0))
    assert torch.allclose(rec.x[1], x1, rtol=0, atol=1e-13) and torch.allclose(rec.x[2], x2, rtol=0, atol=1e-13)
    assert torch.allclose(out, model(x2, 0.7), rtol=0, atol=1e-13)
