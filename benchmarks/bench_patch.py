"""Benchmark: PatchScore (streaming online-softmax GEMM) against a straightforward unfold version.

DESIGN.md section 2 (patch model, ELS, periodic boundary). The reference ``naive_els`` below is the
way the public ELS-machine code evaluates the model: ``torch.nn.functional.unfold`` of query and
pool, squared distances by broadcasting differences (in chunks, to fit in memory), a softmax over
the whole pool and a weighted sum.

Per configuration (image size, stencil, N training images, sigma; batch B of queries, float32):

- ``fast_s``: median wall time of one ``PatchScore`` evaluation (after one warm-up call, which also
  builds the cached pool when it fits in 256 MiB);
- ``naive_s``: the same for ``naive_els``. When the full pool would take too long, it is timed on the
  first ``n_sub`` training images and scaled by ``N / n_sub`` (its cost is linear in the pool size):
  such rows are marked ``naive_extrapolated`` (``*`` in the table);
- ``max_abs_diff``: max |fast - naive| (both float32) on the pool the naive version actually ran on;
  ``fast_err_vs_f64`` / ``naive_err_vs_f64``: each against the naive version run in float64 (first query);
- ``fast_peak_mib`` / ``naive_peak_mib``: peak resident memory of a fresh subprocess during the
  evaluations, minus its resident memory just before (data already built): Linux ``VmHWM`` after a
  reset through ``/proc/self/clear_refs`` (falls back to ``ru_maxrss``). For extrapolated naive rows
  this is the peak on the subset;
- ``gflops`` / ``gemm_fraction``: useful flops of the fast path (``2 Nq M (D + 1)`` for the logit GEMM
  plus ``2 Nq M (C + 1)`` for the value GEMM; ``Nq = B H W`` query patches, ``M`` pool patches) per
  second, and their fraction of a large ``torch.matmul``'s rate measured in the same run, in the
  dtype the fast path actually used (float64 below sigma ~0.4, see ``PatchScore``'s precision rule).

All processes use ``--threads`` torch threads (default 1: on a shared, loaded 2-core machine two
threads were measured up to 10x slower than one). Writes ``benchmarks/results/bench_patch.json``.
Usage: ``python benchmarks/bench_patch.py [--quick] [--threads T]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from memory import reset_peak, status_kib
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent


# ---- data ------------------------------------------------------------------------------------
def digits_crops(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``[n, 1, size, size]`` random crops of sklearn digits upsampled to ``size + 4``, in [-1, 1]."""
    from sklearn.datasets import load_digits

    g = torch.Generator().manual_seed(seed)
    d = torch.tensor(load_digits().images, dtype=torch.float32).unsqueeze(1) / 16.0
    up = F.interpolate(d, size=(size + 4, size + 4), mode="bilinear", align_corners=False)
    idx = torch.randint(0, up.shape[0], (n,), generator=g)
    oy = torch.randint(0, 5, (n,), generator=g).tolist()
    ox = torch.randint(0, 5, (n,), generator=g).tolist()
    out = torch.stack([up[i, :, a : a + size, b : b + size] for i, a, b in zip(idx.tolist(), oy, ox)])
    return out * 2 - 1


def queries(y: torch.Tensor, batch: int, sigma: float, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return y[:batch] + sigma * torch.randn(batch, *y.shape[1:], generator=g)


# ---- the straightforward reference -----------------------------------------------------------
def naive_els(x, y, k, sigma, q_chunk=64, p_chunk=4096):
    """ELS patch model, periodic, square stencil ``k``: unfold + broadcast differences + softmax."""
    B, C, H, W = x.shape
    r = k // 2
    Q = F.unfold(F.pad(x, (r, r, r, r), mode="circular"), k).transpose(1, 2).reshape(B * H * W, -1)
    P = F.unfold(F.pad(y, (r, r, r, r), mode="circular"), k).transpose(1, 2).reshape(-1, Q.shape[1])
    V = y.permute(0, 2, 3, 1).reshape(-1, C)
    out = torch.empty(B * H * W, C, dtype=x.dtype)
    for i in range(0, Q.shape[0], q_chunk):
        q = Q[i : i + q_chunk]
        d2 = torch.cat([((q[:, None, :] - P[None, j : j + p_chunk]) ** 2).sum(-1) for j in range(0, P.shape[0], p_chunk)], 1)
        w = torch.softmax(-d2 / (2 * sigma**2), dim=1)
        out[i : i + q_chunk] = w @ V
    return out.reshape(B, H, W, C).permute(0, 3, 1, 2)


# ---- memory ----------------------------------------------------------------------------------


def _peak_kib(reset_ok: bool) -> int:
    if reset_ok:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _timed(fn, reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


# ---- one measurement in a fresh process ------------------------------------------------------
def worker(cfg: dict) -> dict:
    from critdiff.scores import PatchScore

    torch.set_num_threads(cfg["threads"])
    y = digits_crops(cfg["N"], cfg["size"])
    x = queries(y, cfg["batch"], cfg["sigma"])
    k, sigma = cfg["k"], cfg["sigma"]
    res: dict = {}
    if cfg["mode"] == "fast":
        base = status_kib("VmRSS")
        ok = reset_peak()
        model = PatchScore(y, f"square:{k}")
        if cfg["reps"] > 1:
            model(x, sigma)  # warm-up (builds the cached pool if it fits); single-rep rows include it
        times = _timed(lambda: model(x, sigma), cfg["reps"])
        res["peak_mib"] = (_peak_kib(ok) - base) / 1024
        res["times"] = times
        res["n_pool"] = model.n_pool
        res["compute_dtype"] = str(model.compute_dtypes(x, sigma)[0]).replace("torch.", "")
    else:
        ys = y[: cfg["n_sub"]]
        base = status_kib("VmRSS")
        ok = reset_peak()
        times = _timed(lambda: naive_els(x, ys, k, sigma), cfg["reps"])
        res["peak_mib"] = (_peak_kib(ok) - base) / 1024
        res["times"] = times
        ref = naive_els(x, ys, k, sigma)
        got = PatchScore(ys, f"square:{k}")(x, sigma)
        res["max_abs_diff"] = float((got - ref).abs().max())
        # both against a float64 naive evaluation of the first query image
        ref64 = naive_els(x[:1].double(), ys.double(), k, sigma)
        res["fast_err_vs_f64"] = float((got[:1].double() - ref64).abs().max())
        res["naive_err_vs_f64"] = float((ref[:1].double() - ref64).abs().max())
    return res


def run_worker(cfg: dict) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg["threads"]), MKL_NUM_THREADS=str(cfg["threads"]))
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(cfg)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"worker failed for {cfg}:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def gemm_rate(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    a @ b
    t = _timed(lambda: a @ b, reps)
    return 2 * n**3 / float(np.median(t)) / 1e9


# ---- driver ----------------------------------------------------------------------------------
def configs(quick: bool) -> list[dict]:
    rows = []
    if quick:
        for sigma in (1.0, 0.05):
            rows.append(dict(size=16, k=5, N=1000, sigma=sigma, headline=False))
        return rows
    for N in (1000, 10000):
        for sigma in (1.0, 0.05):
            rows.append(dict(size=28, k=7, N=N, sigma=sigma, headline=True))
    for size, k in ((16, 3), (16, 9), (32, 5)):
        rows.append(dict(size=size, k=k, N=1000, sigma=1.0, headline=False))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="about one minute: N=1000 only, fewer repeats")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", default=str(HERE / "results" / "bench_patch.json"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    torch.set_num_threads(args.threads)
    rate = {"float32": gemm_rate(torch.float32), "float64": gemm_rate(torch.float64)}
    print(f"torch {torch.__version__}, {args.threads} thread(s); GEMM rate float32 {rate['float32']:.1f} GFLOP/s, "
          f"float64 {rate['float64']:.1f} GFLOP/s")
    # naive pool subset: about 2.5e9 (query, pool) pairs x stencil, i.e. a few seconds to ~20 s
    budget_pairs = 2.0e7 if args.quick else 1.0e8
    rows = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(torch=torch.__version__, threads=args.threads, quick=args.quick, machine=platform.machine(),
                processor=platform.processor(), cpu_count=os.cpu_count(), gemm_gflops=rate,
                load_average_at_start=os.getloadavg())
    hdr = f"{'size':>4} {'stencil':>8} {'N':>6} {'sigma':>6} {'dtype':>7} {'fast_s':>8} {'naive_s':>9} {'ratio':>7} " \
          f"{'maxdiff':>8} {'err_fast':>8} {'err_naive':>9} {'fast_MiB':>8} {'naive_MiB':>9} {'GFLOP/s':>8} {'gemm%':>6}"
    print(hdr)
    for c in configs(args.quick):
        size, k, N, sigma, B = c["size"], c["k"], c["N"], c["sigma"], args.batch
        n_q = B * size * size
        n_sub = int(min(N, max(1, budget_pairs * 49 / (k * k) // (n_q * size * size))))
        reps_fast = 1 if N >= 10000 else 3
        common = dict(size=size, k=k, N=N, sigma=sigma, batch=B, threads=args.threads)
        fast = run_worker(dict(common, mode="fast", reps=reps_fast))
        naive = run_worker(dict(common, mode="naive", reps=1, n_sub=n_sub))
        fast_s = float(np.median(fast["times"]))
        naive_s = float(np.median(naive["times"])) * N / n_sub
        M = fast["n_pool"]
        flops = 2.0 * n_q * M * (k * k + 1) + 2.0 * n_q * M * 2
        gflops = flops / fast_s / 1e9
        row = dict(c, batch=B, stencil=f"square:{k}", n_pool=M, compute_dtype=fast["compute_dtype"], fast_s=fast_s,
                   fast_times=fast["times"], naive_s=naive_s, naive_extrapolated=n_sub < N, naive_n_sub=n_sub,
                   ratio=naive_s / fast_s, max_abs_diff=naive["max_abs_diff"],
                   fast_err_vs_f64=naive["fast_err_vs_f64"], naive_err_vs_f64=naive["naive_err_vs_f64"], fast_peak_mib=fast["peak_mib"],
                   naive_peak_mib=naive["peak_mib"], gflops=gflops, gemm_fraction=gflops / rate[fast["compute_dtype"]])
        rows.append(row)
        star = "*" if row["naive_extrapolated"] else " "
        print(f"{size:>4} {'sq:' + str(k):>8} {N:>6} {sigma:>6g} {row['compute_dtype']:>7} {fast_s:>8.2f} "
              f"{naive_s:>8.1f}{star} {row['ratio']:>7.1f} {row['max_abs_diff']:>8.1e} {row['fast_err_vs_f64']:>8.1e} {row['naive_err_vs_f64']:>9.1e} {row['fast_peak_mib']:>8.0f} "
              f"{row['naive_peak_mib']:>9.0f} {gflops:>8.1f} {100 * row['gemm_fraction']:>5.0f}%", flush=True)
        out.write_text(json.dumps(dict(meta=meta, rows=rows), indent=2))  # after every row: partial runs count
    print("* naive time extrapolated linearly from its first naive_n_sub training images (see JSON)")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
