"""The branch linear-response measurement as one call (DESIGN.md sections 3-4): growth of small fluctuations
about the sampler's symmetric branch, the JVP stiffness at the branch states near its onset, the critical mode
of each estimate, and an optional scan of the fluctuation amplitude ``eps`` (:mod:`.linear_response`).
"""

from __future__ import annotations

import math
import time
from typing import Callable, Optional, Sequence

from .estimates import estimate_record
from .linear_response import (branch_stiffness, from_branch_stiffness, from_growth, linear_response,
                              softest_mode)

__all__ = ["branch_response"]


def branch_response(model, shape, schedule, *, steps: int, eps: float, n: int, eps_scan: Sequence[float] = (),
                    label=None, n_probes: int = 1, window: Optional[int] = None, growth_seed: int = 0,
                    probe_seed: int = 0, dtype=None, device="cpu", estimator: Optional[dict] = None,
                    on_phase: Callable[[str], None] = lambda s: None) -> dict:
    """Growth stiffness on nested grids (``steps`` and ``2 steps``), JVP stiffness at the extrapolated branch
    states near its estimate, the softest mode of each estimate, and the amplitude scan ``eps_scan``.

    Returns ``lr`` (:class:`~.linear_response.LinearResponse`), ``bs`` (:func:`branch_stiffness`'s record),
    ``estimates`` (``linear_growth``, ``linear_stiffness``), ``k_star`` (per finite estimate: ``k_star`` and its
    ``kappa_map``), ``scan`` (one record per amplitude), ``nfe`` per member and ``seconds``. ``estimator``:
    keyword arguments of the estimators (``n_boot``, ``seed``). ``on_phase(text)`` is told each phase. ``device``:
    where the members' states live (the model's device).
    """
    kw = dict(estimator or {})
    t0 = time.perf_counter()
    on_phase(f"linear response of the symmetric branch: {n} members, eps {eps:g}, {steps} + {2 * steps} Euler steps")
    lr = linear_response(model, shape, schedule, steps=steps, eps=eps, n=n, label=label, seed=growth_seed, dtype=dtype,
                         device=device)
    growth, gmap = from_growth(lr, signal="linear_growth", return_map=True, **kw)
    bs = branch_stiffness(model, lr, growth.logsnr if math.isfinite(growth.logsnr) else float(lr.logsnr.mean()),
                          label=label, n_probes=n_probes, seed=probe_seed, dtype=dtype, device=device, window=window)
    stiff, smap = from_branch_stiffness(bs, signal="linear_stiffness", return_map=True, **kw)
    # the critical mode of each estimate: argmin of the per-mode log-gain interpolated at its t_c
    ks = {name: {"k_star": softest_mode(kmap), "kappa_map": kmap}
          for name, ct, kmap in (("linear_growth", growth, gmap), ("linear_stiffness", stiff, smap))
          if math.isfinite(ct.logsnr)}
    scan = []
    for e in eps_scan:
        on_phase(f"amplitude scan: eps {e:g}")
        lr_e = linear_response(model, shape, schedule, steps=steps, eps=e, n=n, label=label, seed=growth_seed,
                               dtype=dtype, device=device, keep_states=False)
        ct = from_growth(lr_e, signal=f"growth(eps={e:g})", **kw)
        scan.append({"eps": e, **estimate_record(ct, schedule), "g_min": lr_e.g_min.tolist(), "nfe_per_sample": lr_e.nfe})
    return {"lr": lr, "bs": bs, "estimates": {"linear_growth": growth, "linear_stiffness": stiff}, "k_star": ks,
            "scan": scan, "nfe": lr.nfe + bs["nfe"] + sum(v["nfe_per_sample"] for v in scan),
            "seconds": time.perf_counter() - t0}
