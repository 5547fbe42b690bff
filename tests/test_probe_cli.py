"""The ``critdiff probe`` command and experiment (critdiff.cli.probe, critdiff.experiments.probe).

Oracles: the linear-stability theory (critdiff.theory.analyze, a separate code path: closed-form patch-pool
covariances) for the measured critical point at the homogeneous state; json.loads for the output format.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from critdiff.cli import main
from critdiff.experiments.context import Context

TINY = ["probe", "--model", "patch", "--data", "stripes:size=8,wavelength=4,n=12", "--stencil", "square:3",
        "--n", "4", "--steps", "6", "--times", "3", "--probes", "1", "--n-boot", "20", "--homogeneous", "9",
        "--threads", "1"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("probe")
    rc = main(TINY + ["--out", str(out)])
    return rc, out


def test_cli_writes_probe_json(tiny_run):
    rc, out = tiny_run
    assert rc == 0
    rec = json.loads((out / "result.json").read_text())["result"]
    for key in ("signals", "combined", "nfe", "theory"):
        assert key in rec
    assert set(rec["signals"]) >= {"stiffness", "xi_zero", "xi_oz", "chi", "homogeneous", "linear_growth",
                                   "linear_stiffness"}
    assert rec["combined"]["components"] and set(rec["combined"]["components"]) <= {"linear_growth", "linear_stiffness"}
    assert {"t_c", "logsnr_c", "logsnr_ci"} <= set(rec["ensemble_combined"])
    assert rec["nfe"]["linear_response_per_member"] > 0
    assert (out / "linear_response.png").stat().st_size > 0
    for name, s in rec["signals"].items():
        assert {"t_c", "logsnr_c", "sigma_over_a_c", "logsnr_ci"} <= set(s), name
    assert {"t_c", "logsnr_c", "logsnr_ci"} <= set(rec["combined"])
    assert rec["nfe"]["sampler_per_sample"] == 6.0  # ddim: one evaluation per step
    assert rec["nfe"]["total_per_sample"] > rec["nfe"]["sampler_per_sample"]
    for f in ("stiffness.png", "signals.png"):
        assert (out / f).stat().st_size > 0


def test_json_flag_prints_one_object(tmp_path, capsys):
    rc = main(TINY + ["--no-chi", "--homogeneous", "0", "--json", "--out", str(tmp_path)])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d) == {"signals", "combined", "ensemble_combined", "nfe", "theory"}
    assert "chi" not in d["signals"]
    assert d == {k: json.loads((tmp_path / "result.json").read_text())["result"][k] for k in d}


@pytest.mark.parametrize("argv, word", [
    (["--times", "1"], "times"),
    (["--model", "nosuch"], "model"),
    (["--steps", "2", "--times", "5"], "times"),
    (["--threads", "0"], "threads"),
    (["--eps-scan", "0.1,x"], "eps-scan"),
    (["--eps-scan", "-1"], "eps_scan"),
    (["--linear-eps", "0"], "linear_eps"),
    (["--linear", "2"], "linear"),
    (["--window", "-1"], "window"),
])
def test_usage_errors_exit_2_with_one_line(tmp_path, capsys, argv, word):
    rc = main(TINY + argv + ["--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("critdiff: error:") and word in err


def test_missing_data_is_a_usage_error(tmp_path, capsys):
    rc = main(["probe", "--model", "patch", "--out", str(tmp_path)])
    assert rc == 2 and "data" in capsys.readouterr().err


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_homogeneous_probe_finds_theory_critical_point_on_stripes(dtype):
    from critdiff import schedules as S
    from critdiff.data import load
    from critdiff.probes.homogeneous import homogeneous_probe, k_star_matches
    from critdiff.scores.patch import PatchScore
    from critdiff.theory.analysis import analyze

    torch.set_num_threads(1)
    images, _ = load("stripes:size=8,wavelength=4,n=12", seed=0)
    images = images.to(dtype)
    cp = analyze(images.double(), "square:5", "vp-linear", n_t=41).critical
    assert cp.found and cp.k_star is not None
    model = PatchScore(images, stencil="square:5", equivariant=True, boundary="periodic")
    sch = S.get("vp-linear")
    import numpy as np

    grid = np.linspace(float(sch.logsnr_min), float(sch.logsnr_max), 9)
    h = homogeneous_probe(model, images, "square:5", sch, grid, refine=30)
    cr = h["crossing"]
    assert cr is not None
    assert abs(cr["logsnr"] - cp.logsnr_c) < (1e-6 if dtype == torch.float64 else 1e-2)
    # the measured softest mode is the theory's k* (up to exact symmetry ties), with the same |k|
    assert k_star_matches(cr["kappa"], cp.k_star)
    assert math.isclose(cr["k_star_abs"], cp.k_star_abs, rel_tol=1e-9)
    assert math.isclose(cp.k_star_abs, 2 * math.pi / 4, rel_tol=1e-9)


def test_k_star_matches_rejects_a_stiff_mode():
    import numpy as np

    from critdiff.probes.homogeneous import k_star_matches

    kap = np.ones((8, 8))
    kap[0, 2] = kap[0, 6] = -1.0  # softest at kx = +-pi/2
    assert k_star_matches(kap, (0.0, math.pi / 2)) and k_star_matches(kap, (0.0, -math.pi / 2))
    assert not k_star_matches(kap, (math.pi / 2, 0.0))


def test_comparison_rows_agreement_rule():
    from critdiff.probes.theory_compare import comparison_rows

    sig = lambda lam, lo, hi: {"t_c": 0.3, "logsnr_c": lam, "logsnr_ci": [lo, hi]}  # noqa: E731
    rec = {"theory": {"t_c": 0.3, "logsnr_c": 0.0, "k_star": [0.0, 1.0]},
           "signals": {"near": sig(0.2, 0.1, 0.3), "inside": sig(1.0, -0.5, 2.0), "off": sig(1.0, 0.5, 2.0),
                       "none": {"t_c": None, "logsnr_c": None, "logsnr_ci": [None, None]}},
           "combined": sig(-0.3, -0.4, -0.26)}
    got = {r["signal"]: r["agrees"] for r in comparison_rows(rec)}
    assert got == {"theory": "", "near": True, "inside": True, "off": False, "none": None, "combined": False}


def test_comparison_rows_edge_peak_is_no_estimate():
    from critdiff.probes.theory_compare import comparison_rows

    rec = {"theory": {"logsnr_c": 0.0}, "combined": {"logsnr_c": None, "logsnr_ci": [None, None]},
           "signals": {"xi_zero": {"logsnr_c": 9.0, "logsnr_ci": [-9.0, 9.0], "at_grid_edge": True}}}
    assert comparison_rows(rec)[1]["agrees"] == "edge"


def test_comparison_rows_without_a_theory_crossing_use_the_softest_time():
    from critdiff.probes.theory_compare import comparison_rows

    rec = {"theory": {"logsnr_c": None, "softest": {"logsnr": -1.0}},
           "signals": {"min": {"logsnr_c": -1.1, "logsnr_ci": [-1.5, -0.9], "method": "minimum"},
                       "cross": {"logsnr_c": -1.0, "logsnr_ci": [-1.2, -0.8], "method": "zero-crossing"}},
           "combined": {"logsnr_c": -2.0, "logsnr_ci": [-2.1, -1.9]}}
    rows = comparison_rows(rec)
    assert rows[0]["logsnr_c"] == -1.0 and "no crossing" in rows[0]["signal"]
    got = {r["signal"]: r["agrees"] for r in rows[1:]}
    assert got == {"min": True, "cross": False, "combined": False}


def test_linear_response_run_agrees_with_theory_on_tiny_stripes(tiny_run):
    _, out = tiny_run
    rec = json.loads((out / "result.json").read_text())["result"]
    lt = rec["theory"]["logsnr_c"]
    for name in ("linear_growth", "linear_stiffness"):
        s = rec["signals"][name]
        assert abs(s["logsnr_c"] - lt) < 0.25, (name, s["logsnr_c"], lt)
        assert s["theory_k_star_is_softest"] is True


def test_window_flag_runs_and_keeps_agreement(tmp_path):
    rc = main(TINY + ["--no-chi", "--homogeneous", "0", "--window", "1", "--out", str(tmp_path)])
    assert rc == 0
    rec = json.loads((tmp_path / "result.json").read_text())["result"]
    assert rec["config"]["window"] == 1
    assert abs(rec["signals"]["linear_stiffness"]["logsnr_c"] - rec["theory"]["logsnr_c"]) < 0.25


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory):
    from critdiff.experiments.probe import ProbeConfig, run_probe

    torch.set_num_threads(1)
    cfg = ProbeConfig(model="patch", data="stripes:size=8,wavelength=4,n=12", stencil="square:3", n=4, steps=6,
                      times=3, n_boot=20, homogeneous=9, linear=6, eps_scan=(0.3,), chi=False)
    out = tmp_path_factory.mktemp("probe_result")
    return run_probe(cfg, Context(out, progress=False)), out


def test_result_round_trips_through_json(tiny_result):
    from critdiff.experiments.probe import ProbeResult
    from critdiff.experiments.result import result_from_record

    r, out = tiny_result
    assert ProbeResult.from_json(r.to_json()) == r
    assert result_from_record(json.loads(json.dumps(r.record()))) == r
    # result.json holds the result itself (the keys the CLI and the tests read, plus the figures' curves)
    assert ProbeResult.from_dict(json.loads((out / "result.json").read_text())["result"]) == r
    assert r.curves["linear"]["coarse_steps"] == 6 and len(r.linear_response["amplitude_scan"]) == 1


def test_report_rerenders_identically_from_json(tiny_result, tmp_path):
    from critdiff.experiments.probe import ProbeResult
    from critdiff.report.html import render_html
    from critdiff.report.render import render

    r, out = tiny_result
    pages = []
    for i in range(2):
        folder = tmp_path / f"r{i}"
        folder.mkdir()
        if "snapshots.png" in r.files:
            (folder / "snapshots.png").write_bytes((out / "snapshots.png").read_bytes())
        again = ProbeResult.from_dict(json.loads((out / "result.json").read_text())["result"])
        sec = render(again, folder=folder)
        assert sec.key == "probe-stripes" and sec.question and len(sec.findings) == 3
        for f in ("stiffness.png", "signals.png", "linear_response.png"):
            assert (folder / f).stat().st_size > 0
        pages.append(render_html(folder, "probe", [sec]))
    assert pages[0] == pages[1]
    # numbers shown with 4 significant digits: the combined estimate as num() writes it, no raw float repr
    c = r.combined["logsnr_c"]
    assert f"{c:.4g}" in pages[0] and repr(c) not in pages[0]
