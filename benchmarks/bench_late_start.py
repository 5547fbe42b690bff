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
``--n 64 --nfes 4,6,8,12,20``: one evaluation of 128 samples took about 5 s on the loaded shared core), and
``mnist28``: the trained reference network at step 4500, ``pretrained:mnist28-s4500`` (:func:`run_net`; the
stored table was measured on it while it shipped as ``pretrained:mnist28``).

**mnist28** differs where a trained conditional net needs it: its training schedule (vp-cosine); ``n``
conditional samples at w = 1 with labels ``j mod 10``; the late start draws sample ``j`` from the Gaussian of its
class (:func:`critdiff.late_start.fit_class_moments`: class mean, pooled within-class full covariance of the 5000
``mnist`` digits), and the scan also tries the all-data moments (what ``sample --data mnist --late-start`` uses);
the curves' late start is ``auto``'s level (the unconditional branch's linear-response onset, the estimator
``--late-start auto`` calls, minus ``AUTO_MARGIN``); metrics in the evaluation classifier
``pretrained:mnist28-clf``'s features as ``benchmarks/ref_curve.py`` computes them (FD against the classifier's
4000 training digits, floor = its held-out digits at the same ``n``), accuracy of the intended class with a
bootstrap interval, precision/recall (k = 3) against ``n`` of those digits; the paired bootstrap resamples the
``n`` samples only (the 4000 reference features are fixed). Settings run in :func:`net_plan`'s order (the
NFE 6-8 comparison, the start scan, the curves, the critical grids, Karras), each cached under ``CELLS`` (a rerun
resumes; ``--budget-s`` stops launching settings after that many seconds). The curves stop at NFE 20 except the
full range (50).

``mnist28-control`` (:func:`run_net_control`): the Gaussian start against the net's own ``p_sigma`` at the same
level on the same grid (which of the two, the Gaussian or the grid, moves FD). ``uncond`` (:func:`run_uncond`): the
unconditional net ``UNCOND_NET`` (a weak one, step 1000), full range vs ``auto``'s late start at NFE 6 and 8.

Run: ``PYTHONPATH=src python benchmarks/bench_late_start.py [--models gaussian,twopoint,patch,mnist28,
mnist28-control,uncond] [--n 256] [--cells DIR] [--report DIR]``; writes ``benchmarks/results/late_start.json`` (merged per model, so models can run separately;
``summary``: the NFE saved at equal FD and the best start against each critical-time estimate, :func:`summarise`),
``late_start.png`` and with ``--report`` an HTML section (:mod:`critdiff.report.late_start`).
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
from critdiff.late_start import fit_class_moments, fit_moments, start_state, start_state_labelled
from critdiff.probes.step_density import denoiser_speed, peak_logsnr
from critdiff.schedules import StepDensity

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


# ---------------------------------------------------------------------------------------------------------------
# The trained reference network (pretrained:mnist28-s4500): conditional samples, classifier features
# ---------------------------------------------------------------------------------------------------------------

NET = "pretrained:mnist28-s4500"  # the step-4500 weights the stored table was measured on (docs/models.md)
NET_SCHEDULE = "vp-cosine"  # its training schedule
NET_CLASSIFIER = "pretrained:mnist28-clf"
NET_NFES = (4, 6, 8, 12, 20, 50)
NET_VARIANTS = ("full", "late", "critical", "late+critical", "karras")  # the order they run in (most wanted first)
NET_LONG = ("full",)  # variants also run at the curves' largest NFE (the others stop one below: CPU)
NET_SWEEP_OFFSETS = (-6.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0)  # lambda_s - lambda_c(linear response, auto's)
NET_SWEEP_DATA_OFFSETS = (-4.0, -2.0, 0.0)  # the same with the unconditional data moments (what `sample` uses)
CELLS = Path("/work/runs/latestart/cells")  # --cells DIR overrides
# Late-start cells measured before late_start.start_state drew z in the sample dtype drew another z than the
# full range (a float64 draw of the same generators); their keys had no tag and are never reused.
PAIRED_TAG = "-zpaired"
CONTROL_OFFSETS = (-6.0, -2.0)  # start - t_c(LR) of the controlled experiment (run_net_control)
CONTROL_PRE_PER_LOGSNR = 2.5  # steps per unit logsnr of the full-range flow down to the start level


def net_key(n: int, sampler: str, variant: str, moments: str, nfe: int, lam_s: float) -> str:
    """The cache key of a reference-net setting (late-start settings carry :data:`PAIRED_TAG`)."""
    return f"mnist28-n{n}-{sampler}-{variant}-{moments}-{nfe}-{lam_s:.4f}" + (PAIRED_TAG if "late" in variant else "")


def same_moments_set(f: np.ndarray) -> np.ndarray:
    """``2F`` rows with the mean and (``1/(N-1)``) covariance of ``f [N, F]``: ``mu + sqrt(2F - 1) [R; -R] / sqrt(2)``
    with ``R = S^{1/2}``, so :func:`frechet_distance` against it equals the distance against ``f`` (it reads a set
    only through those two moments) at a fraction of the cost when ``N >> F``."""
    f = np.asarray(f, dtype=np.float64)
    mu, S = f.mean(0), np.cov(f, rowvar=False)
    w, V = np.linalg.eigh(S)
    R = (V * np.sqrt(np.clip(w, 0, None))) @ V.T
    m = 2 * f.shape[1]
    return mu + math.sqrt(m - 1) * np.concatenate([R, -R]) / math.sqrt(2)


def net_cell(key: str, make) -> dict:
    """A measured setting, cached in ``CELLS/key.npz`` (resumable: a rerun skips it)."""
    p = CELLS / f"{key}.npz"
    if p.exists():
        z = np.load(p)
        return {k: z[k] for k in z.files}
    t0, c0 = time.perf_counter(), time.process_time()
    out = make()
    out["seconds"] = np.array(time.perf_counter() - t0)
    out["cpu_seconds"] = np.array(time.process_time() - c0)
    CELLS.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(p)
    return out


def net_paired(a: dict, b: dict, ref_f: np.ndarray, ref_small: np.ndarray, reps: list) -> dict:
    """``FD(a) - FD(b)`` and (cells with ``correct``) ``accuracy(a) - accuracy(b)`` of two cells paired by sample
    (same ``z``), with
    percentile 95% intervals: FD over the bootstrap index sets ``reps`` of the samples (the reference features
    are fixed; ``ref_small`` is :func:`same_moments_set` of ``ref_f``), accuracy by
    :func:`critdiff.probes.bootstrap.paired_mean_diff` (2000 replicates)."""
    from critdiff.probes.bootstrap import paired_mean_diff

    d0 = frechet_distance(a["embed"], ref_f) - frechet_distance(b["embed"], ref_f)
    ds = [frechet_distance(a["embed"][i], ref_small) - frechet_distance(b["embed"][i], ref_small) for i in reps]
    lo, hi = np.percentile(ds, [2.5, 97.5])
    out = {"diff": float(d0), "lo": float(lo), "hi": float(hi), "reps": len(reps)}
    if "correct" in a:
        acc = paired_mean_diff(a["correct"].astype(float), b["correct"].astype(float), seed=SEED)
        out.update(accuracy_diff=acc["diff"], accuracy_lo=acc["lo"], accuracy_hi=acc["hi"])
    return out


def net_sample(model, clf, sampler: str, x: torch.Tensor, sigmas: torch.Tensor, lab: torch.Tensor) -> dict:
    """Run ``sampler`` from ``x`` at ``sigmas[0]`` with labels ``lab`` (w = 1), clamp to [-1, 1] and classify:
    ``{'embed' [n, F], 'correct' [n], 'logp' [n]}`` (numpy)."""
    from critdiff.experiments.guide.metrics import classify

    with torch.no_grad():
        out = SAMPLERS[sampler](model, x, sigmas, label=lab).clamp(-1, 1)
    c = classify(clf, out, lab)
    return {"embed": c["embed"].numpy(), "correct": c["correct"].numpy(), "logp": c["logp"].numpy()}


def net_tc(model, images, labels, cm, log) -> dict:
    """The net's critical-time estimates (logsnr): what ``--late-start auto`` uses (the unconditional branch's
    linear-response growth onset, :func:`critdiff.experiments.sample.sample_tc`), the same probe with a class
    label, and the speciation points of the data covariance and of the pooled within-class covariance."""
    from types import SimpleNamespace

    from critdiff.experiments.sample import SampleConfig, sample_tc
    from critdiff.experiments.start import auto_reference
    from critdiff.probes import at_grid_edge, from_growth, linear_response
    from critdiff.theory.global_model import speciation

    out = {"speciation": speciation(images).logsnr_c,
           "speciation_within_class": -math.log(float(cm[0].lam.max()))}
    t0 = time.perf_counter()
    est = sample_tc(SampleConfig(model=NET, data="mnist", schedule=NET_SCHEDULE),
                    SimpleNamespace(images=images, model=model))
    onset, out["linear_response_source"] = auto_reference(est)  # what auto counts from, as sample does
    shift = onset - float(est.logsnr)
    out["linear_response"] = onset
    out["linear_response_ci"] = [float(v) + shift for v in est.logsnr_ci] if est.logsnr_ci is not None else None
    out["linear_response_seconds"] = time.perf_counter() - t0
    log(f"[mnist28] t_c linear response (auto's) {out['linear_response']:.3f} {out['linear_response_ci']} "
        f"({out['linear_response_seconds']:.0f} s)")
    cond = {}
    for c in (0, 3, 7):
        t0 = time.perf_counter()
        lr = linear_response(model, tuple(images.shape[1:]), NET_SCHEDULE, steps=24, n=4, label=c, seed=SEED,
                             keep_states=False)
        e = from_growth(lr, n_boot=200, seed=SEED)
        cond[str(c)] = {"logsnr": float(e.logsnr), "ci": [float(v) for v in e.logsnr_ci], "method": e.method,
                        "at_grid_edge": bool(at_grid_edge(e, lr.logsnr)), "seconds": time.perf_counter() - t0}
    out["linear_response_label"] = cond
    log(f"[mnist28] t_c linear response with a label: {cond}")
    return out


def net_commitment(log) -> dict:
    """The commitment estimates of the net (DESIGN.md section 5: the unconditional model's class decision; clones
    of a state continued with fresh DDPM noise, the guidance experiment's estimator and sizes), cached in
    ``CELLS/mnist28-commitment.json``. A conditional run has its class from the start: this time is the
    unconditional model's, reported beside the others."""
    path = CELLS / "mnist28-commitment.json"
    if path.exists():
        return json.loads(path.read_text())
    from critdiff import pretrained
    from critdiff.data import load as load_data
    from critdiff.experiments.config import RunConfig
    from critdiff.experiments.guide.config import GuideConfig
    from critdiff.experiments.guide.estimators import estimate
    from critdiff.experiments.models import build_model

    model = build_model(RunConfig(model=NET))
    images, _ = load_data("mnist")
    clf = pretrained.load_classifier(NET_CLASSIFIER)
    cfg = GuideConfig(model=NET, data="mnist", schedule=NET_SCHEDULE)
    cache: dict = {}
    out = {}
    t0 = time.perf_counter()
    for name in ("commitment", "commitment-midpoint"):
        try:
            e = estimate(name, cfg, images, model, clf, cache=cache)
            out[name.replace("-", "_")] = {"logsnr": float(e.logsnr), "ci": None if e.logsnr_ci is None else
                                           [float(v) for v in e.logsnr_ci], "source": e.source}
        except ValueError as err:
            out[name.replace("-", "_")] = {"logsnr": None, "error": str(err)}
    out["seconds"] = time.perf_counter() - t0
    out["settings"] = f"GuideConfig defaults: sampler {cfg.sampler}, {cfg.steps} steps, schedule {NET_SCHEDULE}"
    CELLS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    log(f"[mnist28] commitment {out}")
    return out


def net_plan(lam_c: float, lam_auto: float, lam_min: float, nfes=NET_NFES, offsets=NET_SWEEP_OFFSETS) -> list:
    """The settings ``(sampler, variant, nfe, start logsnr, moments)`` in the order they run, most wanted first (a
    run stopped by its time budget keeps those): full range vs auto's late start at NFE 6 and 8; the full-range
    curve to NFE 20; a coarse start scan at ``SWEEP_NFE`` (every second offset, and the data moments at auto's
    level); the late curve; the critical grids at NFE 6 and 8; the full range at the largest NFE; the rest of the
    scan; the critical grids' curves; Karras."""
    def lam(variant):
        return lam_auto if "late" in variant else lam_min

    def cells(variants, ks):
        return [(s, v, k, lam(v), "class") for k in ks for v in variants for s in SAMPLERS]

    small = [k for k in nfes if 6 <= k <= 8]
    mid = [k for k in nfes if k not in small and k < max(nfes)]
    coarse, fine = offsets[1::2], offsets[0::2]
    plan = cells(("full", "late"), small) + cells(("full",), mid)
    plan += [(s, "late", SWEEP_NFE, lam_c + o, "class") for o in coarse for s in SAMPLERS]
    plan += [(s, "late", SWEEP_NFE, lam_auto, "data") for s in SAMPLERS]
    plan += cells(("late",), mid) + cells(("critical", "late+critical"), small) + cells(NET_LONG, [max(nfes)])
    plan += [(s, "late", SWEEP_NFE, lam_c + o, "class") for o in fine for s in SAMPLERS]
    plan += [(s, "late", SWEEP_NFE, lam_c + o, "data") for o in NET_SWEEP_DATA_OFFSETS for s in SAMPLERS]
    plan += cells(("critical", "late+critical"), mid) + cells(("karras",), small + mid)
    seen, out = set(), []
    for p in plan:
        key = (p[0], p[1], p[2], round(p[3], 4), p[4])
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def run_net(n: int, log, nfes=NET_NFES, offsets=NET_SWEEP_OFFSETS, budget_s: float = math.inf) -> dict:
    """The reference network (module docstring): FD in the evaluation classifier's features, accuracy and
    precision/recall of ``n`` conditional samples (label ``j mod 10``) per setting, paired by ``z``. Settings run
    in :func:`net_plan`'s order until ``budget_s`` seconds have passed (every measured setting is cached in
    ``CELLS``: a rerun resumes)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from ref_curve import reference

    from critdiff.data import load as load_data
    from critdiff.experiments.config import RunConfig
    from critdiff.experiments.guide.metrics import knn_radii, precision_recall
    from critdiff.experiments.models import build_model
    from critdiff.experiments.start import AUTO_MARGIN
    from critdiff.probes.bootstrap import mean_interval

    t_model = time.perf_counter()
    model = build_model(RunConfig(model=NET))
    images, labels = load_data("mnist")
    shape = tuple(images.shape[1:])
    ref = reference(NET_CLASSIFIER, "mnist", n, SEED)
    clf, ref_f = ref["classifier"], ref["ref_embed"]
    # precision/recall against n reference digits (equal set sizes, Kynkaanniemi et al. 2019)
    pr_ref = ref_f[np.random.default_rng(SEED).permutation(ref_f.shape[0])[:n]]
    pr_radii = knn_radii(pr_ref)
    dm = fit_moments(images, "full")
    cm = fit_class_moments(images, labels)
    lab = torch.arange(n) % 10
    rec = {"model": "mnist28", "note": f"{NET} (step {model.step}), conditional w = 1, labels j mod 10; FD in the "
           f"features of {NET_CLASSIFIER} against its {ref['n_ref']} training digits",
           "n": n, "schedule": NET_SCHEDULE, "moments": "class mean + pooled within-class full covariance "
           "('class', the curves); all-data full covariance ('data', what `sample --data mnist` uses)",
           "shape": list(shape), "floor_fd": ref["floor"]["fd"], "floor": ref["floor"]}
    tc_file = CELLS / "mnist28-tc.json"
    if tc_file.exists():
        tc = json.loads(tc_file.read_text())
    else:
        tc = net_tc(model, images, labels, cm, log)
        CELLS.mkdir(parents=True, exist_ok=True)
        tc_file.write_text(json.dumps(tc))
    if (CELLS / "mnist28-commitment.json").exists():  # measured separately (net_commitment), when it was
        tc = dict(tc, commitment=net_commitment(log))
    rec["tc"] = tc
    dens_file = CELLS / "mnist28-density.json"
    if dens_file.exists():
        d = json.loads(dens_file.read_text())
    else:
        t0 = time.perf_counter()
        dd = denoiser_speed(model, shape, NET_SCHEDULE, seed=SEED, label=torch.arange(8) % 10)
        d = {"logsnr": list(dd.logsnr), "rate": list(dd.rate), "floor": dd.floor, "peak_logsnr": peak_logsnr(dd),
             "seconds": time.perf_counter() - t0}
        dens_file.write_text(json.dumps(d))
    dens = StepDensity(tuple(d["logsnr"]), tuple(d["rate"]), floor=d["floor"])
    rec["density"] = d
    log(f"[mnist28] t_c {tc}; step density peak {d['peak_logsnr']:.2f}")
    sch = S.get(NET_SCHEDULE)
    lam_c = tc["linear_response"]
    lam_auto = lam_c - AUTO_MARGIN
    rec.update(auto_start_logsnr=lam_auto, margin=AUTO_MARGIN, nfes=list(nfes),
               start_rule=f"auto: linear response minus {AUTO_MARGIN:g}")

    def make_cell(sampler, variant, nfe, lam_s, moments):
        top = math.exp(-0.5 * lam_s) if "late" in variant else None
        if "critical" in variant:
            sig = S.sigma_grid(sch, nfe, "critical", sigma_max=top, density=dens)
        else:
            sig = S.sigma_grid(sch, nfe, "karras" if variant == "karras" else "logsnr", sigma_max=top)
        gens = SM.seed_generators(SEED, n)
        if "late" not in variant:
            x = SM.initial_noise((n, *shape), sig, gens)
        elif moments == "class":
            x = start_state_labelled(cm, float(sig[0]), lab, gens)
        else:
            x = start_state(dm, float(sig[0]), n, gens)
        return net_sample(model, clf, sampler, x, sig, lab)

    cells, rows = {}, []
    plan = net_plan(lam_c, lam_auto, sch.logsnr_min, nfes, offsets)
    skipped = 0
    for sampler, variant, nfe, lam_s, moments in plan:
        key = net_key(n, sampler, variant, moments, nfe, lam_s)
        if time.perf_counter() - t_model > budget_s and not (CELLS / f"{key}.npz").exists():
            skipped += 1
            continue
        cell = net_cell(key, lambda: make_cell(sampler, variant, nfe, lam_s, moments))
        cells[(sampler, variant, nfe, round(lam_s, 4), moments)] = cell
        p, r = precision_recall(pr_ref, cell["embed"], real_radii=pr_radii)
        ci = mean_interval(cell["correct"].astype(float), seed=SEED)
        row = {"sampler": sampler, "variant": variant, "nfe": nfe, "moments": moments,
               "start_logsnr": lam_s if "late" in variant else sch.logsnr_min,
               "offset": (lam_s - lam_c) if "late" in variant else None,
               "fd": frechet_distance(cell["embed"], ref_f), "accuracy": float(cell["correct"].mean()),
               "accuracy_ci": [ci["lo"], ci["hi"]], "mean_logp": float(cell["logp"].mean()),
               "precision": p, "recall": r, "seconds": float(cell["seconds"])}
        rows.append(row)
        log(f"[mnist28] {sampler} {variant} ({moments}) NFE {nfe} start {row['start_logsnr']:.2f}: FD {row['fd']:.4g} "
            f"acc {row['accuracy']:.3f} P {row['precision']:.3f} R {row['recall']:.3f} ({row['seconds']:.0f} s, "
            f"{time.perf_counter() - t_model:.0f} s in)")
    rec["skipped_by_budget"] = skipped
    # the curves: every setting at auto's start (class moments); the sweep: every NFE-8 late start and the full range
    rec["curves"] = [r for r in rows if r["moments"] == "class" and ("late" not in r["variant"]
                                                                     or abs(r["start_logsnr"] - lam_auto) < 1e-9)]
    rec["sweep"] = [dict(r, full_range=True) if r["variant"] == "full" else r for r in rows
                    if r["nfe"] == SWEEP_NFE and r["variant"] in ("full", "late")]
    best = {}
    for sampler in SAMPLERS:
        sw = [r for r in rec["sweep"] if r["sampler"] == sampler and r["variant"] == "late" and r["moments"] == "class"]
        b = min(sw, key=lambda r: r["fd"])
        best[sampler] = {"start_logsnr": b["start_logsnr"], "fd": b["fd"], "offsets_tried": sorted(r["offset"] for r in sw),
                         "minus_linear_response": b["start_logsnr"] - lam_c,
                         "minus_speciation": b["start_logsnr"] - tc["speciation"],
                         "minus_speciation_within_class": b["start_logsnr"] - tc["speciation_within_class"]}
    rec["best_start"] = best
    # paired bootstrap over the n samples (the reference features are fixed): FD and accuracy differences
    boots = []
    rng = np.random.default_rng(SEED)
    reps = [rng.integers(0, n, n) for _ in range(100)]
    ref_small = same_moments_set(ref_f)  # FD depends on the reference only through its mean and covariance
    for sampler in SAMPLERS:
        for nfe in (6, 8, 12):
            base = cells.get((sampler, "full", nfe, round(sch.logsnr_min, 4), "class"))
            pairs = [(v, (sampler, v, nfe, round(lam_auto if "late" in v else sch.logsnr_min, 4), "class"))
                     for v in ("late", "critical", "late+critical", "karras")]
            if nfe == SWEEP_NFE:  # the data moments at auto's level (offset -AUTO_MARGIN)
                pairs.append(("late (data moments)", (sampler, "late", nfe, round(lam_auto, 4), "data")))
            for variant, k in pairs:
                other = cells.get(k)
                if base is None or other is None:
                    continue
                boots.append({"sampler": sampler, "nfe": nfe, "variant": variant, "vs": "full",
                              **net_paired(other, base, ref_f, ref_small, reps)})
    rec["paired"] = boots
    rec["seconds"] = time.perf_counter() - t_model
    return rec


def _net_setup(model_spec: str, n: int):
    """``(model, mnist images, labels, reference)``: the net, the data and the evaluation classifier's reference
    features and floor at ``n`` (``benchmarks/ref_curve.reference``)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from ref_curve import reference

    from critdiff.data import load as load_data
    from critdiff.experiments.config import RunConfig
    from critdiff.experiments.models import build_model

    model = build_model(RunConfig(model=model_spec))
    images, labels = load_data("mnist")
    return model, images, labels, reference(NET_CLASSIFIER, "mnist", n, SEED)


def flow_to_level(model, x: torch.Tensor, lam_min: float, lam_s: float, steps: int, lab) -> torch.Tensor:
    """The net's own probability-flow ODE from ``x`` at logsnr ``lam_min`` down to ``lam_s`` (DEIS order 2,
    ``steps`` steps uniform in logsnr, no final first-order step): the state the full-range sampler reaches at the
    start level, i.e. a draw of the net's own ``p_sigma`` there (up to the solver's error)."""
    levels = [math.exp(-0.5 * v) for v in np.linspace(lam_min, lam_s, steps + 1)]
    with torch.no_grad():
        return SM.deis_steps(model, x, levels, label=lab, order=2, lower_order_final=False)


def run_net_control(n: int, log, offsets=CONTROL_OFFSETS, nfe: int = SWEEP_NFE, n_check: int = 10) -> dict:
    """The Gaussian's error apart from the grid's, on the reference net (docs/samplers.md "The reference network").

    At each start level ``lam_s = t_c(LR) + offset`` the same ``nfe``-step grid (uniform in logsnr from ``lam_s``)
    is run from (a) the class Gaussian (``start_state_labelled``: the late start) and (b) the net's own ``p_sigma``:
    the full-range flow of the same ``z`` from ``sigma_max z`` down to ``lam_s`` with
    ``ceil(CONTROL_PRE_PER_LOGSNR * (lam_s - logsnr_min))`` DEIS-2 steps (:func:`flow_to_level`). Paired by ``z``:
    (a) - (b) is the Gaussian's error, (b) - full range (same NFE) the grid's. The flow's own error is checked on the
    first ``n_check`` samples against twice the steps (``rms_flow_vs_2x``), beside the rms distance of the
    Gaussian draw to the flow state and of the flow state to ``sigma_s z`` (the data's share of the state)."""
    from critdiff.probes.bootstrap import mean_interval

    t_model, c_model = time.perf_counter(), time.process_time()
    model, images, labels, ref = _net_setup(NET, n)
    shape = tuple(images.shape[1:])
    clf, ref_f = ref["classifier"], ref["ref_embed"]
    ref_small = same_moments_set(ref_f)
    cm = fit_class_moments(images, labels)
    lab = torch.arange(n) % 10
    tc = json.loads((CELLS / "mnist28-tc.json").read_text())  # written by run_net (net_tc)
    lam_c = tc["linear_response"]
    sch = S.get(NET_SCHEDULE)
    rng = np.random.default_rng(SEED)
    reps = [rng.integers(0, n, n) for _ in range(200)]

    def row(cell, **kw):
        ci = mean_interval(cell["correct"].astype(float), seed=SEED)
        return {**kw, "fd": frechet_distance(cell["embed"], ref_f), "accuracy": float(cell["correct"].mean()),
                "accuracy_ci": [ci["lo"], ci["hi"]], "wrong": np.flatnonzero(~cell["correct"].astype(bool)).tolist(),
                "cpu_seconds": float(cell.get("cpu_seconds", np.nan))}

    rec = {"model": "mnist28", "net": f"{NET} (step {model.step})", "n": n, "nfe": nfe, "schedule": NET_SCHEDULE,
           "tc_linear_response": lam_c, "pre_steps_per_logsnr": CONTROL_PRE_PER_LOGSNR, "levels": [], "paired": []}
    full = {}
    for sampler in SAMPLERS:
        sig = S.sigma_grid(sch, nfe, "logsnr")
        full[sampler] = net_cell(net_key(n, sampler, "full", "class", nfe, sch.logsnr_min),
                                 lambda: net_sample(model, clf, sampler, SM.initial_noise(
                                     (n, *shape), sig, SM.seed_generators(SEED, n)), sig, lab))
        rec["levels"].append(row(full[sampler], sampler=sampler, start="full range", start_logsnr=sch.logsnr_min))
    for off in offsets:
        lam_s = lam_c + off
        top = math.exp(-0.5 * lam_s)
        sig = S.sigma_grid(sch, nfe, "logsnr", sigma_max=top)
        K = math.ceil(CONTROL_PRE_PER_LOGSNR * (lam_s - sch.logsnr_min))
        z0 = SM.initial_noise((n, *shape), S.sigma_grid(sch, nfe, "logsnr"), SM.seed_generators(SEED, n))
        flow = net_cell(f"mnist28-n{n}-flowstate-{lam_s:.4f}-K{K}",
                        lambda: {"x": flow_to_level(model, z0, sch.logsnr_min, lam_s, K, lab).numpy()})
        x_flow = torch.from_numpy(flow["x"])
        check = net_cell(f"mnist28-n{n_check}-flowstate-{lam_s:.4f}-K{2 * K}",
                         lambda: {"x": flow_to_level(model, z0[:n_check], sch.logsnr_min, lam_s, 2 * K,
                                                     lab[:n_check]).numpy()})
        x_gauss = start_state_labelled(cm, top, lab, SM.seed_generators(SEED, n))
        z = z0 / float(sch.sigma_max)

        def rms(a):
            return float(a.double().pow(2).mean().sqrt())

        lvl = {"offset": off, "start_logsnr": lam_s, "sigma": top, "pre_steps": K,
               "flow_cpu_seconds": float(flow.get("cpu_seconds", np.nan)),
               "rms_flow_vs_2x": rms(x_flow[:n_check] - torch.from_numpy(check["x"])),
               "rms_gauss_vs_flow": rms(x_gauss - x_flow), "rms_flow_minus_sigma_z": rms(x_flow - top * z),
               "rms_gauss_minus_sigma_z": rms(x_gauss - top * z)}
        log(f"[control] start {lam_s:.2f}: {lvl}")
        for sampler in SAMPLERS:
            g = net_cell(net_key(n, sampler, "late", "class", nfe, lam_s),
                         lambda: net_sample(model, clf, sampler, x_gauss, sig, lab))
            f = net_cell(f"mnist28-n{n}-{sampler}-flowstart-{nfe}-{lam_s:.4f}-K{K}",
                         lambda: net_sample(model, clf, sampler, x_flow, sig, lab))
            rec["levels"].append(row(g, sampler=sampler, start="gaussian", **lvl))
            rec["levels"].append(row(f, sampler=sampler, start="flow", **lvl))
            for what, a, b in (("gaussian - flow", g, f), ("flow - full range", f, full[sampler]),
                               ("gaussian - full range", g, full[sampler])):
                rec["paired"].append({"sampler": sampler, "start_logsnr": lam_s, "offset": off, "what": what,
                                      **net_paired(a, b, ref_f, ref_small, reps)})
            log(f"[control] {sampler} {lam_s:.2f}: " + "; ".join(
                f"{r['what']}: FD {r['diff']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}], acc {r['accuracy_diff']:+.2f} "
                f"[{r['accuracy_lo']:+.2f}, {r['accuracy_hi']:+.2f}]" for r in rec["paired"][-3:]))
    rec["seconds"] = time.perf_counter() - t_model
    rec["cpu_seconds"] = time.process_time() - c_model
    return rec


UNCOND_NET = "net:/work/runs/ref_uncond"  # the reference recipe trained unconditionally, to step 1000 only (weak)
UNCOND_NFES = (6, 8)
UNCOND_REF_NFE = 20  # a full-range DPM-Solver++(2M) run at this NFE: the net's own FD with the sampler converged


def class_tv(pred: np.ndarray, k: int = 10) -> float:
    """Total-variation distance of the predicted-class frequencies of ``pred [n]`` to the uniform law on ``k``
    classes (the mnist digits are balanced, 500 per class)."""
    f = np.bincount(np.asarray(pred, dtype=np.int64), minlength=k) / len(pred)
    return float(0.5 * np.abs(f - 1.0 / k).sum())


def run_uncond(n: int, log, model_spec: str = UNCOND_NET, nfes=UNCOND_NFES) -> dict:
    """A second trained net (docs/samplers.md "A second trained net"): the unconditional one, ``n`` samples per
    setting paired by ``z``, full range vs ``auto``'s late start (its own linear-response onset minus
    ``AUTO_MARGIN``) from the all-data Gaussian (``fit_moments(mnist, 'full')``, what ``sample --data mnist
    --late-start`` draws from), DDIM and DPM-Solver++(2M) at ``nfes``, vp-cosine, and the full range with
    DPM-Solver++(2M) at ``UNCOND_REF_NFE`` (the net's own converged value). Metrics in the features of
    ``pretrained:mnist28-clf``: FD against its 4000 training digits and the total-variation distance of the
    predicted class frequencies to uniform (:func:`class_tv`), each difference with a paired bootstrap."""
    from types import SimpleNamespace

    from critdiff.experiments.sample import SampleConfig, sample_tc
    from critdiff.experiments.start import AUTO_MARGIN

    t_model, c_model = time.perf_counter(), time.process_time()
    model, images, _, ref = _net_setup(model_spec, n)
    shape = tuple(images.shape[1:])
    clf, ref_f = ref["classifier"], ref["ref_embed"]
    ref_small = same_moments_set(ref_f)
    dm = fit_moments(images, "full")
    sch = S.get(NET_SCHEDULE)
    tag = f"uncond-step{model.step}"
    tc_file = CELLS / f"{tag}-tc.json"
    if tc_file.exists():
        tc = json.loads(tc_file.read_text())
    else:
        c0 = time.process_time()
        est = sample_tc(SampleConfig(model=model_spec, data="mnist", schedule=NET_SCHEDULE),
                        SimpleNamespace(images=images, model=model))
        tc = {"linear_response": float(est.logsnr), "source": est.source, "cpu_seconds": time.process_time() - c0,
              "linear_response_ci": None if est.logsnr_ci is None else [float(v) for v in est.logsnr_ci]}
        CELLS.mkdir(parents=True, exist_ok=True)
        tc_file.write_text(json.dumps(tc))
    lam_s = tc["linear_response"] - AUTO_MARGIN
    log(f"[uncond] {model_spec} step {model.step}: t_c(LR) {tc['linear_response']:.3f}, late start {lam_s:.3f}")

    def make(sampler, late, sig):
        gens = SM.seed_generators(SEED, n)
        x = start_state(dm, float(sig[0]), n, gens) if late else SM.initial_noise((n, *shape), sig, gens)
        with torch.no_grad():
            out = SAMPLERS[sampler](model, x, sig).clamp(-1, 1)
            pred = clf.logits(out).argmax(1)
        c = classify(clf, out, pred)
        return {"embed": c["embed"].numpy(), "pred": pred.numpy()}

    from critdiff.experiments.guide.metrics import classify

    rng = np.random.default_rng(SEED)
    reps = [rng.integers(0, n, n) for _ in range(200)]
    rows, paired = [], []
    for sampler in SAMPLERS:
        for nfe in nfes:
            cells = {}
            for late in (False, True):
                sig = S.sigma_grid(sch, nfe, "logsnr", sigma_max=math.exp(-0.5 * lam_s) if late else None)
                key = f"{tag}-n{n}-{sampler}-{'late-data' if late else 'full'}-{nfe}-{float(sig[0]):.4f}{PAIRED_TAG}"
                cells[late] = c = net_cell(key, lambda: make(sampler, late, sig))
                rows.append({"sampler": sampler, "nfe": nfe, "variant": "late" if late else "full",
                             "start_logsnr": lam_s if late else sch.logsnr_min,
                             "fd": frechet_distance(c["embed"], ref_f), "class_tv": class_tv(c["pred"]),
                             "cpu_seconds": float(c["cpu_seconds"])})
            p = net_paired(cells[True], cells[False], ref_f, ref_small, reps)
            tv = [class_tv(cells[True]["pred"][i]) - class_tv(cells[False]["pred"][i]) for i in reps]
            p.update(class_tv_diff=rows[-1]["class_tv"] - rows[-2]["class_tv"],
                     class_tv_lo=float(np.percentile(tv, 2.5)), class_tv_hi=float(np.percentile(tv, 97.5)))
            paired.append({"sampler": sampler, "nfe": nfe, "variant": "late", "vs": "full", **p})
            log(f"[uncond] {sampler} NFE {nfe}: FD full {rows[-2]['fd']:.4g} late {rows[-1]['fd']:.4g}, paired "
                f"{p['diff']:+.3f} [{p['lo']:+.3f}, {p['hi']:+.3f}]; class TV {rows[-2]['class_tv']:.3f} / "
                f"{rows[-1]['class_tv']:.3f}")
    sig = S.sigma_grid(sch, UNCOND_REF_NFE, "logsnr")
    c = net_cell(f"{tag}-n{n}-dpmpp-2m-full-{UNCOND_REF_NFE}-{float(sig[0]):.4f}{PAIRED_TAG}",
                 lambda: make("dpmpp-2m", False, sig))
    rows.append({"sampler": "dpmpp-2m", "nfe": UNCOND_REF_NFE, "variant": "full", "start_logsnr": sch.logsnr_min,
                 "fd": frechet_distance(c["embed"], ref_f), "class_tv": class_tv(c["pred"]),
                 "cpu_seconds": float(c["cpu_seconds"])})
    log(f"[uncond] reference: dpmpp-2m full NFE {UNCOND_REF_NFE}: FD {rows[-1]['fd']:.4g}, class TV "
        f"{rows[-1]['class_tv']:.3f}")
    return {"model": model_spec, "step": model.step, "n": n, "schedule": NET_SCHEDULE, "tc": tc,
            "late_start_logsnr": lam_s, "moments": "all-data full covariance (fit_moments(mnist, 'full'))",
            "floor_fd": ref["floor"]["fd"], "rows": rows, "paired": paired,
            "seconds": time.perf_counter() - t_model, "cpu_seconds": time.process_time() - c_model}


def nfe_at_fd(rows: list, fd: float) -> "float | None":
    """The NFE at which a curve ``rows`` (``nfe``, ``fd``; sorted by NFE) first reaches ``fd``: linear in log NFE
    between the last point above and the first point at or below it; None when it never does."""
    rows = sorted(rows, key=lambda r: r["nfe"])
    for k, r in enumerate(rows):
        if r["fd"] <= fd:
            if k == 0:
                return float(r["nfe"])
            a, b = rows[k - 1], r
            t = (a["fd"] - fd) / (a["fd"] - b["fd"])
            return float(math.exp(math.log(a["nfe"]) + t * (math.log(b["nfe"]) - math.log(a["nfe"]))))
    return None


def summarise(results: dict, budgets=(6, 8)) -> dict:
    """Per model and sampler: the NFE the full range needs to match each variant's FD at the small budgets (NFE
    saved at equal FD, read off the curves), and the best start of the scan beside the critical-time estimates."""
    out = {}
    for name, rec in results.items():
        tc = rec["tc"]
        est = {"speciation": tc.get("speciation"), "linear_response": tc.get("linear_response"),
               "theory": tc.get("theory"), "speciation_within_class": tc.get("speciation_within_class"),
               "step_density_peak": rec["density"]["peak_logsnr"]}
        lab = tc.get("linear_response_label")
        if lab:
            est["linear_response_label_median"] = float(np.median([v["logsnr"] for v in lab.values()]))
        for k, v in (tc.get("commitment") or {}).items():
            if k.startswith("commitment"):
                est[k] = v.get("logsnr")
        m = {"estimates": est, "samplers": {}}
        for sampler in SAMPLERS:
            rows = [r for r in rec["curves"] if r["sampler"] == sampler]
            full = [r for r in rows if r["variant"] == "full"]
            saved = []
            for variant in ("late", "critical", "late+critical", "karras"):
                for nfe in budgets:
                    v = [r for r in rows if r["variant"] == variant and r["nfe"] == nfe]
                    f = [r for r in full if r["nfe"] == nfe]
                    if not v or not f:
                        continue
                    need = nfe_at_fd(full, v[0]["fd"])
                    saved.append({"variant": variant, "nfe": nfe, "fd": v[0]["fd"], "fd_full": f[0]["fd"],
                                  "full_nfe_at_equal_fd": need, "nfe_saved": None if need is None else need - nfe})
            b = rec["best_start"][sampler]
            dist = {k: (None if v is None else b["start_logsnr"] - v) for k, v in est.items()}
            m["samplers"][sampler] = {"nfe_saved": saved, "best_start": b["start_logsnr"], "best_fd": b["fd"],
                                      "best_minus": dist}
        out[name] = m
    return out


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
                rows = sorted((x for x in rec["curves"] if x["sampler"] == sampler and x["variant"] == variant),
                              key=lambda x: x["nfe"])
                if not rows:
                    continue
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
            ax.set_ylabel("FD (classifier features)" if name == "mnist28" else "FD vs held-out (pixels)")
            if r == 0 and c == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    global CELLS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="gaussian,twopoint,patch")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--margin", type=float, default=None,
                    help="late start at speciation - margin in the curves (default: each sampler's best sweep start)")
    ap.add_argument("--nfes", default=None, help="NFE of the curves (the largest is the "
                    "'converged' reference)")
    ap.add_argument("--budget-s", type=float, default=math.inf, help="mnist28: launch no new setting after this many "
                    "seconds (the measured ones are cached; a rerun resumes)")
    ap.add_argument("--cells", default=None, help=f"mnist28: the folder of cached settings (default {CELLS})")
    ap.add_argument("--out", default=str(OUT / "late_start.json"))
    ap.add_argument("--report", default=None, help="also write DIR/report.html (critdiff.report.late_start)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.cells:
        CELLS = Path(args.cells)
    out = Path(args.out)
    old = json.loads(out.read_text()) if out.exists() else {}
    results = old.get("models", {})
    errors = old.get("start_error") or start_errors()
    extra = {k: old[k] for k in ("control", "uncond", "notes") if k in old}
    for name in [m for m in args.models.split(",") if m]:
        log = lambda s: print(s, flush=True)  # noqa: E731
        if name in ("mnist28-control", "uncond"):
            key = "control" if name == "mnist28-control" else "uncond"
            extra[key] = (run_net_control if key == "control" else run_uncond)(args.n, log)
            _write(out, results, errors, extra)
            print(f"[{key}] done in {extra[key]['seconds']:.0f} s ({extra[key]['cpu_seconds']:.0f} CPU-s)", flush=True)
            continue
        if name == "mnist28":
            rec = run_net(args.n, log, tuple(int(v) for v in (args.nfes or ",".join(map(str, NET_NFES))).split(",")),
                          budget_s=args.budget_s)
        else:
            rec = run_model(name, args.n, args.margin, log, tuple(int(v) for v in (args.nfes or ",".join(map(str, NFES))).split(",")))
        results[name] = rec
        _write(out, results, errors, extra)
        print(f"[{name}] done in {rec['seconds']:.0f} s", flush=True)
    _write(out, results, errors, extra)
    figure(results, out.with_suffix(".png"))
    if args.report:
        from critdiff.report.html import write_report
        from critdiff.report.late_start import render_late_start

        doc = json.loads(out.read_text())
        path = write_report(args.report, "Late start and critical grid",
                            [render_late_start(doc, figure=str(out.with_suffix(".png").resolve()))])
        print(f"report: {path}", flush=True)


def _write(out: Path, results: dict, errors: dict, extra: "dict | None" = None) -> None:
    """The JSON: ``models`` (the curves), ``summary``, ``start_error``, and in ``extra`` ``control``
    (:func:`run_net_control`) and ``uncond`` (:func:`run_uncond`) when measured, and ``notes`` (kept as found)."""
    doc = {"benchmark": "late_start", "schedule": "vp-linear (mnist28: vp-cosine, its training schedule)",
           "nfes": list(NFES), "sweep_nfe": SWEEP_NFE, "start_error": errors, "models": results,
           "summary": summarise(results), **(extra or {})}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(out)


if __name__ == "__main__":
    main()
