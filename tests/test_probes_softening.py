"""probes.softening.steepest_growth: where a curve grows fastest (checked against closed forms)."""

import math

import numpy as np
import pytest

from critdiff.probes.softening import steepest_growth


def test_steepest_growth_of_a_logistic_is_at_its_midpoint():
    lam = np.linspace(-6.0, 6.0, 25)  # spacing 0.5
    xi = 3.0 / (1.0 + np.exp(-(lam - 1.0)))  # slope is largest at logsnr 1, where it is 3/4
    g = steepest_growth(lam, xi)
    assert g["logsnr"] == pytest.approx(1.0, abs=0.25 + 1e-12)  # a midpoint of the grid interval holding 1
    # the secant over the half-unit interval next to 1 (both neighbours tie by symmetry), below the true 3/4
    secant = 3.0 * (1.0 / (1.0 + math.exp(-0.5)) - 0.5) / 0.5
    assert g["slope"] == pytest.approx(secant, rel=1e-12) and secant < 0.75
    assert g["from"] == {"logsnr": -6.0, "value": pytest.approx(3.0 / (1 + math.exp(7.0)))}
    assert g["to"]["value"] == pytest.approx(3.0 / (1 + math.exp(-5.0)))


def test_steepest_growth_skips_non_finite_points_and_reports_no_growth():
    lam = np.array([0.0, 1.0, 2.0, 3.0])
    g = steepest_growth(lam, np.array([0.0, np.nan, 4.0, 5.0]))
    assert g["logsnr"] == 1.0 and g["slope"] == 2.0  # (4 - 0) / (2 - 0) across the missing point
    flat = steepest_growth(lam, np.array([3.0, 2.0, 2.0, 1.0]))
    assert flat["logsnr"] is None and flat["slope"] is None and flat["to"]["value"] == 1.0


@pytest.mark.parametrize("lam, c", [([0.0, 0.0, 1.0], [1.0, 2.0, 3.0]), ([0.0, 1.0], [np.nan, 1.0]), ([0.0, 1.0], [1.0])])
def test_steepest_growth_rejects_bad_input(lam, c):
    with pytest.raises(ValueError):
        steepest_growth(np.array(lam), np.array(c))
