"""The late-start benchmark's read-outs (benchmarks/bench_late_start.py: the NFE at equal FD, the summary) and its
report section (critdiff.report.late_start), on hand-made curves with answers computed by hand."""

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_late_start as B  # noqa: E402

from critdiff.report.late_start import budget_findings, budget_rows, render_late_start, start_rows  # noqa: E402


def _row(variant, nfe, fd, sampler="ddim"):
    return {"sampler": sampler, "variant": variant, "nfe": nfe, "fd": fd}


def test_nfe_at_fd_interpolates_in_log_nfe():
    full = [_row("full", 4, 8.0), _row("full", 8, 4.0), _row("full", 16, 1.0)]
    assert B.nfe_at_fd(full, 9.0) == 4.0  # already there at the first point
    # between NFE 8 (FD 4) and 16 (FD 1): FD 2.5 is half-way, so log NFE is half-way: sqrt(8 * 16)
    assert B.nfe_at_fd(full, 2.5) == pytest.approx(math.sqrt(8 * 16), rel=1e-12)
    assert B.nfe_at_fd(list(reversed(full)), 4.0) == pytest.approx(8.0)  # order of the rows does not matter
    assert B.nfe_at_fd(full, 0.5) is None  # never reached


def _doc():
    curves = [_row("full", 4, 8.0), _row("full", 6, 6.0), _row("full", 8, 4.0), _row("full", 16, 1.0),
              _row("late", 6, 2.5), _row("late", 8, 0.5)]
    curves += [dict(r, sampler="dpmpp-2m") for r in curves]
    rec = {"n": 10, "floor_fd": 0.3, "curves": curves,
           "tc": {"speciation": -2.0, "linear_response": -3.0},
           "density": {"peak_logsnr": -1.0},
           "best_start": {s: {"start_logsnr": -4.5, "fd": 0.4} for s in B.SAMPLERS},
           "paired": [{"sampler": "ddim", "variant": "late", "nfe": 6, "diff": -3.5, "lo": -4.0, "hi": -3.0}]}
    doc = {"models": {"toy": rec}}
    doc["summary"] = B.summarise(doc["models"])
    return doc


def test_summary_reads_the_nfe_saved_and_the_distances_to_each_estimate():
    s = _doc()["summary"]["toy"]
    assert s["estimates"]["linear_response"] == -3.0 and s["estimates"]["theory"] is None
    d = s["samplers"]["ddim"]
    late6 = next(r for r in d["nfe_saved"] if r["variant"] == "late" and r["nfe"] == 6)
    assert late6["fd_full"] == 6.0
    assert late6["full_nfe_at_equal_fd"] == pytest.approx(math.sqrt(8 * 16))
    assert late6["nfe_saved"] == pytest.approx(math.sqrt(8 * 16) - 6)
    late8 = next(r for r in d["nfe_saved"] if r["variant"] == "late" and r["nfe"] == 8)
    assert late8["full_nfe_at_equal_fd"] is None and late8["nfe_saved"] is None  # the full range never gets there
    assert d["best_minus"]["linear_response"] == pytest.approx(-1.5)
    assert d["best_minus"]["speciation"] == pytest.approx(-2.5)
    assert d["best_minus"]["theory"] is None


def test_report_section_formats_the_summary():
    doc = _doc()
    rows = budget_rows(doc)
    assert {(r["sampler"], r["variant"], r["NFE"]) for r in rows} == {(s, "late", k) for s in B.SAMPLERS
                                                                      for k in (6, 8)}
    paired = next(r for r in rows if r["sampler"] == "ddim" and r["NFE"] == 6)["paired FD diff [95%]"]
    assert paired.startswith("-3.5") and "[-4, -3]" in paired
    assert next(r for r in rows if r["NFE"] == 8)["full-range NFE at equal FD"] == "> largest"
    st = start_rows(doc)
    assert len(st) == 2 and st[0]["linear response (auto's)"] == "-3 (-1.5)" and st[0]["patch theory"] == "-"
    assert budget_findings(doc, nfe=6) == ["toy (ddim, NFE 6, n = 10): late minus full-range FD -3.5 [-4, -3]: lower."]
    sec = render_late_start(doc, figure="curves.png")
    assert sec.findings == []  # no paired row at NFE 8
    assert sec.key == "late-start" and 'src="curves.png"' in sec.html and "<table>" in sec.html


def test_same_moments_set_gives_the_same_frechet_distance():
    """FD reads a set only through its mean and covariance: the 2F-row stand-in gives the same distance."""
    import numpy as np

    from critdiff.experiments.guide.metrics import frechet_distance

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6)) + 1.5
    small = B.same_moments_set(ref)
    assert small.shape == (12, 6)
    for k in range(3):
        f = rng.normal(size=(40, 6)) * (1 + k)
        # two summations of the same closed form: equal up to float64 rounding
        assert frechet_distance(f, small) == pytest.approx(frechet_distance(f, ref), rel=1e-9, abs=1e-9)


def test_class_tv_against_hand_computed_values():
    import numpy as np

    assert B.class_tv(np.arange(20) % 10) == pytest.approx(0.0)  # 2 of every class: uniform
    assert B.class_tv(np.zeros(7, dtype=int)) == pytest.approx(0.9)  # all mass on one class: 1 - 1/10
    # 5 of 10 in class 0, 5 spread over classes 1..5: |0.5 - 0.1| + 5 |0.1 - 0.1| + 4 |0 - 0.1| = 0.8, halved
    assert B.class_tv(np.array([0] * 5 + [1, 2, 3, 4, 5])) == pytest.approx(0.4)


def test_net_paired_differences_and_their_intervals():
    """A cell against itself: every difference is exactly 0 (same call on the same rows); against a cell that is
    right where the other is wrong on 10 of 50 samples: accuracy difference 0.2 with an interval around it."""
    import numpy as np

    from critdiff.experiments.guide.metrics import frechet_distance

    rng = np.random.default_rng(1)
    ref = rng.normal(size=(400, 4))
    a = {"embed": rng.normal(size=(50, 4)), "correct": np.arange(50) >= 10}
    b = {"embed": a["embed"] + 0.5, "correct": np.ones(50, dtype=bool)}
    reps = [rng.integers(0, 50, 50) for _ in range(50)]
    same = B.net_paired(a, a, ref, B.same_moments_set(ref), reps)
    assert same["diff"] == 0 and same["lo"] == 0 and same["hi"] == 0 and same["accuracy_diff"] == 0
    d = B.net_paired(b, a, ref, B.same_moments_set(ref), reps)
    assert d["diff"] == pytest.approx(frechet_distance(b["embed"], ref) - frechet_distance(a["embed"], ref))
    assert d["accuracy_diff"] == pytest.approx(0.2) and d["accuracy_lo"] < 0.2 < d["accuracy_hi"]
    assert "accuracy_diff" not in B.net_paired({"embed": b["embed"]}, {"embed": a["embed"]}, ref, ref, reps)


def test_flow_to_level_follows_the_closed_form_gaussian_flow():
    """The control's "exact p_sigma" is the flow from sigma_max down to the start level. For Gaussian data with its
    exact denoiser the probability-flow ODE moves each eigenmode as y(s) = y(s0) sqrt((l + s^2) / (l + s0^2))
    about the mean (docs/samplers.md "Probability-flow ODE"): the flow_to_level result must match it."""
    import torch

    from critdiff.late_start import fit_moments
    from critdiff.scores.gaussian import GaussianScore

    g = torch.Generator().manual_seed(0)
    A = torch.randn(6, 6, generator=g, dtype=torch.float64) * 0.7
    y = (torch.randn(400, 6, generator=g, dtype=torch.float64) @ A.T + 0.3).reshape(400, 1, 2, 3)
    model = GaussianScore(y, covariance="full")
    m = fit_moments(y, "full")  # the same fit GaussianScore makes
    lam0, lam_s = -8.0, -1.0
    s0, s = math.exp(-0.5 * lam0), math.exp(-0.5 * lam_s)
    x0 = torch.randn(5, 1, 2, 3, generator=g, dtype=torch.float64) * s0
    mu = m.mu.reshape(1, -1)
    c = (x0.reshape(5, -1) - mu) @ m.U
    want = mu + (c * torch.sqrt((m.lam + s**2) / (m.lam + s0**2))) @ m.U.T
    err = {k: float((B.flow_to_level(model, x0, lam0, lam_s, k, None).reshape(5, -1) - want).abs().max())
           for k in (60, 120)}
    # DEIS order 2: the error falls about 4-fold per halving of the step (measured 2.0e-3 -> 5.0e-4 here) and is
    # far below the mode scale (|y| ~ s = 1.6)
    assert err[60] / err[120] > 3.5 and err[120] < 1e-3 * s
