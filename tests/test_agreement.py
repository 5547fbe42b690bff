"""Tests of the ELS-vs-network agreement: critdiff.probes.agreement (Pearson r, paired DDIM runs, median summary),
critdiff.probes.calibration.CalibratedPatchScore, critdiff.experiments.agreement (resume) and its renderer."""

import json

import numpy as np
import pytest
import torch

from critdiff.data import load
from critdiff.experiments.agreement import LOG, AgreementConfig, AgreementResult, run_agreement
from critdiff.experiments.result import result_from_record
from critdiff.probes.agreement import median_summary, paired_ddim, pearson_r
from critdiff.probes.calibration import CalibratedPatchScore
from critdiff.report.agreement import FIGURES
from critdiff.report.render import render
from critdiff.samplers import initial_noise, sample_ddim, seed_generators
from critdiff.schedules import get as get_schedule
from critdiff.schedules import sigma_grid
from critdiff.scores import GaussianScore, PatchScore
from oracles import assert_paths_close
from critdiff.experiments.context import Context

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    x, _ = load("digits:size=8,n=40")
    return x.to(torch.float64)


def _noise(n, sigmas, seed=0, dtype=torch.float64):
    return initial_noise((n, 1, 8, 8), sigmas, seed_generators(seed, n), dtype=dtype)


def _grid(steps=6):
    return sigma_grid(get_schedule("vp-cosine"), steps, "logsnr")


def _ddim_by_hand(model, x, sigmas):
    """Deterministic DDIM written out (DESIGN.md section 3, eta = 0): ``x <- D + (sigma_next / sigma) (x - D)``,
    the last step ``x <- D``; returns the final state and the states it evaluated ``[(sigma, x)]``."""
    states = []
    for s, sn in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
        states.append((s, x))
        d = model(x, s)
        x = d + (sn / s) * (x - d)
    return x, states


# ---- Pearson r ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pearson_r_matches_numpy_float64(dtype):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 2, 6, 7, generator=g, dtype=dtype)
    b = 0.3 * a + torch.randn(5, 2, 6, 7, generator=g, dtype=dtype) + 4.0  # an offset: r is mean-centred
    want = [np.corrcoef(a[i].double().numpy().ravel(), b[i].double().numpy().ravel())[0, 1] for i in range(5)]
    np.testing.assert_allclose(pearson_r(a, b), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pearson_r(a, a), 1.0, atol=1e-12)
    np.testing.assert_allclose(pearson_r(a, -2 * a + 1), -1.0, atol=1e-12)


def test_pearson_r_of_a_constant_image_is_nan_and_shapes_are_checked():
    a = torch.randn(2, 1, 4, 4)
    b = a.clone()
    b[1] = 0.5
    r = pearson_r(a, b)
    assert r[0] == pytest.approx(1.0) and np.isnan(r[1])
    with pytest.raises(ValueError, match="a, b"):
        pearson_r(a, b[:, :, :3])


# ---- paired runs ----------------------------------------------------------------------------
def test_identical_denoisers_agree_exactly(digits):
    g = GaussianScore(digits)
    sig = _grid()
    run = paired_ddim(g, g, _noise(4, sig), sig)
    assert torch.equal(run.final_a, run.final_b)
    np.testing.assert_allclose(run.r, 1.0, atol=1e-12)
    assert run.level_r.shape == (6, 4)
    np.testing.assert_allclose(run.level_r, 1.0, atol=1e-12)
    np.testing.assert_allclose(run.sigma, sig[:-1].numpy())


def test_paired_run_against_separate_runs_and_a_dense_per_level_computation(digits):
    """Each model's final samples equal a DDIM loop written out in the test (not critdiff's sampler, which
    paired_ddim itself calls); the per-level r equals np.corrcoef of model a's outputs and model b's, both
    evaluated on the states of b's hand-written run."""
    a, b = PatchScore(digits, "square:3", boundary="zero"), GaussianScore(digits)
    sig = _grid()
    x = _noise(3, sig, seed=5)
    run = paired_ddim(a, b, x, sig)
    with torch.no_grad():
        final_a, _ = _ddim_by_hand(a, x, sig)
        final_b, states_b = _ddim_by_hand(b, x, sig)
        # the sampler and the loop above order the float64 update differently: float64 precision, not bits
        assert_paths_close(run.final_a, final_a, ulps=1e3)
        assert_paths_close(run.final_b, final_b, ulps=1e3)
        dense = np.array([[np.corrcoef(a(xs, s)[i].numpy().ravel(), b(xs, s)[i].numpy().ravel())[0, 1]
                           for i in range(3)] for s, xs in states_b])
    np.testing.assert_allclose(run.level_r, dense, rtol=0, atol=1e-10)
    assert np.all(run.level_r < 1 - 1e-6)  # two different models: the test can fail
    want = [np.corrcoef(run.final_a[i].numpy().ravel(), run.final_b[i].numpy().ravel())[0, 1] for i in range(3)]
    np.testing.assert_allclose(run.r, want, atol=1e-12)


def test_median_summary_against_a_brute_force_bootstrap():
    v = np.random.default_rng(3).normal(0.8, 0.1, 37)
    s = median_summary(np.r_[v, np.nan], n_boot=500, seed=4)
    assert s["n"] == 37 and s["n_nonfinite"] == 1
    # np.median and np.quantile interpolate the middle pair by other formulas: float64 precision, not bits
    assert s["median"] == pytest.approx(np.median(v), rel=1e-15)
    assert [s["q25"], s["q75"]] == pytest.approx(list(np.quantile(v, [0.25, 0.75])), rel=1e-15)
    rng = np.random.default_rng(4)
    reps = [np.median(v[rng.integers(0, 37, 37)]) for _ in range(500)]
    np.testing.assert_allclose(s["median_ci"], np.quantile(reps, [0.025, 0.975]), rtol=0, atol=1e-15)
    assert s["median_ci"][0] <= s["median"] <= s["median_ci"][1]
    assert median_summary([np.nan])["median"] is None


# ---- the calibrated patch model ---------------------------------------------------------------
def test_calibrated_patch_score_uses_the_stencil_of_the_nearest_level(digits):
    m = CalibratedPatchScore(digits, [2.0, 0.5, 0.1], ["square:5", "square:3", "square:5"], boundary="zero")
    assert len(m.models) == 2
    assert [m.stencil_at(s) for s in (10.0, 1.1, 0.6, 0.3, 0.01)] == ["square:5", "square:5", "square:3",
                                                                       "square:3", "square:5"]
    x = _noise(4, torch.tensor([1.0, 0.0], dtype=torch.float64), seed=2)
    for s, st in ((2.0, "square:5"), (0.5, "square:3")):
        # two PatchScore instances built from the same images: the same arithmetic, compared to float64
        # precision as two module instances (their pools may be laid out, and so summed, differently)
        assert_paths_close(m(x, s), PatchScore(digits, st, boundary="zero")(x, s))
    per = torch.tensor([2.0, 0.5, 0.5, 0.1], dtype=torch.float64)
    want = torch.cat([m(x[i:i + 1], float(per[i])) for i in range(4)])
    torch.testing.assert_close(m(x, per), want, rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="sigma, stencils"):
        CalibratedPatchScore(digits, [1.0, 0.5], ["square:3"])


# ---- the experiment -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def net(demo_net):
    return demo_net  # the session's quick demo network (conftest.py)


def _cfg(net, **kw):
    base = dict(net=net, pool="digits:size=8,n=40", steps=4, batch=2, stencils=("square:3", "square:5"),
                n_cal_traj=2, n_cal_train=16, n_boot=200)
    return AgreementConfig(**{**base, **kw})


def test_resume_skips_done_seeds_and_gives_the_same_summary(net, tmp_path):
    first = run_agreement(_cfg(net, seeds=2), Context(tmp_path / "a", progress=False))
    lines = (tmp_path / "a" / LOG).read_bytes().splitlines()
    assert len(first.r) == 2 and len(lines) == 4  # config, calibration, two seeds
    resumed = run_agreement(_cfg(net, seeds=3), Context(tmp_path / "a", progress=False))
    after = (tmp_path / "a" / LOG).read_bytes().splitlines()
    assert after[:4] == lines and len(after) == 5  # only seed 2 was computed
    assert json.loads(after[4])["seed"] == 2
    fresh = run_agreement(_cfg(net, seeds=3), Context(tmp_path / "b", progress=False))
    assert resumed.r == fresh.r and resumed.summary == fresh.summary
    assert resumed.level_r_median == fresh.level_r_median
    assert resumed.r[:2] == first.r
    with pytest.raises(ValueError, match="different configuration"):
        run_agreement(_cfg(net, seeds=3, stencil_rule="modal"), Context(tmp_path / "a", progress=False))


def test_cpu_time_is_logged_per_seed_and_averaged_over_the_seeds_that_carry_it(net, tmp_path):
    res = run_agreement(_cfg(net, seeds=3), Context(tmp_path, progress=False))
    recs = [json.loads(line) for line in (tmp_path / LOG).read_text().splitlines()]
    seeds = [r for r in recs if r["type"] == "seed"]
    cal = next(r for r in recs if r["type"] == "stencil-calibration")
    assert all(r["cpu_seconds"] > 0 for r in seeds) and cal["cpu_seconds"] > 0
    assert res.cpu_seconds_per_seed == pytest.approx(np.mean([r["cpu_seconds"] for r in seeds]), rel=1e-12)
    assert res.calibration_cpu_seconds == cal["cpu_seconds"]
    assert "CPU s per seed" in render(res, folder=tmp_path).html
    # a log written before CPU time was recorded: seed 0 lacks it, so the mean is over seeds 1 and 2; none: None
    strip = [{k: v for k, v in r.items() if not (k == "cpu_seconds" and r.get("seed") == 0)} for r in recs]
    (tmp_path / LOG).write_text("".join(json.dumps(r) + "\n" for r in strip))
    partial = run_agreement(_cfg(net, seeds=3), Context(tmp_path, progress=False))  # nothing missing: re-summarised
    assert partial.cpu_seconds_per_seed == pytest.approx(np.mean([r["cpu_seconds"] for r in seeds[1:]]), rel=1e-12)
    old = [{k: v for k, v in r.items() if k != "cpu_seconds"} for r in recs]
    (tmp_path / LOG).write_text("".join(json.dumps(r) + "\n" for r in old))
    legacy = run_agreement(_cfg(net, seeds=3), Context(tmp_path, progress=False))
    assert legacy.cpu_seconds_per_seed is None and legacy.calibration_cpu_seconds is None
    assert legacy.r == res.r


def test_result_round_trips_and_renders(net, tmp_path):
    res = run_agreement(_cfg(net, seeds=2, stencil_rule="modal"), Context(tmp_path, progress=False))
    assert result_from_record(json.loads((tmp_path / "result.json").read_text())) == res
    assert isinstance(res, AgreementResult) and len(set(res.level_stencil)) == 1
    assert len(res.level_sigma) == 4 and res.label is None and res.sampler == "ddim:eta=0"
    assert all(-1 <= v <= 1 for v in res.r)
    sec = render(res, folder=tmp_path)
    assert all((tmp_path / f).is_file() for f in FIGURES)
    assert "median Pearson r" in sec.findings[0] and "0.94" in sec.findings[0]


def test_bad_config_is_a_one_line_error(net, tmp_path):
    with pytest.raises(ValueError, match="^seeds:"):
        run_agreement(_cfg(net, seeds=0), Context(tmp_path, progress=False))
    with pytest.raises(ValueError, match="^stencil_rule:"):
        run_agreement(_cfg(net, stencil_rule="best"), Context(tmp_path, progress=False))


def test_configs_take_ls_candidates_where_they_can():
    from critdiff.experiments.agreement import AgreementConfig
    from critdiff.experiments.net_criticality import NetCriticalityConfig

    AgreementConfig(net="x", stencils=("square:3", "ls:square:27")).validate()
    with pytest.raises(ValueError, match="stencils: expected equivariant"):
        NetCriticalityConfig(model_dir="x", stencils=("ls:square:5",)).validate()


def test_conditional_run_samples_each_seed_at_its_class(net, tmp_path):
    from critdiff.experiments.net_criticality import load_trained
    from critdiff.seeding import generator

    # n_cal_train: every pool image, so that every class has calibration images
    cfg = _cfg(net, seeds=3, conditional=True, stencils=("square:3", "ls:square:5", "b:square:3"), n_cal_train=40)
    res = run_agreement(cfg, Context(tmp_path, progress=False))
    assert res.config.conditional and len(res.r) == 3
    model, pool, _, schedule, labels = load_trained(net, cfg.pool, with_labels=True)
    sigmas = sigma_grid(get_schedule(schedule), cfg.steps, "logsnr")
    for ex in res.examples:  # the network's sample of seed j is its DDIM run at label j mod 10, alone in its batch
        j = ex["seed"]
        x = initial_noise((1, *model.sample_shape), sigmas, [generator(cfg.seed, j)])
        with torch.no_grad():
            want = sample_ddim(model, x, sigmas, label=torch.tensor([j % 10]))
        # batch of 2 vs 1: float32 network arithmetic may round differently per batch composition
        np.testing.assert_allclose(np.array(ex["x_net"]), want.flatten().numpy(), atol=1e-4)
    uncond = run_agreement(_cfg(net, seeds=3, stencils=cfg.stencils, n_cal_train=40), Context(tmp_path / "u", progress=False))
    assert uncond.examples[1]["x_net"] != res.examples[1]["x_net"]  # the label changes the network's sample


def test_final_rule_records_its_choice_and_it_is_the_best_on_the_calibration_seeds(net, tmp_path):
    cfg = _cfg(net, seeds=2, stencil_rule="final", switch_stride=1,
               stencils=("square:3", "ls:square:3", "ls:square:15", "b:square:3"))
    res = run_agreement(cfg, Context(tmp_path, progress=False))
    fs = res.final_selection
    assert fs["median_r"][fs["chosen"]] == max(fs["median_r"].values())
    assert list(res.level_stencil) == fs["assignments"][fs["chosen"]]
    assert {"ls@4", "per-time", "per-time-els-ls"} <= set(fs["median_r"])
    assert result_from_record(json.loads((tmp_path / "result.json").read_text())) == res
    assert "Final-sample calibration" in render(res, folder=tmp_path).html
    again = run_agreement(cfg, Context(tmp_path, progress=False))  # resumed: the choice is read back, not redone
    assert again.final_selection == fs and again.r == res.r
