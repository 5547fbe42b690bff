"""Tests of critdiff.probes.final_calibration (per-level stencils chosen by the agreement of the final images)."""

import numpy as np
import pytest
import torch

from critdiff.data import load
from critdiff.probes.agreement import pearson_r
from critdiff.probes.calibration import Calibration
from critdiff.probes.final_calibration import family_winners, select_by_final_agreement, switch_assignments
from critdiff.samplers import initial_noise, seed_generators
from critdiff.schedules import get as get_schedule
from critdiff.schedules import sigma_grid
from critdiff.scores import PatchScore

pytestmark = pytest.mark.usefixtures("one_thread")


def _cal(stencils, rel):
    rel = np.asarray(rel, dtype=np.float64)
    T, S = rel.shape
    sig = np.geomspace(10, 0.1, T)
    return Calibration(stencils=tuple(stencils), sizes=np.full(S, 3), sigma=sig, logsnr=-2 * np.log(sig),
                       cosine=1 - rel, cosine_se=0 * rel, rel_l2=rel, rel_l2_se=0 * rel, best=np.argmin(rel, 1),
                       n_states=1, n_train=1, boundary="zero")


def test_switch_assignments_from_a_known_table():
    st = ("square:3", "square:5", "ls:square:3", "ls:square:7", "b:square:3")
    rel = [[.5, .6, .2, .1, .4],    # level 0: LS 7 wins
           [.5, .6, .1, .2, .4],    # level 1: LS 3 wins (first level still LS)
           [.3, .2, .4, .5, .25],   # level 2: ELS 5 wins -> k0 = 2; boundary's only candidate is b:3
           [.1, .2, .4, .5, .05],   # level 3: b:3 wins overall, ELS winner ELS 3
           [.2, .1, .4, .3, .15]]   # level 4: ELS 5
    cal = _cal(st, rel)
    assert family_winners(cal, "ls") == ["ls:square:7", "ls:square:3", "ls:square:3", "ls:square:3", "ls:square:7"]
    assert family_winners(cal, "els") == ["square:3", "square:3", "square:5", "square:3", "square:5"]
    hi = family_winners(cal, "ls")
    a = switch_assignments(cal, stride=2)
    assert list(a) == ["els@2", "els@4", "boundary@2", "boundary@4", "ls@5", "per-time", "per-time-els-ls"]
    assert a["els@2"] == hi[:2] + ["square:5", "square:3", "square:5"]
    assert a["els@4"] == hi[:4] + ["square:5"]
    assert a["boundary@4"] == hi[:4] + ["b:square:3"]
    assert a["ls@5"] == hi
    assert a["per-time"] == ["ls:square:7", "ls:square:3", "square:5", "b:square:3", "square:5"]
    assert a["per-time-els-ls"] == ["ls:square:7", "ls:square:3", "square:5", "square:3", "square:5"]
    assert family_winners(_cal(st[:2], np.asarray(rel)[:, :2]), "ls") is None
    assert list(switch_assignments(_cal(st[:2], np.asarray(rel)[:, :2]))) == ["per-time"]


def _ddim_by_hand(assign, models, x, sigmas):
    """Deterministic DDIM written out (eta = 0) with the model of level i at level i, no shared prefixes."""
    for i, (s, sn) in enumerate(zip(sigmas[:-1].tolist(), sigmas[1:].tolist())):
        d = models[assign[i]](x, s)
        x = d + (sn / s) * (x - d)
    return x


def test_selection_scores_every_assignment_as_separate_runs_would():
    imgs, _ = load("digits:size=8,n=40")
    imgs = imgs.to(torch.float64)
    models = {c: PatchScore(imgs, c[3:] if c.startswith("ls:") else c, equivariant=not c.startswith("ls:"),
                            boundary="zero") for c in ("square:3", "square:5", "ls:square:5", "ls:square:15")}
    sigmas = sigma_grid(get_schedule("vp-cosine"), 5, "logsnr")
    x = initial_noise((4, 1, 8, 8), sigmas, seed_generators(3, 4), dtype=torch.float64)
    hi = ["ls:square:15", "ls:square:15", "ls:square:5", "ls:square:5", "ls:square:5"]
    assignments = {"els@2": hi[:2] + ["square:5", "square:3", "square:3"], "els@4": hi[:4] + ["square:3"],
                   "ls@5": hi, "per-time": ["ls:square:15", "square:5", "square:5", "square:3", "square:3"]}
    target = _ddim_by_hand(assignments["els@4"], models, x, sigmas)  # the network "is" els@4
    sel = select_by_final_agreement(models, assignments, x, sigmas, target)
    assert sel["chosen"] == "els@4" and sel["stencils"] == assignments["els@4"]
    np.testing.assert_allclose(sel["r"]["els@4"], 1.0, atol=1e-12)
    for name, a in assignments.items():  # prefix sharing against separate runs of each assignment
        want = pearson_r(_ddim_by_hand(a, models, x, sigmas), target)
        np.testing.assert_allclose(sel["r"][name], want, rtol=0, atol=1e-12)
        assert sel["median_r"][name] == pytest.approx(float(np.median(want)), abs=1e-12)
    assert len({round(v, 6) for v in sel["median_r"].values()}) > 1  # the assignments do differ
    with pytest.raises(ValueError, match="assignments"):
        select_by_final_agreement(models, {"x": ["square:3"] * 4}, x, sigmas, target)
