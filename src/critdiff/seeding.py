"""The one way critdiff derives sub-seeds from a run's seed: :func:`derive` (numpy ``SeedSequence`` spawn keys).

A run has one user seed. Every random stream inside it (the initial noise of sample ``j``, the sampler noise,
the probe vectors at step ``i``, the kicks, the bootstrap of a table, the classifier's batches) gets its own
sub-seed ``derive(seed, *path)``, where ``path`` names the stream (strings) and indexes it (integers)::

    derive(seed, j)                     # sample j: the same as numpy.random.SeedSequence(seed).spawn(n)[j]
    derive(seed, "sampler-noise")       # a named stream
    derive(seed, "spectral-probe", i)   # step i of a named stream

It is ``SeedSequence(seed, spawn_key=path)`` (integers as given, names as ``2**32 + crc32(name)`` so they never
meet an index), reduced to a non-negative 63-bit integer that ``torch.Generator.manual_seed`` and
``numpy.random.default_rng`` both accept. Streams are statistically independent and stable across versions;
no stream is ``seed + k`` of another.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


def _key(part: "int | str") -> int:
    if isinstance(part, str):
        return (1 << 32) + zlib.crc32(part.encode("utf-8"))
    if isinstance(part, bool) or not isinstance(part, (int, np.integer)) or int(part) < 0:
        raise TypeError(f"path: expected names (str) or indices (int >= 0), got {part!r}")
    return int(part)


def derive(seed: int, *path: "int | str") -> int:
    """The sub-seed of ``seed`` for the stream ``path`` (module docstring); ``derive(seed)`` is ``seed``'s own."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise TypeError(f"seed: expected an integer >= 0, got {seed!r}")
    ss = np.random.SeedSequence(int(seed), spawn_key=tuple(_key(p) for p in path))
    return int(ss.generate_state(1, np.uint64)[0] >> 1)


def generator(seed: int, *path: "int | str", device: "torch.device | str" = "cpu") -> torch.Generator:
    """A torch generator seeded with ``derive(seed, *path)``."""
    return torch.Generator(device=device).manual_seed(derive(seed, *path))
