"""Benchmark: the patch model at dataset scale, exact path (``tol=0``) vs certified pruned path.

docs/theory.md section 12. MNIST 28x28 (the ``mnist`` data spec: 5000 real digits), ELS, periodic,
``square:7``, batch 8, float32 input, ``--threads`` torch threads (1), sigma in {0.05, 0.3, 1, 5}. Pools:

- ``1k``: ``mnist:n=1000``; ``5k``: the full ``mnist`` set;
- ``60k``: :func:`warped_60k`: the 5k set and 11 copies under small random affine warps (rotation
  +-12 deg, scale 0.9-1.1, shear +-0.15, translation +-1.5 px; bilinear resampling, background -1
  outside the frame, rounded to 256 levels), seed 0, made here (no download). Its
  exact path is timed on the first ``--sub60k`` images and scaled linearly (``exact_extrapolated``);
  its pruned path runs on the full pool with ``--batch60k`` query images and is scaled by
  ``8 / batch60k`` (``pruned_extrapolated``; rows are independent). ``collapse_60k``: the pool of
  the 5k set and ``--collapse-copies`` *integer* circular shifts of it (periodic boundary)
  de-duplicates exactly to the 5k pool's unique patches; its ``n_unique`` is measured and recorded.

Per row: ``exact_s`` and ``pruned_s`` (least of ``--repeats`` runs, after the index is built;
``build_s`` is the one-off de-duplication + clustering), ``bound`` (``last_bound``: certified max
``|D - D_exact|``), ``err`` (measured max ``|D_pruned - D_exact|``), both relative to the value
range 2, ``peak_gib`` (resident high-water mark of the process during that pool), the pool's
unique-patch count and cluster count. ``os.getloadavg()`` is recorded before and after each run
(``loadavg_<pools>``); a run replaces the rows of the pools it ran and keeps the others.
``--threads-compare`` adds the pruned 5k calls at 1 and 2 threads (``threads_5k``); ``--sample-run``
a timed 16-sample 20-step Euler run on MNIST-5k (``sample_run_<threads>_threads``, per-step seconds).
``--sub5k M`` times the 5k exact path on M images (scaled by 5000 / M, marked extrapolated); the
error is then measured on the first query image against a full-pool exact call (``err_first_image``).
Writes ``benchmarks/results/bench_patch_scale.json``.
Usage: ``python benchmarks/bench_patch_scale.py [--repeats R] [--pools 1k,5k,60k,collapse] [--threads T]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from memory import reset_peak, status_kib

from critdiff.data import load
from critdiff.scores import PatchScore

HERE = Path(__file__).resolve().parent
SIGMAS = (0.05, 0.3, 1.0, 5.0)
STENCIL, BATCH, TOL = "square:7", 8, 1e-5


def quantise8(x: torch.Tensor) -> torch.Tensor:
    """Values in [-1, 1] rounded to the 256 levels of 8-bit images."""
    return torch.round((x.clamp(-1, 1) + 1) * 127.5) / 127.5 - 1


def warped_60k(x: torch.Tensor, copies: int = 11, seed: int = 0) -> torch.Tensor:
    """``x`` and ``copies`` randomly warped copies (module docstring): ``[(copies + 1) N, 1, 28, 28]``."""
    g = torch.Generator().manual_seed(seed)
    out = [x]
    for _ in range(copies):
        n = len(x)
        ang = (torch.rand(n, generator=g) - 0.5) * 2 * math.radians(12)
        sc = 0.9 + 0.2 * torch.rand(n, generator=g)
        sh = (torch.rand(n, generator=g) - 0.5) * 0.3
        t = (torch.rand(n, 2, generator=g) - 0.5) * 2 * 1.5 * 2 / 28  # +-1.5 px in grid units
        c, s = torch.cos(ang) / sc, torch.sin(ang) / sc
        theta = torch.stack([torch.stack([c, -s + sh, t[:, 0]], 1), torch.stack([s, c, t[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out.append(quantise8(F.grid_sample(x + 1.0, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1.0))
    return torch.cat(out)


def least(fn, repeats: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def bench_pool(name: str, images: torch.Tensor, n_exact: int, repeats: int, err_full: bool, n_pruned: int = BATCH) -> list[dict]:
    """One pool: exact (timed on ``n_exact`` images, scaled) and pruned (on ``n_pruned`` query images, scaled)
    at every sigma.

    ``err``: max |pruned - exact| / 2 over the whole batch when the exact path ran on the full pool,
    else (``err_full``) over the first query image against a full-pool exact call of that image.
    """
    reset_peak()
    g = torch.Generator().manual_seed(1)
    queries = {s: images[:BATCH] + s * torch.randn((BATCH, 1, 28, 28), generator=g) for s in SIGMAS}
    exact = PatchScore(images[:n_exact], STENCIL, tol=0)
    full = PatchScore(images, STENCIL, tol=0) if err_full and n_exact < len(images) else exact
    scale, q_scale = len(images) / n_exact, BATCH / n_pruned
    pruned = PatchScore(images, STENCIL, tol=TOL)
    t = time.perf_counter()
    pool = pruned._pruned_pool(None, "cpu")
    build, build_gib = time.perf_counter() - t, status_kib("VmHWM") / 2**20
    rows = []
    for s in SIGMAS:
        t_ex, d_ex = least(lambda: exact(queries[s], s), repeats if n_exact <= 1000 else 1)
        t_pr, d_pr = least(lambda: pruned(queries[s][:n_pruned], s), repeats if n_pruned == BATCH else 1)
        row = {"pool": name, "n_images": len(images), "sigma": s, "exact_s": t_ex * scale, "exact_extrapolated": scale > 1,
               "build_s": build, "peak_after_build_gib": build_gib, "pruned_s": t_pr * q_scale,
               "pruned_extrapolated": q_scale > 1, "speedup": t_ex * scale / (t_pr * q_scale),
               "bound": pruned.last_bound / 2.0, "n_unique": pool.n_unique, "n_clusters": pool.n_clusters}
        if scale == 1:
            row["err"] = float((d_pr - d_ex).abs().max()) / 2.0
        elif err_full:
            row["err_first_image"] = float((d_pr[:1] - full(queries[s][:1], s)).abs().max()) / 2.0
        row["peak_gib"] = status_kib("VmHWM") / 2**20
        rows.append(row)
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    return rows


def collapse_60k(x: torch.Tensor, copies: int = 11) -> dict:
    """The 5k set and ``copies`` integer circular shifts: unique patches after exact de-duplication (build only)."""
    g = torch.Generator().manual_seed(2)
    shifts = [tuple(int(v) for v in torch.randint(-3, 4, (2,), generator=g)) for _ in range(copies)]
    pool = torch.cat([x] + [x.roll(sh, dims=(2, 3)) for sh in shifts])
    t = time.perf_counter()
    built = PatchScore(pool, STENCIL, tol=TOL)._pruned_pool(None, "cpu")
    return {"n_images": len(pool), "n_pool": built.n_pool, "n_unique": built.n_unique, "build_s": time.perf_counter() - t,
            "shifts": shifts}


def sample_run(x: torch.Tensor, n_samples: int = 16, steps: int = 20) -> dict:
    """A ``steps``-step Euler run of ``n_samples`` samples of the default (pruned) model on ``x``, timed."""
    from critdiff.samplers import initial_noise, sample_euler, seed_generators
    from critdiff.schedules import sigma_grid

    t0 = time.perf_counter()
    model = PatchScore(x, STENCIL)  # tol=None: DEFAULT_TOL on a pool this size
    sigmas = sigma_grid("edm", steps, spacing="karras")
    x_t = initial_noise((n_samples, 1, 28, 28), sigmas, seed_generators(0, n_samples))
    bounds: list = []
    stamps = [time.perf_counter()]
    sample_euler(model, x_t, sigmas, callback=lambda step: (bounds.append(model.last_bound), stamps.append(time.perf_counter())))
    total = time.perf_counter() - t0
    return {"n_samples": n_samples, "steps": steps, "grid": "edm, karras rho=7", "seconds_total": total,
            "threads": torch.get_num_threads(), "tol": model.tol, "max_bound": max(bounds) / 2.0,
            "sigmas": [float(v) for v in sigmas[:-1]], "step_s": [b - a for a, b in zip(stamps, stamps[1:])]}


def peak_only(x: torch.Tensor, out: str) -> None:
    """Peak memory of the pruned path alone on MNIST-5k (build + one call per sigma), merged into ``out``."""
    reset_peak()
    base = status_kib("VmHWM") / 2**20
    g = torch.Generator().manual_seed(1)
    model = PatchScore(x, STENCIL, tol=TOL)
    for s in SIGMAS:
        model(x[:BATCH] + s * torch.randn((BATCH, 1, 28, 28), generator=g), s)
    res = json.loads(Path(out).read_text()) if Path(out).exists() else {}
    res["peak_pruned_only_5k"] = {"peak_gib": status_kib("VmHWM") / 2**20, "before_gib": base,
                                  "what": "fresh process: data loaded, pruned 5k model built, one call per sigma"}
    Path(out).write_text(json.dumps(res, indent=1))
    print(res["peak_pruned_only_5k"], flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--pools", default="1k,5k,60k,collapse")
    ap.add_argument("--sub60k", type=int, default=500)
    ap.add_argument("--batch60k", type=int, default=2, help="query images of the pruned 60k calls (scaled to 8)")
    ap.add_argument("--sub5k", type=int, default=5000, help="time the 5k exact path on this many images (scaled)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--collapse-copies", type=int, default=11, help="shifted copies in the collapse check")
    ap.add_argument("--threads-compare", action="store_true", help="also time the pruned 5k path at 1 and 2 threads")
    ap.add_argument("--sample-run", action="store_true", help="also time a 16-sample 20-step run on MNIST-5k")
    ap.add_argument("--peak-only", action="store_true", help="only the pruned 5k path's peak memory (merged into --out)")
    ap.add_argument("--out", default=str(HERE / "results" / "bench_patch_scale.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    x, _ = load("mnist")
    if args.peak_only:
        return peak_only(x, args.out)
    data = {"1k": (load("mnist:n=1000")[0], 1000), "5k": (x, 5000)}
    rows: list = []
    for name in filter(None, args.pools.split(",")):  # the JSON is rewritten after every pool, so partial runs are kept
        if name == "60k":
            rows += bench_pool("60k", warped_60k(x), args.sub60k, args.repeats, False, args.batch60k)
        elif name == "collapse":
            rows.append({"collapse_60k": collapse_60k(x, args.collapse_copies)})
            print(rows[-1], flush=True)
        else:
            imgs, n = data[name]
            rows += bench_pool(name, imgs, n if name == "1k" else args.sub5k, args.repeats, True)
        write(args.out, rows, load_before, args.threads)
    if args.threads_compare:
        merge(args.out, "threads_5k", threads_compare(x))
    if args.sample_run:
        merge(args.out, f"sample_run_{args.threads}_threads", sample_run(x))


def merge(out: str, key: str, value: dict) -> None:
    """Add ``value`` under ``key`` to the JSON at ``out`` (kept: the pool rows of an earlier run)."""
    res = json.loads(Path(out).read_text()) if Path(out).exists() else {}
    res[key] = value
    Path(out).write_text(json.dumps(res, indent=1))
    print(key, value, flush=True)


def threads_compare(x: torch.Tensor) -> dict:
    """Seconds per pruned 5k call (batch 8) at 1 and at 2 torch threads, same model and queries."""
    g = torch.Generator().manual_seed(1)
    model = PatchScore(x, STENCIL, tol=TOL)
    out = {"load_before": os.getloadavg()}
    for s in SIGMAS:
        q = x[:BATCH] + s * torch.randn((BATCH, 1, 28, 28), generator=g)
        model(q, s)  # builds the pool and the key caches
        for n in (1, 2):
            torch.set_num_threads(n)
            out[f"sigma={s} threads={n}"] = least(lambda: model(q, s), 1)[0]
    torch.set_num_threads(1)
    out["load_after"] = os.getloadavg()
    return out


def write(out: str, rows: list, load_before, threads: int) -> None:
    """Write ``rows`` to ``out``, keeping an earlier run's rows of other pools and its merged sections."""
    old = json.loads(Path(out).read_text()) if Path(out).exists() else {}
    names = {r.get("pool", next(iter(r))) for r in rows}
    kept = [r for r in old.get("rows", []) if r.get("pool", next(iter(r))) not in names]
    result = {**old, "config": {"stencil": STENCIL, "batch": BATCH, "dtype": "float32", "tol": TOL, "threads": threads,
                                "sigmas": SIGMAS, "equivariant": True, "boundary": "periodic",
                                "exact_extrapolation": "where exact_extrapolated: exact path timed on the first sub60k / sub5k images and scaled by N / sub (cost linear in the pool)",
                                "bound_and_err": "relative to the value range 2 of the data"},
              f"loadavg_{'+'.join(sorted(names))}": [load_before, os.getloadavg()], "rows": kept + rows}
    Path(out).write_text(json.dumps(result, indent=1))
    print("wrote", out, flush=True)


if __name__ == "__main__":
    main()
