"""CUDA check: the core paths on a CUDA device against the CPU, one table, non-zero exit on a mismatch.

Paths: patch model (float32/float64, streaming ``kernel='stream'`` and ``kernel='sdpa'``, certified
pruned ``tol``), empirical model, Gaussian model and its exact class posterior, patch theory (stiffness spectrum, and the whole
``analyze`` with its pool on the device), spectral probe (random and impulse), the linear-response
probe, an Euler sampler run, a guided denoiser (constant and adaptive pulse), one UNet training step
(loss and updated weights), and the command line: ``critdiff sample``, ``probe`` and ``theory`` run with
``--device`` against the same commands on the CPU. Each path runs once on the CPU and once on
``--device``; the max abs difference divided by ``max(1, max |cpu result|)`` is compared with a
tolerance at float32 (or float64) rounding scale (TF32 matmuls are switched off); the theory's pool is
checked to live on the device (its results come back to the CPU by design). Without CUDA it prints "no CUDA device" and exits 0. ``--device cpu`` runs the
script end to end on the CPU twice (a dry run of the script itself; ``tests/test_gpu_check.py`` runs it).
``--only NAME,...`` runs the paths whose names start with one of the given prefixes.
Usage: ``python benchmarks/gpu_check.py [--device cuda:0] [--only patch,cli]`` (or ``benchmarks/gpu_check.sh``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from critdiff import guidance_schedules as GS
from critdiff.data import load
from critdiff.guidance import Guided, guided
from critdiff.nets.training import build_unet, diffusion_loss
from critdiff.nets.unet import UNetConfig
from critdiff.probes.decision import gaussian_logits
from critdiff.probes.linear_response import linear_response
from critdiff.probes.spectral import spectral_probe
from critdiff.samplers import sample_euler
from critdiff.schedules import get as get_schedule
from critdiff.scores import EmpiricalScore, GaussianScore, PatchScore
from critdiff.theory.analysis import analyze
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


def check_gaussian(dev, covariance):
    x, y, q = _data()
    return GaussianScore(x, labels=y, covariance=covariance, device=dev)(q.to(dev), 0.5, torch.arange(4, device=dev))


def check_gaussian_logits(dev, covariance):
    """The exact class posterior of a labelled Gaussian model (decision-entropy route), its fits on ``dev``."""
    x, y, q = _data()
    return gaussian_logits(GaussianScore(x, labels=y, covariance=covariance, device=dev))(q.to(dev), 0.5)


def check_theory(dev):
    x, _, _ = _data()
    pool = patch_pool(x.to(torch.float64), "square:5", device=dev)
    _on(pool.patches, dev)
    return torch.as_tensor(stiffness_spectrum(pool, 0.7).cov_eigs)


def check_analyze(dev):
    x, _, _ = _data()
    rep = analyze(x, "square:5", n_t=31, device=dev)
    return torch.cat([torch.as_tensor(np.asarray(rep.kappa_radial, dtype=np.float64)).reshape(-1),
                      torch.tensor([rep.critical.logsnr_c if rep.critical.found else 0.0], dtype=torch.float64)])


def check_probe(dev, method="random"):
    x, _, q = _data()
    kw = {"n_probes": 4, "seed": 0} if method == "random" else {}
    pr = spectral_probe(PatchScore(x, "square:5", device=dev), q[:2].to(dev), 0.5, method=method, **kw)
    return torch.as_tensor(np.asarray(pr.kappa))


def check_linear_response(dev):
    x, _, _ = _data()
    lr = linear_response(PatchScore(x, "square:3", device=dev), (1, 16, 16), "vp-linear", steps=6, n=2,
                         dtype=torch.float64, device=dev, keep_states=False)
    return torch.as_tensor(lr.g)


def check_sampler(dev):
    x, _, q = _data()
    sig = torch.tensor([5.0, 2.0, 1.0, 0.5, 0.2, 0.05, 0.0], dtype=torch.float64)
    return sample_euler(PatchScore(x, "square:5", device=dev), (5.0 * q).to(dev), sig)


def check_guidance(dev):
    x, y, q = _data()
    den = guided(PatchScore(x, "square:5", labels=y, device=dev), 2.0)
    return den(q.to(dev), 0.5, torch.tensor([1, 2, 3, 4], device=dev))


def check_adaptive(dev):
    """An Euler run under an adaptive pulse (its per-sample firing state lives on the CPU, the run on ``dev``)."""
    x, y, q = _data()
    pulse = GS.AdaptivePulse(GS.Pulse(0.0, 2.0, 3.0, 0.0), 0.0, "x0-rate")
    den = Guided(GaussianScore(x, labels=y, device=dev), pulse)
    sig = torch.tensor([5.0, 2.0, 1.0, 0.5, 0.2, 0.0], dtype=torch.float64)
    out = sample_euler(den, (5.0 * q).to(dev), sig, label=torch.tensor([1, 2, 3, 4]), callback=[pulse.observe])
    return torch.cat([out.reshape(-1).double(), torch.nan_to_num(pulse.fired, nan=-99.0).to(out.device)])


def check_train_step(dev):
    x, y, _ = _data()
    net = build_unet(UNetConfig(height=16, width_px=16, width=16, n_classes=10), seed=0).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=1e-2)
    loss = diffusion_loss(net, x[:16].to(dev), y[:16].to(dev), get_schedule("vp-cosine"), "eps",
                          torch.Generator().manual_seed(0), cond_drop=0.1, null_class=10)
    loss.backward()
    opt.step()
    return torch.cat([loss.detach().reshape(1)] + [p.detach().reshape(-1) for p in net.parameters()])


def _on(t: torch.Tensor, dev) -> None:
    """Fail the path unless ``t`` lives on ``dev`` (the work ran there, not only its result came back)."""
    if t.device.type != torch.device(dev).type:
        raise RuntimeError(f"computed on {t.device}, expected {dev}")


def _cli(argv: list, dev: str, read) -> torch.Tensor:
    """``critdiff ARGV --device DEV --out TMP`` through the command line's own entry point; ``read(out, stdout)``
    gives the tensor compared."""
    import contextlib
    import io

    from critdiff.cli import main as cli_main

    with tempfile.TemporaryDirectory() as tmp:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            code = cli_main([*argv, "--device", dev, "--out", str(Path(tmp) / "out")])
        if code != 0:
            raise RuntimeError(f"critdiff {argv[0]} --device {dev} exited {code}")
        return read(Path(tmp) / "out", buf.getvalue())


def _samples(out: Path, stdout: str) -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(str(out / "samples.safetensors"))["samples"]


def _json_numbers(*keys):
    def read(out: Path, stdout: str) -> torch.Tensor:
        rec = json.loads(stdout.strip().splitlines()[-1])
        vals = []
        for key in keys:
            v = rec
            for part in key.split("."):
                v = v[part]
            vals.append(float(v))
        return torch.tensor(vals, dtype=torch.float64)

    return read


SAMPLE = ["sample", "--model", "patch", "--data", "digits:size=16,n=60", "--steps", "8", "--n", "4", "--sampler", "ddpm"]
PROBE = ["probe", "--model", "patch", "--data", "stripes:size=8,n=20,wavelength=4", "--stencil", "square:3", "--n", "4",
         "--steps", "8", "--times", "3", "--linear", "6", "--linear-n", "2", "--homogeneous", "5", "--n-boot", "20",
         "--no-chi", "--json"]
THEORY = ["theory", "--data", "stripes:size=8,n=20,wavelength=4", "--json"]

CHECKS = [
    ("patch float32", lambda d: check_patch(d, torch.float32), 2e-4),
    ("patch float64", lambda d: check_patch(d, torch.float64), 1e-10),
    ("patch stream float64", lambda d: check_patch(d, torch.float64, kernel="stream"), 1e-10),
    ("patch sdpa float64", lambda d: check_patch(d, torch.float64, kernel="sdpa"), 1e-10),
    ("patch sdpa float32", lambda d: check_patch(d, torch.float32, kernel="sdpa"), 2e-4),
    ("patch tol=1e-4 float64", lambda d: check_patch(d, torch.float64, tol=1e-4, n_clusters=16), 4e-4),
    ("empirical float32", check_empirical, 2e-4),
    ("gaussian full", lambda d: check_gaussian(d, "full"), 1e-4),
    ("gaussian stationary", lambda d: check_gaussian(d, "stationary"), 1e-4),
    ("gaussian logits full", lambda d: check_gaussian_logits(d, "full"), 1e-8),
    ("gaussian logits stationary", lambda d: check_gaussian_logits(d, "stationary"), 1e-8),
    ("theory spectrum", check_theory, 1e-10),
    ("theory analyze", check_analyze, 1e-8),
    ("spectral probe", check_probe, 1e-3),
    ("spectral probe impulse", lambda d: check_probe(d, "impulse"), 1e-3),
    ("linear response", check_linear_response, 1e-6),
    ("euler sampler", check_sampler, 1e-3),
    ("guidance w=2", check_guidance, 2e-4),
    ("guidance adaptive", check_adaptive, 1e-3),
    ("unet train step", check_train_step, 1e-3),
    ("cli sample", lambda d: _cli(SAMPLE, d, _samples), 1e-3),
    ("cli probe", lambda d: _cli(PROBE, d, _json_numbers("theory.logsnr_c", "signals.linear_growth.logsnr_c",
                                                         "signals.homogeneous.logsnr_c")), 1e-3),
    ("cli theory", lambda d: _cli(THEORY, d, _json_numbers("logsnr_c", "k_star_abs")), 1e-8),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--only", default="", help="comma-separated prefixes of the path names to run (default: all)")
    args = ap.parse_args(argv)
    dev = args.device
    if dev.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 0
    prefixes = tuple(p.strip() for p in args.only.split(",") if p.strip())
    checks = [c for c in CHECKS if not prefixes or c[0].startswith(prefixes)]
    if not checks:
        print(f"--only {args.only!r} names no path; paths: {', '.join(c[0] for c in CHECKS)}")
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    failed = 0
    print(f"{'path':26s} {'rel. max diff':>14s} {'tol':>9s}  result")
    for name, fn, tol in checks:
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
    print(f"{len(checks) - failed}/{len(checks)} paths agree on {dev}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
