"""The multistep weights (critdiff.multistep) against their definitions, computed independently."""

import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import integrate

from critdiff import multistep as MS


def test_adams_bashforth_weights_are_the_textbook_fractions():
    want = {1: [1], 2: [Fraction(3, 2), Fraction(-1, 2)], 3: [Fraction(23, 12), Fraction(-16, 12), Fraction(5, 12)],
            4: [Fraction(55, 24), Fraction(-59, 24), Fraction(37, 24), Fraction(-9, 24)]}
    for order, w in want.items():
        assert np.allclose(MS.adams_bashforth(order), [float(v) for v in w], rtol=0, atol=1e-15)


def _quad(f, a, b):
    return integrate.quad(f, a, b, epsabs=1e-14, epsrel=1e-13, limit=200)[0]


def _lagrange(nodes, j, u):
    return math.prod((u - n) / (nodes[j] - n) for k, n in enumerate(nodes) if k != j)


@pytest.mark.parametrize("nodes, a, b", [([3.0, 5.0, 8.0, 14.0], 3.0, 1.7), ([2.0], 2.0, 0.0), ([0.9, 1.5], 0.9, 0.0)])
def test_lagrange_weights_are_the_integrals_of_the_basis(nodes, a, b):
    got = MS.lagrange_weights(nodes, a, b)
    want = [_quad(lambda t, j=j: _lagrange(nodes, j, t), a, b) for j in range(len(nodes))]
    assert np.allclose(got, want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("nodes, a, b", [([2.0, 3.5, 6.0], 2.0, 1.1), ([2.0, 3.5, 6.0], 2.0, 0.0), ([0.4, 1.0], 0.4, 0.0),
                                         ([5.0], 5.0, 2.0)])
def test_deis_weights_integrate_the_log_rho_basis_in_rho_down_to_zero(nodes, a, b):
    logs = [math.log(n) for n in nodes]
    got = MS.deis_weights(nodes, a, b)
    want = [_quad(lambda r, j=j: _lagrange(logs, j, math.log(r)), a, max(b, 1e-300)) for j in range(len(nodes))]
    assert np.allclose(got, want, rtol=1e-10, atol=1e-12)


def test_unipc_rhos_solve_the_order_conditions_and_b_h_variants():
    h = 0.7
    rks = [-0.8, -1.9]  # two older points, lambda below the current one
    for variant, B in (("bh1", -h), ("bh2", math.expm1(-h))):
        rho, b = MS.unipc_rhos(rks, h, variant, corrector=True)
        assert b == pytest.approx(B, rel=1e-15)
        # the order conditions sum_k rho_k r_k^(i-1) = i! phi_{i+1}(-h) h / B(h), phi from their integrals
        for i in range(1, 4):
            phi = _quad(lambda t: math.exp(-h * (1 - t)) * t ** i / math.factorial(i), 0, 1)  # phi_{i+1}(-h)
            lhs = sum(r * rk ** (i - 1) for r, rk in zip(rho, rks + [1.0]))
            assert lhs == pytest.approx(math.factorial(i) * (-h) * phi / B, rel=1e-9)
    assert MS.unipc_rhos([], h, "bh2", corrector=True)[0] == [0.5]
    assert MS.unipc_rhos([-1.0], h, "bh2", corrector=False)[0] == [0.5]
    assert MS.unipc_rhos([], float("inf"), "bh2", corrector=False) == ([], -1.0)
    with pytest.raises(ValueError, match="variant: expected one of bh1, bh2"):
        MS.unipc_rhos([], h, "bh3", corrector=True)
