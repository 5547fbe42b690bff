"""The guide's critical-time estimators (critdiff.experiments.guide.estimators): selection, records, oracles."""

import math

import numpy as np
import pytest
import torch

from critdiff.data import load
from critdiff.experiments.guide import estimators as E
from critdiff.experiments.guide import GuideConfig
from critdiff.experiments.guide.estimators import resolve_tc
from critdiff.experiments.guide.config import DEFAULT_TC_FROM
from critdiff.scores.empirical import EmpiricalScore

TWO = "twopoint:size=2,n=2,amp=0.5"  # D = 4, a = 1: speciation at logsnr = -2 log a = 0


class SignClassifier:
    """Two-point classes read off the posterior mean: on ``x0_hat = amp (2 w - 1)`` (amp = 0.5) the logits
    ``+-atanh(m / amp)`` give exactly the posterior ``w`` of the class, so the decision entropy is exact."""

    def logits(self, x):
        m = (x.double().mean((1, 2, 3)) / 0.5).clamp(-1 + 1e-12, 1 - 1e-12)
        return torch.stack([-torch.atanh(m), torch.atanh(m)], 1)

    def embed(self, x):
        return x.double().mean((1, 2, 3))[:, None]


def cfg(**kw):
    base = dict(model="gaussian", data=TWO, schedule="vp-linear", steps=24, n=4, batch=4, arms=("cond",),
                sampler="ddpm", dtype="float64")
    return GuideConfig(**{**base, **kw}).validate()


def test_default_is_one_constant_and_auto_keeps_the_old_behaviour():
    assert DEFAULT_TC_FROM == "linear-response" and GuideConfig().tc_from == DEFAULT_TC_FROM
    assert E.chosen_source(cfg(model="patch", stencil="square:1")) == "linear-response"
    assert E.chosen_source(cfg(model="patch", stencil="square:1", tc_from="auto")) == "theory"
    assert E.chosen_source(cfg(tc_from="auto")) == "linear-response"
    assert E.chosen_source(cfg(tc_from="speciation")) == "speciation"
    with pytest.raises(ValueError, match="tc-from"):
        cfg(tc_from="nope")
    with pytest.raises(ValueError, match="tc-from"):
        E.estimate("nope", cfg(), None, None)


def test_speciation_estimate_equals_the_closed_form_of_the_data_covariance():
    images, _ = load(TWO)
    y = images.double().reshape(images.shape[0], -1).numpy()
    lam_max = np.linalg.eigvalsh(np.cov(y.T, bias=True))[-1]
    tc = E.estimate("speciation", cfg(), images.double(), None)
    assert tc.logsnr == pytest.approx(-math.log(lam_max), abs=1e-9) and tc.logsnr == pytest.approx(0.0, abs=1e-9)
    assert tc.sigma_over_a == pytest.approx(math.exp(-0.5 * tc.logsnr))


def test_classifier_estimators_need_a_classifier():
    images, _ = load(TWO)
    for name in ("decision-entropy", "commitment"):
        with pytest.raises(ValueError, match="classifier"):
            E.estimate(name, cfg(), images.double(), EmpiricalScore(images.double()))


def test_resolve_records_the_chosen_and_the_cheap_estimators():
    images, _ = load(TWO)
    images = images.double()
    c = cfg(tc_logsnr=0.7)
    tc, rec = E.resolve_estimates(c, images, None)
    assert tc.logsnr == 0.7 and tc.source == "given" and rec["chosen"] == "given"
    assert set(rec["estimates"]) == {"given", *E.ALWAYS}
    assert "error" in rec["estimates"]["theory"]  # not the patch model: the reason is recorded
    assert rec["estimates"]["speciation"]["logsnr"] == pytest.approx(0.0, abs=1e-9)
    tc2, rec2 = E.resolve_estimates(cfg(tc_from="speciation"), images, None)
    assert tc2 == resolve_tc(cfg(tc_from="speciation"), images) and rec2["chosen"] == "speciation"


def test_decision_and_commitment_estimates_sit_near_the_twopoint_transition():
    """On the two-point model the class is decided around speciation (logsnr 0): the decision-entropy drop and the
    commitment time (phi at 0.9 of the way to 1: exact value 1.38, tests/test_probes_commitment.py) lie within
    the grid's coarse resolution of it."""
    images, _ = load(TWO)
    images = images.double()
    model, clf = EmpiricalScore(images), SignClassifier()
    c = cfg(spacing="logsnr")
    dec = E.estimate("decision-entropy", c, images, model, clf)
    com = E.estimate("commitment", c, images, model, clf)
    assert -2.5 < dec.logsnr < 2.5, dec
    assert -1.0 < com.logsnr < 4.0, com
    assert com.logsnr_ci is None or com.logsnr_ci[0] <= com.logsnr <= com.logsnr_ci[1]
