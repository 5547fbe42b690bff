"""The linear guidance ramp (Wang et al. 2024) and the interval placed at t_c (critdiff.guidance_ramp)."""

import math

import numpy as np
import pytest
import torch

from critdiff import schedules as S
from critdiff.guidance_ramp import Ramp, interval_at, wang_linear
from critdiff.guidance_schedules import edm_interval


def test_ramp_in_logsnr_is_the_clipped_line():
    r = Ramp(-2.0, 2.0, 5.0, 1.0)
    lam = torch.tensor([-3.0, -2.0, 0.0, 1.0, 2.0, 4.0], dtype=torch.float64)
    expected = [1.0, 1.0, 3.0, 4.0, 5.0, 5.0]  # 1 + 4 (lam + 2) / 4, held outside
    np.testing.assert_allclose(r(torch.exp(-0.5 * lam)).numpy(), expected, rtol=0, atol=1e-12)


def test_wang_linear_in_t_has_mean_height_over_the_clock():
    sch = S.get("vp-linear")
    lo, hi = -6.0, 8.0
    r = wang_linear(3.0, 0.0, (lo, hi), clock="t", schedule="vp-linear")
    t_lo, t_hi = (float(sch.t_of_logsnr(torch.tensor(v, dtype=torch.float64))) for v in (lo, hi))
    t = torch.linspace(t_hi, t_lo, 20001, dtype=torch.float64)  # uniform in t over the ramp
    w = r(torch.exp(-0.5 * sch.logsnr(t))).numpy()
    assert w.mean() == pytest.approx(3.0, abs=1e-3)
    assert w[-1] == pytest.approx(0.0, abs=1e-6) and w[0] == pytest.approx(6.0, abs=1e-6)
    # linear in 1 - t: second differences vanish on a uniform t grid
    assert np.abs(np.diff(w[100:-100], 2)).max() < 1e-9


def test_ramp_spends_two_evaluations_where_w_is_not_0_or_1():
    sig = S.sigma_grid("vp-linear", 10, "logsnr")
    lam = -2 * torch.log(sig[:-1])
    r = Ramp(float(lam[0]), float(lam[-1]), 2.5, 0.0)
    assert float(r.grid_nfe(sig)[0]) == 1 + 2 * 9  # w = 0 exactly at the first grid point only (never 1)


def test_interval_at_is_kynkaanniemi_width_centred_on_tc():
    ref = edm_interval(3.0, 0.0)
    iv = interval_at(0.7, 3.0, 0.0)
    assert iv.hi - iv.lo == pytest.approx(2 * math.log(5.42 / 0.28), abs=1e-12)
    assert 0.5 * (iv.lo + iv.hi) == pytest.approx(0.7) and iv.hi - iv.lo == pytest.approx(ref.hi - ref.lo)


def test_ramp_rejects_bad_input():
    with pytest.raises(ValueError, match="clock"):
        Ramp(0.0, 1.0, 2.0, 1.0, clock="sigma")
    with pytest.raises(ValueError, match="schedule"):
        Ramp(0.0, 1.0, 2.0, 1.0, clock="t")
    with pytest.raises(ValueError, match="c_start"):
        Ramp(1.0, 1.0, 2.0, 1.0)
    with pytest.raises(ValueError, match="baseline"):
        Ramp(0.0, 1.0, 2.0, 0.5)
