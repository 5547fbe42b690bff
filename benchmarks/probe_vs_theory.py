"""Must-show: the measured critical time of the equivariant periodic patch model against the theory's t_c.

For each data set the ``probe`` experiment (critdiff.experiments.probe, default estimator settings, nothing
tuned per data set) runs the patch model (periodic, ELS) and the linear-stability theory
(critdiff.theory.analyze with exact weights) on the same images, stencil and schedule. The stencil is square:5,
except for the ring GRF, whose ring (|k| = pi/4) a 5x5 stencil cannot resolve (the theory then finds k* = 0):
it uses square:11, the smallest odd square stencil whose theory k* lies on the ring. Rows:

- ``linear_growth``, ``linear_stiffness`` and ``combined``: the linear response of the sampler's symmetric
  branch (critdiff.probes.linear_response): growth of small fluctuations (forward evaluations only,
  Richardson-extrapolated over two nested Euler grids) and JVP stiffness at the branch states, with bootstrap
  intervals widened by the discretisation error; the measured counterpart of what the theory defines;
- ``homogeneous``: JVPs at the theory's own homogeneous states ``m(sigma) 1`` (exact check of the probe);
- ``stiffness``, ``xi_zero``, ``xi_oz``, ``chi``, ``ensemble_combined``: measured along the sampler's own
  trajectories (fluctuations as large as the noise: not the linear regime, so these are expected to differ);
- the amplitude scan: growth onset of fluctuations of relative size eps (eps = 1: the sampler's ensemble).

Agreement: ``|logsnr - logsnr_theory| <= 0.25`` or the theory inside the interval; where the theory finds no
crossing (digits) its reference is the time the homogeneous state is softest, and a measured crossing
disagrees. Also: whether the theory's ``k*`` is a softest measured mode.
Usage: ``python benchmarks/probe_vs_theory.py [--quick] [--threads 1] [--only stripes,...]``
(8 samples); writes ``benchmarks/results/probe_vs_theory.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
DATA = {
    "textures": ("textures:size=24,per_class=34", "square:5"),
    "digits": ("digits:size=16,n=100", "square:5"),
    "stripes": ("stripes:size=16,wavelength=4,n=100", "square:5"),
    "grf-ring": ("grf:spectrum=ring,size=16,n=100", "square:11"),
}
EPS_SCAN = (0.1, 0.3, 1.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="no susceptibility")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=16, help="sampler steps (default: the probe default, 16)")
    ap.add_argument("--times", type=int, default=6, help="probed steps (default: the probe default, 6)")
    ap.add_argument("--only", default=None, help="comma-separated subset of " + ",".join(DATA))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from critdiff.experiments.context import Context
    from critdiff.experiments.probe import ProbeConfig, run_probe
    from critdiff.probes.theory_compare import comparison_rows

    names = list(DATA) if a.only is None else a.only.split(",")
    results = {}
    out_json = HERE / "results" / "probe_vs_theory.json"
    if out_json.exists() and a.only is not None:
        results = json.loads(out_json.read_text()).get("results", {})
        for r in results.values():  # rows with the current agreement rule
            r["rows"] = comparison_rows({k: r[k] for k in ("theory", "signals", "combined", "ensemble_combined",
                                                           "k_star_trajectory") if k in r})
    for name in names:
        data, stencil = DATA[name]
        cfg = ProbeConfig(model="patch", data=data, stencil=stencil, n=8, steps=a.steps, times=a.times,
                          chi=not a.quick, eps_scan=EPS_SCAN)
        key = name if (a.steps, a.times) == (16, 6) else f"{name} (steps={a.steps}, times={a.times})"
        t0 = time.perf_counter()
        rec = run_probe(cfg, Context(f"/tmp/probe_vs_theory/{key.replace(' ', '_')}", progress=False))
        rows = comparison_rows(rec)
        results[key] = {"data": data, "stencil": stencil, "rows": rows, "theory": rec["theory"],
                         "signals": rec["signals"], "combined": rec["combined"],
                         "ensemble_combined": rec["ensemble_combined"], "k_star_trajectory": rec["k_star_trajectory"],
                         "amplitude_scan": [{k: v.get(k) for k in ("eps", "logsnr_c", "logsnr_ci", "method")}
                                            for v in rec["linear_response"]["amplitude_scan"]],
                         "nfe": rec["nfe"], "seconds": time.perf_counter() - t0}
        print(f"\n== {key} ({data}, {stencil}), {results[key]['seconds']:.0f} s; "
              f"theory: {rec['theory']['message'] or 'crossing found'}")
        print(f"{'signal':18s} {'logsnr_c':>9s} {'95% CI':>18s} {'d logsnr':>9s} {'agrees':>6s}  k* (theory k* softest)")
        for r in rows:
            f = lambda v: f"{v:9.3f}" if isinstance(v, float) else f"{str(v):>9s}"  # noqa: E731
            print(f"{r['signal']:18s} {f(r['logsnr_c'])} {r['95% CI (logsnr)']:>18s} {f(r['d logsnr'])} "
                  f"{str(r['agrees']):>6s}  {r['k*']} ({r.get('theory k* softest', '')})")
        print("amplitude scan (eps: growth-onset logsnr): " + ", ".join(
            f"{v['eps']:g}: {v['logsnr_c'] if v['logsnr_c'] is None else round(v['logsnr_c'], 3)} ({v['method']})"
            for v in results[key]["amplitude_scan"]))
        h = rec["signals"].get("homogeneous", {})
        print(f"theory k* {rec['theory']['k_star']} |k*| {rec['theory']['k_star_abs']}; homogeneous probe k* "
              f"{h.get('k_star')} |k*| {h.get('k_star_abs')}; theory k* is a softest measured mode: "
              f"{h.get('theory_k_star_is_softest')}")
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps({"quick": a.quick, "results": results}, indent=1, default=str) + "\n")
    print(f"\nwrote {out_json}")


if __name__ == "__main__":
    main()
