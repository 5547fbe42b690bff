"""derive: the one sub-seed rule, against numpy's SeedSequence spawning written out here."""

import numpy as np
import pytest
import torch

from critdiff import samplers as SM
from critdiff.seeding import derive, generator


def test_indices_are_seedsequence_spawn():
    kids = np.random.SeedSequence(11).spawn(5)
    assert [derive(11, j) for j in range(5)] == [int(k.generate_state(1, np.uint64)[0] >> 1) for k in kids]
    g = SM.seed_generators(11, 5)
    assert [gg.initial_seed() for gg in g] == [derive(11, j) for j in range(5)]  # per-sample noise unchanged


def test_names_are_distinct_stable_and_in_range():
    names = ["sampler-noise", "kicks", "linear-response", "spectral-probe", "random-centres", "batches"]
    seeds = ({derive(3, n) for n in names} | {derive(3, j) for j in range(100)}
             | {derive(3, "spectral-probe", i) for i in range(50)})
    assert len(seeds) == len(names) + 100 + 50
    assert all(0 <= s < 2**63 for s in seeds)
    assert derive(3, "kicks") == derive(3, "kicks") != derive(4, "kicks")
    assert derive(3, "a", "b") != derive(3, "b", "a")
    assert derive(3) == int(np.random.SeedSequence(3).generate_state(1, np.uint64)[0] >> 1)
    a = torch.randn(4, generator=generator(3, "kicks"))
    assert torch.equal(a, torch.randn(4, generator=torch.Generator().manual_seed(derive(3, "kicks"))))


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_bad_seed(bad):
    with pytest.raises(TypeError, match="seed"):
        derive(bad, "x")


def test_bad_path():
    with pytest.raises(TypeError, match="path"):
        derive(0, -2)
    with pytest.raises(TypeError, match="path"):
        derive(0, 1.5)
