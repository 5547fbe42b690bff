"""One contract that every denoiser critdiff ships must pass (DESIGN.md section 1).

A denoiser is ``D(x [B, C, H, W], sigma, label=None) -> x0_hat [B, C, H, W]`` in the variance-exploding frame;
``sigma`` is a python float, a 0-d tensor or a ``[B]`` tensor; ``label`` is None (unconditional), an int or a
LongTensor ``[B]``. Every check below runs on every shipped denoiser, each built small (8x8, one channel):

- ``empirical``, ``patch-ls``, ``patch-els``, ``patch-els-zero``, ``patch-els-valid`` (zero padding, the
  Kamb & Ganguli pool), ``gaussian-full``, ``gaussian-stationary``: the analytic models of ``critdiff.scores``;
- ``net``: a critdiff UNet with random weights, written as a checkpoint folder and read back by ``load_net``
  (the loader behind ``--model net:DIR``);
- ``diffusers-eps`` (class-conditional, the scheduler's default ``clip_sample=True``) and ``diffusers-v``
  (unconditional, no clipping): the diffusers adapter on a random tiny ``UNet2DModel``;
- ``guided-empirical`` (a box pulse of height 3 around logsnr 0 over the class-conditional empirical model,
  baseline 1, so one sample of a batch can sit inside the pulse and its neighbour outside) and ``guided-net``
  (constant w = 2 over the conditional UNet): :func:`critdiff.guidance.guided`.

Tolerances. Batch independence and per-sample sigma are compared with ``|a - b| <= TOL * max(1, |b|)``:
``TOL[float64] = 1e-12``, ``TOL[float32] = 1e-5`` (GEMM tiles and convolution algorithms change with the
batch size, so equality is only up to rounding). The networks compute in float32 whatever the input dtype, so
they get the float32 tolerance for float64 inputs too. The equivalent forms of one sigma or one label take other
conversion paths (a broadcast scalar against a [B] tensor), so they get the same tolerance; only determinism (the
same call repeated) is checked bit for bit.

Closed-form limits (oracles independent of critdiff.scores): as sigma -> 0 the empirical model returns the
nearest training image, the patch models the centre of the nearest pool patch (``tests/oracles.py``, a
float64 loop), the Gaussian models ``x`` itself (their covariances are full rank: 72 images per class for 64
pixels), and a preconditioned network ``x`` (``c_skip -> 1``, ``c_out -> 0``; clipped when the scheduler
clips); as sigma -> inf the empirical model returns the mean training image, the patch models the mean of the
pool's centre values, the Gaussian models the fitted mean. A network's sigma -> inf limit is whatever it
learnt: no closed form, not checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import pytest
import torch

from critdiff.guidance import guided
from critdiff.guidance_schedules import Pulse
from critdiff.nets.net_denoiser import load_net
from critdiff.scores import EmpiricalScore, GaussianScore, PatchScore
from oracles import naive_patch

pytestmark = pytest.mark.usefixtures("one_thread")

C, H, W = 1, 8, 8
B = 4
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
SIGMA = 0.75  # exact in float32, inside the guided pulse (logsnr 0.575 in [-1, 1])
SIGMAS = (0.3, 0.75, 2.0, 5.0)  # per sample: the pulse is on for the second only
BAD_LABEL = 7  # out of range for every conditional model here (2 classes; 3 embeddings with the null class)


def _images(n_per_class: int, seed: int):
    """``[2 n, C, H, W]`` float64 images of two classes (shifted means), and their labels ``[2 n]``."""
    g = torch.Generator().manual_seed(seed)
    lab = torch.arange(2).repeat_interleave(n_per_class)
    y = torch.tanh(torch.randn(2 * n_per_class, C, H, W, generator=g, dtype=torch.float64)
                   + 0.8 * (2 * lab - 1).reshape(-1, 1, 1, 1).double())
    return y, lab


SMALL = _images(3, 0)  # 6 images: empirical, patch, guided
MANY = _images(72, 1)  # 144 images: each class's 64x64 covariance is full rank


def _x(dtype, seed=5, batch=B, shape=(C, H, W)):
    g = torch.Generator().manual_seed(seed)
    return (1.2 * torch.tanh(torch.randn(batch, *shape, generator=g, dtype=torch.float64))).to(dtype)


# --- closed-form limits (x is float64 [B, C, H, W]; label None or an int) -------------------------
def _pool(data, label):
    y, lab = data
    return y if label is None else y[lab == label]


def nearest_image(data):
    def limit(x, label):
        p = _pool(data, label)
        return p[((x[:, None] - p[None]) ** 2).flatten(2).sum(-1).argmin(1)]
    return limit


def mean_image(data):
    return lambda x, label: _pool(data, label).mean(0).expand_as(x)


def mean_value(data, crop=0):
    """The per-channel mean of the pool's centre values over positions ``crop .. H - 1 - crop``."""
    def limit(x, label):
        p = _pool(data, label)[:, :, crop:H - crop, crop:W - crop]
        return p.mean((0, 2, 3)).reshape(1, C, 1, 1).expand_as(x)
    return limit


def nearest_patch(data, **kw):
    def limit(x, label):
        y, lab = data
        return torch.from_numpy(naive_patch(x, y, sigmas=[1e-9] * x.shape[0], y_labels=lab.tolist(),
                                            labels=[label] * x.shape[0], **kw))
    return limit


def identity(x, label):
    return x


def clipped(x, label):
    return x.clamp(-1.0, 1.0)


@dataclass
class Case:
    D: Callable
    n_classes: int  # 0: unconditional (only label=None is valid)
    net: bool = False  # computes in float32 whatever the input dtype
    limit_zero: Optional[Callable] = None  # D(x, sigma -> 0, label), closed form
    limit_inf: Optional[Callable] = None  # D(x, sigma -> inf, label), closed form
    zero_tol: float = 1e-6  # max abs error allowed at sigma = 1e-4 (see _limit_tolerance)


def _patch(equivariant=True, boundary="periodic", pool="all", labelled=True):
    y, lab = SMALL
    D = PatchScore(y, "square:3", equivariant=equivariant, boundary=boundary, pool=pool,
                   labels=lab if labelled else None)
    crop = 1 if pool == "valid" else 0
    inf = (mean_image if not equivariant else lambda d: mean_value(d, crop))(SMALL)
    zero = nearest_patch(SMALL, stencil="square:3", equivariant=equivariant, boundary=boundary, pool=pool)
    return Case(D, 2 if labelled else 0, limit_zero=zero, limit_inf=inf)


def _net(tmp_path_factory):
    from test_nets import write_net  # a randomised tiny UNet (8x8, 3 classes) saved as a checkpoint

    root = tmp_path_factory.mktemp("net")
    write_net(root, prediction="eps", seed=0)
    return load_net(root)


def _diffusers(prediction_type):
    diffusers = pytest.importorskip("diffusers")
    from critdiff.nets.diffusers_adapter import DiffusersDenoiser
    from test_diffusers import _unet  # a random tiny UNet2DModel (8x8, attention blocks)

    if prediction_type == "epsilon":
        D = DiffusersDenoiser(_unet(seed=2, num_class_embeds=3), diffusers.DDPMScheduler(num_train_timesteps=1000))
        return Case(D, 2, net=True, limit_zero=clipped, zero_tol=1e-3)
    sched = diffusers.DDIMScheduler(num_train_timesteps=1000, prediction_type="v_prediction", clip_sample=False)
    return Case(DiffusersDenoiser(_unet(seed=3), sched), 0, net=True, limit_zero=identity, zero_tol=1e-3)


def _build(name, tmp_path_factory) -> Case:
    y, lab = SMALL
    if name == "empirical":
        return Case(EmpiricalScore(y, labels=lab), 2, limit_zero=nearest_image(SMALL), limit_inf=mean_image(SMALL))
    if name == "patch-ls":
        return _patch(equivariant=False)
    if name == "patch-els":
        return _patch()
    if name == "patch-els-zero":
        return _patch(boundary="zero")
    if name == "patch-els-valid":
        return _patch(boundary="zero", pool="valid", labelled=False)
    if name == "gaussian-full":
        # |D - x| <= sigma^2 / lambda_min |x - mu|: measured 8.5e-6 at sigma = 1e-4 (lambda_min ~ 2e-3)
        return Case(GaussianScore(MANY[0], labels=MANY[1]), 2, limit_zero=identity, limit_inf=mean_image(MANY),
                    zero_tol=5e-5)
    if name == "gaussian-stationary":
        return Case(GaussianScore(MANY[0], covariance="stationary"), 0, limit_zero=identity,
                    limit_inf=mean_value(MANY), zero_tol=1e-5)
    if name == "net":
        return Case(_net(tmp_path_factory), 3, net=True, limit_zero=identity, zero_tol=1e-3)
    if name == "diffusers-eps":
        return _diffusers("epsilon")
    if name == "diffusers-v":
        return _diffusers("v_prediction")
    if name == "guided-empirical":
        # the pulse is off (w = baseline = 1, the conditional model) at both ends of the sigma axis
        D = guided(EmpiricalScore(y, labels=lab), Pulse(centre=0.0, width=2.0, height=3.0))
        return Case(D, 2, limit_zero=nearest_image(SMALL), limit_inf=mean_image(SMALL))
    if name == "guided-net":
        return Case(guided(_net(tmp_path_factory), 2.0), 3, net=True, limit_zero=identity, zero_tol=1e-3)
    raise AssertionError(name)


NAMES = ["empirical", "patch-ls", "patch-els", "patch-els-zero", "patch-els-valid", "gaussian-full",
         "gaussian-stationary", "net", "diffusers-eps", "diffusers-v", "guided-empirical", "guided-net"]
DTYPES = [torch.float32, torch.float64]


@pytest.fixture(scope="module", params=NAMES)
def case(request, tmp_path_factory) -> Case:
    return _build(request.param, tmp_path_factory)


def _tol(case: Case, dtype) -> float:
    return TOL[torch.float32] if case.net else TOL[dtype]


def assert_close(got, want, tol, what=""):
    want = want.to(got.dtype)
    err = float((got.detach() - want).abs().max())
    scale = max(1.0, float(want.abs().max()))
    assert err <= tol * scale, f"{what}: max abs error {err:.3e} > {tol:.1e} x {scale:.3g}"


def _labels(case: Case):
    """The label forms to try: None always; an int and a mixed [B] tensor for a conditional model."""
    return [None] if case.n_classes == 0 else [None, 1, torch.tensor([0, 1, 1, 0])]


# --- shapes, dtypes, sigma and label forms --------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_shape_and_dtype_follow_the_input(case, dtype):
    x = _x(dtype)
    for label in _labels(case):
        out = case.D(x, SIGMA, label)
        assert isinstance(out, torch.Tensor) and out.shape == (B, C, H, W) and out.dtype == dtype, label
        assert not torch.equal(out, x)  # the output is computed, not the input handed back


def test_scalar_sigma_forms_agree(case):
    x = _x(torch.float32)
    ref = case.D(x, SIGMA)
    for sigma in (torch.tensor(SIGMA, dtype=torch.float64), torch.tensor(SIGMA, dtype=torch.float32),
                  torch.full((B,), SIGMA, dtype=torch.float64), torch.full((B,), SIGMA, dtype=torch.float32)):
        # a scalar and a [B] tensor reach the model by other conversions: the dtype's precision, not bits
        assert_close(case.D(x, sigma), ref, _tol(case, torch.float32), f"sigma {sigma}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_per_sample_sigma_equals_separate_calls(case, dtype):
    x = _x(dtype)
    sig = torch.tensor(SIGMAS, dtype=torch.float64)
    label = None if case.n_classes == 0 else torch.tensor([1, 0, 1, 1])
    out = case.D(x, sig, label)
    for j in range(B):
        one = case.D(x[j:j + 1], SIGMAS[j], None if label is None else int(label[j]))
        assert_close(out[j:j + 1], one, _tol(case, dtype), f"sample {j} at sigma {SIGMAS[j]}")
    assert float((out[1] - case.D(x[1:2], SIGMAS[0], None if label is None else 0)[0]).abs().max()) > 1e-4


def test_label_forms_and_effect(case):
    x = _x(torch.float64)
    if case.n_classes == 0:
        case.D(x, SIGMA, None)
        with pytest.raises(ValueError, match=r"^label"):
            case.D(x, SIGMA, 0)
        return
    one = case.D(x, SIGMA, 1)
    for form in (torch.tensor(1), torch.full((B,), 1, dtype=torch.long), torch.full((B,), 1, dtype=torch.int32)):
        # an int and a tensor label take other conversion paths: the dtype's precision, not bits
        assert_close(case.D(x, SIGMA, form), one, _tol(case, torch.float64), f"label {form}")
    mixed = torch.tensor([0, 1, 1, 0])
    out = case.D(x, SIGMA, mixed)
    for j in range(B):
        assert_close(out[j:j + 1], case.D(x[j:j + 1], SIGMA, int(mixed[j])), _tol(case, torch.float64), f"sample {j}")
    zero, none = case.D(x, SIGMA, 0), case.D(x, SIGMA, None)
    assert float((one - zero).abs().max()) > 1e-3, "the label does not change the output"
    assert float((one - none).abs().max()) > 1e-3, "label=1 gives the unconditional output"


# --- batch independence, determinism, finiteness -------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_independence(case, dtype):
    x = _x(dtype, seed=6)
    label = None if case.n_classes == 0 else 1
    out = case.D(x, SIGMA, label)
    for j in range(B):
        assert_close(out[j:j + 1], case.D(x[j:j + 1], SIGMA, label), _tol(case, dtype), f"sample {j}")


def test_two_calls_are_bit_for_bit_equal(case):
    x = _x(torch.float32, seed=7)
    label = None if case.n_classes == 0 else torch.tensor([1, 0, 0, 1])
    sig = torch.tensor(SIGMAS)
    assert torch.equal(case.D(x, sig, label), case.D(x, sig, label))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sigma", [1e-4, 1e4])
def test_finite_at_extreme_noise(case, dtype, sigma):
    x = _x(dtype) + (sigma if sigma > 1 else 0.0) * _x(dtype, seed=8)
    for label in _labels(case):
        assert bool(torch.isfinite(case.D(x, sigma, label)).all()), label


# --- closed-form limits -------------------------------------------------------------------------
def _check_limit(case: Case, limit, sigma, tol, dtype):
    if limit is None:
        pytest.skip("no closed form: a network's limit is whatever it learnt")
    x = _x(dtype, seed=9)
    for label in [None] if case.n_classes == 0 else [None, 1]:
        want = limit(x.to(torch.float64), label)
        assert_close(case.D(x, sigma, label), want, tol, f"label {label}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_small_sigma_limit(case, dtype):
    # analytic models: exact up to float rounding (float32 calls are promoted to float64 at small sigma, or
    # are within 1e-6 of it); Gaussians: sigma^2 / lambda_min ~ 1e-7; nets: |D - x| = sigma |F| for eps
    _check_limit(case, case.limit_zero, 1e-4, case.zero_tol, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_sigma_limit(case, dtype):
    # deviation from uniform weights ~ |x - y|^2 / (2 sigma^2) ~ 1e-7 at sigma = 1e4
    _check_limit(case, case.limit_inf, 1e4, 1e-5, dtype)


# --- gradients ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_flow(case, dtype):
    x = _x(dtype, seed=10).requires_grad_(True)
    label = None if case.n_classes == 0 else 1
    (g,) = torch.autograd.grad(case.D(x, SIGMA, label).sum(), x)
    assert g.shape == x.shape and g.dtype == dtype
    assert bool(torch.isfinite(g).all()) and float(g.abs().max()) > 0
    # without a grad-requiring input no graph is kept (the samplers do not switch gradients off, so a graph
    # through the parameters would grow with every step of a run)
    assert not case.D(x.detach(), SIGMA, label).requires_grad
    if dtype == torch.float64 and not case.net:  # against a central difference along one direction
        v = _x(torch.float64, seed=11)
        h = 1e-5
        with torch.no_grad():
            fd = (case.D(x + h * v, SIGMA, label).sum() - case.D(x - h * v, SIGMA, label).sum()) / (2 * h)
        assert float((g * v).sum()) == pytest.approx(float(fd), rel=1e-6, abs=1e-8)


# --- errors -------------------------------------------------------------------------------------
BAD_CALLS = {
    "rank": (lambda D, x: D(x[0], SIGMA), "x"),
    "channels": (lambda D, x: D(torch.cat([x, x], 1), SIGMA), "x"),
    "size": (lambda D, x: D(_x(x.dtype, shape=(C, 2 * H, 2 * W)), SIGMA), "x"),
    "negative sigma": (lambda D, x: D(x, -SIGMA), "sigma"),
    "zero sigma": (lambda D, x: D(x, 0.0), "sigma"),
    "sigma shape": (lambda D, x: D(x, torch.full((B + 1,), SIGMA)), "sigma"),
}


@pytest.mark.parametrize("bad", list(BAD_CALLS))
def test_bad_input_raises_naming_the_argument(case, bad):
    call, name = BAD_CALLS[bad]
    with pytest.raises((ValueError, TypeError), match=rf"^{name}\b") as exc:
        call(case.D, _x(torch.float32))
    assert "\n" not in str(exc.value)


def test_label_out_of_range_raises(case):
    x = _x(torch.float32)
    bad = [0] if case.n_classes == 0 else [BAD_LABEL, -1, torch.tensor([0, 1, BAD_LABEL, 0])]
    for label in bad:
        with pytest.raises(ValueError, match=r"^label\b") as exc:
            case.D(x, SIGMA, label)
        assert "\n" not in str(exc.value)
