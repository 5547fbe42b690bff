"""Benchmark: the random-probe spectral estimate against the dense-Jacobian route at 32 x 32 (DESIGN.md section 4).

Per model (one state ``x`` at ``sigma``, float64, one torch thread):

- ``dense``: ``spectral_probe(method='dense')``: the full ``(C H W)^2`` Jacobian by ``torch.func.jacfwd`` and its
  Fourier diagonal (the oracle);
- ``probe``: ``spectral_probe(method='random', probe=P)`` with ``M`` doubled from 1 until the radially averaged
  stiffness reaches the accuracy target: every shell's standard error at most ``target`` (5%) of ``|kappa|``
  in that shell (shells with ``|k| > 0``; ``k = 0`` is a single lattice point, not an average), with
  ``M >= 8`` so that the standard errors themselves are usable. The achieved relative error against the
  dense diagonal is reported as a check of those standard errors (``err_vs_dense``: max over shells).
- time: median of ``--repeat`` runs after a warm-up; memory: peak resident set of a fresh subprocess running
  only that route (``ru_maxrss``), minus the resident set just before it.

Models: ``gaussian`` (GaussianScore, full covariance, 1024 x 1024, on non-stationary data: a non-circulant
Jacobian), ``convnet`` (a small random tanh conv net, ``D(x) = x / (1 + sigma^2) + net(x)``), and ``patch``
(PatchScore, ELS, square:5, periodic) when importable. Writes ``benchmarks/results/bench_probes.json``.
Usage: ``python benchmarks/bench_probes.py [--quick] [--probe phase|rademacher|gaussian] [--models gaussian,convnet,patch]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def build(model: str, size: int):
    g = torch.Generator().manual_seed(0)
    if model == "gaussian":
        from critdiff.scores.gaussian import GaussianScore

        z = torch.randn(400, 1, size, size, generator=g, dtype=torch.float64)
        ramp = torch.linspace(0.3, 2.0, size, dtype=torch.float64).reshape(1, 1, 1, size)
        y = (z + 0.7 * torch.roll(z, 1, -1) + 0.5 * torch.roll(z, 1, -2)) * ramp
        return GaussianScore(y, covariance="full")
    if model == "convnet":
        torch.manual_seed(0)  # the same weights in every subprocess
        net = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1, padding_mode="circular"), torch.nn.Tanh(),
                                  torch.nn.Conv2d(16, 16, 3, padding=1, padding_mode="circular"), torch.nn.Tanh(),
                                  torch.nn.Conv2d(16, 1, 3, padding=1, padding_mode="circular")).double()
        for p in net.parameters():
            p.requires_grad_(False)
        del p

        def den(x, sigma, label=None):
            s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1)
            return x / (1 + s**2) + 0.3 * net(x)

        return den
    if model == "patch":
        from critdiff.scores.patch import PatchScore

        y = torch.randn(20, 1, size, size, generator=g, dtype=torch.float64).cumsum(-1) * 0.3
        return PatchScore(y, stencil="square:5", equivariant=True, boundary="periodic", dtype=torch.float64)
    raise ValueError(model)


def state(size: int, sigma: float) -> torch.Tensor:
    return torch.randn(1, 1, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * sigma


def run_route(model: str, route: str, size: int, sigma: float, M: int, probe: str, repeat: int) -> dict:
    from critdiff.probes import spectral_probe

    torch.set_num_threads(1)
    den = build(model, size)
    x = state(size, sigma)
    kw = {"method": "dense"} if route == "dense" else {"n_probes": M, "probe": probe}
    spectral_probe(den, x, sigma, **({"n_probes": 1, "probe": probe} if route != "dense" else kw))  # warm-up
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for r in range(repeat):
        t = time.perf_counter()
        res = spectral_probe(den, x, sigma, seed=r, **kw)
        times.append(time.perf_counter() - t)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"time_s": float(np.median(times)), "peak_mib": (rss1 - rss0) / 1024, "kappa_radial": res.kappa_radial.tolist(),
            "kappa_radial_se": res.kappa_radial_se.tolist(), "evals": res.denoiser_evaluations, "n_jvp": res.n_jvp}


def sub(model, route, size, sigma, M, probe, repeat) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", model, route, str(size), str(sigma), str(M), probe,
                          str(repeat)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--probe", default="phase")
    ap.add_argument("--target", type=float, default=0.05)
    ap.add_argument("--models", default="gaussian,convnet,patch", help="comma-separated subset")
    ap.add_argument("--worker", nargs=7)
    a = ap.parse_args()
    if a.worker:
        m, route, size, sigma, M, probe, repeat = a.worker
        print(json.dumps(run_route(m, route, int(size), float(sigma), int(M), probe, int(repeat))))
        return
    size, sigma = (16, 0.7) if a.quick else (32, 0.7)
    models = [m for m in a.models.split(",") if m]
    try:
        import critdiff.scores.patch  # noqa: F401
    except ImportError:
        models = [m for m in models if m != "patch"]
    rows = []
    for m in models:
        try:
            dense = sub(m, "dense", size, sigma, 1, a.probe, 1 if not a.quick else 2)
            kd = np.array(dense["kappa_radial"])
        except subprocess.CalledProcessError as e:  # e.g. killed for memory: the dense route does not fit
            dense, kd = {"time_s": None, "peak_mib": None, "n_jvp": None, "failed": f"exit status {e.returncode}"}, None
        M = 1
        while True:
            pr = sub(m, "probe", size, sigma, M, a.probe, 3)
            kr, se = np.array(pr["kappa_radial"]), np.array(pr["kappa_radial_se"])
            rel_se = float(np.max(se[1:] / np.abs(kr[1:])))
            if (M >= 8 and rel_se <= a.target) or M >= 4096:
                break
            M *= 2
        row = {"model": m, "size": size, "sigma": sigma, "probe": a.probe, "M": M, "rel_se": rel_se,
               "err_vs_dense": None if kd is None else float(np.max(np.abs(kr - kd)[1:] / np.abs(kd[1:]))),
               "probe_s": pr["time_s"], "dense_s": dense["time_s"],
               "speedup": None if kd is None else dense["time_s"] / pr["time_s"], "dense_failed": dense.get("failed"),
               "probe_mib": pr["peak_mib"], "dense_mib": dense["peak_mib"],
               "probe_evals": pr["evals"], "dense_jvp": dense["n_jvp"], "probe_jvp": pr["n_jvp"]}
        rows.append(row)
        if kd is None:
            print(f"{m:9s} M={M:4d} rel_se={rel_se:.3f} probe {row['probe_s']:.3f}s {row['probe_mib']:.0f}MiB  "
                  f"dense FAILED ({dense['failed']})", flush=True)
        else:
            print(f"{m:9s} M={M:4d} rel_se={rel_se:.3f} err={row['err_vs_dense']:.3f} probe {row['probe_s']:.3f}s "
                  f"{row['probe_mib']:.0f}MiB  dense {row['dense_s']:.3f}s {row['dense_mib']:.0f}MiB  "
                  f"speedup {row['speedup']:.1f}x", flush=True)
    import platform

    out = {"rows": rows, "torch": torch.__version__, "machine": platform.machine(), "threads": 1,
           "target_rel_se": a.target, "quick": a.quick}
    path = HERE / "results" / ("bench_probes_quick.json" if a.quick else "bench_probes.json")
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
