"""Time: the three clocks of one time against each schedule's closed forms, the JSON round trip, the format."""

import json
import math

import numpy as np
import pytest
import torch

from critdiff.schedules import get
from critdiff.times import Time, TimeEstimate, schedule_times, time_dict

SCHEDULES = ["vp-linear", "vp-cosine", "ve", "edm"]


def _closed_form(name: str, t: float) -> tuple[float, float]:
    """``(logsnr, sigma/a)`` of each schedule written out here from DESIGN.md section 1 (not from the module)."""
    sch = get(name)
    if name == "vp-linear":  # log abar = -(beta_min t + (beta_max - beta_min) t^2 / 2), beta 0.1 -> 20
        log_abar = -(0.1 * t + 0.5 * (20.0 - 0.1) * t * t)
        return log_abar - math.log(-math.expm1(log_abar)), math.sqrt(-math.expm1(log_abar) / math.exp(log_abar))
    if name == "vp-cosine":  # abar = cos^2((t + s)/(1 + s) pi/2) / cos^2(s/(1 + s) pi/2), s = 0.008
        f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        abar = f(t) / f(0.0)
        return math.log(abar / (1 - abar)), math.sqrt((1 - abar) / abar)
    if name == "ve":  # geometric sigma between the schedule's bounds, a = 1
        s = sch.sigma_lo * (sch.sigma_hi / sch.sigma_lo) ** t
        return -2 * math.log(s), s
    return -2 * math.log(t), t  # edm: a = 1, sigma = t


@pytest.mark.parametrize("name", SCHEDULES)
def test_three_clocks_against_closed_forms(name):
    sch = get(name)
    for u in (0.1, 0.45, 0.8):
        t = sch.t_min + u * (sch.t_max - sch.t_min)
        lam, s = _closed_form(name, t)
        tm = Time.from_t(sch, t)
        assert tm.t == t and tm.logsnr == pytest.approx(lam, rel=1e-9, abs=1e-9)
        assert tm.sigma_over_a == pytest.approx(s, rel=1e-9)
        for other in (Time.from_logsnr(name, lam), Time.from_sigma_over_a(name, s)):
            assert other.t == pytest.approx(t, rel=1e-9, abs=1e-12)
            assert other.logsnr == pytest.approx(lam, rel=1e-9, abs=1e-9)
            assert other.sigma_over_a == pytest.approx(s, rel=1e-9)
        arr = schedule_times(name, np.array([s, s]))
        assert arr["t"] == pytest.approx([t, t], rel=1e-9) and arr["logsnr"] == pytest.approx([lam, lam], rel=1e-9)


def test_json_round_trip_and_format():
    tm = Time(0.44933284408410007, -0.36812345, math.exp(0.5 * 0.36812345))
    assert Time.from_dict(tm.to_dict()) == tm
    assert set(tm.to_dict()) == {"t", "logsnr", "sigma_over_a"}
    assert tm.format() == "t = 0.4493, logsnr = -0.3681, sigma/a = 1.202"
    assert time_dict("vp-linear", None) == {"t": None, "logsnr": None, "sigma_over_a": None}
    assert time_dict("vp-linear", math.nan) == {"t": None, "logsnr": None, "sigma_over_a": None}
    assert time_dict("vp-linear", 1.0) == Time.from_logsnr("vp-linear", 1.0).to_dict()


def test_time_estimate_interval_and_json_round_trip():
    est = TimeEstimate.at_logsnr("ve", 1.0, "probe (chi)", [2.0, 0.5], method="peak", k_star=(0.5, 0.0))
    assert est.time == Time.from_logsnr("ve", 1.0) and (est.t, est.logsnr) == (est.time.t, 1.0)
    assert est.logsnr_ci == (0.5, 2.0)  # sorted by logsnr
    assert [b.t for b in est.interval] == pytest.approx([Time.from_logsnr("ve", v).t for v in (0.5, 2.0)], rel=1e-12)
    d = json.loads(json.dumps(est.to_dict()))
    assert set(d) == {"t", "logsnr", "sigma_over_a", "source", "interval", "extras"}
    assert TimeEstimate.from_dict(d) == est and est.extras == {"method": "peak", "k_star": [0.5, 0.0]}
    for ci in (None, [0.5, math.nan], [None, 2.0]):  # no interval, or a bound missing: no interval
        assert TimeEstimate.at_logsnr("ve", 1.0, "given", ci).interval is None
    given = TimeEstimate.at_logsnr("vp-linear", -0.5, "given")
    assert TimeEstimate.from_dict(json.loads(json.dumps(given.to_dict()))) == given


def test_rounding_at_the_ends_is_clipped_only():
    sch = get("vp-linear")
    lam_end = float(sch.logsnr(torch.tensor(sch.t_max, dtype=torch.float64)))
    assert Time.from_logsnr(sch, lam_end).t <= sch.t_max
    assert Time.from_logsnr(sch, lam_end - 1e-3).t > sch.t_max  # a real excursion is not hidden


@pytest.mark.parametrize("call, match", [
    (lambda: Time.from_logsnr("vp-linear", math.inf), "logsnr"),
    (lambda: Time.from_sigma_over_a("vp-linear", 0.0), "sigma_over_a"),
    (lambda: Time.from_t("vp-linear", 2.0), "t"),
    (lambda: Time.from_dict({"t": 0.1, "logsnr": None}), "logsnr"),
    (lambda: TimeEstimate.at_logsnr("ve", math.nan, "given"), "logsnr"),
    (lambda: TimeEstimate(Time.from_logsnr("ve", 0.0), ""), "source"),
    (lambda: TimeEstimate(Time.from_logsnr("ve", 0.0), "x", (Time.from_logsnr("ve", 1.0), Time.from_logsnr("ve", 0.0))),
     "interval"),
])
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
