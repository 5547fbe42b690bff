"""Global model: speciation, two-point bifurcation, and the full-stencil patch model."""

import math

import numpy as np
import pytest
import torch

from critdiff.stencil import Stencil
from critdiff.theory.critical import critical_point
from critdiff.theory.global_model import (covariance_eigenvalues, shift_augmented, speciation,
                                          twopoint_amplitude, twopoint_bifurcation)
from critdiff.theory.pool import patch_pool
from critdiff.theory.spectrum import stiffness_spectrum


def global_denoiser(train, x, sigma):
    y = train.reshape(train.shape[0], -1)
    w = torch.softmax(-((x.reshape(1, -1) - y) ** 2).sum(1) / (2 * sigma**2), 0)
    return (w @ y).reshape(x.shape)


def test_speciation_is_top_eigenvalue_and_unstable_direction():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(12, 1, 3, 3, generator=g, dtype=torch.float64)
    sp = speciation(train, "ve")
    mean = train.mean(0)
    # dense oracle: Jacobian of the global denoiser at the data mean and very high noise ~ Cov / sigma^2
    s = 1e3
    J = torch.autograd.functional.jacobian(lambda v: global_denoiser(train, v.reshape(mean.shape), s).reshape(-1),
                                           mean.reshape(-1)) * s**2
    assert math.isclose(sp.lambda_max, float(torch.linalg.eigvalsh(0.5 * (J + J.T))[-1]), rel_tol=1e-5)
    assert math.isclose(sp.logsnr_c, -math.log(sp.lambda_max))
    assert math.isclose(float(covariance_eigenvalues(train)[0]), sp.lambda_max, rel_tol=1e-12)


@pytest.mark.parametrize("amp", [0.5, 2.0])
def test_twopoint_bifurcation_diagram(amp):
    lam = np.linspace(-6, 6, 121)
    b = twopoint_bifurcation(amp, lam)
    assert math.isclose(b.logsnr_c, -2 * math.log(amp))
    for l, xp, zs in zip(lam, b.x_plus, b.zero_stable):
        snr = math.exp(l)
        if snr * amp**2 <= 1:
            assert math.isnan(xp) and zs
        else:
            assert not zs and 0 < xp <= amp
            assert abs(xp - amp * math.tanh(amp * xp * snr)) < 1e-12  # a fixed point of D
            assert amp**2 * snr * (1 - math.tanh(amp * xp * snr) ** 2) < 1  # and a stable one
    # near the pitchfork x*^2 ~ 3 (snr a^2 - 1) / (a^4 snr^3) (Landau expansion of tanh)
    eps = 1e-3
    snr = (1 + eps) / amp**2
    from critdiff.theory.global_model import twopoint_fixed_point
    assert math.isclose(twopoint_fixed_point(amp, snr) ** 2, 3 * eps / (amp**4 * snr**3), rel_tol=5e-3)


def test_twopoint_patch_equals_global_speciation():
    x = torch.tensor([0.7, -0.7] * 5, dtype=torch.float64)[:, None, None, None].expand(10, 1, 4, 4).clone()
    a = twopoint_amplitude(x)
    assert math.isclose(a, 0.7 * 4)
    sp = speciation(x)
    cp = critical_point(patch_pool(x, Stencil.full(4, 4)), "ve", weights="uniform", growth=False)
    assert math.isclose(cp.logsnr_c, sp.logsnr_c, rel_tol=1e-9)
    assert math.isclose(twopoint_bifurcation(a, [0.0]).logsnr_c, sp.logsnr_c, rel_tol=1e-12)
    assert twopoint_amplitude(torch.randn(5, 1, 4, 4, dtype=torch.float64)) is None


@pytest.mark.parametrize("weights", ["uniform", "exact"])
def test_full_stencil_patch_model_is_global_model_on_shifts(weights):
    g = torch.Generator().manual_seed(3)
    H, W = 3, 4
    train = torch.randn(3, 1, H, W, generator=g, dtype=torch.float64)
    aug = shift_augmented(train)
    pool = patch_pool(train, Stencil.full(H, W))
    sigma, m = 1.1, 0.2
    spec = stiffness_spectrum(pool, sigma, [m], weights=weights)
    if weights == "uniform":
        dense = covariance_eigenvalues(aug).numpy()
        theory = np.sort(spec.cov_eigs.real.reshape(-1).numpy())[::-1]
        assert np.allclose(theory, dense, atol=1e-10)
    else:
        x = torch.full((1, H, W), m, dtype=torch.float64)
        J = torch.autograd.functional.jacobian(lambda v: global_denoiser(aug, v.reshape(x.shape), sigma).reshape(-1),
                                               x.reshape(-1))
        dense = np.sort_complex(np.linalg.eigvals(J.numpy()))
        theory = np.sort_complex(spec.cov_eigs.reshape(-1).numpy() / sigma**2)
        assert np.allclose(theory, dense, atol=1e-10)
