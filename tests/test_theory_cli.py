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
    a = parse(["theory", "--data", "twopoint:size=4,n=10", "--stencil", "square:5", "--out", str(tmp_path)])
    assert a.run(a) == 2
    err = capsys.readouterr().err.strip()
    assert "stencil" in err and "\n" not in err


def test_theory_section(tmp_path):
    from critdiff.experiments.theory_section import theory_section

    u = torch.arange(8, dtype=torch.float64)
    x = torch.cos(2 * torch.pi * u / 4 + torch.arange(8.0)[:, None, None, None]).expand(8, 1, 8, 8).clone()
    sec = theory_section(x, "square:5", "ve", str(tmp_path), weights="uniform")
    assert set(sec) == {"title", "html", "results", "figures"}
    json.dumps(sec["results"])
    assert sec["figures"] and all(os.path.exists(p) and os.path.basename(p) in sec["html"] for p in sec["figures"])
    assert abs(sec["results"]["k_star_abs"] - torch.pi / 2) < 1e-12
