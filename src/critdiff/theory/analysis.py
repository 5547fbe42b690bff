"""One call that runs the theory on a data set: critical point, xi(t), global model (docs/theory.md).

``analyze(images, stencil, schedule, weights)`` returns a :class:`TheoryReport` whose ``to_dict()`` is
the JSON the CLI prints; :func:`critdiff.report.theory.write_figures` draws it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..schedules import get as get_schedule
from .correlation import xi_curve
from .critical import CriticalPoint, SpectrumScan, critical_point, scan_spectrum
from .global_model import Bifurcation, speciation, twopoint_amplitude, twopoint_bifurcation
from .homogeneous import homogeneous_solution
from .pool import patch_pool
from .spectrum import radial_average


@dataclass(frozen=True, eq=False)
class TheoryReport:
    critical: CriticalPoint
    scan: SpectrumScan
    kabs: np.ndarray  # radial shells [K]
    kappa_radial: np.ndarray  # [T, K] sigma^2 kappa (dimensionless, = 1 - c/sigma^2) per shell, min over shell
    xi: np.ndarray  # [T]
    speciation: dict
    bifurcation: Optional[Bifurcation]
    stencil: str
    schedule: str

    def to_dict(self) -> dict:
        cp = self.critical
        return {
            "t_c": cp.t_c, "logsnr_c": cp.logsnr_c, "sigma_over_a_c": cp.sigma_over_a_c,
            "k_star": None if cp.k_star is None else list(cp.k_star), "k_star_abs": cp.k_star_abs,
            "found": cp.found, "message": cp.message, "preferred_mode": cp.preferred_mode,
            "weights": cp.weights, "stencil": self.stencil, "schedule": self.schedule,
            "critical": cp.to_dict(),
            "xi": {"t": self.scan.t.tolist(), "logsnr": self.scan.logsnr.tolist(),
                   "xi": [None if not math.isfinite(v) else v for v in self.xi.tolist()]},
            "global_speciation": self.speciation,
            "bifurcation": None if self.bifurcation is None else self.bifurcation.to_dict(),
        }


def analyze(images: torch.Tensor, stencil="square:5", schedule="vp-linear", *, weights: str = "exact",
            n_t: int = 121, device=None) -> TheoryReport:
    """Critical point, stiffness scan, ``xi(t)`` and the global model of ``images [N, C, H, W]``; ``device``: where
    the patch pool lives and the passes over it run (:mod:`.pool`; default the CPU)."""
    sch = get_schedule(schedule)
    pool = patch_pool(images, stencil, device=device)
    hom = None if weights == "uniform" else homogeneous_solution(pool, sch.sigma_max, sch.sigma_min)
    scan = scan_spectrum(pool, sch, weights=weights, n_t=n_t, hom=hom)
    cp = critical_point(pool, sch, weights=weights, scan=scan, hom=hom)
    ky, kx = torch.from_numpy(scan.ky), torch.from_numpy(scan.kx)
    rows = []
    for i in range(len(scan.t)):
        k, mean, _, _ = radial_average(torch.from_numpy(1.0 - scan.c[i] / scan.sigma[i] ** 2), ky, kx)
        rows.append(mean)
    k_star = cp.k_star if cp.found and cp.preferred_mode else None
    if k_star is None:
        xi = np.zeros(len(scan.t))
    else:
        xi = np.array([c.xi for c in xi_curve(pool, scan.sigma, k_star, hom=hom, weights=weights)])
    sp = speciation(images, sch).to_dict()
    sp.pop("direction", None)
    amp = twopoint_amplitude(images)
    bif = None if amp is None else twopoint_bifurcation(amp, scan.logsnr)
    return TheoryReport(cp, scan, k, np.stack(rows), xi, sp, bif, pool.stencil.spec, sch.name)
