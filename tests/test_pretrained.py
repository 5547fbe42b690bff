"""The reference models that ship with critdiff (critdiff.pretrained, docs/models.md, DESIGN.md section 5c)."""

import json
import shutil

import pytest
import torch

from critdiff import pretrained
from critdiff.data import load as load_data
from critdiff.experiments.config import RunConfig, model_kind
from critdiff.experiments.models import build_model
from critdiff.nets.classifier import read_metrics, split_indices
from critdiff.nets.net_denoiser import NetDenoiser, load_net
from critdiff.pretrained.pack import pack_classifier


@pytest.fixture(scope="module")
def mnist():
    return load_data("mnist")


def test_manifest_names_and_sizes():
    # mnist28: the reference run's EMA at step 10000; mnist28-s4500: the same run at step 4500, kept because the
    # benchmarks of 2026-12-05 (guidance, late start, agreement) were measured on it (docs/models.md)
    assert pretrained.names("unet") == ("mnist28", "mnist28-s4500")
    assert pretrained.entry("mnist28")["step"] == 10000 and pretrained.entry("mnist28-s4500")["step"] == 4500
    assert pretrained.names("classifier") == ("mnist28-clf",)
    total = sum((pretrained.ROOT / e["folder"] / f).stat().st_size
                for e in pretrained.manifest().values() for f in e["files"])
    assert total < 10 * 2**20  # what ships stays small (DESIGN.md section 5c)


def test_shipped_files_match_their_recorded_sha256():
    for name, e in pretrained.manifest().items():
        folder = pretrained.folder(name)
        for f, digest in e["files"].items():
            assert pretrained.sha256_file(folder / f) == digest


def test_load_gives_the_trained_unet_and_it_denoises_real_digits(mnist):
    net = pretrained.load("mnist28")
    assert isinstance(net, NetDenoiser)
    assert tuple(net.sample_shape) == (1, 28, 28) and net.n_classes == 10
    assert net.step == pretrained.entry("mnist28")["step"]
    x0, y = mnist[0][:32], mnist[1][:32]
    n = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    sigma = 0.5
    with torch.no_grad():
        d = net(x0 + sigma * n, sigma, y)
    assert d.shape == x0.shape and bool(torch.isfinite(d).all())
    # a trained denoiser removes most of the noise of a real digit: its error is far below the noise's (sigma^2)
    mse = float((d - x0).pow(2).mean())
    assert mse < 0.25 * sigma**2
    # the same call repeats exactly (determinism)
    with torch.no_grad():
        assert torch.equal(net(x0 + sigma * n, sigma, y), d)


def test_pretrained_spec_wherever_a_model_is_accepted():
    assert model_kind("pretrained:mnist28") == "pretrained"
    net = build_model(RunConfig(model="pretrained:mnist28"))
    ref = load_net(pretrained.folder("mnist28"))
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(net(x, 1.0, torch.tensor([3, 7])), ref(x, 1.0, torch.tensor([3, 7])))  # same weights, same call
    for bad in ("pretrained:nope", "pretrained:mnist28-clf", "pretrained"):
        with pytest.raises(ValueError, match="model:"):
            model_kind(bad)


def test_shipped_classifier_reproduces_its_heldout_accuracy(mnist):
    clf = pretrained.load("mnist28-clf")
    folder = pretrained.folder("mnist28-clf")
    meta = read_metrics(folder)
    _, ho = split_indices(mnist[0].shape[0], meta["config"]["holdout"], meta["config"]["seed"])
    assert ho.tolist() == meta["heldout_indices"]
    acc = float((clf.predict(mnist[0][ho]) == mnist[1][ho]).double().mean())
    # another CPU may round a borderline image's logits the other way: a tolerance of 2 images in 1000
    assert abs(acc - meta["heldout_accuracy"]) <= 2 / ho.numel() + 1e-12
    assert acc >= 0.98
    assert isinstance(pretrained.load_classifier("pretrained:mnist28-clf"), type(clf))


def test_a_corrupt_or_missing_file_is_a_one_line_error(tmp_path):
    root = tmp_path / "root"
    pack_classifier("clf", pretrained.folder("mnist28-clf"), root=root)
    assert pretrained.folder("clf", root=root) == root / "clf"
    w = root / "clf" / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"^model: pretrained 'clf': weights.safetensors does not match its recorded sha256") as e:
        pretrained.folder("clf", root=root)
    assert "\n" not in str(e.value)
    w.unlink()
    with pytest.raises(ValueError, match="is missing"):
        pretrained.folder("clf", root=root)
    (root / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="manifest"):
        pretrained.folder("clf", root=root)


def test_cli_takes_the_pretrained_model_and_rejects_unknown_names(tmp_path, capsys):
    from critdiff.cli import main

    assert main(["sample", "--model", "pretrained:nope", "--n", "1", "--out", str(tmp_path / "x")]) == 2
    assert "mnist28" in capsys.readouterr().err


def test_recipe_reproduces_the_recorded_first_losses(mnist, tmp_path):
    """Retrain the first steps of the shipped network's recipe (its own recorded TrainConfig) and compare the
    per-step losses with those recorded from the real run (docs/models.md)."""
    from critdiff.nets.training import TrainConfig, train_unet

    e = pretrained.entry("mnist28")
    recorded = e["first_losses"][:3]
    record = json.loads((pretrained.folder("mnist28") / "config.json").read_text())
    cfg = TrainConfig.from_dict({**record["train"], "steps": len(recorded)})
    seen = []
    with torch.random.fork_rng(devices=[]):
        train_unet(cfg, *mnist, tmp_path / "run", progress=False, on_step=lambda s, v: seen.append(v))
    # the same float32 computation on another CPU (vector width, thread count) rounds differently; the losses of
    # the first steps agree to far better than the step-to-step change (~1e-2)
    assert seen == pytest.approx(recorded, rel=2e-3)
    shutil.rmtree(tmp_path / "run")


def test_run_identity_carries_the_weights_so_a_moved_name_is_not_resumed(tmp_path, monkeypatch):
    """A log keyed on a run's identity must refuse to be resumed when ``pretrained:NAME`` now loads other weights
    (mnist28 moved from step 4500 to 10000): the identity carries the weights' sha256, not only the name."""
    from critdiff.experiments.agreement import AgreementConfig
    from critdiff.experiments.guide.store import TrialLog
    from critdiff.experiments.sample import SampleConfig

    cfg = AgreementConfig(net="pretrained:mnist28")
    today = cfg.identity()
    assert today["net@weights"] == "mnist28@" + pretrained.entry("mnist28")["files"]["ema.safetensors"][:16]
    assert SampleConfig(model="pretrained:mnist28").identity()["model@weights"] == today["net@weights"]
    assert "model@weights" not in SampleConfig(model="gaussian", data="grf:size=6").identity()
    TrialLog(tmp_path / "log.jsonl", today)  # a run started with today's weights

    old = pretrained.entry("mnist28-s4500")  # the same name, as it shipped before
    real = pretrained.entry
    monkeypatch.setattr(pretrained, "entry", lambda name, kind=None, root=pretrained.ROOT:
                        old if name == "mnist28" else real(name, kind, root))
    before = cfg.identity()
    assert before["net"] == today["net"] and before["net@weights"] != today["net@weights"]
    with pytest.raises(ValueError, match="different configuration"):
        TrialLog(tmp_path / "log.jsonl", before)


def test_a_guide_log_with_a_pretrained_model_rebuilds_its_config():
    """``summarise_log`` rebuilds a GuideConfig from the log's identity, which carries the weights' id beside the
    fields: the id must not reach the config (the demo's guidance section failed on it)."""
    from critdiff.experiments.config import config_fields
    from critdiff.experiments.guide.config import GuideConfig

    cfg = GuideConfig(model="pretrained:mnist28", data="mnist")
    ident = cfg.identity()
    assert "model@weights" in ident
    assert GuideConfig.from_dict(config_fields(ident)) == cfg
