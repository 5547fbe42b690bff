"""The guidance experiment: shared noise across arms, exact resume, metrics against oracles, report."""

import argparse
import json
import math

import numpy as np
import pytest
import scipy.linalg
import scipy.special
import torch

from critdiff import schedules as S
from critdiff.data import load
from critdiff.experiments.guide import run as G
from critdiff.experiments.guide.tc import tc_from_record, tc_record
from critdiff.times import TimeEstimate
from critdiff.experiments.guide.metrics import diversity, frechet_distance
from critdiff.probes.bootstrap import paired_mean_diff, paired_stat_diff
from critdiff.report.render import render
from oracles import MixtureDenoiser
from critdiff.experiments.context import Context

DATA = "textures:size=8,per_class=6"


class MeanClassifier:
    """A fixed deterministic classifier: logits = -|x - mu_c|^2 / 8 on the class means; embed = 6 pixels."""

    def __init__(self, images, labels):
        K = int(labels.max()) + 1
        self.mu = torch.stack([images[labels == c].mean(0).flatten() for c in range(K)]).double()

    def logits(self, x):
        f = x.flatten(1).double()
        return -((f[:, None, :] - self.mu[None]) ** 2).sum(-1) / 8.0

    def embed(self, x):
        return x.flatten(1)[:, ::10].double()


@pytest.fixture(scope="module")
def parts():
    x, y = load(DATA)
    return MixtureDenoiser(x, y), MeanClassifier(x, y)


def small(**kw):
    base = dict(model="gaussian", data=DATA, n=6, batch=3, steps=8, sweep=2, calib_n=3, n_boot=200, n_boot_set=20,
                width=2.5, tc_logsnr=0.5, sampler="ddpm")
    base.update(kw)
    return G.GuideConfig(**base)


def trials(out):
    recs = [json.loads(line) for line in open(out / "trials.jsonl")]
    return {(r["arm"], r["start"]): r for r in recs if r["type"] == "trial"}


def test_arms_share_noise_identical_when_guidance_is_zero(parts, tmp_path):
    model, clf = parts
    # height == baseline: every schedule is w = 1 everywhere, so every arm must give the none arm's samples
    G.run_guide(small(height=1.0, baseline=1.0), Context.quiet(tmp_path / "zero"), classifier=clf, model=model)
    t = trials(tmp_path / "zero")
    arms = sorted({a for a, _ in t})
    assert len(arms) >= 9
    for (arm, start), r in t.items():
        assert r["x"] == t[("none", start)]["x"], arm
        assert r["nfe"] == t[("none", start)]["nfe"]
    # with guidance the arms differ (the check above can fail)
    G.run_guide(small(height=4.0, baseline=1.0, arms=("none", "constant")), Context.quiet(tmp_path / "on"), classifier=clf,
                model=model)
    t = trials(tmp_path / "on")
    assert t[("constant", 0)]["x"] != t[("none", 0)]["x"]
    assert t[("constant", 0)]["nfe"] == [16] * 3 and t[("none", 0)]["nfe"] == [8] * 3


def test_a_sample_does_not_depend_on_its_batch(parts):
    model, clf = parts
    setup = G.prepare(small(), clf, model)
    from critdiff import guidance_schedules as GS

    sch = GS.Pulse(0.5, 2.5, 3.0, 0.0)
    full, _ = G.run_arm(setup, sch, [], torch.arange(0, 6), G.intended_labels(6, 3))
    part, _ = G.run_arm(setup, sch, [], torch.arange(3, 6), G.intended_labels(3, 3, 3))
    torch.testing.assert_close(full[3:], part, rtol=1e-5, atol=1e-5)


def test_resumed_run_gives_the_same_table(parts, tmp_path):
    model, clf = parts
    cfg = small(arms=("none", "constant", "tc", "random", "adaptive", "sweep"), sweep=1, batch=2)
    ref = G.run_guide(cfg, Context.quiet(tmp_path / "a"), classifier=clf, model=model)
    out = tmp_path / "b"
    assert G.run_guide(cfg, Context.quiet(out), classifier=clf, model=model, stop_after=8).status == "stopped"
    with open(out / "trials.jsonl", "a") as fh:  # an interrupted write
        fh.write('{"type": "trial", "arm": "tc", "sta')
    res = G.run_guide(cfg, Context.quiet(out), classifier=clf, model=model)
    assert res.table == ref.table
    assert res.comparisons == ref.comparisons
    assert res.sweep == ref.sweep
    n_trials = sum(1 for line in open(out / "trials.jsonl") if '"type":"trial"' in line)
    assert n_trials == len(trials(tmp_path / "a"))
    with pytest.raises(ValueError, match="different configuration"):
        G.run_guide(small(height=2.0, arms=cfg.arms), Context.quiet(out), classifier=clf, model=model)


def test_summary_contents(parts, tmp_path):
    model, clf = parts
    s = G.run_guide(small(arms=("none", "constant", "tc", "random", "adaptive", "sweep")), Context.quiet(tmp_path), classifier=clf, model=model)
    assert {"tc-random", "tc-constant", "adaptive-tc"} <= set(s.comparisons)
    r = s.comparisons["tc-constant"]
    assert r["nfe_ratio"] == pytest.approx(s.arms["tc"]["nfe"] / s.arms["constant"]["nfe"])
    # accuracy and mean log p(intended class) of every arm against the classifier recomputed here from the
    # stored samples: logits -|x - mu_c|^2 / 8, log p = logit - logsumexp(logits), in numpy float64
    t, mu = trials(tmp_path), parts[1].mu.numpy()
    assert set(s.arms) == {a for a, _ in t}
    for name, arm in s.arms.items():
        recs = [t[k] for k in sorted(k for k in t if k[0] == name)]
        x = np.concatenate([np.asarray(r["x"], dtype=np.float64).reshape(len(r["label"]), -1) for r in recs])
        lab = np.concatenate([r["label"] for r in recs])
        assert x.shape[0] == 6  # every sample of small(n=6)
        logits = -((x[:, None, :] - mu[None]) ** 2).sum(-1) / 8.0
        logp = logits[np.arange(lab.size), lab] - scipy.special.logsumexp(logits, axis=1)
        assert arm["logp"]["diff"] == pytest.approx(float(logp.mean()), rel=1e-9, abs=1e-12), name
        assert arm["accuracy"]["diff"] == pytest.approx(float((logits.argmax(1) == lab).mean()), abs=1e-12), name
        assert arm["logp"]["lo"] <= arm["logp"]["diff"] <= arm["logp"]["hi"], name
    # precision/recall and per-class diversity beside FD: per arm, in the table, paired against random and, in the
    # sweep, against the best centre; a paired difference's point value is the difference of the two arms' values
    for name, arm in s.arms.items():
        assert 0 <= arm["precision"] <= 1 and 0 <= arm["recall"] <= 1, name
        assert arm["diversity"] == pytest.approx(np.nanmean(list(arm["diversity_per_class"].values())))
    vr = s.arms["tc"]["vs_random"]
    assert vr["precision"]["diff"] == pytest.approx(s.arms["tc"]["precision"] - s.arms["random"]["precision"])
    assert vr["recall"]["lo"] <= vr["recall"]["diff"] + 1e-12 or math.isnan(vr["recall"]["lo"])
    assert {"precision", "recall"} <= set(next(r for r in s.table if r["arm"] == "tc"))  # numbers; the report formats
    from critdiff.report.guide import arms_rows

    assert "d_precision vs random [95% CI]" in next(r for r in arms_rows(s) if r["arm"] == "tc")
    assert sum(row["vs_best"] is None for row in s.sweep) == 1
    assert all({"fd", "precision", "recall", "diversity"} <= set(row) for row in s.sweep)
    sec = render(s, folder=tmp_path)
    assert "<table>" in sec.html and 'src="sweep.png"' in sec.html and (tmp_path / "sweep.png").exists()
    assert s.calibration["threshold"] > 0
    assert json.loads((tmp_path / "summary.json").read_text())["table"] == json.loads(json.dumps(s.table))


def test_result_round_trips_and_renders_identically_from_json(parts, tmp_path):
    model, clf = parts
    r = G.run_guide(small(arms=("none", "tc", "random", "sweep")), Context.quiet(tmp_path), classifier=clf,
                    model=model)
    again = G.GuideResult.from_json(r.to_json())
    assert again == r and isinstance(again.tc, TimeEstimate) and again.status == "complete"
    from critdiff.experiments.result import result_from_record

    stored = result_from_record(json.loads((tmp_path / "result.json").read_text()))
    assert stored == r
    first = render(r, folder=tmp_path / "one")
    second = render(stored, folder=tmp_path / "two")
    assert first.html == second.html and first.findings == second.findings
    assert (tmp_path / "one" / "sweep.png").exists() and (tmp_path / "two" / "sweep.png").exists()
    assert "0.44933284408410007" not in first.html
    # the findings quote the paired interval of the tc-random comparison with 4 significant digits
    acc = r.comparisons["tc-random"]["accuracy"]
    assert f"[{acc['lo']:.4g}, {acc['hi']:.4g}]" in " ".join(first.findings)


def test_tc_from_theory_or_given(parts):
    x, _ = load(DATA)
    tc = G.resolve_tc(small(model="patch", stencil="square:3", tc_logsnr=None, tc_from="theory"), x)
    assert tc.source.startswith("theory") and math.isfinite(tc.logsnr)
    given = G.resolve_tc(small(tc_logsnr=1.25), x)
    assert given.logsnr == 1.25 and given.sigma_over_a == pytest.approx(math.exp(-0.625), rel=1e-15)
    # t is the schedule's time of that logsnr: its logsnr(t) returns 1.25 (independent direction of the map)
    assert float(S.get(small().schedule).logsnr(torch.tensor(given.t, dtype=torch.float64))) == pytest.approx(1.25, abs=1e-9)
    assert tc_from_record(json.loads(json.dumps(tc_record(tc))), small().schedule) == tc
    assert tc.extras["k_star"] is not None and tc.interval is None  # the theory: its critical mode, no interval
    # a tc record written before TimeEstimate (flat logsnr_ci) still resumes
    old = {"type": "tc", "t": given.t, "logsnr": 1.25, "sigma_over_a": given.sigma_over_a, "source": "given",
           "logsnr_ci": [1.0, 1.5]}
    assert tc_from_record(old, small().schedule).logsnr_ci == (1.0, 1.5)
    with pytest.raises(ValueError, match="tc-logsnr"):
        G.resolve_tc(small(tc_logsnr=None), x)  # gaussian, no model given: no theory, no probe
    # the toy mixture's symmetric branch neither turns unstable nor has an interior softest point, so the
    # probe route must refuse (its estimate sits at the grid's end) instead of pulsing at an arbitrary time
    with pytest.raises(ValueError, match="tc-logsnr: the linear-response probe found no critical time"):
        G.resolve_tc(small(tc_logsnr=None), x, parts[0])


def test_bad_config_names_the_argument():
    with pytest.raises(ValueError, match="arms"):
        small(arms=("tc", "bogus")).validate()
    with pytest.raises(ValueError, match="baseline"):
        small(baseline=0.5).validate()
    with pytest.raises(ValueError, match="arms"):
        G.parse_arms("tc,nope")
    assert G.parse_arms("all") == G.ARMS


# --- metrics against independent computations --------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_frechet_distance_against_scipy_sqrtm(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(40, 5)) @ rng.normal(size=(5, 5))
    b = rng.normal(size=(30, 5)) * 1.7 + 0.4
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    oracle = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * np.real(scipy.linalg.sqrtm(s1 @ s2)))
    assert frechet_distance(a, b) == pytest.approx(oracle, rel=1e-8)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    # fewer samples than features (rank-deficient covariances), against the same dense oracle
    c, e = rng.normal(size=(6, 12)), rng.normal(size=(9, 12)) + 0.2
    s1, s2 = np.cov(c, rowvar=False), np.cov(e, rowvar=False)
    r1 = np.real(scipy.linalg.sqrtm(s1))
    oracle = ((c.mean(0) - e.mean(0)) ** 2).sum() + np.trace(s1 + s2) - 2 * np.trace(np.real(scipy.linalg.sqrtm(r1 @ s2 @ r1)))
    assert frechet_distance(c, e) == pytest.approx(oracle, rel=1e-6)


def test_fd_per_class_with_precomputed_reference_rows_against_sqrtm():
    """The summary's per-class FD (reference rows centred once, reused by every bootstrap draw) equals the mean of
    the dense sqrtm formula per class, on a bootstrap draw with repeated samples too."""
    from critdiff.experiments.guide.metrics import centred_rows
    from critdiff.experiments.guide.summary import _fd_per_class

    rng = np.random.default_rng(5)
    label = np.repeat([0, 1], 6)
    embed = rng.normal(size=(12, 4)).astype(np.float32)
    refs = {c: rng.normal(size=(20, 4)) + c for c in (0, 1)}

    def dense(a, b):
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        return ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * np.real(scipy.linalg.sqrtm(s1 @ s2)))

    rows = {c: centred_rows(f) for c, f in refs.items()}
    idx = np.array([0, 0, 2, 3, 5, 6, 7, 7, 9, 11])
    for i in (np.arange(12), idx):
        e, lab = embed[i].astype(np.float64), label[i]
        oracle = np.mean([dense(e[lab == c], refs[c]) for c in (0, 1)])
        assert _fd_per_class(embed, label, rows, i) == pytest.approx(oracle, rel=1e-6)


def test_diversity_against_a_loop():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(9, 4))
    d = [np.linalg.norm(f[i] - f[j]) for i in range(9) for j in range(i + 1, 9)]
    assert diversity(f) == pytest.approx(np.mean(d), rel=1e-10)


def test_paired_bootstrap():
    rng = np.random.default_rng(0)
    a = rng.normal(size=200)
    b = a - 0.3 + 0.05 * rng.normal(size=200)  # paired: strongly correlated
    r = paired_mean_diff(a, b, n_boot=2000, seed=1)
    assert r["diff"] == pytest.approx(float(np.mean(a - b)))
    assert r["lo"] < 0.3 < r["hi"] and r["hi"] - r["lo"] < 0.05
    assert r == paired_mean_diff(a, b, n_boot=2000, seed=1)
    groups = np.arange(200) % 4
    s = paired_stat_diff(lambda i: float(a[i].mean() - b[i].mean()), groups, n_boot=100, seed=0)
    assert s["diff"] == pytest.approx(r["diff"]) and s["lo"] < s["diff"] < s["hi"]


def test_cli_runs_without_a_classifier(tmp_path, capsys):
    from critdiff.cli import guide as cli

    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    cli.add_parser(sub)
    args = p.parse_args(["guide", "--model", "gaussian", "--data", DATA, "--n", "3", "--batch", "3", "--steps", "4",
                         "--arms", "none,tc", "--tc-logsnr", "0.5", "--out", str(tmp_path)])
    assert args.run(args) == 0
    assert "rerun with --classifier" in capsys.readouterr().out
    assert {a for a, _ in trials(tmp_path)} == {"none", "tc"}


@pytest.mark.slow
def test_demo_section_quick(tmp_path):
    x, y = load("textures:size=12,per_class=6")
    result = G.run_guide(G.demo_config(quick=True), Context.quiet(tmp_path), classifier=MeanClassifier(x, y))
    sec = render(result, folder=tmp_path)
    assert sec.key == "guidance" and "tc-random" in result.comparisons and 'src="sweep.png"' in sec.html


def test_baseline_arms_equal_nfe_rows_and_estimators_record(parts, tmp_path):
    """The interval-ours, linear and interval arms run; their NFE is the schedule's own count on the grid
    (independent: grid_nfe), the cost rows quote the measured ratio, and the result names every estimator."""
    model, clf = parts
    cfg = small(arms=("tc", "interval", "interval-ours", "linear"), n=3, batch=3)
    r = G.run_guide(cfg, Context.quiet(tmp_path), classifier=clf, model=model)
    sig = S.sigma_grid(cfg.schedule, cfg.steps, cfg.spacing)
    from critdiff.guidance_ramp import interval_at, wang_linear
    from critdiff.experiments.guide.arms import grid_range

    assert r.arms["interval-ours"]["nfe"] == float(interval_at(0.5, cfg.height, cfg.baseline).grid_nfe(sig)[0])
    ramp = wang_linear(cfg.height, cfg.baseline, grid_range(sig), clock="t", schedule=cfg.schedule)
    assert r.arms["linear"]["nfe"] == float(ramp.grid_nfe(sig)[0])
    rows = {row["comparison"]: row for row in r.equal_nfe}
    assert set(rows) == {"tc - interval", "tc - interval-ours", "tc - linear"}
    assert rows["tc - linear"]["nfe_ratio"] == pytest.approx(r.arms["tc"]["nfe"] / r.arms["linear"]["nfe"])
    assert r.estimators["chosen"] == "given" and "speciation" in r.estimators["estimates"]
    assert any("estimators" in f for f in render(r, folder=tmp_path / "rep").findings)


def test_window_arm_is_the_interval_builder_over_the_window(parts, tmp_path):
    """``window`` = ``Interval(lo, hi, height, baseline)``: its NFE per sample is the steps plus the grid points in
    the window (two evaluations there), and without a window it is a one-line ValueError."""
    model, clf = parts
    s = G.run_guide(small(arms=("window", "cond"), window=(-1.0, 2.0), baseline=1.0), Context.quiet(tmp_path), classifier=clf,
                    model=model)
    meta = s.arms["window"]["meta"]
    assert (meta["lo"], meta["hi"], meta["height"], meta["baseline"]) == (-1.0, 2.0, 3.0, 1.0)
    lam = -2 * np.log(S.sigma_grid("vp-linear", 8, "logsnr")[:-1].numpy())
    inside = int(((lam >= -1.0) & (lam <= 2.0)).sum())
    assert s.arms["window"]["nfe"] == pytest.approx(8 + inside)
    with pytest.raises(ValueError, match="window"):
        G.run_guide(small(arms=("window",)), Context.quiet(tmp_path / "b"), classifier=clf, model=model)
    with pytest.raises(ValueError, match="window"):
        small(window=(2.0, 1.0)).validate()
