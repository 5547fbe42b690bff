"""CUDA check: the core paths on a CUDA device against the CPU, one table, non-zero exit on a mismatch.

Paths: patch model (float32/float64, streaming and ``kernel='sdpa'``, certified pruned ``tol``),
empirical model, patch theory (stiffness spectrum), spectral probe, an Euler sampler run, a guided
denoiser, and one UNet training step (loss and updated weights). Each path runs once on the CPU and
once on ``--device``; the max abs difference divided by ``max(1, max |cpu result|)`` is compared with
a tolerance at float32 (or float64) rounding scale (TF32 matmuls are switched off). Without CUDA it prints "no CUDA device" and exits 0. ``--device cpu`` runs the
script end to end on the CPU twice (a dry run of the script itself).
Usage: ``python benchmarks/gpu_check.py [--device cuda:0]`` (or ``benchmarks/gpu_check.sh``).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from critdiff.data import load
from critdiff.guidance import guided
from critdiff.nets.training import build_unet, diffusion_loss
from critdiff.nets.unet import UNetConfig
from critdiff.probes.spectral import spectral_probe
from critdiff.samplers import sample_euler
from critdiff.schedules import get as get_schedule
from critdiff.scores import EmpiricalScore, PatchScore
from critdiff.theory.pool import patch_pool
from critdiff.theory.spectrum import stiffness_spectrum


def _data():
    x, y = load("digits:size=16,n=60")
    g = torch.Generator().manual_seed(0)
    q = x[:4] + 0.5 * torch.randn(x[:4].shape, generator=g)
    return x, y, q


def check_patch(dev, dtype, **kw):
    x, _, q = _data()
    return PatchScore(x.to(dtype), "square:5", device=dev, **kw)(q.to(dev, dtype), [0.05, 0.3, 1.0, 5.0])


def check_empirical(dev):
    x, _, q = _data()
    return EmpiricalScore(x, device=dev)(q.to(dev), 0.5)


def check_theory(dev):
    x, _, _ = _data()
    return torch.as_tensor(stiffness_spectrum(patch_pool(x.to(dev, torch.float64), "square:5"), 0.7).cov_eigs)


def check_probe(dev):
    x, _, q = _data()
    pr = spectral_probe(PatchScore(x, "square:5", device=dev), q.to(dev), 0.5, n_probes=4, seed=0)
    return torch.as_tensor(np.asarray(pr.kappa))


def check_sampler(dev):
    x, _, q = _data()
    sig = torch.tensor([5.0, 2.0, 1.0, 0.5, 0.2, 0.05, 0.0], dtype=torch.float64)
    return sample_euler(PatchScore(x, "square:5", device=dev), (5.0 * q).to(dev), sig)


def check_guidance(dev):
    x, y, q = _data()
    den = guided(PatchScore(x, "square:5", labels=y, device=dev), 2.0)
    return den(q.to(dev), 0.5, torch.tensor([1, 2, 3, 4], device=dev))


def check_train_step(dev):
    x, y, _ = _data()
    net = build_unet(UNetConfig(height=16, width_px=16, width=16, n_classes=10), seed=0).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=1e-2)
    loss = diffusion_loss(net, x[:16].to(dev), y[:16].to(dev), get_schedule("vp-cosine"), "eps",
                          torch.Generator().manual_seed(0), cond_drop=0.1, null_class=10)
    loss.backward()
    opt.step()
    return torch.cat([loss.detach().reshape(1)] + [p.detach().reshape(-1) for p in net.parameters()])


CHECKS = [
    ("patch float32", lambda d: check_patch(d, torch.float32), 2e-4),
    ("patch float64", lambda d: check_patch(d, torch.float64), 1e-10),
    ("patch sdpa float64", lambda d: check_patch(d, torch.float64, kernel="sdpa"), 1e-10),
    ("patch tol=1e-4 float64", lambda d: check_patch(d, torch.float64, tol=1e-4, n_clusters=16), 4e-4),
    ("empirical float32", check_empirical, 2e-4),
    ("theory spectrum", check_theory, 1e-10),
    ("spectral probe", check_probe, 1e-3),
    ("euler sampler", check_sampler, 1e-3),
    ("guidance w=2", check_guidance, 2e-4),
    ("unet train step", check_train_step, 1e-3),
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    dev = ap.parse_args().device
    if dev.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    failed = 0
    print(f"{'path':26s} {'rel. max diff':>14s} {'tol':>9s}  result")
    for name, fn, tol in CHECKS:
        try:
            ref = fn("cpu").detach().cpu()
            got = fn(dev).detach().cpu()
            err = float((got.to(ref.dtype) - ref).abs().max()) / max(1.0, float(ref.abs().max()))
            ok = err <= tol
            print(f"{name:26s} {err:14.3e} {tol:9.1e}  {'ok' if ok else 'MISMATCH'}")
        except Exception as e:  # a path that fails on the device is a mismatch, reported in one line
            ok = False
            print(f"{name:26s} {'error':>14s} {tol:9.1e}  ERROR {type(e).__name__}: {str(e).splitlines()[0][:80]}")
        failed += not ok
    print(f"{len(CHECKS) - failed}/{len(CHECKS)} paths agree on {dev}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
