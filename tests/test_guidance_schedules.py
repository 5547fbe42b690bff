"""Guidance schedules: budgets against quadrature, grid NFE against Guided's counts, exact centre
conversions, seeded random centres, and the adaptive pulse against an equivalent fixed pulse."""

import math

import pytest
import torch

import critdiff.guidance_schedules as GS
from critdiff import samplers as SM
from critdiff import schedules as S
from critdiff.guidance import Guided

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 1e-4, torch.float64: 1e-6}


def quad(schedule, lo, hi, baseline, n=400001):
    """Trapezoid integral of (w - baseline) over logsnr on a dense float64 grid."""
    lam = torch.linspace(lo, hi, n, dtype=torch.float64)
    w = schedule(torch.exp(-0.5 * lam)) - baseline
    return float(torch.trapezoid(w, lam))


@pytest.mark.parametrize("profile,truncate", [("box", None), ("gauss", 3.0), ("gauss", None), ("gauss", 1.5)])
@pytest.mark.parametrize("baseline", [0.0, 1.0])
def test_pulse_integrates_to_its_budget(profile, truncate, baseline):
    p = GS.Pulse(0.7, 2.5, 4.0, baseline, profile, truncate)
    assert quad(p, -20, 20, baseline) == pytest.approx(p.budget(), rel=1e-4)
    # over a window that cuts the pulse
    lo, hi = -0.3, 5.0
    assert quad(p, lo, hi, baseline) == pytest.approx(float(p.excess(lo, hi)[0]), rel=1e-4, abs=1e-6)


def test_box_and_gaussian_of_equal_width_carry_equal_budget():
    box = GS.Pulse(0.0, 2.0, 3.0, 1.0, "box")
    gau = GS.Pulse(0.0, 2.0, 3.0, 1.0, "gauss", truncate=None)
    assert box.budget() == pytest.approx(gau.budget(), rel=1e-12)
    assert quad(box, -15, 15, 1.0) == pytest.approx(quad(gau, -15, 15, 1.0), rel=1e-4)


def test_interval_and_constant_budgets():
    iv = GS.Interval(-1.0, 2.0, 3.0, 0.0)
    assert quad(iv, -10, 10, 0.0) == pytest.approx(iv.budget(), rel=1e-4)
    assert iv.excess(0.0, 10.0) == pytest.approx(quad(iv, 0.0, 10.0, 0.0), rel=1e-4)
    c = GS.Constant(2.5)
    assert c.excess(-3, 4) == pytest.approx(quad(c, -3, 4, 1.0), rel=1e-9)


def test_per_sample_centres_give_per_sample_weights():
    centres = torch.tensor([-2.0, 0.0, 3.0], dtype=torch.float64)
    p = GS.Pulse(centres, 1.0, 5.0, 0.0)
    w = p(torch.full((3,), 1.0))  # logsnr 0
    assert w.tolist() == [0.0, 5.0, 0.0]
    ex = p.excess(-10, 10)
    assert torch.allclose(ex, torch.full((3,), 5.0, dtype=torch.float64))
    with pytest.raises(ValueError, match="sigma"):
        p(torch.ones(4))


class ToyDenoiser:
    """A labelled toy denoiser (independent of the code under test): x0_hat = (x + label) / (1 + sigma^2)."""

    def __call__(self, x, sigma, label=None):
        s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1)
        lab = 0.0 if label is None else torch.as_tensor(label, dtype=x.dtype).reshape(-1, 1, 1, 1)
        return (x + 0.5 * lab) / (1 + s * s)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sampler,evals", [("euler", "euler"), ("heun", "heun"), ("ddpm", "euler")])
@pytest.mark.parametrize("baseline", [0.0, 1.0])
def test_grid_nfe_matches_guided_counts(dtype, sampler, evals, baseline):
    sig = S.sigma_grid("vp-linear", 15, "logsnr")
    B = 5
    centres = GS.random_centres(B, -6.0, 6.0, seed=3)
    for sch in (GS.Pulse(centres, 2.0, 3.0, baseline), GS.Pulse(0.4, 3.0, 2.0, baseline, "gauss"),
                GS.Interval(-2.0, 1.0, 2.0, baseline), GS.Constant(2.0), GS.Constant(baseline)):
        g = Guided(ToyDenoiser(), sch)
        x = SM.initial_noise((B, 1, 4, 4), sig, SM.seed_generators(0, B), dtype=dtype)
        SM.get(sampler)(g, x, sig, label=torch.arange(B) % 2, generator=SM.seed_generators(1, B))
        expect = sch.grid_nfe(sig, evals, batch=B)
        assert g.nfe.tolist() == expect.long().tolist(), sch


def test_centre_conversions_are_exact():
    sch = S.get("vp-cosine")
    sig = S.sigma_grid(sch, 12, "t")
    for i in range(12):
        assert GS.centre_logsnr(i, "step", sigmas=sig) == -2 * math.log(float(sig[i]))
    t = 0.37
    lam = float(sch.logsnr(t))
    assert GS.centre_logsnr(t, "t", schedule=sch) == lam
    assert GS.centre_logsnr(math.exp(-0.5 * lam), "sigma") == pytest.approx(lam, abs=1e-12)
    assert GS.Pulse.at(t, "t", schedule="vp-cosine", width=1, height=2).centre == lam
    with pytest.raises(ValueError, match="sigmas"):
        GS.centre_logsnr(3, "step")
    with pytest.raises(ValueError, match="step index"):
        GS.centre_logsnr(12, "step", sigmas=sig)
    with pytest.raises(ValueError, match="unit"):
        GS.centre_logsnr(1.0, "seconds")


@pytest.mark.parametrize("dtype", DTYPES)
def test_box_at_a_step_index_covers_exactly_that_step(dtype):
    sig = S.sigma_grid("vp-linear", 20, "logsnr")
    lam = GS.grid_logsnr(sig)
    dl = float(lam[1] - lam[0])
    for i in (0, 7, 19):
        p = GS.Pulse.at(i, "step", sigmas=sig, width=0.5 * dl, height=3.0, baseline=0.0)
        w = torch.stack([p(torch.tensor([float(s)], dtype=dtype))[0] for s in sig[:-1]])
        assert torch.nonzero(w).flatten().tolist() == [i]
        # a width of exactly two spacings reaches the neighbours (edges inclusive)
        p2 = GS.Pulse.at(i, "step", sigmas=sig, width=2 * dl, height=3.0, baseline=0.0)
        w2 = torch.stack([p2(torch.tensor([float(s)], dtype=dtype))[0] for s in sig[:-1]])
        assert torch.nonzero(w2).flatten().tolist() == [j for j in (i - 1, i, i + 1) if 0 <= j < 20]


def test_random_centres_are_seeded_uniform_and_batch_independent():
    a = GS.random_centres(4000, -3.0, 5.0, seed=7)
    assert torch.equal(a, GS.random_centres(4000, -3.0, 5.0, seed=7))
    assert not torch.equal(a, GS.random_centres(4000, -3.0, 5.0, seed=8))
    assert float(a.min()) >= -3.0 and float(a.max()) <= 5.0
    assert float(a.mean()) == pytest.approx(1.0, abs=0.15)
    assert float(a.var()) == pytest.approx(64 / 12, rel=0.08)
    template = GS.Pulse(0.0, 1.0, 2.0)
    rp = GS.random_pulse(template, 10, -3, 5, seed=1)
    idx = torch.tensor([2, 5, 9])
    assert torch.equal(rp.subset(idx).centre, rp.centre[idx])


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="baseline"):
        GS.Pulse(0.0, 1.0, 2.0, baseline=0.5)
    with pytest.raises(ValueError, match="width"):
        GS.Pulse(0.0, 0.0, 2.0)
    with pytest.raises(ValueError, match="profile"):
        GS.Pulse(0.0, 1.0, 2.0, profile="tri")
    with pytest.raises(ValueError, match="lo, hi"):
        GS.Interval(2.0, 1.0, 3.0)
    with pytest.raises(ValueError, match="indicator"):
        GS.AdaptivePulse(GS.Pulse(0.0, 1.0, 2.0), 0.1, indicator="magic")
    with pytest.raises(TypeError, match="template"):
        GS.AdaptivePulse(GS.Constant(2.0), 0.1)


def test_to_dict_round_trips():
    for s in (GS.Constant(2.0), GS.Interval(-1, 2, 3, 0), GS.Pulse(0.3, 2, 3, 1, "gauss", 2.0),
              GS.Pulse(torch.tensor([0.1, 0.2], dtype=torch.float64), 2, 3, 0)):
        r = GS.from_dict(s.to_dict())
        lam = torch.linspace(-5, 5, 41, dtype=torch.float64)
        for l_ in lam:
            assert torch.equal(r(torch.exp(-0.5 * l_)), s(torch.exp(-0.5 * l_)))


# --- adaptive --------------------------------------------------------------------------------
def test_x0_rate_matches_a_brute_force_loop():
    torch.manual_seed(0)
    state = GS.adaptive._IndicatorState()
    sig = [3.0, 1.5, 0.7]
    outs = [torch.randn(3, 2, 4, 4, dtype=torch.float64) for _ in sig]
    vals = [GS.x0_rate(state, SM.Step(i, s, 0.0, outs[i], outs[i])) for i, s in enumerate(sig)]
    assert bool(torch.isnan(vals[0]).all())
    for i in (1, 2):
        for b in range(3):
            d = outs[i][b] - outs[i - 1][b]
            rms = math.sqrt(sum(float(v) ** 2 for v in d.flatten()) / d.numel())
            dl = -2 * math.log(sig[i]) + 2 * math.log(sig[i - 1])
            assert float(vals[i][b]) == pytest.approx(rms / dl, rel=1e-12)


def test_adaptive_fires_at_first_crossing_and_acts_after_it():
    p = GS.Pulse(0.0, 1.0, 4.0, 0.0)
    ad = GS.AdaptivePulse(p, threshold=0.5, indicator=lambda st, step: step.x0_hat.flatten(1).mean(1), lead=0.75)
    x = torch.zeros(2, 1, 2, 2)
    levels = [(0.1, 0.2), (0.6, 0.3), (0.9, 0.7), (0.2, 0.9)]
    sigmas = [2.0, 1.0, 0.5, 0.25]
    assert ad(torch.tensor([2.0, 2.0])).tolist() == [0.0, 0.0]  # before any step: baseline
    for i, (s, (a, b)) in enumerate(zip(sigmas, levels)):
        ad.observe(SM.Step(i, s, s / 2, x, torch.tensor([a, b]).reshape(2, 1, 1, 1).expand(2, 1, 2, 2)))
    lam = [-2 * math.log(s) for s in sigmas]
    assert ad.fired.tolist() == pytest.approx([lam[1], lam[2]])
    # sample 0's box is centred at lam[1] + 0.75 with half-width 0.5
    w = ad(torch.full((2,), math.exp(-0.5 * (lam[1] + 0.75))))
    assert w.tolist() == [4.0, 0.0]
    never = GS.AdaptivePulse(p, math.inf, "x0-contrast")
    for i, s in enumerate(sigmas):
        never.observe(SM.Step(i, s, s / 2, x, torch.randn(2, 1, 2, 2)))
    assert bool(torch.isnan(never.fired).all()) and len(never.history) == 4


@pytest.mark.parametrize("sampler", ["euler", "heun"])
def test_adaptive_equals_the_fixed_pulse_at_its_firing_centres(sampler):
    """Run an adaptive pulse, then a fixed per-sample pulse at (fired + lead): same samples, same NFE."""
    sig = S.sigma_grid("vp-linear", 16, "logsnr")
    dl = float(GS.grid_logsnr(sig)[1] - GS.grid_logsnr(sig)[0])
    B = 6
    template = GS.Pulse(0.0, 2.0, 3.0, 1.0)
    lead = 1.0 + dl  # the box starts one grid step after the firing step
    ad = GS.AdaptivePulse(template, threshold=0.08, indicator="x0-rate", lead=lead)
    den = ToyDenoiser()
    lab = torch.arange(B) % 3
    x = SM.initial_noise((B, 1, 4, 4), sig, SM.seed_generators(0, B), dtype=torch.float64)
    g1 = Guided(den, ad)
    out1 = SM.get(sampler)(g1, x, sig, label=lab, callback=[ad.observe])
    fired = ad.fired.clone()
    assert bool(torch.isfinite(fired).all()), fired
    assert len(set(fired.tolist())) > 1  # samples fire at their own moments
    g2 = Guided(den, GS.Pulse(fired + lead, 2.0, 3.0, 1.0))
    out2 = SM.get(sampler)(g2, x, sig, label=lab)
    assert torch.equal(out1, out2)
    assert torch.equal(g1.nfe, g2.nfe)
