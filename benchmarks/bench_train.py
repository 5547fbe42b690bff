"""Benchmark: training throughput (images/s) and sampling throughput (NFE/s) of the critdiff UNet.

Per configuration (data shape, width, channel multipliers, batch; float32, CPU unless ``--device``):

- ``train_images_per_s``: images per second of full training steps (diffusion loss, backward, AdamW,
  gradient clipping, EMA update: ``critdiff.nets.training``'s own pieces), median of ``--reps`` timed
  blocks of ``--steps`` steps after one warm-up step;
- ``sample_nfe_per_s``: per-sample denoiser evaluations per second of the wrapped network
  (``NetDenoiser``, conditional label, ``torch.no_grad``) at batch ``--sample-batch`` (default 64),
  median over ``--reps`` blocks; a Heun sampler with ``N`` steps spends ``2N - 1`` NFE per sample;
- ``heun30_s_per_64``: the implied wall time of a 30-step Heun run (59 NFE) for 64 samples.

The demo configuration is ``digits:size=16``, width 32, channel_mult 1,2,2, batch 64 (conditional,
10 classes + null class). ``--threads`` sets torch's threads (default 1: on a shared, loaded 2-core
machine two threads were measured up to ~20x slower than one, because of OpenMP spin-waiting).
Writes ``benchmarks/results/bench_train.json``. Usage:
``python benchmarks/bench_train.py [--quick] [--threads T] [--device D]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from critdiff import schedules as S
from critdiff.nets.net_denoiser import NetDenoiser
from critdiff.nets.training import TrainConfig, build_unet, diffusion_loss, ema_decay, ema_update
from critdiff.nets.unet import n_params

CONFIGS = [
    # (name, data shape C,H,W, n_classes, width, channel_mult, batch)
    ("demo digits16 w32 (1,2,2)", (1, 16, 16), 10, 32, (1, 2, 2), 64),
    ("small digits16 w16 (1,2)", (1, 16, 16), 10, 16, (1, 2), 64),
    ("textures32 w32 (1,2,2)", (1, 32, 32), 3, 32, (1, 2, 2), 32),
]


def bench_config(shape, n_classes, width, mult, batch, steps, reps, sample_batch, device):
    cfg = TrainConfig(width=width, channel_mult=mult, batch=batch)
    x0 = torch.rand(256, *shape) * 2 - 1
    labels = torch.arange(256) % n_classes
    net_cfg = cfg.net_config(x0, labels)
    net = build_unet(net_cfg, 0).to(device)
    ema = build_unet(net_cfg, 0).to(device).requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    sch = S.get(cfg.schedule)
    gen = torch.Generator().manual_seed(0)
    xb, yb = x0[:batch].to(device), labels[:batch].to(device)

    def step(k):
        loss = diffusion_loss(net, xb, yb, sch, cfg.prediction, gen, 0.1, net_cfg.null_class)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        ema_update(ema, net, ema_decay(k, 0.999))

    step(0)
    times = []
    for r in range(reps):
        t0 = time.perf_counter()
        for k in range(steps):
            step(k)
        times.append((time.perf_counter() - t0) / steps)
    train_ips = batch / statistics.median(times)

    den = NetDenoiser(ema)
    xs = torch.randn(sample_batch, *shape, device=device)
    lab = torch.arange(sample_batch, device=device) % n_classes
    with torch.no_grad():
        den(xs, 1.0, lab)
        st = []
        for r in range(reps):
            t0 = time.perf_counter()
            for sigma in (10.0, 1.0, 0.1):
                den(xs, sigma, lab)
            st.append((time.perf_counter() - t0) / 3)
    nfe_per_s = sample_batch / statistics.median(st)
    return {"n_params": n_params(net), "train_images_per_s": train_ips, "train_s_per_step": statistics.median(times),
            "sample_nfe_per_s": nfe_per_s, "heun30_s_per_64": 59 * 64 / nfe_per_s}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="demo configuration only, fewer repetitions")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=5, help="training steps per timed block")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sample-batch", type=int, default=64)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_train.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    configs = CONFIGS[:1] if args.quick else CONFIGS
    reps = 2 if args.quick else args.reps
    rows = []
    print(f"{'config':30s} {'params':>9s} {'train img/s':>12s} {'sample NFE/s':>13s} {'heun-30 x64 (s)':>16s}")
    for name, shape, K, width, mult, batch in configs:
        r = bench_config(shape, K, width, mult, batch, args.steps, reps, args.sample_batch, args.device)
        row = {"config": name, "shape": list(shape), "n_classes": K, "width": width, "channel_mult": list(mult),
               "batch": batch, **r}
        rows.append(row)
        print(f"{name:30s} {r['n_params']:9d} {r['train_images_per_s']:12.1f} {r['sample_nfe_per_s']:13.1f} "
              f"{r['heun30_s_per_64']:16.1f}", flush=True)
    record = {
        "benchmark": "bench_train",
        "threads": args.threads,
        "device": args.device,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "note": "shared, loaded machine: timings are pessimistic",
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
