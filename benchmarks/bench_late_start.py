"""Benchmark: Gaussian late start and the 'critical' grid, FD against held-out data vs NFE (DESIGN.md section 5b,
docs/samplers.md "Late start" and "Critical grid"; issue 26).

Per model, vp-linear schedule, float32 models, one torch thread, ``n`` samples per setting (paired: sample ``j``
draws its standard normal ``z_j`` from ``seed_generators(SEED, n)[j]`` in every setting; the full-range start is
``sigma_max z_j``, the late start ``mu + (Sigma + sigma_s^2 I)^{1/2} z_j``):

- **start sweep**: FD at NFE 8 (DDIM, eta = 0, and DPM-Solver++(2M)) for start levels ``lambda_s`` from the
  schedule's ``logsnr_min`` up to past the critical point; the best start and its distance to the measured
  critical times (speciation ``snr lambda_max(Sigma) = 1`` from the same moments; the linear-response growth
  onset of the symmetric branch, :func:`critdiff.probes.from_growth`; the patch theory for the patch model);
- **curves**: FD vs NFE in (4, 6, 8, 12, 20, 50) for ``full`` (uniform in logsnr), ``karras`` (rho = 7),
  ``late`` (uniform in logsnr from ``lambda_c - margin``), ``critical`` (the measured step density, eq. CG.1-2,
  full range) and ``late+critical``, with both samplers;
- **paired bootstrap** (100 replicates over samples and held-out points jointly) of ``FD(late) - FD(full)`` and
  ``FD(critical) - FD(full)`` at NFE 6 and 8 (the curves' NFE in the issue's 6-10 range).

FD is the Frechet distance in pixel space (these models are small; no feature network) between the samples and
``n`` held-out points: ``exact`` draws of the model's own distribution where it is known (the Gaussian model:
``N(mu, Sigma)`` of its fit; the two-point model: the training set's two-point law), held-out data otherwise (the
patch model: digits not in its training set). ``floor``: the FD of ``n`` further held-out points, the metric's
own finite-``n`` value that no sampler can beat. ``fd_vs_converged``: FD to the model's own converged samples
(DPM-Solver++(2M), full range, the largest NFE run, same ``z``): the sampler's error apart from the model's, which matters
where the model is not the data (the patch model).

Models (cheapest first): ``gaussian`` (GaussianScore, full covariance, grf:size=8, 1000 training fields),
``twopoint`` (EmpiricalScore on constant 4x4 images ``+-1``, weight 0.8 on ``+1``: the exact denoiser of that
law), ``patch`` (ELS patch model, square:3 stencil, 60 digits:size=8; stationary late-start moments; run here with
``--n 64 --nfes 4,6,8,12,20``: one evaluation of 128 samples took about 5 s on the loaded shared core).
The trained nets (``pretrained:mnist28``) are pending: the reference network had not shipped to main.

Run: ``PYTHONPATH=src python benchmarks/bench_late_start.py [--models gaussian,twopoint,patch] [--n 256]``;
writes ``benchmarks/results/late_start.json`` (merged per model, so models can run separately) and
``late_start.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from critdiff import samplers as SM
from critdiff import schedules as S
from critdiff.experiments.guide.metrics import frechet_distance
from critdiff.late_start import fit_moments, start_state
from critdiff.probes.step_density import denoiser_speed, peak_logsnr

SEED = 0
NFES = (4, 6, 8, 12, 20, 50)
PATCH_TRAIN = 60  # training digits of the patch model (its cost is linear in them; CPU-bound here)
SAMPLERS = {"ddim": SM.sample_ddim, "dpmpp-2m": SM.sample_dpmpp_2m}
VARIANTS = ("full", "karras", "late", "critical", "late+critical")
SWEEP_NFE = 8
SWEEP_OFFSETS = (-8.0, -6.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)  # lambda_s - lambda_c(speciation)
OUT = Path(__file__).parent / "results"


def _flat(x: torch.Tensor) -> np.ndarray:
    return x.detach().to(torch.float64).reshape(x.shape[0], -1).cpu().numpy()


def build(name: str):
    """``(model, train images, held-out [2n] maker, moments covariance, note)``."""
    if name == "gaussian":
        from critdiff.data import load
        from critdiff.scores.gaussian import GaussianScore

        train, _ = load("grf:size=8,n=1000", seed=1)
        model = GaussianScore(train, covariance="full")
        m = fit_moments(train, "full")

        def heldout(n, seed):  # exact draws of the model's own law N(mu, Sigma)
            g = torch.Generator().manual_seed(seed)
            z = torch.randn(n, 64, generator=g, dtype=torch.float64)
            return (m.mu.reshape(-1) + (z * m.lam.clamp_min(0).sqrt()) @ m.U.T).reshape(n, 1, 8, 8).float()

        return model, train, heldout, "full", "exact: N(mu, Sigma) of the fit"
    if name == "twopoint":
        from critdiff.scores.empirical import EmpiricalScore

        n_tr, w = 1000, 0.8
        sign = torch.where(torch.arange(n_tr) < int(w * n_tr), 1.0, -1.0)
        train = sign.reshape(-1, 1, 1, 1).expand(n_tr, 1, 4, 4).contiguous()
        model = EmpiricalScore(train)

        def heldout(n, seed):  # exact draws of the training set's two-point law
            g = torch.Generator().manual_seed(seed)
            s = torch.where(torch.rand(n, generator=g) < w, 1.0, -1.0)
            return s.reshape(-1, 1, 1, 1).expand(n, 1, 4, 4).contiguous()

        return model, train, heldout, "full", f"exact: two points +-1 (4x4 constant images), weight {w} on +1"
    if name == "patch":
        from critdiff.data import load
        from critdiff.scores.patch import PatchScore

        x, _ = load("digits:size=8", seed=0)
        perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
        train, rest = x[perm[:PATCH_TRAIN]], x[perm[PATCH_TRAIN:]]
        model = PatchScore(train, stencil="square:3")

        def heldout(n, seed):
            p = torch.randperm(rest.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
            return rest[p]

        return model, train, heldout, "stationary", f"held-out digits (8x8) not in the {PATCH_TRAIN} training images"
    raise ValueError(f"models: unknown model {name!r}")


def critical_times(name, model, train, moments, shape) -> dict:
    """The t_c estimates of the model (logsnr)."""
    from critdiff.probes import from_growth, linear_response

    out = {"speciation": -math.log(moments.lambda_max())}
    t0 = time.perf_counter()
    try:
        lr = linear_response(model, shape, "vp-linear", steps=24, n=4, seed=SEED, keep_states=False)
        est = from_growth(lr, n_boot=200, seed=SEED)
        out["linear_response"] = float(est.logsnr)
        out["linear_response_ci"] = [float(v) for v in est.logsnr_ci]
        out["linear_response_method"] = est.method
    except ValueError as e:  # no growth onset (e.g. Gaussian data: the branch never turns unstable)
        out["linear_response"] = None
        out["linear_response_error"] = str(e)
    out["linear_response_seconds"] = time.perf_counter() - t0
    if name == "patch":
        from critdiff.theory.critical import critical_point
        from critdiff.theory.pool import patch_pool

        cp = critical_point(patch_pool(train.to(torch.float64), "square:3"), S.get("vp-linear"), growth=False)
        out["theory"] = float(cp.logsnr_c) if cp.found else None
    return out


def grid(variant: str, nfe: int, lam_start: float, density) -> torch.Tensor:
    sch = S.get("vp-linear")
    top = math.exp(-0.5 * lam_start) if "late" in variant else None
    if "critical" in variant:
        return S.sigma_grid(sch, nfe, "critical", sigma_max=top, density=density)
    return S.sigma_grid(sch, nfe, "karras" if variant == "karras" else "logsnr", sigma_max=top)


def draw(model, sampler, sigmas, late: bool, moments, shape, n) -> torch.Tensor:
    gens = SM.seed_generators(SEED, n)
    if late:
        x = start_state(moments, float(sigmas[0]), n, gens)
    else:
        x = SM.initial_noise((n, *shape), sigmas, gens)
    with torch.no_grad():
        return SAMPLERS[sampler](model, x, sigmas)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, ref: np.ndarray, reps: int = 100) -> dict:
    """``FD(a) - FD(b)`` against ``ref``; a and b paired row by row; percentile 95% interval."""
    rng = np.random.default_rng(SEED)
    d0 = frechet_distance(a, ref) - frechet_distance(b, ref)
    ds = []
    for _ in range(reps):
        i = rng.integers(0, a.shape[0], a.shape[0])
        j = rng.integers(0, ref.shape[0], ref.shape[0])
        ds.append(frechet_distance(a[i], ref[j]) - frechet_distance(b[i], ref[j]))
    lo, hi = np.percentile(ds, [2.5, 97.5])
    return {"diff": d0, "lo": float(lo), "hi": float(hi), "reps": reps}


def run_model(name: str, n: int, margin: "float | None", log, nfes=NFES) -> dict:
    t_model = time.perf_counter()
    model, train, heldout, cov, note = build(name)
    shape = tuple(train.shape[1:])
    moments = fit_moments(train, cov)
    ref, ref2 = _flat(heldout(n, 101)), _flat(heldout(n, 202))
    rec = {"model": name, "note": note, "n": n, "moments": cov, "shape": list(shape),
           "floor_fd": frechet_distance(ref2, ref)}
    tc = critical_times(name, model, train, moments, shape)
    rec["tc"] = tc
    log(f"[{name}] t_c {tc}")
    t0 = time.perf_counter()
    dens = denoiser_speed(model, shape, "vp-linear", seed=SEED)
    rec["density"] = {"logsnr": list(dens.logsnr), "rate": list(dens.rate), "floor": dens.floor,
                      "peak_logsnr": peak_logsnr(dens), "seconds": time.perf_counter() - t0}
    lam_c = tc["speciation"]
    sch = S.get("vp-linear")
    # start sweep at NFE 8
    sweep = []
    for sampler in SAMPLERS:
        out = draw(model, sampler, grid("full", SWEEP_NFE, sch.logsnr_min, None), False, moments, shape, n)
        sweep.append({"sampler": sampler, "start_logsnr": sch.logsnr_min, "full_range": True,
                      "fd": frechet_distance(_flat(out), ref)})
        for off in SWEEP_OFFSETS:
            lam_s = lam_c + off
            if not sch.logsnr_min < lam_s < sch.logsnr_max - 1.0:
                continue
            out = draw(model, sampler, grid("late", SWEEP_NFE, lam_s, None), True, moments, shape, n)
            sweep.append({"sampler": sampler, "start_logsnr": lam_s, "offset": off,
                          "fd": frechet_distance(_flat(out), ref)})
        log(f"[{name}] sweep {sampler}: " + ", ".join(f"{r['start_logsnr']:.2f}:{r['fd']:.4g}"
                                                        for r in sweep if r["sampler"] == sampler))
    rec["sweep"] = sweep
    best = {}
    for sampler in SAMPLERS:
        rows = [r for r in sweep if r["sampler"] == sampler and not r.get("full_range")]
        b = min(rows, key=lambda r: r["fd"])
        best[sampler] = {"start_logsnr": b["start_logsnr"], "fd": b["fd"],
                         "minus_speciation": b["start_logsnr"] - tc["speciation"],
                         "minus_linear_response": None if tc.get("linear_response") is None
                         else b["start_logsnr"] - tc["linear_response"],
                         "minus_theory": None if tc.get("theory") is None else b["start_logsnr"] - tc["theory"]}
    rec["best_start"] = best
    # curves: the late start at lambda_c - margin (margin given) or at each sampler's best start of the sweep
    curves = []
    samples = {}
    for sampler in SAMPLERS:
        lam_s = lam_c - margin if margin is not None else best[sampler]["start_logsnr"]
        for variant in VARIANTS:
            for nfe in nfes:
                sig = grid(variant, nfe, lam_s, dens)
                out = draw(model, sampler, sig, "late" in variant, moments, shape, n)
                f = _flat(out)
                samples[(sampler, variant, nfe)] = f
                curves.append({"sampler": sampler, "variant": variant, "nfe": nfe,
                               "start_logsnr": lam_s if "late" in variant else sch.logsnr_min,
                               "fd": frechet_distance(f, ref)})
            log(f"[{name}] {sampler} {variant}: " + ", ".join(f"{r['nfe']}:{r['fd']:.4g}" for r in curves
                                                               if r["sampler"] == sampler and r["variant"] == variant))
    # the sampler's own convergence: FD to the model's converged samples (DPM-Solver++(2M), full range, NFE 50),
    # which for the patch model differ from the data (the model's error); no further evaluations
    conv = samples[("dpmpp-2m", "full", max(nfes))]
    for r in curves:
        r["fd_vs_converged"] = frechet_distance(samples[(r["sampler"], r["variant"], r["nfe"])], conv)
    rec["curves"] = curves
    rec["nfes"] = list(nfes)
    rec["start_rule"] = "speciation - margin" if margin is not None else "best start of the sweep (per sampler)"
    rec["margin"] = margin
    boots = []
    for sampler in SAMPLERS:
        for nfe in (6, 8):
            for variant in ("late", "critical"):
                bt = paired_bootstrap(samples[(sampler, variant, nfe)], samples[(sampler, "full", nfe)], ref)
                boots.append({"sampler": sampler, "nfe": nfe, "variant": variant, "vs": "full", **bt})
    rec["paired"] = boots
    rec["seconds"] = time.perf_counter() - t_model
    return rec


def start_errors() -> dict:
    """The exact start error (critdiff.theory.gaussian_start) vs the start logsnr, relative to the speciation point
    ``lambda_c = -log lambda_max(Sigma)``: KL(p || q) for two points +-1 (balanced and w = 0.8) and a ring of 64
    points (radius 1, 2-D); the class-frequency error of an exact sampler for the w = 0.8 two points."""
    from critdiff.theory.gaussian_start import start_kl, twopoint_class_error

    th = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    sets = {"twopoint": (np.array([[-1.0], [1.0]]), np.array([0.5, 0.5]), 1.0),
            "twopoint_w0.8": (np.array([[-1.0], [1.0]]), np.array([0.2, 0.8]), 4 * 0.8 * 0.2),
            "ring": (np.stack([np.cos(th), np.sin(th)], 1), np.ones(64), 0.5)}
    offsets = np.arange(-6.0, 6.01, 1.0)
    out = {"offsets": offsets.tolist()}
    for name, (pts, w, lam_max) in sets.items():
        lam_c = -math.log(lam_max)
        sig = np.exp(-0.5 * (lam_c + offsets))
        out[name] = {"lambda_c": lam_c, "kl": [start_kl(pts, w, float(s), mesh=2001 if pts.shape[1] == 1 else 301)
                                               for s in sig]}
    out["twopoint_w0.8"]["class_error"] = [twopoint_class_error(0.8, 1.0, float(s))
                                           for s in np.exp(-0.5 * (out["twopoint_w0.8"]["lambda_c"] + offsets))]
    return out


def figure(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 7), squeeze=False)
    for c, name in enumerate(names):
        rec = results[name]
        for r, sampler in enumerate(SAMPLERS):
            ax = axes[r, c]
            for k, variant in enumerate(VARIANTS):
                rows = [x for x in rec["curves"] if x["sampler"] == sampler and x["variant"] == variant]
                nfe = [x["nfe"] for x in rows]
                # FD can round to a tiny negative value when two sets coincide: shown at 1e-6 on the log axis
                ax.plot(nfe, [max(x["fd"], 1e-6) for x in rows], "o-", color=f"C{k}", label=variant, ms=3)
                if name == "patch" and "fd_vs_converged" in rows[0]:
                    ax.plot(nfe, [max(x["fd_vs_converged"], 1e-6) for x in rows], "--", color=f"C{k}", lw=0.8)
            ax.axhline(rec["floor_fd"], color="k", ls=":", lw=1, label="floor (held-out vs held-out)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ticks = rec.get("nfes", list(NFES))
            ax.set_xticks(ticks)
            ax.set_xticklabels([str(t) for t in ticks])
            ax.minorticks_off()
            ax.set_title(f"{name}: {sampler} (n={rec['n']})" + (" dashed: FD to converged" if name == "patch" else ""),
                         fontsize=9)
            ax.set_xlabel("NFE")
            ax.set_ylabel("FD vs held-out")
            if r == 0 and c == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="gaussian,twopoint,patch")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--margin", type=float, default=None,
                    help="late start at speciation - margin in the curves (default: each sampler's best sweep start)")
    ap.add_argument("--nfes", default=",".join(map(str, NFES)), help="NFE of the curves (the largest is the "
                    "'converged' reference)")
    ap.add_argument("--out", default=str(OUT / "late_start.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    old = json.loads(out.read_text()) if out.exists() else {}
    results = old.get("models", {})
    errors = old.get("start_error") or start_errors()
    for name in [m for m in args.models.split(",") if m]:
        rec = run_model(name, args.n, args.margin, lambda s: print(s, flush=True),
                        tuple(int(v) for v in args.nfes.split(",")))
        results[name] = rec
        _write(out, results, errors)
        print(f"[{name}] done in {rec['seconds']:.0f} s", flush=True)
    _write(out, results, errors)
    figure(results, out.with_suffix(".png"))


def _write(out: Path, results: dict, errors: dict) -> None:
    doc = {"benchmark": "late_start", "schedule": "vp-linear", "nfes": list(NFES), "sweep_nfe": SWEEP_NFE,
           "start_error": errors, "models": results}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(out)


if __name__ == "__main__":
    main()
