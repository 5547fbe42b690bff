"""Which ``critdiff`` commands take ``--device`` (issue #15 point 2): every command that evaluates a model does;
the exceptions are listed with their reason, so a new command has to decide."""

import pytest

from critdiff.cli import COMMANDS, build_parser

# commands without --device, and why
NO_DEVICE = {
    "report": "re-renders results.json; computes nothing",
    "guide-config": "converts a logsnr into a diffusers model's units; computes nothing",
    "sweep": "each unit's device is a field of the spec (its [probe]/[guide] table)",
    "theory": "not yet: the patch theory runs on the CPU (issue #15)",
    "demo": "not yet: the demo runs on the CPU (issue #15)",
}


def _flags(command: str) -> set:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {s for a in sub.choices[command]._actions for s in a.option_strings}


@pytest.mark.parametrize("command", COMMANDS)
def test_device_flag(command):
    assert ("--device" in _flags(command)) == (command not in NO_DEVICE), NO_DEVICE.get(command, "needs --device")


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - set(NO_DEVICE)))
def test_device_without_cuda_is_a_one_line_error(command, capsys, monkeypatch, tmp_path):
    import torch

    from critdiff.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = {"sample": ["--model", "gaussian", "--data", "digits:size=8"], "train": [],
            "train-classifier": [], "guide": ["--model", "gaussian", "--data", "digits:size=8"],
            "probe": ["--model", "gaussian", "--data", "digits:size=8"]}[command]
    code = main([command, *args, "--device", "cuda", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "device" in err
