"""Tests of the checkpoint layout (critdiff.nets.checkpoint; docs/reliability.md R1): step folders written
as one unit, the ``latest`` pointer, fallback, cleaning, and the old flat layout."""

import os

import pytest
import torch
from safetensors.torch import load_file

from critdiff.nets import checkpoint as ckpt
from critdiff.nets.net_denoiser import load_net
from critdiff.nets.unet import UNet, UNetConfig

CFG = UNetConfig(channels=1, height=8, width_px=8, width=8, channel_mult=(1, 2), n_classes=0, groups=4)


def net(seed):
    torch.manual_seed(seed)
    n = UNet(CFG)
    with torch.no_grad():
        for p in n.parameters():
            p.normal_()
    return n


def save(root, step, seed=None):
    n = net(step if seed is None else seed)
    ckpt.save_checkpoint(root, {"kind": "unet", "net": CFG.to_dict(), "train": {}}, n, n, step,
                         {"optimizer": {}, "rng": {}})
    return n


def same(a, path):
    got = load_file(str(path))
    return all(torch.equal(v, got[k]) for k, v in a.state_dict().items())


def test_keeps_the_last_two_and_points_latest_at_the_newest(tmp_path):
    for step in (1, 2, 3):
        last = save(tmp_path, step)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000002", "ckpt-000003", "latest"]
    assert (tmp_path / "latest").read_text().strip() == "ckpt-000003"
    assert same(last, ckpt.checkpoint_dir(tmp_path) / ckpt.EMA)
    assert ckpt.read_training_state(tmp_path)["step"] == 3 and load_net(tmp_path).step == 3


def test_falls_back_and_cleans_leftovers_of_a_killed_write(tmp_path):
    save(tmp_path, 1)
    second = save(tmp_path, 2)
    # a write killed before its rename: a hidden half-written folder; and a pointer naming a missing folder
    half = tmp_path / ".ckpt-000003.abcd"
    half.mkdir()
    (half / ckpt.WEIGHTS).write_bytes(b"")
    (tmp_path / "latest").write_text("ckpt-000003\n")
    assert ckpt.checkpoint_dir(tmp_path) == tmp_path / "ckpt-000002"
    assert same(second, ckpt.checkpoint_dir(tmp_path) / ckpt.WEIGHTS)
    save(tmp_path, 3)
    assert not half.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_saving_the_same_step_again_replaces_it(tmp_path):
    save(tmp_path, 4, seed=0)
    again = save(tmp_path, 4, seed=1)
    assert same(again, tmp_path / "ckpt-000004" / ckpt.WEIGHTS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000004", "latest"]


def test_old_flat_layout_still_loads(tmp_path):
    n = net(5)
    ckpt.save_weights(tmp_path / ckpt.WEIGHTS, n, 5)
    ckpt.save_weights(tmp_path / ckpt.EMA, n, 5)
    from critdiff.io import save_json

    save_json(tmp_path / ckpt.CONFIG, {"kind": "unet", "net": CFG.to_dict(), "train": {}, "step": 5})
    assert ckpt.checkpoint_dir(tmp_path) == tmp_path
    d = load_net(tmp_path)
    assert d.step == 5 and same(n, tmp_path / ckpt.EMA)
    with pytest.raises(ValueError, match="state.pt' is missing"):
        ckpt.read_training_state(tmp_path)
    os.remove(tmp_path / ckpt.CONFIG)
    assert ckpt.checkpoint_dir(tmp_path) is None


def test_weights_id_follows_the_weights_a_folder_loads_and_keys_run_logs(tmp_path):
    """A run started on ``net:DIR`` must not be resumed after DIR's weights changed (a continued training writes
    a new step folder; a retraining into the same folder, other weights at the same step): the run identity carries
    the sha256 of the EMA file that load_net reads (oracle: hashlib over that file's bytes)."""
    import hashlib

    from critdiff.experiments.agreement import AgreementConfig
    from critdiff.experiments.guide.store import TrialLog
    from critdiff.experiments.sample import SampleConfig

    root = tmp_path / "run"
    assert ckpt.weights_id(root) is None and ckpt.weights_id(tmp_path) is None  # no folder / no checkpoint
    save(root, 5)
    first = ckpt.weights_id(root)
    digest = hashlib.sha256((root / "ckpt-000005" / ckpt.EMA).read_bytes()).hexdigest()
    assert first == "ckpt-000005@" + digest[:16]
    ident = SampleConfig(model=f"net:{root}", data="digits:size=8").identity()
    assert ident["model@weights"] == first
    assert AgreementConfig(net=str(root)).identity()["net@weights"] == first
    assert "model@weights" not in SampleConfig(model="patch", data="digits:size=8").identity()
    TrialLog(tmp_path / "log.jsonl", ident)
    TrialLog(tmp_path / "log.jsonl", SampleConfig(model=f"net:{root}", data="digits:size=8").identity())  # resumes

    save(root, 6)  # training continued
    assert ckpt.weights_id(root).startswith("ckpt-000006@")
    with pytest.raises(ValueError, match="different configuration"):
        TrialLog(tmp_path / "log.jsonl", SampleConfig(model=f"net:{root}", data="digits:size=8").identity())

    other = tmp_path / "again"
    save(other, 5, seed=99)  # the same step, other weights
    assert ckpt.weights_id(other).split("@")[0] == "ckpt-000005" and ckpt.weights_id(other) != first
