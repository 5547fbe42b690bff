"""Tests of the UNet, its denoiser wrapping, checkpoints and loading (critdiff.nets)."""

import json
import math

import pytest
import torch

from critdiff.denoisers import Preconditioned, logsnr_noise
from critdiff.experiments.config import RunConfig
from critdiff.experiments.models import build_model, model_kind
from critdiff.nets import checkpoint as ckpt
from critdiff.nets.net_denoiser import NetDenoiser, load_net
from critdiff.nets.training import build_unet
from critdiff.nets.unet import UNet, UNetConfig
from oracles import assert_paths_close


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: fast and reproducible on a shared 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def tiny(**kw):
    base = dict(channels=1, height=8, width_px=8, width=8, channel_mult=(1, 2), n_classes=3, groups=4)
    base.update(kw)
    return UNetConfig(**base)


def randomised(net: UNet, seed=0) -> UNet:
    """Give every parameter random values (the zero-initialised output layers would hide bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return net


# --------------------------------------------------------------------------- config
def test_config_round_trips_json():
    c = tiny(padding="circular", prediction="v")
    assert UNetConfig.from_json(c.to_json()) == c
    assert UNetConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert c.sample_shape == (1, 8, 8) and c.null_class == 3
    assert tiny(n_classes=0).null_class is None


@pytest.mark.parametrize("kw, word", [
    (dict(padding="reflect"), "padding"), (dict(prediction="x0"), "prediction"),
    (dict(height=10, channel_mult=(1, 2, 2)), "divisible"), (dict(width=6), "groups"), (dict(channel_mult=()), "channel_mult"),
])
def test_config_rejects_bad_values(kw, word):
    with pytest.raises(ValueError, match=word):
        tiny(**kw)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown field"):
        UNetConfig.from_dict({**tiny().to_dict(), "depth": 3})


# --------------------------------------------------------------------------- network
@pytest.mark.parametrize("padding", ["zeros", "circular"])
@pytest.mark.parametrize("mult", [(1,), (1, 2), (1, 2, 2)])
def test_unet_shapes_and_label_effect(padding, mult):
    net = randomised(UNet(tiny(padding=padding, channel_mult=mult, channels=2)))
    z = torch.randn(4, 2, 8, 8)
    ls = torch.linspace(-5, 5, 4)
    out_null = net(z, ls, None)
    assert out_null.shape == z.shape
    # None is the null class (two label paths into the embedding: float32 precision, not bits)
    assert_paths_close(out_null, net(z, ls, torch.full((4,), 3)))
    assert not torch.allclose(out_null, net(z, ls, torch.tensor([0, 1, 2, 0])))
    # the logsnr input matters
    assert not torch.allclose(out_null, net(z, ls + 1.0, None))


def test_circular_padding_is_translation_equivariant():
    net = randomised(UNet(tiny(padding="circular", channel_mult=(1, 2))), seed=1).double()
    z = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    ls = torch.tensor([0.5, -1.0], dtype=torch.float64)
    shifted = net(torch.roll(z, (2, 4), (2, 3)), ls)  # shifts by multiples of the stride-2 factor
    torch.testing.assert_close(shifted, torch.roll(net(z, ls), (2, 4), (2, 3)), rtol=1e-10, atol=1e-10)
    zeros = randomised(UNet(tiny(padding="zeros")), seed=1).double()
    assert not torch.allclose(zeros(torch.roll(z, (2, 4), (2, 3)), ls), torch.roll(zeros(z, ls), (2, 4), (2, 3)))


def test_unconditional_net_rejects_labels():
    net = UNet(tiny(n_classes=0))
    with pytest.raises(ValueError, match="unconditional"):
        net(torch.randn(2, 1, 8, 8), torch.zeros(2), torch.zeros(2, dtype=torch.long))


def test_build_unet_is_seeded_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = build_unet(tiny(), 3), build_unet(tiny(), 3), build_unet(tiny(), 4)
    assert torch.equal(state, torch.get_rng_state())
    for (k, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), k
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


# --------------------------------------------------------------------------- wrapping
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_wrapper_matches_closed_form(prediction, dtype, tol):
    """NetDenoiser == Preconditioned: eps: x0 = x - sigma F(z); v: x0 = a z - s F(z), z = a x (a = 1/sqrt(1+sigma^2))."""
    net = randomised(UNet(tiny(prediction=prediction)), seed=2).to(dtype)
    d = NetDenoiser(net)
    x = torch.randn(3, 1, 8, 8, dtype=dtype) * 2
    sigma = torch.tensor([0.05, 1.0, 20.0], dtype=dtype)
    label = torch.tensor([0, 2, 1])
    got = d(x, sigma, label)
    s64 = sigma.double().reshape(-1, 1, 1, 1)
    a = 1 / torch.sqrt(1 + s64 ** 2)
    F = net(a.to(dtype) * x, -2 * torch.log(sigma), label).double()
    if prediction == "eps":
        want = x.double() - s64 * F
    else:
        want = a * a * x.double() - s64 * a * F
    torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol * 10)
    torch.testing.assert_close(got, Preconditioned(net, prediction, logsnr_noise)(x, sigma, label), rtol=tol, atol=tol)


def test_wrapper_keeps_input_dtype_and_rejects_bad_input():
    d = NetDenoiser(randomised(UNet(tiny())))
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    assert d(x, 0.5).dtype == torch.float64
    with pytest.raises(ValueError, match="images"):
        d(torch.randn(2, 1, 16, 16), 0.5)
    with pytest.raises(ValueError, match="label"):
        d(x, 0.5, 3)  # 3 is the null class, not a user class
    # an int label broadcasts; gradients flow (Jacobians through D work)
    xr = x.clone().requires_grad_()
    d(xr, 0.5, 1).sum().backward()
    assert xr.grad is not None and bool(torch.isfinite(xr.grad).all())


# --------------------------------------------------------------------------- checkpoints and loading
def write_net(root, prediction="v", seed=0):
    cfg = tiny(prediction=prediction)
    net = randomised(UNet(cfg), seed=seed)
    ckpt.save_checkpoint(root, {"kind": "unet", "net": cfg.to_dict(), "train": {}}, net, net, 7)
    return net


def test_load_net_round_trip_and_build_model(tmp_path):
    net = write_net(tmp_path)
    d = load_net(tmp_path)
    assert d.sample_shape == (1, 8, 8) and d.n_classes == 3 and d.null_class == 3 and d.step == 7
    x = torch.randn(2, 1, 8, 8)
    # the loaded network and the saved one are two module instances: float32 precision, not bits
    assert_paths_close(d(x, 0.7, 1), NetDenoiser(net)(x, 0.7, 1))
    assert model_kind(f"net:{tmp_path}") == "net"
    m = build_model(RunConfig(model=f"net:{tmp_path}"))
    assert isinstance(m, NetDenoiser) and m.config()["kind"] == "net"


def test_load_net_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_net(tmp_path / "nothing")
    with pytest.raises(ValueError, match="missing config.json"):
        load_net(tmp_path)
    with pytest.raises(ValueError, match="needs a directory"):
        build_model(RunConfig(model="net"))
    write_net(tmp_path)
    d = ckpt.checkpoint_dir(tmp_path)
    data = (d / ckpt.EMA).read_bytes()
    (d / ckpt.EMA).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"ema.safetensors' is truncated or corrupt"):
        load_net(tmp_path)
    (d / ckpt.EMA).write_bytes(b"\x00" * 3)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_net(tmp_path)
    (d / ckpt.EMA).unlink()
    with pytest.raises(ValueError, match="missing"):
        load_net(tmp_path)
    load_net(tmp_path, weights="raw")  # the raw weights are still there


def test_load_net_mismatch_and_bad_config(tmp_path):
    write_net(tmp_path)
    d = ckpt.checkpoint_dir(tmp_path)
    cfg = json.loads((d / ckpt.CONFIG).read_text())
    (d / ckpt.CONFIG).write_text(json.dumps({**cfg, "net": {**cfg["net"], "width": 16}}))
    with pytest.raises(ValueError, match=r"weights do not match the config .*wrong shape"):
        load_net(tmp_path)
    (d / ckpt.CONFIG).write_text(json.dumps({**cfg, "net": {**cfg["net"], "channel_mult": [1, 2, 2]}}))
    with pytest.raises(ValueError, match=r"weights do not match the config .*missing"):
        load_net(tmp_path)
    (d / ckpt.CONFIG).write_text(json.dumps({**cfg, "net": {**cfg["net"], "padding": "mirror"}}))
    with pytest.raises(ValueError, match="config .* is invalid"):
        load_net(tmp_path)
    (d / ckpt.CONFIG).write_text('{"kind": "unet", "net": ')
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_net(tmp_path)
    (d / ckpt.CONFIG).write_text(json.dumps({**cfg, "kind": "classifier"}))
    with pytest.raises(ValueError, match="not a diffusion network"):
        load_net(tmp_path)


def test_logsnr_embedding_is_finite_over_the_range():
    from critdiff.nets.unet import logsnr_embedding

    e = logsnr_embedding(torch.linspace(-30, 30, 7), 16)
    assert e.shape == (7, 32) and bool(torch.isfinite(e).all())
    torch.testing.assert_close(e[:, :16] ** 2 + e[:, 16:] ** 2, torch.ones(7, 16))
    assert math.isclose(float(e[3, 0]), 0.0, abs_tol=1e-7)  # sin(0)
