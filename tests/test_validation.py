"""Library-level checks added for issue #12 (docs/reliability.md R5): devices, empty batches, schedule options,
labels bounds, the trial-log schema. Each error is one line naming the argument."""

import json

import numpy as np
import pytest
import torch

from critdiff import samplers as SM
from critdiff import schedules as S
from critdiff.data import load
from critdiff.devices import resolve
from critdiff.experiments.guide.store import TrialLog
from critdiff.scores import EmpiricalScore, GaussianScore, PatchScore


def test_resolve_devices_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve("cpu") == torch.device("cpu") and resolve(torch.device("cpu")).type == "cpu"
    for bad, msg in (("cuda:0", "CUDA is not available"), ("cuda", "CUDA is not available"),
                     ("foo", "expected a torch device"), ("", "expected a torch device"), ("meta", "not available")):
        with pytest.raises(ValueError, match=rf"^device: .*{msg}"):
            resolve(bad)
    with pytest.raises(TypeError, match="^device:"):
        resolve(0)


def test_resolve_cuda_index_against_the_device_count(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve("cuda:0") == torch.device("cuda", 0) and resolve("cuda") == torch.device("cuda")
    with pytest.raises(ValueError, match=r"^device: 'cuda:7' requested but this machine has 1 CUDA device\(s\)"):
        resolve("cuda:7")


def test_empty_batch_is_a_value_error_naming_the_argument():
    x, _ = load("digits:size=8,n=20")
    sig = S.sigma_grid("vp-linear", 3, "logsnr")
    empty = torch.zeros(0, 1, 8, 8)
    for D in (GaussianScore(x), EmpiricalScore(x), PatchScore(x, "square:3")):
        with pytest.raises(ValueError, match="^x: expected a non-empty batch"):
            D(empty, 1.0)
        with pytest.raises(ValueError, match="^x: expected a non-empty batch"):
            SM.sample_heun(D, empty, sig)
    with pytest.raises(ValueError, match="^n: expected an integer >= 1"):
        SM.seed_generators(0, 0)
    with pytest.raises(ValueError, match=r"^shape: expected \[B, C, H, W\]"):
        SM.initial_noise((0, 1, 8, 8), sig)


@pytest.mark.parametrize("spec,option", [("vp-linear:beta_max=-1", "beta_max"), ("vp-linear:beta_min=nan", "beta_min"),
                                         ("vp-linear:t_min=0", "t_min"), ("vp-cosine:s=0", "s"),
                                         ("ve:sigma_max=inf", "sigma_hi"), ("edm:t_min=-1", "t_min"),
                                         ("vp-linear:t_min=0.5,t_max=0.2", "t_min")])
def test_schedule_options_are_checked_in_the_constructor(spec, option):
    with pytest.raises(ValueError, match=rf"^schedule: .*{option}"):
        S.get(spec)


def test_labels_file_ids_are_bounded_before_allocation(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 4, 4), np.float32))
    np.save(tmp_path / "ok.npy", np.array([4, 1, 9999]))
    np.save(tmp_path / "huge.npy", np.array([0, 1, 10 ** 9]))
    assert load(f"npy:{tmp_path}/x.npy,labels={tmp_path}/ok.npy")[1].tolist() == [4, 1, 9999]
    with pytest.raises(ValueError, match=r"^data: labels in .*huge.npy must be class ids 0..9999, got 1000000000"):
        load(f"npy:{tmp_path}/x.npy,labels={tmp_path}/huge.npy")


def _log(tmp_path, lines):
    path = tmp_path / "trials.jsonl"
    path.write_bytes(b"".join(lines))
    return path


def test_trial_log_keeps_good_lines_and_names_a_damaged_one(tmp_path):
    cfg = {"a": 1}
    log = TrialLog(tmp_path / "trials.jsonl", cfg)
    trial = {"type": "trial", "arm": "none", "start": 0, "index": [0], "label": [1], "nfe": [3], "x": [[0.5]]}
    log.append({"type": "tc", "logsnr": 0.5, "t": 0.4, "sigma_over_a": 0.7, "source": "given"})
    log.append(trial)
    good = (tmp_path / "trials.jsonl").read_bytes()
    lines = good.splitlines(keepends=True)
    # a valid last line without its newline is kept (and the newline restored)
    _log(tmp_path, lines[:-1] + [lines[-1].rstrip(b"\n")])
    assert len(list(TrialLog(tmp_path / "trials.jsonl", cfg).of_type("trial"))) == 1
    assert (tmp_path / "trials.jsonl").read_bytes() == good
    # a torn last line is dropped
    _log(tmp_path, lines + [lines[-1][:20]])
    assert len(list(TrialLog(tmp_path / "trials.jsonl", cfg).of_type("trial"))) == 1
    assert (tmp_path / "trials.jsonl").read_bytes() == good
    # damage elsewhere: an error naming the line, and the file is not rewritten
    for bad, msg in ((lines[1][:15] + b"\n", "line 2 is not valid JSON"),
                     (lines[1].replace(b'"logsnr"', b'"l0gsnr"'), "line 2: tc record lacks 'logsnr'"),
                     (lines[1].replace(b"0.5", b"NaN", 1), "line 2: tc record has a non-finite logsnr")):
        path = _log(tmp_path, [lines[0], bad] + lines[2:] + [lines[2]])
        before = path.read_bytes()
        with pytest.raises(ValueError, match=rf"^trials: .*trials.jsonl {msg}"):
            TrialLog(path, cfg)
        assert path.read_bytes() == before
    # a record is checked before it is written
    path = _log(tmp_path, lines)
    with pytest.raises(ValueError, match="non-finite logsnr"):
        TrialLog(path, cfg).append({"type": "tc", "logsnr": float("inf"), "t": 0, "sigma_over_a": 0, "source": "x"})
    with pytest.raises(ValueError, match="lacks 'x'"):
        TrialLog(path, cfg).append({k: v for k, v in trial.items() if k != "x"})
    assert path.read_bytes() == good and json.loads(lines[0])["type"] == "config"
