"""Schedules against closed forms, numerical integration and finite differences."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from critdiff import schedules as S

ALL = list(S.SCHEDULES)


def _ts(sch, n=9):
    return torch.linspace(sch.t_min, sch.t_max, n, dtype=torch.float64)[1:-1]


@pytest.mark.parametrize("name", ALL)
def test_logsnr_and_sigma_over_a_consistent(name):
    sch = S.get(name)
    t = _ts(sch)
    assert torch.allclose(sch.logsnr(t), 2 * torch.log(sch.a(t) / sch.sigma(t)), rtol=1e-10, atol=1e-10)
    assert torch.allclose(sch.sigma_over_a(t), sch.sigma(t) / sch.a(t), rtol=1e-10)
    assert bool((sch.logsnr(t)[1:] < sch.logsnr(t)[:-1]).all()), "logsnr must decrease with t"


@pytest.mark.parametrize("name", ALL)
def test_inverse(name):
    sch = S.get(name)
    t = _ts(sch)
    assert torch.allclose(sch.t_of_logsnr(sch.logsnr(t)), t, rtol=1e-9, atol=1e-12)
    assert torch.allclose(sch.t_of_sigma(sch.sigma_over_a(t)), t, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ALL)
def test_sde_coefficients_by_finite_differences(name):
    sch = S.get(name)
    h = 1e-6 * (sch.t_max - sch.t_min)
    for t in _ts(sch, 7).tolist():
        dloga = (math.log(float(sch.a(t + h))) - math.log(float(sch.a(t - h)))) / (2 * h)
        assert float(sch.f(t)) == pytest.approx(dloga, rel=1e-5, abs=1e-8)
        dvar = (float(sch.sigma(t + h)) ** 2 - float(sch.sigma(t - h)) ** 2) / (2 * h)
        g2 = dvar - 2 * float(sch.f(t)) * float(sch.sigma(t)) ** 2
        assert float(sch.g2(t)) == pytest.approx(g2, rel=1e-5)


def test_vp_linear_against_integral_of_beta():
    sch = S.get("vp-linear")
    for t in (0.01, 0.3, 0.9):
        integral, _ = quad(lambda u: 0.1 + u * (20 - 0.1), 0, t)
        assert float(sch.a(t)) == pytest.approx(math.exp(-0.5 * integral), rel=1e-12)
        assert float(sch.a(t) ** 2 + sch.sigma(t) ** 2) == pytest.approx(1.0, abs=1e-14)


def test_vp_cosine_matches_discrete_iddpm_alpha_bar():
    sch = S.get("vp-cosine")
    T, s = 1000, 0.008
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    for i in (1, 250, 500, 900):
        assert float(sch.a(i / T) ** 2) == pytest.approx(f(i) / f(0), rel=1e-12)


def test_ve_and_edm_closed_forms():
    ve = S.get("ve:sigma_min=0.02,sigma_max=80")
    assert float(ve.sigma(0.0)) == pytest.approx(0.02)
    assert float(ve.sigma(1.0)) == pytest.approx(80)
    assert float(ve.sigma(0.5)) == pytest.approx(math.sqrt(0.02 * 80))
    edm = S.get("edm")
    assert float(edm.sigma_over_a(3.0)) == 3.0 and float(edm.a(3.0)) == 1.0


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("spacing", S.SPACINGS)
def test_grids(name, spacing):
    sch = S.get(name)
    # 'critical' follows a measured profile: any StepDensity (here a bump at logsnr 0) keeps the grid contract
    density = S.StepDensity((-5.0, 0.0, 5.0), (0.1, 1.0, 0.1)) if spacing == "critical" else None
    g = S.sigma_grid(sch, 12, spacing, density=density)
    assert g.dtype == torch.float64 and g.shape == (13,)
    assert float(g[-1]) == 0.0 and bool((g[1:] < g[:-1]).all())
    assert float(g[0]) == pytest.approx(sch.sigma_max, rel=1e-12)
    assert float(g[-2]) == pytest.approx(sch.sigma_min, rel=1e-12)
    if spacing == "logsnr":
        lam = -2 * torch.log(g[:-1])
        assert torch.allclose(lam.diff(), lam.diff()[0].expand(11), rtol=1e-9)
    if spacing == "t":
        t = sch.t_of_sigma(g[:-1])
        assert torch.allclose(t.diff(), t.diff()[0].expand(11), rtol=1e-7, atol=1e-12)
    if spacing == "karras":
        r = g[:-1] ** (1 / 7)
        assert torch.allclose(r.diff(), r.diff()[0].expand(11), rtol=1e-9)


def test_config_round_trip():
    for name in ALL:
        sch = S.get(name)
        assert S.from_config(sch.config()) == sch


def test_times_reported_three_ways():
    from critdiff.times import Time

    d = Time.from_t("vp-linear", 0.5).to_dict()
    assert set(d) == {"t", "logsnr", "sigma_over_a"}
    assert d["sigma_over_a"] == pytest.approx(math.exp(-d["logsnr"] / 2))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: S.get("vp-foo"), "schedule: unknown schedule"),
        (lambda: S.get("vp-linear:gamma=3"), "unknown option"),
        (lambda: S.get("vp-linear").check_t(1.5), "t: outside"),
        (lambda: S.get("vp-linear").check_t(float("nan")), "non-finite"),
        (lambda: S.sigma_grid("ve", 0), "steps"),
        (lambda: S.sigma_grid("ve", 5, "cubic"), "spacing"),
        (lambda: S.get("vp-cosine:t_max=1"), "t_max"),
    ],
)
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
