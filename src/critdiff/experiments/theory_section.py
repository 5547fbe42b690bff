"""The ``theory`` experiment: the linear-stability theory of the patch model on one data set (docs/theory.md).

``run_theory(cfg, ctx) -> TheoryResult`` loads the data and runs :func:`critdiff.theory.analysis.analyze` (critical
point, stiffness scan, ``xi(t)``, global-model speciation, two-point bifurcation). The result holds the
analysis record the CLI prints (``analysis``) and the stiffness map the figures draw (``kabs``,
``kappa_radial``); :mod:`critdiff.report.theory` renders it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..config import JsonConfig, arg
from .context import ContextLike, as_context
from .result import Result


@dataclass(frozen=True)
class TheoryConfig(JsonConfig):
    """The linear theory of the patch model on one data set (docs/theory.md)."""

    data: str = arg(help="data spec, e.g. 'stripes:size=16,wavelength=4'")
    stencil: str = arg("square:5", "stencil spec (square:K, cross:R, dilated:K,D)")
    schedule: str = arg("vp-linear", "schedule spec (vp-linear, vp-cosine, ve, edm)")
    uniform_weights: bool = arg(False, "high-noise approximation (plain patch covariance)")
    seed: Optional[int] = arg(None, "data seed (default: the spec's seed=, else 0)")

    @property
    def weights(self) -> str:
        return "uniform" if self.uniform_weights else "exact"


def demo_config(data: str, stencil: str = "square:5", schedule: str = "vp-linear") -> TheoryConfig:
    """The demo's theory settings on one data set (exact weights, data seed 0)."""
    return TheoryConfig(data=data, stencil=stencil, schedule=schedule, seed=0)


@dataclass(frozen=True)
class TheoryResult(Result):
    """``analysis``: :meth:`critdiff.theory.analysis.TheoryReport.to_dict` (critical point, ``xi`` curve,
    speciation, bifurcation); ``kabs [K]`` radial shells and ``kappa_radial [T][K]`` the shell means of
    ``sigma^2 kappa`` on the scan's times (``analysis['xi']['logsnr']``)."""

    kind = "theory"
    config: TheoryConfig
    analysis: dict
    kabs: tuple[float, ...]
    kappa_radial: tuple


def run_theory(cfg: TheoryConfig, ctx: ContextLike = None, device="cpu") -> TheoryResult:
    """Run the theory on ``cfg.data``; write ``result.json`` (the result's record) to ``ctx.out`` when it has one
    (``ctx``: a :class:`~critdiff.experiments.context.Context`, a folder or ``None``).
    ``device``: where the patch pool's passes run (:func:`critdiff.theory.analysis.analyze`); like the CPU
    threads it does not change the numbers beyond float64 rounding, so it is not part of the configuration."""
    from ..data import load
    from ..devices import resolve as resolve_device
    from ..theory.analysis import analyze

    ctx = as_context(ctx)
    device = resolve_device(device)  # a one-line error before the data are loaded
    images, _ = load(cfg.data, seed=cfg.seed)
    report = analyze(images, cfg.stencil, cfg.schedule, weights=cfg.weights, device=device)
    result = TheoryResult(config=cfg, analysis=report.to_dict(), kabs=report.kabs, kappa_radial=report.kappa_radial)
    ctx.save(result)
    return result
