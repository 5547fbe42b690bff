"""Must-show: the measured critical time of the equivariant periodic patch model against the theory's t_c.

For each data set the ``probe`` experiment (critdiff.experiments.probe, default estimator settings, nothing
tuned per data set) runs the patch model (square:5, periodic, ELS) and the linear-stability theory
(critdiff.theory.analyze with exact weights) on the same images, stencil and schedule. Rows:

- ``homogeneous``: zero crossing of ``sigma^2 min_k kappa`` probed by JVPs at the theory's homogeneous states
  ``m(sigma) 1``: the theory's own definition, measured through the denoiser (primary signal, no interval:
  it is deterministic);
- ``stiffness``, ``xi_2``, ``xi_oz``, ``chi``, ``combined``: measured along sampled trajectories, with
  bootstrap 95% intervals (states there are not homogeneous, so these may legitimately differ).

Agreement: ``|logsnr - logsnr_theory| <= 0.25`` or the theory inside the interval. Also: whether the softest
measured mode at the homogeneous crossing is the theory's ``k*`` (exact symmetry ties allowed).
Usage: ``python benchmarks/probe_vs_theory.py [--quick] [--threads 1] [--steps 16 --times 6] [--only stripes,...]``
(8 samples; a non-default grid is stored under its own key); writes
``benchmarks/results/probe_vs_theory.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
DATA = {
    "textures": "textures:size=24,n=34",
    "digits": "digits:size=16,n=100",
    "stripes": "stripes:size=16,wavelength=4,n=100",
    "grf-ring": "grf:spectrum=ring,size=16,n=100",
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="no susceptibility")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=16, help="sampler steps (default: the probe default, 16)")
    ap.add_argument("--times", type=int, default=6, help="probed steps (default: the probe default, 6)")
    ap.add_argument("--only", default=None, help="comma-separated subset of " + ",".join(DATA))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from critdiff.experiments.probe import ProbeConfig, comparison_rows, run_probe

    names = list(DATA) if a.only is None else a.only.split(",")
    results = {}
    out_json = HERE / "results" / "probe_vs_theory.json"
    if out_json.exists() and a.only is not None:
        results = json.loads(out_json.read_text()).get("results", {})
        for r in results.values():  # rows with the current agreement rule
            r["rows"] = comparison_rows({k: r[k] for k in ("theory", "signals", "combined", "k_star_trajectory")})
    for name in names:
        cfg = ProbeConfig(model="patch", data=DATA[name], stencil="square:5", n=8, steps=a.steps, times=a.times,
                          chi=not a.quick)
        key = name if (a.steps, a.times) == (16, 6) else f"{name} (steps={a.steps}, times={a.times})"
        t0 = time.perf_counter()
        rec = run_probe(cfg, f"/tmp/probe_vs_theory/{key.replace(' ', '_')}", progress=False)
        rows = comparison_rows(rec)
        results[key] = {"data": DATA[name], "rows": rows, "theory": rec["theory"], "signals": rec["signals"],
                         "combined": rec["combined"], "k_star_trajectory": rec["k_star_trajectory"],
                         "nfe": rec["nfe"], "seconds": time.perf_counter() - t0}
        print(f"\n== {key} ({DATA[name]}), {results[key]['seconds']:.0f} s; theory: {rec['theory']['message'] or 'crossing found'}")
        print(f"{'signal':12s} {'logsnr_c':>9s} {'95% CI':>18s} {'d logsnr':>9s} {'agrees':>6s}  k*")
        for r in rows:
            f = lambda v: f"{v:9.3f}" if isinstance(v, float) else f"{str(v):>9s}"  # noqa: E731
            print(f"{r['signal']:12s} {f(r['logsnr_c'])} {r['95% CI (logsnr)']:>18s} {f(r['d logsnr'])} "
                  f"{str(r['agrees']):>6s}  {r['k*']}")
        h = rec["signals"].get("homogeneous", {})
        print(f"theory k* {rec['theory']['k_star']} |k*| {rec['theory']['k_star_abs']}; homogeneous probe k* "
              f"{h.get('k_star')} |k*| {h.get('k_star_abs')}; theory k* is a softest measured mode: "
              f"{h.get('theory_k_star_is_softest')}")
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps({"quick": a.quick, "results": results}, indent=1, default=str) + "\n")
    print(f"\nwrote {out_json}")


if __name__ == "__main__":
    main()
