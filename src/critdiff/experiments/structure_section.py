"""The structure-factor experiment: the linear theory's predicted ``S(k, t)`` against the ensemble of the full
nonlinear patch model (docs/theory.md, predicted structure factor), and the time from which they part.

``run_structure(cfg, ctx) -> StructureResult``. The prediction propagates the exact linearisation of the sampler's
own step on its grid (so the comparison carries no time-discretisation error); the ensemble's ``S`` comes with
per-mode standard errors (:func:`critdiff.theory.correlation.compare_structure_factors`). Agreement is the
largest ``|z|`` over radial shells per time; ``departs_at_sigma`` is the first time from which
``|z| > z_threshold``. Seeds: initial noise from seed 0, sampler noise from seed 1 (both samplers alike).
:mod:`critdiff.report.structure` renders the result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from .. import samplers as SM
from ..config import JsonConfig, arg
from ..devices import resolve as resolve_device
from ..schedules import get as get_schedule, sigma_grid
from .context import ContextLike, as_context
from .result import Result


@dataclass(frozen=True)
class StructureConfig(JsonConfig):
    """Stripes, a small equivariant patch model, a VE schedule and a large ensemble per sampler."""

    data: str = arg("stripes:size=8,wavelength=3,n=16", "data spec (data seed 0)")
    stencil: str = arg("square:3", "stencil of the equivariant periodic patch model")
    schedule: str = arg("ve", "noise schedule")
    steps: int = arg(40, "sampler steps, uniform in logsnr")
    ensemble: int = arg(300, "samples per sampler")
    samplers: tuple[Literal["ode", "sde"], ...] = arg(("ode", "sde"), "ode: Euler of the probability-flow ODE; "
                                                      "sde: Euler-Maruyama of the reverse SDE")
    z_threshold: float = arg(4.0, "|z| above which prediction and ensemble differ")


@dataclass(frozen=True)
class StructureResult(Result):
    """``critical``: :meth:`critdiff.theory.critical.CriticalPoint.to_dict` of the patch model; ``samplers``:
    per sampler the comparison record (``sigma``, ``logsnr``, ``z_max_per_time [T]``, ``departs_at_sigma``,
    ``z_threshold``) and ``max_z_before_tc`` (largest ``|z|`` at ``sigma > 1.2 sigma_c``; None without t_c)."""

    kind = "structure-factor"
    config: StructureConfig
    critical: dict
    samplers: dict


def _compare(pool, model, sig, sampler: str, cfg: StructureConfig, cp, device) -> dict:
    """Run one sampler on the ensemble (on ``device``, the model's) and compare its ``S(k, t)`` with the linear
    prediction."""
    from ..probes.correlations import structure_factor
    from ..theory.correlation import compare_structure_factors, predicted_structure_factor
    from ..theory.homogeneous import homogeneous_solution

    x0 = (torch.randn(cfg.ensemble, *pool.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
          * sig[0]).to(device)
    rec = SM.Recorder()
    fn, disc = (SM.sample_euler, "euler") if sampler == "ode" else (SM.sample_euler_maruyama, "euler-maruyama")
    with torch.no_grad():
        fn(model, x0, sig, callback=rec, generator=torch.Generator().manual_seed(1))
    sg, xs, _ = rec.stacked()
    hom = homogeneous_solution(pool, float(sig[0]), float(sig[-2]), drift=sampler)
    Sp = predicted_structure_factor(pool, sg, sampler=sampler, hom=hom, discretisation=disc)
    emp = [structure_factor(xs[i]) for i in range(len(sg))]
    cmp = compare_structure_factors(Sp, np.stack([e.S for e in emp]), np.stack([e.S_se for e in emp]), sg,
                                    z_max=cfg.z_threshold)
    before = [z for s, z in zip(cmp["sigma"], cmp["z_max_per_time"]) if cp.found and s > 1.2 * cp.sigma_over_a_c]
    return {**cmp, "discretisation": disc, "logsnr": [-2 * math.log(s) for s in cmp["sigma"]],
            "max_z_before_tc": max(before) if before else None}


def run_structure(cfg: StructureConfig, ctx: ContextLike = None, device="cpu") -> StructureResult:
    """Compare predicted and measured structure factors per sampler (module docstring); write
    ``result.json`` to ``ctx.out`` when it has one (``ctx``: a :class:`~critdiff.experiments.context.Context`, a
    folder or ``None``). ``device``: where the patch model samples."""
    from ..data import load as load_data
    from ..scores.patch import PatchScore
    from ..theory.critical import critical_point
    from ..theory.pool import patch_pool

    ctx = as_context(ctx)
    images, _ = load_data(cfg.data, seed=0)
    x = images.to(torch.float64)
    pool = patch_pool(x, cfg.stencil)
    sch = get_schedule(cfg.schedule)
    cp = critical_point(pool, sch, weights="exact", growth=False)
    sig = sigma_grid(sch, cfg.steps, spacing="logsnr")
    device = resolve_device(device)
    model = PatchScore(x, cfg.stencil, device=device)
    per = {}
    with ctx.bar(len(cfg.samplers), "structure factor") as bar:
        for sampler in cfg.samplers:
            per[sampler] = _compare(pool, model, sig, sampler, cfg, cp, device)
            bar.update(1)
    result = StructureResult(config=cfg, critical=cp.to_dict(), samplers=per)
    ctx.save(result)
    return result
