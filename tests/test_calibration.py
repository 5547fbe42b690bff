"""Tests of critdiff.probes.calibration (patch-size calibration of a denoiser)."""

import numpy as np
import pytest
import torch

from critdiff.denoisers import as_sigma
from critdiff.probes.calibration import calibrate_patch_size, stencil_extent, trajectory_states
from critdiff.scores.patch import PatchScore
from oracles import naive_patch

TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def _images(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64)
    # smooth a little so the stencils differ at moderate noise
    x = (x + x.roll(1, -1) + x.roll(1, -2)) / 3
    return x.clamp(-1, 1)


def naive_zero_els(images, stencil):
    """The zero-padded ELS patch model as a denoiser, evaluated by the float64 loop of ``tests/oracles.py``."""
    def D(x, sigma, label=None):
        sig = as_sigma(sigma, x.to(torch.float64)).tolist()
        return torch.from_numpy(naive_patch(x, images, stencil, equivariant=True, boundary="zero", sigmas=sig)).to(x.dtype)
    return D


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_patch_model_of_known_size_is_recovered(dtype):
    imgs = _images()
    oracle = naive_zero_els(imgs, "square:5")  # independent of PatchScore, which calibration uses
    cal = calibrate_patch_size(oracle, imgs, stencils=("square:3", "square:5", "square:7"), n_traj=4, n_times=6,
                               steps=12, dtype=dtype)
    assert cal.best_stencil == ["square:5"] * len(cal.sigma)
    assert (cal.best_size == 5).all()
    np.testing.assert_allclose(cal.rel_l2[:, 1], 0.0, atol=TOL[dtype])
    np.testing.assert_allclose(cal.cosine[:, 1], 1.0, atol=TOL[dtype])
    # the other stencils differ somewhere (otherwise the oracle test could not fail)
    assert cal.rel_l2[:, 0].max() > 1e-3 and cal.rel_l2[:, 2].max() > 1e-3
    assert np.all(np.diff(cal.sigma) < 0)
    d = cal.to_dict()
    assert d["best_size"] == [5] * len(cal.sigma) and d["modal_stencil"] == "square:5"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_metrics_against_dense_computation(dtype):
    imgs = _images()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 1, 8, 8, generator=g, dtype=dtype)
    net = lambda x, s, label=None: 0.5 * x  # noqa: E731
    st = ("square:3", "square:7")
    cal = calibrate_patch_size(net, imgs, stencils=st, states=[(0.7, x)], dtype=dtype)
    for j, s in enumerate(st):
        dp = naive_zero_els(imgs.to(dtype), s)(x.double(), 0.7).numpy().reshape(5, -1)
        dn = (0.5 * x).double().numpy().reshape(5, -1)
        cos = np.mean([a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(dn, dp)])
        rel = np.mean([np.linalg.norm(a - b) / np.linalg.norm(a) for a, b in zip(dn, dp)])
        assert cal.cosine[0, j] == pytest.approx(cos, rel=1e-6)
        assert cal.rel_l2[0, j] == pytest.approx(rel, rel=1e-6)
    assert cal.best[0] == int(np.argmin(cal.rel_l2[0]))


def test_trajectory_states_and_errors():
    imgs = _images()
    net = PatchScore(imgs.float(), "square:3")
    st = trajectory_states(net, (3, 1, 8, 8), n_times=4, steps=8)
    assert len(st) == 4 and st[0][1].shape == (3, 1, 8, 8)
    assert all(a[0] > b[0] for a, b in zip(st, st[1:]))
    assert stencil_extent("square:7") == 7 and stencil_extent("cross:2") == 5
    with pytest.raises(ValueError, match="n_times"):
        trajectory_states(net, (3, 1, 8, 8), n_times=9, steps=8)
    with pytest.raises(ValueError, match="boundary"):
        calibrate_patch_size(net, imgs, boundary="mirror")
    with pytest.raises(ValueError, match="stencils"):
        calibrate_patch_size(net, imgs, stencils=())


def test_margin_is_runner_up_minus_best():
    imgs = _images()
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 1, 8, 8, generator=g)
    cal = calibrate_patch_size(lambda x, s, label=None: x.clone(), imgs, stencils=("square:3", "square:5", "square:7"),
                               states=[(0.3, x), (2.0, x)])
    for t in range(2):
        r = sorted(cal.rel_l2[t])
        assert cal.margin[t] == pytest.approx(r[1] - r[0])
        assert cal.margin[t] >= 0
    assert cal.to_dict()["margin"] == [float(v) for v in cal.margin]


def test_pool_reaches_the_calibrations_patch_models():
    """A valid-pool patch model is matched exactly by the valid-pool calibration, not by the all-positions one."""
    imgs = _images(n=12)
    target = PatchScore(imgs, "square:5", boundary="zero", pool="valid")
    kw = dict(stencils=("square:3", "square:5"), n_traj=2, n_times=3, steps=6, dtype=torch.float64)
    valid = calibrate_patch_size(target, imgs, pool="valid", **kw)
    np.testing.assert_allclose(valid.rel_l2[:, 1], 0.0, atol=1e-12)
    every = calibrate_patch_size(target, imgs, pool="all", **kw)
    assert every.rel_l2[:, 1].max() > 1e-6


def naive_zero_ls(images, stencil):
    """The zero-padded LS patch model (position-specific pools), by the float64 loop of ``tests/oracles.py``."""
    def D(x, sigma, label=None):
        sig = as_sigma(sigma, x.to(torch.float64)).tolist()
        return torch.from_numpy(naive_patch(x, images, stencil, equivariant=False, boundary="zero", sigmas=sig)).to(x.dtype)
    return D


def test_ls_candidate_of_known_size_is_recovered_among_els_and_ls():
    """An LS model is matched exactly by its own ``ls:`` candidate (pool='valid' applies to ELS candidates
    only), and not by the ELS model of the same stencil."""
    imgs = _images(n=16)
    cands = ("square:3", "square:5", "ls:square:3", "ls:square:5", "ls:square:15")
    cal = calibrate_patch_size(naive_zero_ls(imgs, "square:5"), imgs, stencils=cands, n_traj=3, n_times=4,
                               steps=8, pool="valid", dtype=torch.float64)
    assert cal.best_stencil == ["ls:square:5"] * len(cal.sigma)
    np.testing.assert_allclose(cal.rel_l2[:, 3], 0.0, atol=1e-12)
    assert cal.rel_l2[:, 1].max() > 1e-3 and list(cal.sizes) == [3, 5, 3, 5, 15]
    assert stencil_extent("ls:square:15") == 15


def test_candidate_parsing_and_errors():
    from critdiff.probes.calibration import canonical_candidate, check_candidates, parse_candidate

    assert parse_candidate("ls:square:7") == (False, "square:7") and parse_candidate("cross:2") == (True, "cross:2")
    assert canonical_candidate("ls:square:9") == "ls:square:9"
    assert check_candidates(["square:3", "ls:square:5"]) == ("square:3", "ls:square:5")
    for bad, match in (((), "at least one"), ("square:3", "at least one"), (("ls:circle:3",), "unknown kind"),
                       (("ls:square:4",), "odd")):
        with pytest.raises(ValueError, match=match):
            check_candidates(bad)
    with pytest.raises(ValueError, match="ELS"):
        check_candidates(("square:3", "ls:square:5"), els_only=True)


def test_calibration_figure_keeps_the_boundary_family_apart(tmp_path):
    # a calibration whose winners span the three families: the figure's winner markers follow the family of each
    # level's winner (hand-written masks), and a boundary-aware winner is not drawn as an ELS one
    from critdiff.report.figures import FAMILY_STYLE, calibration_figure, winner_families

    best = ["ls:square:19", "ls:square:7", "b:square:5", "b:square:3", "square:3"]
    fam = winner_families(best)
    assert list(fam) == ["els", "ls", "boundary"]
    np.testing.assert_array_equal(fam["ls"], [True, True, False, False, False])
    np.testing.assert_array_equal(fam["boundary"], [False, False, True, True, False])
    np.testing.assert_array_equal(fam["els"], [False, False, False, False, True])
    assert list(winner_families(["ls:square:3"] * 3)) == ["ls"]
    assert len({style[1] for style in FAMILY_STYLE.values()}) == 3  # three distinct marker colours
    stencils = ["square:3", "ls:square:7", "ls:square:19", "b:square:3", "b:square:5"]
    rel = np.full((5, 5), 0.5)
    for i, s in enumerate(best):
        rel[i, stencils.index(s)] = 0.1
    cal = {"logsnr": np.linspace(-10, 10, 5).tolist(), "rel_l2": rel.tolist(), "stencils": stencils,
           "best_stencil": best, "best_size": [stencil_extent(s) for s in best]}
    path = calibration_figure(cal, tmp_path / "cal.png")
    assert path.is_file() and path.stat().st_size > 0
