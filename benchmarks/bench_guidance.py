"""Benchmark: guided sampling with one model call per step (critdiff.guidance.Guided) against the former two calls.

Guided DDIM (``--steps`` 20, vp-cosine logsnr grid) of a batch of ``--batch`` 64 samples, float32, torch threads
``--threads`` (default 1), under two guidance weights: a constant ``w = 3`` and a box pulse of height 3 around
logsnr 0 (width 2, baseline 1: outside the box ``w = 1`` and one evaluation at batch B suffices). Two paths, side
by side in one run and on the same noise:

- ``one-call``: :class:`critdiff.guidance.Guided`: ``[x; x]`` with ``[NULL_LABEL; label]`` at batch 2B in one call;
- ``two-call``: the former implementation, kept only here (:class:`TwoCallGuided`): ``D(x, None)`` and
  ``D(x, label)`` as two calls of batch B (each on the samples whose weight needs it, with the device sync
  of ``nonzero`` per step).

Models: ``unet``: the project's UNet in the configuration of the reference MNIST network (28x28, width 16,
channel_mult 1,2,4, 10 classes, v-prediction) with RANDOM weights (no trained checkpoint is read; the cost of a
call does not depend on the weights); ``patch``: the ELS patch model (square:3, periodic) on ``--patch-data``
(default ``digits:size=8,n=50``, 10 class pools of 5 images: small, so that it runs in minutes on a loaded
CPU). Each (model, weight, path) is timed ``--reps`` times, interleaving the paths, and the least-disturbed
(minimum) wall time is reported with the median; ``ratio`` = two-call / one-call of the minima. ``max_diff``: max |one-call - two-call| of the final samples (the batch
composition differs, so float32 rounding, not bits). Writes ``benchmarks/results/bench_guidance.json``.

Usage: ``python benchmarks/bench_guidance.py [--quick] [--threads 1] [--device cpu]``.
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

from critdiff import samplers as SM
from critdiff import schedules as S
from critdiff.denoisers import Denoiser, GuidanceOutput, as_labels, as_sigma
from critdiff.guidance import Guided, constant
from critdiff.guidance_schedules import Pulse
from critdiff.nets.net_denoiser import NetDenoiser
from critdiff.nets.training import build_unet
from critdiff.nets.unet import UNetConfig, n_params

OUT = Path(__file__).resolve().parent / "results" / "bench_guidance.json"
REF_UNET = dict(channels=1, height=28, width_px=28, width=16, channel_mult=(1, 2, 4), num_res_blocks=1,
                n_classes=10, prediction="v")


class TwoCallGuided:
    """The former guided denoiser (critdiff before the one-call change), kept for this comparison only:
    ``D_u`` and ``D_c`` from two calls, each on the samples whose weight needs it (``w != 1`` / ``w != 0``)."""

    def __init__(self, denoiser: Denoiser, w):
        self.denoiser, self.w, self.calls = denoiser, w, 0

    def __call__(self, x, sigma, label=None):
        B = x.shape[0]
        s = as_sigma(sigma, x)
        lab = as_labels(label, B, x.device)
        w = torch.as_tensor(self.w(s), dtype=x.dtype, device=x.device)
        w = w.reshape(-1).expand(B) if w.numel() == 1 else w.reshape(B)
        raw = isinstance(self.denoiser, GuidanceOutput)
        output = self.denoiser.guidance_output if raw else self.denoiser
        d_u = self._subset(output, x, s, None, w != 1)
        d_c = self._subset(output, x, s, lab, w != 0)
        mixed = d_u + w.reshape(-1, 1, 1, 1) * (d_c - d_u)
        return self.denoiser.guidance_x0(x, s, mixed) if raw else mixed

    def _subset(self, output, x, s, lab, mask):
        if bool(mask.all()):
            self.calls += 1
            return output(x, s, lab)
        if not bool(mask.any()):
            return torch.zeros_like(x)
        self.calls += 1
        idx = mask.nonzero().squeeze(1)
        part = output(x[idx], s[idx], None if lab is None else lab[idx])
        return torch.zeros_like(x).index_put((idx,), part)


class Counting:
    def __init__(self, d):
        self.d, self.calls = d, 0

    def __call__(self, x, sigma, label=None):
        self.calls += 1
        return self.d(x, sigma, label)


def unet_model(device):
    net = build_unet(UNetConfig(**REF_UNET), seed=0)
    torch.nn.init.normal_(net.out.weight, std=0.02)  # the zero-initialised output layer: a non-trivial output
    return NetDenoiser(net.to(device).requires_grad_(False)), (1, 28, 28), 10, n_params(net)


def patch_model(spec, device):
    from critdiff.data import load
    from critdiff.scores import PatchScore

    y, lab = load(spec, seed=0)
    m = PatchScore(y.float(), "square:3", labels=lab, device=device)
    return m, tuple(y.shape[1:]), int(lab.max()) + 1, int(y.shape[0])


def time_run(make, model, x, sig, lab):
    """Wall time, final state and model calls of one guided DDIM run (counting a call costs ~1 us)."""
    counted = Counting(model)
    with torch.no_grad():
        t0 = time.perf_counter()
        out = SM.sample_ddim(make(counted), x, sig, label=lab)
        if x.device.type == "cuda":
            torch.cuda.synchronize()
    return time.perf_counter() - t0, out, counted.calls


def bench(name, model, shape, K, info, args, device):
    sig = S.sigma_grid(S.get("vp-cosine"), args.steps, "logsnr")
    B = args.batch
    x = SM.initial_noise((B, *shape), sig, SM.seed_generators(0, B), device=device)
    lab = (torch.arange(B) % K).to(device)
    rows = []
    for wname, w in (("constant 3", constant(3.0)), ("pulse 3 @ logsnr 0", Pulse(centre=0.0, width=2.0, height=3.0))):
        paths = {"one-call": lambda d, w=w: Guided(d, w), "two-call": lambda d, w=w: TwoCallGuided(d, w)}
        times = {p: [] for p in paths}
        outs, calls = {}, {}
        for _ in range(args.reps):  # interleave the paths: both see the same machine load; the first run of
            for p, make in paths.items():  # each also warms up, so the minimum is the least-disturbed run
                t, outs[p], calls[p] = time_run(make, model, x, sig, lab)
                times[p].append(t)
        row = {"model": name, "weight": wname, "batch": B, "steps": args.steps, **info}
        for p in paths:
            row[f"{p}_min_s"] = min(times[p])
            row[f"{p}_median_s"] = statistics.median(times[p])
            row[f"{p}_calls"] = calls[p]
            row[f"{p}_all_s"] = times[p]
        row["ratio"] = row["two-call_min_s"] / row["one-call_min_s"]
        row["max_diff"] = float((outs["one-call"] - outs["two-call"]).abs().max())
        rows.append(row)
        print(f"{name:6s} {wname:20s} one-call {row['one-call_min_s']:7.2f} s ({calls['one-call']:3d} calls)  "
              f"two-call {row['two-call_min_s']:7.2f} s ({calls['two-call']:3d} calls)  ratio {row['ratio']:.2f}  "
              f"max|diff| {row['max_diff']:.1e}", flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--patch-data", default="digits:size=8,n=50")
    p.add_argument("--models", default="unet,patch")
    p.add_argument("--quick", action="store_true", help="batch 8, 4 steps, 2 repeats")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.steps, args.reps = 8, 4, 2
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    load0 = os.getloadavg()
    rows = []
    for name in args.models.split(","):
        if name == "unet":
            model, shape, K, n = unet_model(device)
            rows += bench("unet", model, shape, K, {"params": n, "weights": "random init"}, args, device)
        elif name == "patch":
            model, shape, K, n = patch_model(args.patch_data, device)
            rows += bench("patch", model, shape, K, {"data": args.patch_data, "n_train": n}, args, device)
        else:
            raise SystemExit(f"--models: expected unet and/or patch, got {name!r}")
    record = {"threads": args.threads, "device": str(device), "torch": torch.__version__, "python": platform.python_version(),
              "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "loadavg_start": load0, "loadavg_end": os.getloadavg(), "reps": args.reps, "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(out)
    print(f"wrote {out} (load average {load0[0]:.2f} at start, {record['loadavg_end'][0]:.2f} at end)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
