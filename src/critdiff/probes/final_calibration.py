"""Calibration for the final sample: per-level stencils chosen by the agreement of the final images.

The per-level calibration (:mod:`critdiff.probes.calibration`) picks at each level ``i`` the candidate whose
denoiser is nearest the network's on the network's states. That is not choosing for the agreement of the final
samples (docs/agreement.md: LS everywhere beat it on the 1781-step net). This rule searches a small family of
per-level assignments and keeps the one whose deterministic DDIM samples agree best with the network's:

- ``hi``: the LS family's per-level winner (smallest relative L2 among the ``ls:`` candidates) at every level;
- ``k0``: the first level at which the per-level calibration picks a non-LS candidate (``T`` if none);
- for each low-noise family ``f`` offered (``els``, ``boundary``) and each switch level ``k`` in
  ``k0, k0 + stride, ... < T``: ``f@k`` = ``hi`` at levels ``< k`` and ``f``'s per-level winner at levels ``>= k``;
- ``ls@T`` (LS at every level) and ``per-time`` (the per-level calibration itself); where boundary-aware
  candidates are offered, also ``per-time-els-ls`` (the per-level calibration among the ELS and LS ones).

Each assignment's score is the median Pearson r (:func:`critdiff.probes.agreement.pearson_r`) of its final
images against the network's final images from the same initial noise (the calibration seeds); the largest
median wins (ties: the earlier in the order above). DDIM with eta = 0 is deterministic, so assignments that share
their first ``k`` stencils with ``hi`` share the first ``k`` steps: ``hi`` is run once with its states recorded and
each assignment continues from its state at its first differing level. Arrays: levels in sampling order (``T`` =
the grid without its final 0).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from ..errors import check_int
from ..samplers import Recorder, check_sigmas, sample_ddim
from .agreement import pearson_r
from .calibration import Calibration, candidate_family


def family_winners(cal: Calibration, family: str) -> "list[str] | None":
    """``[T]`` the per-level winner (smallest mean relative L2) among ``cal``'s candidates of ``family``
    (``'els'``, ``'ls'``, ``'boundary'``); None if it offers none."""
    idx = [j for j, s in enumerate(cal.stencils) if candidate_family(s) == family]
    if not idx:
        return None
    best = np.asarray(idx)[np.argmin(cal.rel_l2[:, idx], axis=1)]
    return [cal.stencils[j] for j in best]


def switch_assignments(cal: Calibration, stride: int = 2) -> dict:
    """The assignments searched (module docstring): ``{name: [T] candidates}``, in tie-break order."""
    stride = check_int("stride", stride, 1)
    per_time = list(cal.best_stencil)
    hi = family_winners(cal, "ls")
    if hi is None:
        return {"per-time": per_time}
    T = len(per_time)
    k0 = next((i for i, s in enumerate(per_time) if candidate_family(s) != "ls"), T)
    out: dict = {}
    for fam in ("els", "boundary"):
        lo = family_winners(cal, fam)
        if lo is not None:
            for k in range(k0, T, stride):
                out[f"{fam}@{k}"] = hi[:k] + lo[k:]
    out[f"ls@{T}"] = hi
    out.setdefault("per-time", per_time)
    if family_winners(cal, "boundary") is not None:  # the per-level rule without the boundary-aware family
        plain = [j for j, s in enumerate(cal.stencils) if candidate_family(s) != "boundary"]
        if plain:
            out.setdefault("per-time-els-ls", [cal.stencils[plain[j]] for j in np.argmin(cal.rel_l2[:, plain], 1)])
    return out


def _shared_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    k = 0
    while k < len(a) and a[k] == b[k]:
        k += 1
    return k


def select_by_final_agreement(models: Mapping[str, Callable], assignments: Mapping[str, Sequence[str]],
                              x: torch.Tensor, sigmas, target: torch.Tensor, label=None) -> dict:
    """Score every assignment by the median r of its final DDIM images against ``target [B, C, H, W]``.

    ``models``: candidate -> denoiser; ``x [B, C, H, W]``: the initial noise (at ``sigmas[0]``) of ``target``'s
    run. Returns ``{'chosen': name, 'stencils': [T], 'median_r': {name: float}, 'r': {name: [B]}}``.
    """
    s = check_sigmas(sigmas)
    T = s.numel() - 1
    names = list(assignments)
    if not names:
        raise ValueError("assignments: expected at least one")
    for name, a in assignments.items():
        if len(a) != T or any(c not in models for c in a):
            raise ValueError(f"assignments: {name!r} needs {T} candidates, each one of {sorted(models)}")
    # the base run: the assignment sharing the longest prefixes with the others (``hi`` for switch families)
    hi = assignments[max(names, key=lambda n: sum(_shared_prefix(assignments[n], assignments[m]) for m in names))]

    def runner(assign):
        return lambda x_, sigma, lab=None: models[assign[int(np.argmin(np.abs(s[:-1].numpy() - float(sigma))))]](
            x_, sigma, lab)

    rec = Recorder()
    with torch.no_grad():
        final_hi = sample_ddim(runner(hi), x, s, label=label, callback=rec)
        r, med, done = {}, {}, {}
        for name in names:
            a = assignments[name]
            if tuple(a) not in done:  # an assignment offered under two names is run once
                k = _shared_prefix(a, hi)
                final = final_hi if k == T else sample_ddim(runner(a), rec.x[k], s[k:], label=label)
                done[tuple(a)] = pearson_r(final, target).tolist()
            r[name] = done[tuple(a)]
            med[name] = float(np.nanmedian(r[name]))
    chosen = max(names, key=lambda n: (med[n], -names.index(n)))
    return {"chosen": chosen, "stencils": list(assignments[chosen]), "median_r": med, "r": r}
