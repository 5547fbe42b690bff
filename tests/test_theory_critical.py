"""Critical point, critical mode, correlation length and predicted S(k, t) against known answers."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from critdiff.probes.correlations import structure_factor, xi_peak
from critdiff.schedules import get, sigma_grid
from critdiff.theory.correlation import (compare_structure_factors, correlation_length, kappa_hessian,
                                         predicted_structure_factor, xi_curve)
from critdiff.theory.critical import critical_point
from critdiff.theory.pool import patch_pool
from critdiff.theory.spectrum import k_grid, patch_kernel


def twopoint(n=40, size=8, amp=0.8, channels=1):
    sign = torch.tensor([1.0, -1.0] * (n // 2), dtype=torch.float64)
    return (amp * sign)[:, None, None, None].expand(n, channels, size, size).clone()


def stripes(L, size=16, n=16):
    u = torch.arange(size, dtype=torch.float64)
    ph = torch.arange(n, dtype=torch.float64) * 2 * math.pi / n
    return torch.cos(2 * math.pi * u[None, None, None, :] / L + ph[:, None, None, None]).expand(n, 1, size, size).clone()


@pytest.mark.parametrize("weights", ["uniform", "exact"])
@pytest.mark.parametrize("stencil,S", [("square:3", 9), ("cross:2", 9), ("square:5", 25)])
def test_twopoint_closed_form(weights, stencil, S):
    amp = 0.8
    cp = critical_point(patch_pool(twopoint(amp=amp), stencil), "ve", weights=weights, growth=False)
    # constant patches +-amp, balanced: C_w(0) = |S| amp^2, every other mode 0 -> sigma_c^2 = |S| amp^2
    assert cp.found and cp.k_star == (0.0, 0.0) and cp.preferred_mode
    assert math.isclose(cp.sigma_over_a_c, math.sqrt(S) * amp, rel_tol=1e-9)
    assert math.isclose(cp.logsnr_c, -math.log(S * amp**2), rel_tol=1e-9, abs_tol=1e-9)
    sch = get("ve")
    assert math.isclose(cp.t_c, float(sch.t_of_sigma(math.sqrt(S) * amp)), rel_tol=1e-9)


@pytest.mark.parametrize("L", [4, 8])
@pytest.mark.parametrize("weights", ["uniform", "exact"])
def test_stripes_critical_wavenumber(L, weights):
    cp = critical_point(patch_pool(stripes(L), "square:5" if L == 4 else "square:9"), "vp-linear",
                        weights=weights, growth=False)
    assert cp.found and cp.preferred_mode
    assert math.isclose(cp.k_star_abs, 2 * math.pi / L, rel_tol=1e-12)
    assert cp.k_star[0] == 0.0  # stripes vary along x only


def test_ring_grf_critical_mode_on_ring():
    size, k0 = 16, math.pi / 2
    g = torch.Generator().manual_seed(0)
    ky, kx = k_grid(size, size)
    kabs = torch.sqrt(ky**2 + kx**2)
    power = torch.exp(-0.5 * ((kabs - k0) / 0.15) ** 2)
    eps = torch.randn(300, 1, size, size, generator=g, dtype=torch.float64)
    x = torch.fft.ifft2(torch.fft.fft2(eps) * power.sqrt()).real
    x = x / x.std() * 0.35
    cp = critical_point(patch_pool(x, "square:9"), "vp-linear", weights="uniform", growth=False)
    assert cp.found and cp.preferred_mode
    assert abs(cp.k_star_abs - k0) <= 2 * math.pi / size * 0.75


@pytest.mark.parametrize("stencil", ["square:3", "square:1"])
def test_white_data_have_no_preferred_mode(stencil):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(200, 1, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    pool = patch_pool(x, stencil)
    cp = critical_point(pool, "ve", weights="uniform", growth=False)
    assert cp.found and not cp.preferred_mode and cp.k_star is None and cp.k_star_abs is None
    assert "white" in cp.message
    # all modes cross at once: sigma_c^2 is the pixel variance (1/3 for U(-1, 1)) up to sampling noise
    assert abs(cp.sigma_over_a_c**2 - float(x.var(unbiased=False))) < 0.1
    xi = correlation_length(pool, 2.0, cp.k_star, weights="uniform", preferred_mode=cp.preferred_mode)
    assert xi.c == 0.0 and xi.xi == 0.0
    # a structured data set is not declared white
    assert critical_point(patch_pool(stripes(4, size=8), "square:3"), "ve", weights="uniform",
                          growth=False).preferred_mode


def test_no_crossing_and_unstable_from_start_are_answers():
    x = twopoint(amp=0.5)  # sigma_c^2 = 9 * 0.25 -> sigma_c = 1.5
    pool = patch_pool(x, "square:3")
    late = critical_point(pool, "ve:sigma_min=3,sigma_max=50", weights="uniform", growth=False)
    assert not late.found and "no crossing" in late.message and late.t_c is None
    early = critical_point(pool, "ve:sigma_min=0.01,sigma_max=1", weights="uniform", growth=False)
    assert not early.found and "from the start" in early.message
    d = late.to_dict()
    assert d["t_c"] is None and d["k_star"] is None


def test_bad_input_messages():
    x = twopoint(size=4)
    with pytest.raises(ValueError, match="stencil.*larger than"):
        patch_pool(x, "square:5")
    with pytest.raises(ValueError, match="zero variance"):
        patch_pool(torch.full((5, 1, 8, 8), 0.3, dtype=torch.float64), "square:3")
    with pytest.raises(ValueError, match="weights"):
        critical_point(patch_pool(twopoint(), "square:3"), "ve", weights="bogus")


def test_instability_times_ve_equal_tc_and_vp_differ():
    pool = patch_pool(stripes(4), "square:5")
    ve = critical_point(pool, "ve", weights="uniform")
    for s in ("ode", "sde"):  # a = 1, f = 0: gamma = -g^2 kappa (/2), same zero as kappa
        assert ve.instability[s]["found"] and math.isclose(ve.instability[s]["t"], ve.t_c, rel_tol=1e-8)
    vp = critical_point(pool, "vp-linear", weights="uniform")
    sde = vp.instability["sde"]
    assert sde["found"]
    # independent check of the VP-SDE growth rate at k*: -f - g^2 (1 - snr c)/sigma_t^2 = 0 at that time
    sch = get("vp-linear")
    t = torch.tensor(sde["t"], dtype=torch.float64)
    c = vp.c_star  # uniform weights: C_w(k*) does not depend on time
    snr, st2 = float(sch.snr(t)), float(sch.sigma(t)) ** 2
    gamma = -float(sch.f(t)) - float(sch.g2(t)) * (1 - snr * c) / st2
    assert abs(gamma) < 1e-8 * float(sch.g2(t)) / st2
    assert sde["t"] != pytest.approx(vp.t_c, rel=1e-3)


def test_hessian_against_analytic_second_derivative():
    pool = patch_pool(stripes(6, size=12), "square:5")
    sigma, k = 1.3, (0.2, 1.0)
    kern = patch_kernel(pool, None, None, "uniform")
    r, H = kappa_hessian(kern, pool.offsets, k, sigma)
    d = pool.offsets.to(torch.float64)
    ph = torch.exp(1j * (d @ torch.tensor(k, dtype=torch.float64)))
    c2 = -(kern[:, 0, 0] * ph)[:, None, None] * d[:, :, None] * d[:, None, :]
    H_exact = -c2.sum(0).real / sigma**4  # kappa = (1 - c/sigma^2)/sigma^2
    assert torch.allclose(H, H_exact, rtol=1e-5, atol=1e-6)


def test_xi_grows_towards_tc():
    pool = patch_pool(stripes(4), "square:5")
    cp = critical_point(pool, "ve", weights="uniform", growth=False)
    sig = cp.sigma_over_a_c * np.array([4.0, 2.0, 1.3, 1.05, 1.01])
    xs = [c.xi for c in xi_curve(pool, sig, cp.k_star, weights="uniform")]
    assert all(b > a for a, b in zip(xs, xs[1:])) and xs[-1] > 5 * xs[0]


def test_second_moment_length_of_lattice_oz():
    H = W = 16
    ky, kx = k_grid(H, W)
    r, c = 0.05, 1.0
    S = 1.0 / (r + c * (4 * torch.sin(ky / 2) ** 2 + 4 * torch.sin(kx / 2) ** 2))
    assert math.isclose(xi_peak(S), math.sqrt(c / r), rel_tol=1e-12)
    assert xi_peak(torch.ones(H, W)) == 0.0


def test_predicted_S_closed_form_ode_uniform():
    pool = patch_pool(stripes(4, size=8), "square:3")
    sig = torch.tensor([20.0, 8.0, 3.0, 2.0], dtype=torch.float64)
    S = predicted_structure_factor(pool, sig, sampler="ode", weights="uniform")
    kern = patch_kernel(pool, None, None, "uniform")
    ky, kx = k_grid(8, 8)
    c = (torch.exp(1j * (torch.stack([ky, kx], -1) @ pool.offsets.T.to(torch.float64))) @ kern[:, 0, 0].to(torch.complex128)).real
    for i, s in enumerate(sig.tolist()):  # S = sigma^2 exp(c (1/sigma^2 - 1/sigma0^2))
        exact = s**2 * torch.exp(c * (1 / s**2 - 1 / 20.0**2))
        assert torch.allclose(S[i], exact, rtol=1e-5)


def test_predicted_S_sde_against_scipy():
    pool = patch_pool(stripes(4, size=8), "square:3")
    sig = [10.0, 4.0, 2.5]
    S = predicted_structure_factor(pool, sig, sampler="sde", weights="uniform", max_step=0.002)
    kern = patch_kernel(pool, None, None, "uniform")
    ky, kx = k_grid(8, 8)
    c = float((torch.exp(1j * (torch.tensor([ky[0, 2], kx[0, 2]]) @ pool.offsets.T.to(torch.float64)))
               @ kern[:, 0, 0].to(torch.complex128)).real)
    # dS/du = -4 (1 - c/sigma^2) S + 2 sigma^2, u = -log sigma
    sol = solve_ivp(lambda u, y: -4 * (1 - c * math.exp(2 * u)) * y + 2 * math.exp(-2 * u),
                    (-math.log(10.0), -math.log(2.5)), [100.0], t_eval=[-math.log(4.0), -math.log(2.5)],
                    rtol=1e-11, atol=1e-12)
    assert np.allclose(S[1:, 0, 2].numpy(), sol.y[0], rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("sampler,disc", [("ode", "euler"), ("sde", "euler-maruyama")])
def test_predicted_S_matches_nonlinear_ensemble_before_tc(sampler, disc):
    from critdiff.samplers import Recorder, sample_euler, sample_euler_maruyama
    from critdiff.scores.patch import PatchScore
    from critdiff.theory.homogeneous import homogeneous_solution

    x = stripes(3, size=8, n=16)
    pool = patch_pool(x, "square:3")
    sch = get("ve")
    cp = critical_point(pool, sch, weights="exact", growth=False)
    sig = sigma_grid(sch, 40, spacing="logsnr")
    B = 300
    x0 = torch.randn(B, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * sig[0]
    rec = Recorder()
    fn = sample_euler if sampler == "ode" else sample_euler_maruyama
    with torch.no_grad():
        fn(PatchScore(x, "square:3"), x0, sig, callback=rec, generator=torch.Generator().manual_seed(1))
    sg, xs, _ = rec.stacked()
    hom = homogeneous_solution(pool, float(sig[0]), float(sig[-2]), drift=sampler)
    Sp = predicted_structure_factor(pool, sg, sampler=sampler, hom=hom, discretisation=disc)
    emp = [structure_factor(xs[i]) for i in range(len(sg))]
    res = compare_structure_factors(Sp, np.stack([e.S for e in emp]), np.stack([e.S_se for e in emp]), sg)
    before = [z for s, z in zip(res["sigma"], res["z_max_per_time"]) if s > 1.2 * cp.sigma_over_a_c]
    assert len(before) > 10 and max(before) < 4.0
    assert res["departs_at_sigma"] is not None and res["departs_at_sigma"] < 1.5 * cp.sigma_over_a_c
