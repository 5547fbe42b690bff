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
from oracles import MixtureDenoiser

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
    assert GuideConfig().tc_from == DEFAULT_TC_FROM
    assert E.chosen_source(cfg(model="patch", stencil="square:1")) == DEFAULT_TC_FROM
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


class LinearSign:
    """Logits ``+-4 m / amp`` of the image mean ``m``: smooth, so its log p has a gradient everywhere."""

    def logits(self, x):
        m = x.double().mean((1, 2, 3)) / 0.5
        return torch.stack([-4 * m, 4 * m], 1)

    def embed(self, x):
        return x.double().mean((1, 2, 3))[:, None]


def test_sensitivity_and_midpoint_estimators_on_the_twopoint_model_share_their_runs():
    """The (slightly blurred) two-point model: the estimates are well formed (peak inside its window and interval,
    inside the grid), the decision midpoint lies near speciation (logsnr 0; exact -0.16 for the sharp points,
    tests/test_probes_commitment.py) and before the commitment time, and one cache serves each family (one run each).
    (The profile's correctness is tests/test_probes_guidance_sensitivity.py; here it peaks at logsnr 3.5, AFTER
    the decision: with unbounded linear logits the late displacement of already-decided samples dominates
    d log p / d w, which is what the first-order outcome measures.)"""
    images, labels = load(TWO)
    images = images.double()
    assert float(images[labels == 1].mean()) > 0  # class 1 is the positive point
    model, clf = MixtureDenoiser(images, labels, v=0.02), LinearSign()  # smooth, unlike the empirical denoiser
    c = cfg(spacing="logsnr", batch=16)
    cache: dict = {}
    sens = E.estimate("sensitivity", c, images, model, clf, cache=cache)
    box = E.estimate("sensitivity-box", c, images, model, clf, cache=cache)
    prof = cache["sensitivity"]
    lam_lo, lam_hi = (-2 * math.log(float(v)) for v in (prof.sigma[0], prof.sigma[-1]))
    lo, hi = sens.extras["window"]
    assert lam_lo <= lo <= sens.logsnr <= hi <= lam_hi and box.extras["window"] == sens.extras["window"]
    assert sens.logsnr_ci[0] <= sens.logsnr <= sens.logsnr_ci[1]
    assert lam_lo + c.width / 2 <= box.logsnr <= lam_hi - c.width / 2
    assert prof.nfe == 2 * c.steps and prof.backward == math.ceil(E.SENS_N / min(c.batch, E.SENS_BATCH))
    mid = E.estimate("commitment-midpoint", c, images, model, clf, cache=cache)
    slope = E.estimate("commitment-slope", c, images, model, clf, cache=cache)
    com = E.estimate("commitment", c, images, model, clf, cache=cache)
    assert set(cache) == {"sensitivity", "commitment"}
    assert -2.5 < mid.logsnr < 2.5 and -2.5 < slope.logsnr < 2.5
    assert mid.logsnr < com.logsnr
    with pytest.raises(ValueError, match="class-conditional"):  # no classifier and no class count
        E.estimate("sensitivity", c, images, model, None)


class CountedMixture(MixtureDenoiser):
    """The mixture with its class count declared (:class:`critdiff.denoisers.ClassConditional`)."""
    n_classes = 2


def test_sensitivity_without_a_classifier_reads_the_implicit_classifier():
    """``sensitivity`` with no classifier is ``sensitivity-implicit`` (one run, the same estimate); the outcome's
    evaluations are counted (2 per step + 2 per noise draw); the estimate is well formed. (Its exactness on a
    mixture is tests/test_probes_guidance_sensitivity.py.)"""
    images, labels = load(TWO)
    images = images.double()
    model = CountedMixture(images, labels, v=0.02)
    c = cfg(spacing="logsnr", batch=16)
    cache: dict = {}
    imp = E.estimate("sensitivity-implicit", c, images, model, LinearSign(), cache=cache)  # the classifier is unused
    same = E.estimate("sensitivity", c, images, model, None, cache=cache)
    box = E.estimate("sensitivity-box", c, images, model, None, cache=cache)
    assert set(cache) == {"sensitivity-implicit"}
    assert same.logsnr == imp.logsnr and "implicit" in imp.source
    prof = cache["sensitivity-implicit"]
    assert prof.nfe == 2 * c.steps + 2 * E.SENS_DRAWS
    lo, hi = imp.extras["window"]
    assert lo <= imp.logsnr <= hi and tuple(box.extras["window"]) == (lo, hi)
    assert imp.logsnr_ci[0] <= imp.logsnr <= imp.logsnr_ci[1]


def test_shifted_estimators_subtract_the_median_offset_of_the_shipped_table(tmp_path, monkeypatch):
    """``NAME+offset`` = estimate - median(estimate - peak) over the table's models; the shipped table is the one
    the benchmark exported from its result (its leave-one-model-out errors equal the result's ``loo``)."""
    import json
    from pathlib import Path

    from critdiff.experiments.guide import offsets as O

    table = {"source": "test", "peak": {"a": 0.0, "b": 1.0, "c": 2.0},
             "minus_peak": {"speciation": {"a": -1.0, "b": -2.0, "c": -4.0}, "linear-response": {"a": 0.5}}}
    assert O.fitted_offset(table, "speciation") == -2.0
    assert O.fitted_offset(table, "speciation", exclude=("b",)) == -2.5
    with pytest.raises(ValueError, match="no model left"):
        O.fitted_offset(table, "linear-response", exclude=("a",))
    path = tmp_path / "offsets.json"
    path.write_text(json.dumps(table))
    monkeypatch.setattr(O, "OFFSETS_FILE", path)
    images, _ = load(TWO)
    base = E.estimate("speciation", cfg(), images.double(), None)
    shifted = E.estimate("speciation+offset", cfg(), images.double(), None)
    assert shifted.logsnr == pytest.approx(base.logsnr + 2.0)
    assert O.base_of("speciation+offset") == "speciation" and O.base_of("theory+offset") is None
    monkeypatch.undo()
    shipped = O.load_offsets()
    result = json.loads((Path(__file__).parents[1] / "benchmarks/results/guidance_estimators.json").read_text())
    originals = result["prediction_error"]["linear-response"]["models"]  # the six that choose (not the validation)
    assert sorted(originals) == sorted(shipped["peak"])
    assert shipped["minus_peak"] == O.offset_table({"rows": {k: result["rows"][k] for k in originals}})["minus_peak"]
    for name in O.SHIFTABLE:
        d = shipped["minus_peak"][name]
        loo = np.mean([abs(d[m] - O.fitted_offset(shipped, name, exclude=(m,))) for m in d])
        assert loo == pytest.approx(result["prediction_error"][name]["loo"], rel=1e-12)


def test_the_default_is_what_the_benchmarks_switch_rule_decided():
    """DEFAULT_TC_FROM follows the recorded decision of benchmarks/guidance_estimators.py (its SWITCH rule, written
    before the validation runs): the rule's choice when the record says switch, the previous default otherwise."""
    import json
    from pathlib import Path

    rec = json.loads((Path(__file__).parents[1] / "benchmarks/results/guidance_estimators.json").read_text())["switch"]
    assert DEFAULT_TC_FROM == (rec["rule_choice"] if rec["switch"] else rec["current_default"])


def test_size_n_sets_the_states_and_samples_and_keeps_the_seeds():
    """``estimate(..., n=N)`` runs the commitment on N states and the profile on N samples (one cached run per size,
    :func:`cache_key`); the seeds stay: the first 4 samples of a profile of 8 are the profile of 4 (its first
    backward batch is the same call on the same noise, so they are equal exactly). Only the sampling estimators
    take a size."""
    images, labels = load(TWO)
    images = images.double()
    model, clf = MixtureDenoiser(images, labels, v=0.02), LinearSign()
    c = cfg(spacing="logsnr", batch=16)
    cache: dict = {}
    E.estimate("commitment-midpoint", c, images, model, clf, cache=cache, n=3)
    E.estimate("sensitivity", c, images, model, clf, cache=cache, n=4)
    E.estimate("sensitivity-box", c, images, model, clf, cache=cache, n=8)
    assert set(cache) == {E.cache_key("commitment", 3), E.cache_key("sensitivity", 4), E.cache_key("sensitivity", 8)}
    assert E.cache_key("commitment") == "commitment" and E.cache_key("sensitivity", 4) == "sensitivity:n=4"
    assert cache["commitment:n=3"].phi_state.shape[1] == 3
    small, big = cache["sensitivity:n=4"], cache["sensitivity:n=8"]
    assert small.response.shape[1] == 4 and big.response.shape[1] == 8
    np.testing.assert_array_equal(big.response[:, :4], small.response)
    assert small.backward == 1 and big.backward == 2
    with pytest.raises(ValueError, match="only the sampling estimators"):
        E.estimate("speciation", c, images, model, clf, n=4)
    with pytest.raises(ValueError, match="n: expected an integer >= 2"):
        E.estimate("commitment", c, images, model, clf, n=1)
