"""Batched classifier-free guidance (critdiff.guidance) and the per-sample null label of the denoiser contract
(critdiff.denoisers.NULL_LABEL), on every denoiser kind critdiff ships.

Oracles: the explicit two-call formula ``D_u + w (D_c - D_u)`` (``F_u + w (F_c - F_u)`` converted once for a
denoiser with the raw-output protocol) from two separate calls, and per-sample separate calls for a batch that
mixes null and class labels. The one-call path runs the model at batch 2B (or on a subset of rows) where the
oracle runs it at batch B: GEMM tiles and convolution algorithms change with the batch, so the comparison is
to the dtype's precision (``oracles.assert_paths_close``), scaled by the weight for the guided output.
"""

from __future__ import annotations

import pytest
import torch

from critdiff import denoisers as DN
from critdiff import samplers as SM
from critdiff.denoisers import NULL_LABEL, ClassConditional, GuidanceOutput, LatentDecoder, SampleShaped
from critdiff.guidance import Guided, constant, guided
from critdiff.guidance_schedules import Pulse
from critdiff.probes.calibration import CalibratedPatchScore
from critdiff.schedules import get as get_schedule
from critdiff.schedules import sigma_grid
from critdiff.scores import EmpiricalScore, GaussianScore, PatchScore
from oracles import assert_paths_close

pytestmark = pytest.mark.usefixtures("one_thread")

C, H, W = 1, 8, 8
B = 4


def _images(n_per_class=4, seed=0, classes=2):
    g = torch.Generator().manual_seed(seed)
    lab = torch.arange(classes).repeat_interleave(n_per_class)
    y = torch.tanh(torch.randn(classes * n_per_class, C, H, W, generator=g, dtype=torch.float64)
                   + 0.8 * (2 * lab - 1).reshape(-1, 1, 1, 1).double())
    return y, lab


def _x(dtype, sigma, seed=3, batch=B):
    g = torch.Generator().manual_seed(seed)
    return (0.5 * torch.randn(batch, C, H, W, generator=g, dtype=torch.float64) + sigma
            * torch.randn(batch, C, H, W, generator=g, dtype=torch.float64)).to(dtype)


# --- every denoiser kind: (D, dtype, ulps, K classes other than a null class, sigma) -------------------
def _build(kind, tmp_path_factory):
    y, lab = _images()
    if kind == "empirical":
        return EmpiricalScore(y, labels=lab), torch.float64, 1e3, 2, 0.6
    if kind == "patch":
        return PatchScore(y, "square:3", labels=lab), torch.float64, 1e3, 2, 0.6
    if kind == "patch-ls-float32":
        return PatchScore(y, "square:3", equivariant=False, labels=lab), torch.float32, 256, 2, 0.6
    if kind == "gaussian":
        many, mlab = _images(n_per_class=40, seed=1)
        return GaussianScore(many, labels=mlab, covariance="stationary"), torch.float64, 1e3, 2, 0.6
    if kind == "calibrated-patch":
        return (CalibratedPatchScore(y, [2.0, 0.3], ["square:3", "square:5"], labels=lab), torch.float64, 1e3, 2,
                torch.tensor([2.0, 2.0, 0.3, 0.3], dtype=torch.float64))
    if kind == "net":
        from test_nets import write_net  # a randomised tiny UNet (8x8, 3 classes) saved as a checkpoint

        root = tmp_path_factory.mktemp("net")
        write_net(root, prediction="eps", seed=0)
        from critdiff.nets.net_denoiser import load_net

        return load_net(root), torch.float32, 256, 3, 0.6
    diffusers = pytest.importorskip("diffusers")
    from critdiff.nets.diffusers_adapter import DiffusersDenoiser

    sched = diffusers.DDPMScheduler(num_train_timesteps=1000, clip_sample=False)
    if kind == "diffusers-class":
        from test_diffusers import _unet

        return DiffusersDenoiser(_unet(seed=2, num_class_embeds=3), sched), torch.float32, 256, 2, 2.0  # null: 2
    if kind == "diffusers-text":
        from critdiff.integrations.diffusers import TextConditioning
        from test_diffusers_conditional import text_states, text_unet

        cond, null = text_states(prompts=2)
        return (DiffusersDenoiser(text_unet(), sched, conditioning=TextConditioning(cond, null)), torch.float32, 256,
                2, 2.0)
    if kind == "diffusers-dit":
        from test_diffusers_conditional import dit

        return DiffusersDenoiser(dit(classes=3), sched), torch.float32, 256, 3, 2.0  # null class 3
    raise AssertionError(kind)


KINDS = ["empirical", "patch", "patch-ls-float32", "gaussian", "calibrated-patch", "net", "diffusers-class",
         "diffusers-text", "diffusers-dit"]


@pytest.fixture(scope="module", params=KINDS)
def kind(request, tmp_path_factory):
    return request.param, _build(request.param, tmp_path_factory)


def _two_call_oracle(D, x, sigma, lab, w):
    """``D_u + w (D_c - D_u)`` from two separate calls at batch B (raw outputs for a GuidanceOutput model)."""
    wb = torch.as_tensor(w, dtype=torch.float64).reshape(-1, 1, 1, 1).to(x.dtype)
    if isinstance(D, GuidanceOutput):
        f_u, f_c = D.guidance_output(x, sigma, None), D.guidance_output(x, sigma, lab)
        return D.guidance_x0(x, sigma, f_u + wb * (f_c - f_u))
    d_u, d_c = D(x, sigma, None), D(x, sigma, lab)
    return d_u + wb * (d_c - d_u)


@pytest.mark.parametrize("weights", ["constant", "per-sample"])
def test_one_call_guidance_equals_the_two_call_formula(kind, weights):
    name, (D, dtype, ulps, K, sigma) = kind
    x = _x(dtype, 0.6)
    lab = torch.arange(B) % K
    w = torch.tensor([2.5] * B if weights == "constant" else [0.0, 1.0, 2.5, -0.5], dtype=torch.float64)
    fn = constant(2.5) if weights == "constant" else (lambda s: w)
    counted = DN.CountingDenoiser(D)
    with torch.no_grad():
        g = Guided(D if isinstance(D, GuidanceOutput) else counted, fn)
        got = g(x, sigma, lab)
        want = _two_call_oracle(D, x, sigma, lab, w)
    assert g.nfe.tolist() == ([2] * B if weights == "constant" else [1, 1, 2, 2])
    if not isinstance(D, GuidanceOutput):
        # one call of the rows that are needed: 2B, or B + (samples with 0 != w != 1)
        assert counted.calls == 1 and counted.evaluations == int(g.nfe.sum())
    # batch 2B (or a subset of rows) against two calls at batch B; the weight multiplies the difference
    assert_paths_close(got, want, ulps=ulps * 4)
    with torch.no_grad():
        plain = D(x, sigma, lab)
    assert float((got - plain).abs().max()) > 1e-6  # guidance changes the output: the test can fail


def test_mixed_null_and_class_labels_equal_separate_calls(kind):
    name, (D, dtype, ulps, K, sigma) = kind
    x = _x(dtype, 0.6, seed=4)
    lab = torch.tensor([0, NULL_LABEL, K - 1, NULL_LABEL])
    sig = sigma if not isinstance(sigma, torch.Tensor) else sigma
    with torch.no_grad():
        out = D(x, sig, lab)
        for j in range(B):
            sj = sig if not isinstance(sig, torch.Tensor) else float(sig[j])
            one = D(x[j:j + 1], sj, None if int(lab[j]) == NULL_LABEL else int(lab[j]))
            # one sample against a batch of four: other GEMM tiles, the dtype's precision
            assert_paths_close(out[j:j + 1], one, ulps=ulps, msg=lambda m, j=j: f"{name} sample {j}: {m}")
        all_null = D(x, sig, torch.full((B,), NULL_LABEL))
        assert_paths_close(all_null, D(x, sig, None), ulps=ulps)
        assert float((out[0] - all_null[0]).abs().max()) > 1e-6  # the class label matters: the test can fail


@pytest.mark.parametrize("w, evals", [(3.0, 2), (0.0, 1), (1.0, 1)])
def test_guided_sampling_makes_one_model_call_per_step(w, evals):
    y, lab = _images()
    counted = DN.CountingDenoiser(EmpiricalScore(y, labels=lab))
    sig = sigma_grid(get_schedule("vp-cosine"), 6, "logsnr")
    x = SM.initial_noise((B, C, H, W), sig, SM.seed_generators(0, B), dtype=torch.float64)
    g = guided(counted, w)
    with torch.no_grad():
        SM.sample_ddim(g, x, sig, label=torch.arange(B) % 2)
    steps = len(sig) - 1
    assert counted.calls == steps  # one call per step
    assert counted.evaluations == evals * B * steps  # at batch 2B where 0 != w != 1, else at batch B
    assert g.nfe.tolist() == [evals * steps] * B


def test_a_pulse_counts_what_it_evaluates():
    y, lab = _images()
    counted = DN.CountingDenoiser(EmpiricalScore(y, labels=lab))
    sig = sigma_grid(get_schedule("vp-cosine"), 12, "logsnr")
    x = SM.initial_noise((B, C, H, W), sig, SM.seed_generators(0, B), dtype=torch.float64)
    pulse = Pulse(centre=torch.tensor([-2.0, 0.0, 2.0, 20.0]), width=2.0, height=3.0)  # the last never fires
    g = Guided(counted, pulse)
    with torch.no_grad():
        SM.sample_ddim(g, x, sig, label=torch.arange(B) % 2)
    assert counted.calls == len(sig) - 1
    assert counted.evaluations == int(g.nfe.sum())
    torch.testing.assert_close(g.nfe.double(), pulse.grid_nfe(sig, batch=B))
    assert g.nfe.tolist()[3] == len(sig) - 1 and g.nfe.tolist()[1] > len(sig) - 1


def test_preconditioned_maps_the_null_label_to_its_null_class():
    seen = []

    def net(z, c_noise, label):
        seen.append(label.tolist())
        return torch.zeros_like(z)

    D = DN.Preconditioned(net, "eps", null_class=5)
    D(torch.zeros(3, 1, 2, 2), 1.0, torch.tensor([0, NULL_LABEL, 2]))
    assert seen == [[0, 5, 2]]


def test_labels_out_of_range_name_the_null_label():
    y, lab = _images()
    with pytest.raises(ValueError, match=r"^label: .*NULL_LABEL \(-1"):
        PatchScore(y, "square:3", labels=lab)(_x(torch.float64, 0.5), 0.5, torch.tensor([0, 1, -2, 0]))
    with pytest.raises(ValueError, match=r"^label: expected values in \[0, 1\] or NULL_LABEL"):
        GaussianScore(y, labels=lab, covariance="stationary")(_x(torch.float64, 0.5), 0.5, torch.tensor([0, 5, 0, 0]))


def test_capabilities_are_protocols(kind):
    name, (D, *_rest) = kind
    assert isinstance(D, ClassConditional) and D.n_classes >= 2
    assert isinstance(D, GuidanceOutput) == name.startswith("diffusers")
    assert isinstance(D, LatentDecoder) == name.startswith("diffusers")
    assert isinstance(D, SampleShaped) == (name == "net" or name.startswith("diffusers"))
