"""Denoiser contract: conversions, edge wrappers, discrete timesteps, guidance and NFE counting."""

import math

import pytest
import torch

from critdiff import denoisers as DN
from critdiff.guidance import Guided, constant, guided
from critdiff.scores.gaussian import GaussianScore


def _data(n=64, seed=0, C=1, H=3, W=3):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, C, H, W, generator=g, dtype=torch.float64)
    return torch.nn.functional.avg_pool2d(torch.nn.functional.pad(base, (1, 1, 1, 1), mode="circular"), 3, 1) + 0.2


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_conversions_round_trip(dtype, tol):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 2, 4, 4, generator=g).to(dtype)
    x0 = torch.randn(5, 2, 4, 4, generator=g).to(dtype)
    sigma = torch.tensor([0.01, 0.3, 1.0, 5.0, 80.0], dtype=dtype)
    for fwd, inv in [(DN.x0_to_eps, DN.eps_to_x0), (DN.x0_to_score, DN.score_to_x0), (DN.x0_to_v, DN.v_to_x0)]:
        assert torch.allclose(inv(x, fwd(x, x0, sigma), sigma), x0, rtol=tol * 100, atol=tol * 100)


def test_v_matches_vp_definition():
    """v = a eps - s x0 in the VP frame z = a x0 + s eps, with a^2 + s^2 = 1."""
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(3, 1, 2, 2, generator=g, dtype=torch.float64), torch.randn(3, 1, 2, 2, generator=g, dtype=torch.float64)
    a, s = 0.8, 0.6
    x = (a * x0 + s * eps) / a
    sigma = s / a
    assert torch.allclose(DN.x0_to_v(x, x0, sigma), a * eps - s * x0, atol=1e-12)


@pytest.mark.parametrize("prediction", DN.PREDICTIONS)
def test_preconditioned_wrapper_reproduces_the_denoiser(prediction):
    """A network that outputs the exact eps / v / x0 of a Gaussian model, given the VP input and
    logsnr, wrapped by Preconditioned, must give back that model's denoiser."""
    model = GaussianScore(_data())

    def net(z, c_noise, label):
        sigma = torch.exp(-0.5 * c_noise)
        x = z * torch.sqrt(1 + sigma**2).reshape(-1, 1, 1, 1)
        d = model(x, sigma)
        return {"eps": DN.x0_to_eps, "v": DN.x0_to_v, "x0": lambda x, d, s: d}[prediction](x, d, sigma)

    wrapped = DN.Preconditioned(net, prediction)
    x = torch.randn(4, 1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 2
    sigma = torch.tensor([0.05, 0.5, 2.0, 20.0], dtype=torch.float64)
    assert torch.allclose(wrapped(x, sigma), model(x, sigma), rtol=1e-10, atol=1e-10)


def test_discrete_time_noise_exact_on_grid_and_monotone():
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    ac = torch.cumprod(1 - betas, 0)
    m = DN.DiscreteTimeNoise(ac)
    sig = m.sigmas()
    idx = torch.tensor([0, 1, 17, 500, 999])
    assert torch.allclose(m(sig[idx]), idx.to(torch.float64), atol=1e-9)
    mid = torch.sqrt(sig[10] * sig[11]).reshape(1)
    assert 10 < float(m(mid)) < 11
    assert float(DN.DiscreteTimeNoise(ac, quantize=True)(mid)) in (10.0, 11.0)
    with pytest.raises(ValueError, match="alphas_cumprod"):
        DN.DiscreteTimeNoise(torch.tensor([0.5, 0.9]))


def test_as_sigma_and_labels_errors():
    x = torch.zeros(3, 1, 2, 2)
    assert DN.as_sigma(0.5, x).shape == (3,)
    for bad in (0.0, -1.0, float("nan"), torch.ones(2)):
        with pytest.raises(ValueError, match="sigma"):
            DN.as_sigma(bad, x)
    assert DN.as_labels(2, 3).tolist() == [2, 2, 2]
    with pytest.raises(TypeError, match="label"):
        DN.as_labels(torch.ones(3), 3)
    with pytest.raises(ValueError, match="label"):
        DN.as_labels(torch.ones(2, dtype=torch.long), 3)


class _Probe:
    """A denoiser that records which labels it saw: D = x * (1 + label) (label None or NULL_LABEL -> x)."""

    def __init__(self):
        self.seen = []

    def __call__(self, x, sigma, label=None):
        self.seen.append(None if label is None else DN.as_labels(label, x.shape[0]).tolist())
        if label is None:
            return x.clone()
        lab = DN.as_labels(label, x.shape[0])
        lab = torch.where(DN.null_mask(lab), torch.zeros_like(lab), lab)
        return x * (1 + lab.to(x.dtype).reshape(-1, 1, 1, 1))


@pytest.mark.parametrize("w, calls", [(0.0, 1), (1.0, 1), (2.5, 2)])
def test_guidance_formula_and_nfe(w, calls):
    base = _Probe()
    counted = DN.CountingDenoiser(base)
    D = guided(counted, w)
    x = torch.ones(2, 1, 2, 2)
    out = D(x, 1.0, 3)
    d_u, d_c = x, 4 * x
    assert torch.allclose(out, d_u + w * (d_c - d_u))
    # one model call per guided step, at batch 2B where 0 != w != 1, else at batch B
    assert counted.calls == 1 and counted.evaluations == 2 * calls and D.nfe.tolist() == [calls, calls]


def test_per_sample_guidance_spends_one_call_where_w_is_0_or_1():
    counted = DN.CountingDenoiser(_Probe())
    D = Guided(counted, lambda s: torch.tensor([0.0, 1.0, 3.0]))
    x = torch.ones(3, 1, 1, 1)
    out = D(x, 1.0, torch.tensor([1, 1, 1]))
    assert out.flatten().tolist() == [1.0, 2.0, 1.0 + 3.0 * (2.0 - 1.0)]
    assert D.nfe.tolist() == [1, 1, 2]
    # one call holding the rows that are needed: [u0, u2 | c1, c2]
    assert counted.calls == 1 and counted.evaluations == 4
    assert counted.denoiser.seen == [[DN.NULL_LABEL, DN.NULL_LABEL, 1, 1]]


class _RawEps:
    """An eps-network denoiser offering the raw-output guidance protocol of :mod:`critdiff.guidance`:
    ``F = eps(x, sigma, label) = tanh(x / sqrt(1 + sigma^2)) + 0.1 label`` and ``D = clip(x - sigma F)``."""

    def __init__(self, clip=None):
        self.clip, self.raw_calls, self.finishes = clip, [], 0

    def guidance_output(self, x, sigma, label=None):
        s = DN.as_sigma(sigma, x).reshape(-1, 1, 1, 1)
        self.raw_calls.append(x.shape[0])
        lab = DN.as_labels(label, x.shape[0])
        lab = None if lab is None else torch.where(DN.null_mask(lab), torch.zeros_like(lab), lab)
        shift = 0.0 if lab is None else 0.1 * lab.to(x.dtype).reshape(-1, 1, 1, 1)
        return torch.tanh(x / torch.sqrt(1 + s * s)) + shift

    def guidance_x0(self, x, sigma, out):
        self.finishes += 1
        d = x - DN.as_sigma(sigma, x).reshape(-1, 1, 1, 1) * out
        return d if self.clip is None else d.clamp(-self.clip, self.clip)

    def __call__(self, x, sigma, label=None):
        return _RawEps.guidance_x0(self, x, sigma, self.guidance_output(x, sigma, label))


def test_guidance_mixes_the_raw_output_of_a_denoiser_that_offers_it():
    x = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2.0
    lab = torch.tensor([1, 2, 3])
    w = lambda s: torch.tensor([0.0, 1.0, 7.5], dtype=torch.float64)  # noqa: E731
    raw = _RawEps()
    plain = _Plain(_RawEps())
    assert isinstance(raw, DN.GuidanceOutput) and not isinstance(plain, DN.GuidanceOutput)
    got, ref = Guided(raw, w)(x, 2.0, lab), Guided(plain, w)(x, 2.0, lab)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)  # the same D_w in exact arithmetic
    # one conversion and one raw call of the 4 rows needed (w = 0 / 1 spend one row each)
    assert raw.finishes == 1 and raw.raw_calls == [4]
    G = Guided(raw, w)
    G(x, 2.0, lab)
    assert G.nfe.tolist() == [1, 1, 2]
    # a clip inside guidance_x0 applies to the guided result (as diffusers clips it), not to each branch
    clipped = Guided(_RawEps(clip=1.0), constant(7.5))(x, 2.0, lab)
    f_u, f_c = raw.guidance_output(x, 2.0), raw.guidance_output(x, 2.0, lab)
    torch.testing.assert_close(clipped, (x - 2.0 * (f_u + 7.5 * (f_c - f_u))).clamp(-1, 1), rtol=0, atol=1e-12)


class _Plain:
    """The same denoiser without the raw-output protocol (guided on ``D``)."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, x, sigma, label=None):
        return self.inner(x, sigma, label)


class _GaussEps(_RawEps):
    """The eps network of ``N(0.01 label, I)``: ``F = (x - 0.01 label) / sqrt(1 + sigma^2)`` (``D = O(1)``)."""

    def guidance_output(self, x, sigma, label=None):
        s = DN.as_sigma(sigma, x).reshape(-1, 1, 1, 1)
        lab = DN.as_labels(label, x.shape[0])
        lab = None if lab is None else torch.where(DN.null_mask(lab), torch.zeros_like(lab), lab)
        mu = 0.0 if lab is None else 0.01 * lab.to(x.dtype).reshape(-1, 1, 1, 1)
        return (x - mu) / torch.sqrt(1 + s * s)


def test_raw_output_guidance_avoids_the_float32_cancellation_at_large_sigma():
    # D = x - sigma eps with x ~ sigma = 157: D_c - D_u cancels two numbers of size ~|x|, whose float32
    # rounding (~ulp(|x|) / 2 each) the weight multiplies; mixing eps first leaves the rounding of one
    # sigma F_w (<= ulp(|x|) / 2, plus sigma times the rounding of F_w, ~1 ulp of F): <= eps |x| in all
    sigma, w = 157.0, 7.5
    x = (torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * sigma).float()
    lab = torch.tensor([1, 2, 3, 4])
    model = _GaussEps()
    f_u, f_c = (model.guidance_output(x, sigma, lb).double() for lb in (None, lab))  # the float32 outputs
    exact = x.double() - sigma * (f_u + w * (f_c - f_u))  # float64 oracle on the same network outputs
    err_raw = float((Guided(model, constant(w))(x, sigma, lab).double() - exact).abs().max())
    err_d = float((Guided(_Plain(_GaussEps()), constant(w))(x, sigma, lab).double() - exact).abs().max())
    bound = float(torch.finfo(torch.float32).eps) * float(x.abs().max())
    assert err_raw <= bound < err_d, (err_raw, bound, err_d)


def test_unconditional_call_ignores_guidance():
    counted = DN.CountingDenoiser(_Probe())
    D = guided(counted, constant(7.0))
    D(torch.ones(2, 1, 1, 1), 1.0, None)
    assert counted.calls == 1 and counted.denoiser.seen == [None]
