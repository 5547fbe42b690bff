"""Tests of training: loss decrease, determinism, exact resume (also after Ctrl-C), the CLI commands,
the IDX path, the evaluation classifier, and ``critdiff sample --model net:DIR``."""

import gzip
import json
import os
import signal
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from critdiff.nets import checkpoint as ckpt
from critdiff.nets.classifier import ClassifierTrainConfig, load_classifier, split_indices, train_classifier
from critdiff.nets.training import TrainConfig, batch_indices, build_unet, diffusion_loss, lr_at, train_unet
from critdiff import schedules as S
from oracles import assert_paths_close


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


DATA = "digits:size=8,n=48"
TINY = dict(data=DATA, batch=8, width=8, channel_mult=(1, 2), warmup=2, log_every=2, grid_steps=2)


def tiny_cfg(**kw):
    return TrainConfig(**{**TINY, **kw})


def data():
    from critdiff.data import load

    return load(DATA)


def cli(argv):
    """Run a command through critdiff.cli.main, with this issue's subcommands registered even if
    cli.COMMANDS does not list them yet."""
    import critdiff.cli as C

    original = C.COMMANDS
    C.COMMANDS = tuple(original) + tuple(c for c in ("train", "train-classifier") if c not in original)
    try:
        return C.main(argv)
    finally:
        C.COMMANDS = original


def weights(root, name=ckpt.WEIGHTS):
    return load_file(str(ckpt.checkpoint_dir(root) / name))


def assert_same_files(a, b):
    for name in (ckpt.WEIGHTS, ckpt.EMA):
        wa, wb = weights(a, name), weights(b, name)
        assert wa.keys() == wb.keys()
        for k in wa:
            assert torch.equal(wa[k], wb[k]), (name, k)
    sa, sb = ckpt.read_training_state(a), ckpt.read_training_state(b)
    assert sa["step"] == sb["step"] and sa["losses"] == sb["losses"]
    assert torch.equal(sa["rng"]["generator"], sb["rng"]["generator"])
    for k, st in sa["optimizer"]["state"].items():
        for name, v in st.items():
            assert torch.equal(v, sb["optimizer"]["state"][k][name]), (k, name)


# --------------------------------------------------------------------------- pieces
def test_config_round_trips_and_validates():
    c = tiny_cfg(prediction="eps", padding="circular")
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    for kw, word in [(dict(cond_drop=1.0), "cond_drop"), (dict(ema=1.0), "ema"), (dict(schedule="nope"), "schedule"),
                     (dict(prediction="x0"), "prediction"), (dict(steps=0), "steps")]:
        with pytest.raises(ValueError, match=word):
            tiny_cfg(**kw).validate()


def test_batch_indices_cover_each_epoch_once():
    seen = torch.cat([batch_indices(k, 20, 4, seed=3) for k in range(5)])
    assert sorted(seen.tolist()) == list(range(20))
    assert not torch.equal(torch.cat([batch_indices(k, 20, 4, 3) for k in range(5, 10)]), seen)
    assert torch.equal(batch_indices(7, 20, 4, 3), batch_indices(7, 20, 4, 3))
    assert batch_indices(0, 3, 8, 0).numel() == 3  # a batch larger than the data set is clamped


def test_lr_warmup():
    assert lr_at(0, 1.0, 4) == 0.25 and lr_at(3, 1.0, 4) == 1.0 and lr_at(100, 1.0, 4) == 1.0 and lr_at(0, 1.0, 0) == 1.0


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_diffusion_loss_target_is_the_oracle(prediction):
    """A 'network' that returns the true target from the clean image gives zero loss (closed-form targets)."""
    x0 = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    sch = S.get("vp-linear")

    def oracle(z, logsnr, label):
        s = torch.exp(-0.5 * logsnr).reshape(-1, 1, 1, 1)
        a = 1 / torch.sqrt(1 + s * s)
        n = (z / a - x0) / s  # z = a (x0 + s n)
        return n if prediction == "eps" else a * n - s * a * x0

    loss = diffusion_loss(oracle, x0, None, sch, prediction, torch.Generator().manual_seed(0))
    assert float(loss) < 1e-18
    zero = diffusion_loss(lambda z, l, y: torch.zeros_like(z), x0, None, sch, prediction, torch.Generator().manual_seed(0))
    assert float(zero) > 0.1


def test_tiny_network_loss_falls(tmp_path):
    x, y = data()
    cfg = tiny_cfg(steps=40, lr=3e-3)
    sch = S.get(cfg.schedule)
    probe = x[:32]

    def held_loss(net):
        with torch.no_grad():
            return float(diffusion_loss(net, probe, y[:32], sch, cfg.prediction, torch.Generator().manual_seed(123)))

    before = held_loss(build_unet(cfg.net_config(x, y), cfg.seed))
    res = train_unet(cfg, x, y, tmp_path, progress=False)
    after = held_loss(res["net"])
    assert after < 0.8 * before, (before, after)
    assert res["step"] == 40 and len(res["losses"]) == 20


# --------------------------------------------------------------------------- determinism and resume
def test_same_seed_same_weights_and_resume_is_bit_identical(tmp_path):
    x, y = data()
    full, again, split, other = (tmp_path / n for n in ("full", "again", "split", "other"))
    train_unet(tiny_cfg(steps=6, checkpoint_every=3), x, y, full, progress=False)
    train_unet(tiny_cfg(steps=6, checkpoint_every=3), x, y, again, progress=False)
    assert_same_files(full, again)
    train_unet(tiny_cfg(steps=3), x, y, split, progress=False)
    train_unet(tiny_cfg(steps=6, checkpoint_every=3), x, y, split, progress=False, resume=True)
    assert_same_files(full, split)
    train_unet(tiny_cfg(steps=6, seed=1), x, y, other, progress=False)
    assert not torch.equal(weights(full)["out.bias"], weights(other)["out.bias"]) or any(
        not torch.equal(a, b) for a, b in zip(weights(full).values(), weights(other).values()))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_writes_a_checkpoint_and_resume_matches(tmp_path, sig):
    x, y = data()
    full, cut = tmp_path / "full", tmp_path / "cut"
    train_unet(tiny_cfg(steps=5), x, y, full, progress=False)
    # the handlers training found (a suite started in the background runs with SIGINT ignored): it must restore them
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))

    def interrupt(step, loss):  # a real signal: the handler defers it to the end of the step
        if step == 2:
            os.kill(os.getpid(), sig)

    with pytest.raises(KeyboardInterrupt):
        train_unet(tiny_cfg(steps=5, checkpoint_every=100), x, y, cut, progress=False, on_step=interrupt)
    assert ckpt.read_training_state(cut)["step"] == 2
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    train_unet(tiny_cfg(steps=5), x, y, cut, progress=False, resume=True)
    assert_same_files(full, cut)


def test_resume_errors(tmp_path):
    x, y = data()
    with pytest.raises(ValueError, match="no checkpoint"):
        train_unet(tiny_cfg(steps=2), x, y, tmp_path, progress=False, resume=True)
    train_unet(tiny_cfg(steps=2), x, y, tmp_path, progress=False)
    # files from different steps (only by tampering: a step folder is written as one unit) are refused
    net = build_unet(tiny_cfg().net_config(x, y), 0)
    folder = ckpt.checkpoint_dir(tmp_path)
    ckpt.save_weights(folder / ckpt.EMA, net, 1)
    with pytest.raises(ValueError, match="different steps"):
        train_unet(tiny_cfg(steps=4), x, y, tmp_path, progress=False, resume=True)
    (folder / ckpt.STATE).write_bytes(b"junk")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        train_unet(tiny_cfg(steps=4), x, y, tmp_path, progress=False, resume=True)


def test_resolve_config_rules(tmp_path):
    from critdiff.experiments.train import resolve_config

    cfg = resolve_config(tmp_path, {"width": 8, "steps": None}, resume=False)
    assert cfg.width == 8 and cfg.steps == TrainConfig().steps
    with pytest.raises(ValueError, match="no checkpoint"):
        resolve_config(tmp_path, {}, resume=True)
    ckpt.save_checkpoint(tmp_path, {"kind": "unet", "net": {}, "train": tiny_cfg(steps=3).to_dict()},
                         build_unet(tiny_cfg().net_config(*data()), 0), None, 3)
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        resolve_config(tmp_path, {}, resume=False)
    with pytest.raises(ValueError, match="width=16 differs"):
        resolve_config(tmp_path, {"width": 16}, resume=True)
    got = resolve_config(tmp_path, {"steps": 9, "width": 8, "channel_mult": (1, 2)}, resume=True)
    assert got == tiny_cfg(steps=9)


# --------------------------------------------------------------------------- commands
def write_idx(path, arr, gz=False):
    arr = np.asarray(arr, dtype=np.uint8)
    blob = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    path.write_bytes(gzip.compress(blob) if gz else blob)


def easy_images(n=60, size=8, seed=0):
    """Two classes: bright left half (0) or bright right half (1), plus noise. ``uint8 [N, size, size]``."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    img = np.zeros((n, size, size))
    img[labels == 0, :, : size // 2] = 200
    img[labels == 1, :, size // 2:] = 200
    img += rng.uniform(0, 55, img.shape)
    return img.astype(np.uint8), labels


def test_cli_train_on_idx_then_sample_with_net_model(tmp_path, capsys):
    imgs, labels = easy_images(32)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs, gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, gz=True)
    out = tmp_path / "run"
    spec = f"idx:{tmp_path}/train-images-idx3-ubyte.gz"
    argv = ["train", "--data", spec, "--out", str(out), "--steps", "3", "--batch", "8", "--width", "8",
            "--channel-mult", "1,2", "--threads", "1"]
    assert cli(argv) == 0
    rec = json.loads((out / "result.json").read_text())["result"]
    assert rec["step"] == 3 and rec["n_classes"] == 2 and rec["n_train"] == 32
    assert (out / "samples.png").stat().st_size > 0
    # result.json holds the run's Result: it rebuilds exactly, and renders the same section twice
    from critdiff.experiments.train import TrainResult
    from critdiff.report.render import render

    result = TrainResult.from_dict(rec)
    assert TrainResult.from_json(result.to_json()) == result and result.config.steps == 3
    a, b = render(result, folder=out), render(TrainResult.from_json(result.to_json()), folder=out)
    assert a.html == b.html and (out / "loss.png").stat().st_size > 0 and "3 steps on 32 images" in a.findings[0]
    # rerunning into the same folder without --resume is a one-line error (exit 2); --resume continues
    assert cli(argv) == 2
    assert "already holds a checkpoint" in capsys.readouterr().err
    assert cli(["train", "--out", str(out), "--resume", "--steps", "4", "--threads", "1"]) == 0
    assert ckpt.read_training_state(out)["step"] == 4
    assert cli(["train", "--out", str(out), "--resume", "--width", "16"]) == 2
    # the trained folder is a model for `critdiff sample` (the shape comes from the net, no --data)
    samp = tmp_path / "samp"
    assert cli(["sample", "--model", f"net:{out}", "--out", str(samp), "--steps", "2", "--n", "2", "--label", "1"]) == 0
    run = json.loads((samp / "result.json").read_text())["result"]
    assert run["shape"] == [1, 8, 8] and run["model"]["kind"] == "net" and run["nfe_per_sample"] == 3
    (ckpt.checkpoint_dir(out) / ckpt.EMA).write_bytes(b"")
    assert cli(["sample", "--model", f"net:{out}", "--out", str(samp), "--steps", "2"]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err


def test_cli_ctrl_c_exits_130_and_keeps_a_checkpoint(tmp_path, monkeypatch):
    import critdiff.cli.train as train_cmd

    real = train_cmd.run_train

    def run_with_sigint(cfg, out, **kw):
        def on_step(step, loss):
            if step == 2:
                os.kill(os.getpid(), signal.SIGINT)
        from critdiff.experiments.context import Context

        return real(cfg, Context(out, progress=False), on_step=on_step, **kw)

    monkeypatch.setattr(train_cmd, "run_train", run_with_sigint)
    out = tmp_path / "run"
    code = cli(["train", "--data", DATA, "--out", str(out), "--steps", "5", "--batch", "8", "--width", "8",
                "--channel-mult", "1,2", "--threads", "1"])
    assert code == 130 and ckpt.read_training_state(out)["step"] == 2


# --------------------------------------------------------------------------- classifier
def test_classifier_learns_an_easy_task_and_round_trips(tmp_path):
    imgs, labels = easy_images(200, seed=1)
    x = torch.as_tensor(imgs, dtype=torch.float32)[:, None] / 127.5 - 1
    y = torch.as_tensor(labels)
    cfg = ClassifierTrainConfig(steps=40, batch=32, width=8, lr=5e-3)
    res = train_classifier(cfg, x, y, tmp_path, progress=False)
    assert res["heldout_accuracy"] >= 0.95 and res["n_heldout"] == 40
    model = load_classifier(tmp_path)
    assert model.embed(x[:5]).shape == (5, 32) and model.logits(x[:5]).shape == (5, 2)
    # the loaded classifier and the trained one are two module instances: float32 precision, not bits
    assert_paths_close(model.logits(x[:5]), res["model"].logits(x[:5]))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["heldout_accuracy"] == res["heldout_accuracy"]
    # the held-out split is disjoint from the training split
    tr, ho = split_indices(200, 0.2, 0)
    assert set(tr.tolist()).isdisjoint(ho.tolist()) and len(tr) + len(ho) == 200
    with pytest.raises(ValueError, match="classifier takes images"):
        model.logits(torch.zeros(2, 1, 16, 16))


def test_classifier_cli_and_errors(tmp_path, capsys):
    imgs, labels = easy_images(40)
    write_idx(tmp_path / "a-images-idx3-ubyte", imgs)
    write_idx(tmp_path / "a-labels-idx1-ubyte", labels)
    out = tmp_path / "clf"
    assert cli(["train-classifier", "--data", f"idx:{tmp_path}/a-images-idx3-ubyte", "--out", str(out),
                "--steps", "5", "--width", "8", "--threads", "1"]) == 0
    assert "held-out accuracy" in capsys.readouterr().out
    assert (out / "metrics.json").is_file()
    from critdiff.nets.net_denoiser import load_net

    with pytest.raises(ValueError, match="not a diffusion network"):
        load_net(out)
    assert cli(["train-classifier", "--data", "grf:size=8,n=10", "--out", str(tmp_path / "x"), "--steps", "2"]) == 2
    assert "no labels" in capsys.readouterr().err
