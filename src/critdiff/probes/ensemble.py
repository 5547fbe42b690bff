"""Every probe along the sampler's own ensemble (DESIGN.md section 4): the trajectory probes (spectral probe,
``S(k)``, ``xi_zero`` (about k = 0), Ornstein-Zernike ``xi``), the susceptibility ``chi``, an estimate of ``t_c`` from each
signal and their combination into the ensemble's effective critical time.
"""

from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

from .. import samplers as SM
from ..seeding import derive
from .critical_time import at_grid_edge, from_chi, from_stiffness, from_xi
from .estimates import combine_record, estimate_record
from .susceptibility import susceptibility
from .trajectory import probe_trajectory

__all__ = ["ensemble_probe", "ensemble_signals"]


def ensemble_probe(model, x, sigmas, steps: Sequence[int], *, sampler: str, label=None, n_probes: int = 1,
                   window: Optional[int] = None, chi: bool = True, n_boot: int = 200, seed: int = 0,
                   on_step: Callable = lambda step: None, on_phase: Callable[[str], None] = lambda s: None) -> dict:
    """Probe the ensemble ``x [B, C, H, W]`` at ``steps`` of ``sigmas``; ``chi`` adds the susceptibility (bump
    kicks). Seeds (:func:`critdiff.seeding.derive`): sampler noise ``derive(seed, 'sampler-noise')`` (one generator per
    sample), kicks ``derive(seed, 'kicks')``, probes and
    bootstraps ``seed``. Returns ``traj``, ``susc`` (or None), ``est`` (one :class:`CriticalTime` per signal),
    ``t_traj`` and ``t_chi`` seconds. ``on_step`` is called after every sampler step, ``on_phase`` per phase."""
    t0 = time.perf_counter()
    on_phase("trajectory")
    traj = probe_trajectory(model, x, sigmas, sampler=sampler, steps=steps, label=label,
                            generator=SM.seed_generators(derive(seed, "sampler-noise"), x.shape[0]),
                            spectral={"n_probes": n_probes, "probe": "phase", "window": window}, seed=seed,
                            callback=on_step)
    out = {"traj": traj, "t_traj": time.perf_counter() - t0, "susc": None, "t_chi": None}
    kw = {"n_boot": n_boot, "seed": seed}
    out["est"] = {"stiffness": from_stiffness(traj, scale="sigma2", **kw), "xi_zero": from_xi(traj, which="xi_zero", **kw),
                  "xi_oz": from_xi(traj, which="oz", **kw)}
    if chi:
        on_phase("susceptibility (bump kicks)")
        t1 = time.perf_counter()
        out["susc"] = susceptibility(model, x, sigmas, steps, sampler=sampler, label=label, kick="bump",
                                     seed=derive(seed, "kicks"), n_boot=n_boot)
        out["t_chi"] = time.perf_counter() - t1
        out["est"]["chi"] = from_chi(out["susc"], **kw)
    return out


def ensemble_signals(ens: dict, schedule) -> tuple:
    """``(signal records, CombinedCriticalTime or None, combined record)`` of :func:`ensemble_probe`'s
    estimates; an extremum on an end of its own signal's probed grid (the kick times for ``chi``) is recorded
    (``at_grid_edge``) but not combined."""
    traj, susc = ens["traj"], ens["susc"]
    signals, use = {}, []
    for k, v in ens["est"].items():
        edge = at_grid_edge(v, susc.logsnr if k == "chi" else traj.logsnr)
        signals[k] = {**estimate_record(v, schedule), "at_grid_edge": bool(edge)}
        if not edge:
            use.append(v)
    ens_comb, ensemble_combined = combine_record(use, schedule)
    return signals, ens_comb, ensemble_combined
