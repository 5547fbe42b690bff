"""CLI subcommand and demo section of the theory."""

import argparse
import json
import os

import pytest
import torch

from critdiff.cli import theory as cli_theory


def parse(argv):
    p = argparse.ArgumentParser()
    cli_theory.add_parser(p.add_subparsers())
    return p.parse_args(argv)


def test_cli_json_twopoint(tmp_path, capsys):
    a = parse(["theory", "--data", "twopoint:size=8,n=20", "--stencil", "square:3", "--json", "--out", str(tmp_path)])
    assert a.run(a) == 0
    d = json.loads(capsys.readouterr().out)
    for key in ("t_c", "logsnr_c", "sigma_over_a_c", "k_star", "k_star_abs"):
        assert key in d
    assert d["k_star"] == [0.0, 0.0] and abs(d["sigma_over_a_c"] - 3.0) < 1e-9  # |S| = 9, amp = 1
    assert {os.path.basename(p) for p in d["figures"]} == {"theory_stiffness.png", "theory_xi.png",
                                                          "theory_bifurcation.png"}


def test_cli_bad_stencil_is_one_line(tmp_path, capsys):
    from critdiff.cli import main

    assert main(["theory", "--data", "twopoint:size=4,n=10", "--stencil", "square:5", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "stencil" in err and "\n" not in err


def test_theory_result_round_trips_and_renders(tmp_path):
    from critdiff.experiments.result import result_from_record
    from critdiff.experiments.theory_section import TheoryConfig, TheoryResult, run_theory
    from critdiff.report.render import render

    cfg = TheoryConfig(data="stripes:size=8,wavelength=4,n=8", stencil="square:5", schedule="ve", uniform_weights=True)
    res = run_theory(cfg, tmp_path)
    assert abs(res.analysis["k_star_abs"] - torch.pi / 2) < 1e-12  # stripes of wavelength 4: |k*| = 2 pi / 4
    again = TheoryResult.from_json(res.to_json())
    assert again == res
    assert result_from_record(json.loads((tmp_path / "result.json").read_text())) == res
    a, b = render(res, folder=tmp_path / "a"), render(again, folder=tmp_path / "b")
    assert a.html == b.html and a.findings == b.findings and a.question
    for name in ("theory_stiffness.png", "theory_xi.png"):
        assert name in a.html and os.path.getsize(tmp_path / "a" / name) > 1000
    assert "1.571" in a.findings[0]  # |k*| shown with 4 significant digits
    assert "1.5707963" not in a.html
