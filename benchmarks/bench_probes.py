"""Benchmark: the random-probe spectral estimate against the dense-Jacobian route at 32 x 32 (DESIGN.md section 4).

Per model, at one state ``x`` (``randn * sigma``, seed 1) and ``sigma = 0.7``, float64, one torch thread:

- ``dense``: ``spectral_probe(method='dense')``, the full ``(C H W)^2`` Jacobian and its Fourier diagonal (the
  oracle), in the fastest configuration measured for that model (``DENSE`` below; chosen beforehand on this
  machine among forward columns / reverse rows and several ``chunk`` sizes, see the comment there): the probe
  is compared with the strongest dense baseline, not the slowest. ``dense_default`` (gaussian, convnet only) is the library's
  default dense call (``jacfwd`` over all directions at once); for the patch model that call needs tens of GiB
  (killed for memory in an earlier run) and is not run.
- ``probe``: ``spectral_probe(method='random', probe=P)`` with ``M`` doubled from 2 until an accuracy target is
  met; the row's ``M`` is the first ``M >= 8`` that meets it (``M >= 8`` so that the standard errors themselves
  are usable), and ``M_first`` (with its own time, memory and error, ``first_*``) the first ``M >= 2`` that
  meets it (two probes give a standard error from two samples: read those columns with that in mind). Probe
  seed ``PROBE_SEED = 1000``, see below. Two targets, one row each:

  * ``shell_se_5pct``: every radial shell with ``|k| > 0`` has standard error at most 5% of ``|kappa|`` in that
    shell (``k = 0`` is a single lattice point, not an average); ``err_vs_dense`` = max over those shells of
    ``|kappa_probe - kappa_dense| / |kappa_dense|``;
  * ``softest_shell_0.05``: the quantity the critical-time estimator reads: the softest radial shell's
    dimensionless stiffness ``u_min = sigma^2 min_shells kappa_radial = min_shells (1 - Re Jhat)`` (all shells,
    ``k = 0`` included; its zero crossing is ``t_c``) to within 0.05 absolute: ``2 sigma^2 SE <= 0.05`` for every
    shell that could be the softest (its ``u - 2 SE`` at or below the lowest shell's ``u + 2 SE``);
    ``err_vs_dense = |u_min(probe) - u_min(dense)|``. (``critical_time.from_stiffness`` takes the minimum over
    single wavevectors of the ensemble-mean ``kappa``; with one state the radial shell is its averaged form.)

  The achieved errors are measured against the dense route (they check the standard errors; the rule itself
  never looks at the oracle).
- ``windowed`` (convnet, patch): the same sweep and targets with ``spectral_probe(method='random', window=R)``:
  each probe's estimate keeps only the lags ``|output - input| <= R`` per axis of the probe cross-correlation.
  ``R`` is the model's exact receptive-field radius, computed from the model (patch: the stencil's radius, 2 for
  square:5; convnet: the sum over its conv layers of ``dilation (kernel - 1) / 2``, 3 for three 3x3 layers), so
  the windowed estimate is unbiased; ``support_check`` verifies at 12 x 12 from the dense Jacobian that it
  vanishes outside ``R`` and not outside ``R - 1``. Expected variance cut about ``HW / (2R + 1)^2``. Not for
  ``gaussian``: its full covariance makes the Jacobian non-local (every pixel couples to every pixel), so no
  window short of the whole lattice is unbiased; its row says ``not applicable``.
- ``impulse`` (patch model): ``spectral_probe(method='impulse')``, one JVP per channel, exact only for a
  circulant Jacobian: at the homogeneous state ``x = m 1`` (``m = 0.5``; the periodic ELS patch model is exactly
  circulant there) against the dense route at that same state (``max |Jhat_impulse - Jhat_dense|`` over all
  ``k``), and, as a negative control, at the random state (not circulant).
- time: every route is timed in its own subprocess after a one-probe warm-up: median of 3 runs if the first
  takes under 5 s, else that one run (``*_reps``). The probe runs of the ``M`` sweep are these measurements
  (one subprocess per model; ``malloc_trim`` before each ``M``). Memory: peak resident set during the route
  minus the resident set just before (Linux ``VmHWM`` after a reset through ``/proc/self/clear_refs``, else
  ``ru_maxrss``); it counts everything torch allocates on the CPU, the ``(C H W)^2`` Jacobian included.
  ``*_evals`` are the ``CountingDenoiser`` sample evaluations: a forward JVP of a batch of ``M`` counts ``M``,
  but a vmapped dense call counts one per chunk of directions and the reverse dense route records ONE forward
  call and then runs its ``C H W`` VJPs without calling the denoiser again; compare JVP counts and time.
- ratios (``dense / probe``): ``time_ratio``, ``mem_ratio``, ``jvp_ratio``; ``meets_50x`` = ``time_ratio >= 50``
  (against the fastest dense configuration); ``time_ratio_default`` / ``mem_ratio_default`` against
  ``dense_default`` where it was run.

Models: ``gaussian`` (GaussianScore, full covariance, 1024 x 1024, non-stationary data: a non-circulant
Jacobian), ``convnet`` (a small random tanh conv net, ``D(x) = x / (1 + sigma^2) + 0.3 net(x)``), and ``patch``
(PatchScore, ELS, square:5, periodic, 20 training images). Writes ``benchmarks/results/bench_probes.json``
(``--quick``: 16 x 16, ``bench_probes_quick.json``).
Usage: ``python benchmarks/bench_probes.py [--quick] [--probe phase|rademacher|gaussian]
[--models gaussian,convnet,patch] [--no-impulse]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from memory import reset_peak, status_kib

HERE = Path(__file__).resolve().parent
# fastest dense configuration per model (measured at 32x32 on the shared 2-core machine, one thread):
# gaussian: jacfwd all-at-once 0.17 s (one GEMM; reverse 0.18 s); convnet: reverse rows, 32 per vmapped call,
# 1.2 s (jacfwd all-at-once 2.8 s / 1.6 GiB, forward chunk 64 2.2 s); patch: reverse rows one at a time,
# ~0.26 s per direction (forward one at a time 0.48 s, vmapped forward 0.77-0.88 s per direction: the
# vmapped tangents of the 8 MB logit tiles fall out of cache; reverse vmapped 16: 0.41 s).
DENSE = {"gaussian": ("auto", None), "convnet": ("reverse", 32), "patch": ("reverse", 1)}
HOMOGENEOUS_M = 0.5
MIN_M, FIRST_M, MAX_M = 8, 2, 4096  # row M >= MIN_M; the sweep starts at FIRST_M
# Probe seeds: NOT 0. The models' training data are drawn from torch.Generator().manual_seed(0) as well, and
# with seed 0 the first probes ARE the Gaussian model's training noise: measured 17 standard errors of bias.
PROBE_SEED = 1000


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

        den.net = net  # for window_radius
        return den
    if model == "patch":
        from critdiff.scores.patch import PatchScore

        y = torch.randn(20, 1, size, size, generator=g, dtype=torch.float64).cumsum(-1) * 0.3
        return PatchScore(y, stencil="square:5", equivariant=True, boundary="periodic", dtype=torch.float64)
    raise ValueError(f"model: unknown {model!r}")


def window_radius(model: str, den) -> "int | None":
    """Exact receptive-field radius (pixels, per axis) of the model's Jacobian; ``None`` where it is non-local."""
    if model == "patch":
        return int(max(den.stencil.radius))
    if model == "convnet":  # x / (1 + s^2) has radius 0; each conv adds dilation (kernel - 1) / 2 per axis
        r = [0, 0]
        for layer in den.net.modules():
            if isinstance(layer, torch.nn.Conv2d):
                for a in (0, 1):
                    r[a] += layer.dilation[a] * (layer.kernel_size[a] - 1) // 2
        return int(max(r))
    return None


def support_check(model: str, R: int, size: int = 12, sigma: float = 0.7) -> dict:
    """Max ``|J_D|`` over displacements outside ``R`` and outside ``R - 1`` (periodic, per axis), dense at 12 x 12."""
    from critdiff.probes.spectral import _jacobian, window_lags

    den = build(model, size)
    x = state(size, sigma)[0]
    J, _ = _jacobian(lambda xx: den(xx.unsqueeze(0), torch.tensor([sigma], dtype=torch.float64))[0], x, "reverse", None)
    J = J.reshape(size, size, size, size).numpy()  # [out y, out x, in y, in x]
    i = np.arange(size)
    dy = (i[:, None, None, None] - i[None, None, :, None]) % size
    dx = (i[None, :, None, None] - i[None, None, None, :]) % size
    out = {}
    for r in (R, R - 1):
        keep = window_lags(r, size, size)[dy, dx] if r >= 0 else np.zeros(J.shape, bool)
        out[f"max_abs_J_outside_R{'' if r == R else '-1'}"] = float(np.abs(J[~keep]).max())
    return {"size": size, "R": R, **out}


def state(size: int, sigma: float, kind: str = "random") -> torch.Tensor:
    if kind == "homogeneous":
        return torch.full((1, 1, size, size), HOMOGENEOUS_M, dtype=torch.float64)
    return torch.randn(1, 1, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * sigma


# --- memory ---------------------------------------------------------------------------------------


def _trim() -> None:
    """Return freed heap to the OS (glibc), so that the RSS before a run holds no reusable cached memory."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _measure(fn, reps_if_fast: int = 3, fast_s: float = 5.0):
    """Run ``fn(i)`` once (twice more if under ``fast_s``): (median s, peak MiB above the RSS before, first result)."""
    _trim()
    rss0 = status_kib("VmRSS")
    ok = reset_peak()
    base = rss0 if ok else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, res = [], None
    for r in range(reps_if_fast):
        t = time.perf_counter()
        out = fn(r)
        times.append(time.perf_counter() - t)
        res = out if res is None else res
        if times[0] >= fast_s:
            break
    peak = status_kib("VmHWM") if ok else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(np.median(times)), (peak - base) / 1024, res, len(times)


def _summary(res) -> dict:
    return {"kappa_radial": res.kappa_radial.tolist(), "kappa_radial_se": res.kappa_radial_se.tolist(),
            "jd_re": res.jd.real.ravel().tolist(), "jd_im": res.jd.imag.ravel().tolist(),
            "evals": res.denoiser_evaluations, "n_jvp": res.n_jvp, "backend": res.backend}


# --- workers (each in a fresh subprocess) -----------------------------------------------------------
def worker(model: str, route: str, size: int, sigma: float, kind: str, arg: str, probe: str) -> dict:
    """``route``: ``dense`` (``arg`` = 'backend:chunk'), ``dense_default``, ``impulse``."""
    from critdiff.probes import spectral_probe

    torch.set_num_threads(1)
    den = build(model, size)
    x = state(size, sigma, kind)
    spectral_probe(den, x, sigma, n_probes=1, probe=probe, seed=PROBE_SEED)  # warm-up (caches; small next to any route)
    if route == "dense":
        backend, chunk = arg.split(":")
        kw = {"method": "dense", "backend": backend, "chunk": None if chunk == "None" else int(chunk)}
    elif route == "dense_default":
        kw = {"method": "dense"}
    elif route == "impulse":
        kw = {"method": "impulse"}
    else:
        raise ValueError(f"route: unknown {route!r}")
    t, mib, res, reps = _measure(lambda r: spectral_probe(den, x, sigma, seed=PROBE_SEED + r, **kw))
    return {"time_s": t, "peak_mib": mib, "reps": reps, **_summary(res)}


def _rules(kr, se, sigma) -> tuple[float, float]:
    """(max relative SE over |k|>0 shells, max 2 sigma^2 SE over the shells that could be the softest)."""
    rel = float(np.max(se[1:] / np.abs(kr[1:])))
    u, su = sigma**2 * kr, sigma**2 * se
    j = int(np.argmin(u))
    cand = u - 2 * su <= u[j] + 2 * su[j]
    return rel, float(np.max(2 * su[cand]))


def sweep(model: str, size: int, sigma: float, probe: str, target_rel: float, target_abs: float,
          budget_s: float, window: "int | None" = None) -> dict:
    """Double ``M`` from ``FIRST_M`` until both targets are met at some ``M >= MIN_M``; per target, ``rule``: the
    first ``M >= MIN_M`` meeting it, and ``first``: the first ``M >= FIRST_M`` meeting it (``None`` if never), timed.
    ``window``: passed to ``spectral_probe`` (``None``: the plain random route).

    Each ``M`` is one measured run (seed ``PROBE_SEED``; its result is what the rules and errors read), plus two
    more timed runs (seeds ``PROBE_SEED + 1, + 2``) if it took under 5 s; freed memory is returned to the OS
    (``malloc_trim``) before each ``M`` so that its peak is measured as in a fresh process. Stops early (targets
    not met, ``met: false`` at the last ``M`` run) when the next ``M`` would take the sweep past ``budget_s``.
    """
    from critdiff.probes import spectral_probe

    torch.set_num_threads(1)
    den = build(model, size)
    x = state(size, sigma)
    spectral_probe(den, x, sigma, n_probes=1, probe=probe, seed=PROBE_SEED)  # warm-up
    names = ("shell_se_5pct", "softest_shell_0.05")
    found, first, M, t0 = {}, {n: None for n in names}, FIRST_M, time.perf_counter()
    while True:
        t, mib, res, reps = _measure(lambda r: spectral_probe(den, x, sigma, n_probes=M, probe=probe,
                                                              seed=PROBE_SEED + r, window=window))
        rel, two_se = _rules(res.kappa_radial, res.kappa_radial_se, sigma)
        print(f"  {model} window={window} M={M}: max rel SE {rel:.4f}, softest-shell 2 sigma^2 SE {two_se:.4f}  "
              f"{t:.2f}s {mib:.0f}MiB", file=sys.stderr, flush=True)
        over = M >= MAX_M or time.perf_counter() - t0 + 2.2 * t * reps > budget_s
        for name, val, tgt in zip(names, (rel, two_se), (target_rel, target_abs)):
            rec = {"M": M, "criterion": val, "met": bool(val <= tgt), "time_s": t, "peak_mib": mib, "reps": reps,
                   **_summary(res)}
            if first[name] is None and val <= tgt:
                first[name] = rec
            if name not in found and (over or (M >= MIN_M and val <= tgt)):
                found[name] = rec
        if len(found) == 2 or over:
            return {n: {"rule": found[n], "first": first[n]} for n in names}
        M *= 2


def sub(*args) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        return {"failed": f"exit status {out.returncode}: {out.stderr.strip().splitlines()[-1:]}"}
    sys.stderr.write(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- driver ---------------------------------------------------------------------------------------
def _jd(r: dict) -> np.ndarray:
    return np.array(r["jd_re"]) + 1j * np.array(r["jd_im"])


def _err(name: str, kr: np.ndarray, kd, sigma: float):
    """Achieved error vs dense for target ``name`` (module docstring); ``None`` without a dense result."""
    if kd is None:
        return None
    if name == "shell_se_5pct":
        return float(np.max(np.abs(kr - kd)[1:] / np.abs(kd[1:])))
    return float(abs(sigma**2 * kr.min() - sigma**2 * kd.min()))


def _ratio(a, b):
    return None if a is None or b is None or b <= 0 else a / b


def model_rows(m: str, size: int, sigma: float, a) -> tuple[list[dict], dict]:
    backend, chunk = DENSE[m]
    t0 = time.perf_counter()
    dense = sub(m, "dense", size, sigma, "random", f"{backend}:{chunk}", a.probe)
    print(f"{m}: dense ({backend}, chunk {chunk}) {dense.get('time_s', float('nan')):.2f}s "
          f"{dense.get('failed', '')}", flush=True)
    extra = {"dense_route": {"backend": dense.get("backend"), "chunk": chunk}}
    if m != "patch":
        dd = sub(m, "dense_default", size, sigma, "random", "-", a.probe)
        extra["dense_default"] = {k: dd.get(k) for k in ("time_s", "peak_mib", "backend", "failed")}
    R = window_radius(m, build(m, 8)) if m != "gaussian" else None
    routes = [("random", None)] + ([("windowed", R)] if R is not None else [])
    if R is not None:
        extra["support_check"] = support_check(m, R)
        print(f"{m}: window R = {R}; support check {extra['support_check']}", flush=True)
    ok = "failed" not in dense
    kd = np.array(dense["kappa_radial"]) if ok else None
    rows = []
    for route, win in routes:
        sw = subprocess.run([sys.executable, __file__, "--sweep", m, str(size), str(sigma), a.probe, str(a.target),
                             str(a.target_abs), str(a.sweep_budget_s), str(win)], capture_output=True, text=True,
                            check=True)
        sys.stderr.write(sw.stderr)
        found = json.loads(sw.stdout.strip().splitlines()[-1])
        for name, both in found.items():
            pr, fi = both["rule"], both["first"]
            kr = np.array(pr["kappa_radial"])
            row = {"model": m, "route": route, "window": win, "target": name, "size": size, "sigma": sigma,
                   "probe": a.probe, "M": pr["M"],
                   "criterion": pr["criterion"], "target_met": pr["met"], "err_vs_dense": _err(name, kr, kd, sigma),
                   "u_min_probe": float(sigma**2 * kr.min()),
                   "u_min_dense": None if kd is None else float(sigma**2 * kd.min()),
                   "softest_shell_probe": int(np.argmin(kr)),
                   "softest_shell_dense": None if kd is None else int(np.argmin(kd)),
                   "probe_s": pr["time_s"], "probe_mib": pr["peak_mib"], "probe_reps": pr["reps"],
                   "probe_jvp": pr["n_jvp"], "probe_evals": pr["evals"],
                   "dense_s": dense.get("time_s"), "dense_mib": dense.get("peak_mib"), "dense_reps": dense.get("reps"),
                   "dense_jvp": dense.get("n_jvp"), "dense_evals": dense.get("evals"),
                   "dense_failed": dense.get("failed"),
                   "time_ratio": _ratio(dense.get("time_s"), pr["time_s"]),
                   "mem_ratio": _ratio(dense.get("peak_mib"), pr["peak_mib"]),
                   "jvp_ratio": _ratio(dense.get("n_jvp"), pr["n_jvp"]), **extra}
            if win is not None:
                row["window_lags"] = int((2 * win + 1) ** 2)
                row["expected_variance_cut"] = size * size / (2 * win + 1) ** 2
            row["meets_50x"] = None if row["time_ratio"] is None else bool(row["time_ratio"] >= 50)
            row["M_first"] = None if fi is None else fi["M"]
            if fi is not None:
                kf = np.array(fi["kappa_radial"])
                row.update({"first_criterion": fi["criterion"], "first_err_vs_dense": _err(name, kf, kd, sigma),
                            "first_s": fi["time_s"], "first_mib": fi["peak_mib"], "first_reps": fi["reps"],
                            "first_jvp": fi["n_jvp"],
                            "first_time_ratio": _ratio(dense.get("time_s"), fi["time_s"]),
                            "first_mem_ratio": _ratio(dense.get("peak_mib"), fi["peak_mib"])})
                row["first_meets_50x"] = (None if row["first_time_ratio"] is None
                                          else bool(row["first_time_ratio"] >= 50))
            if "dense_default" in extra:  # the same probe run against the library-default dense call
                row["time_ratio_default"] = _ratio(extra["dense_default"].get("time_s"), pr["time_s"])
                row["mem_ratio_default"] = _ratio(extra["dense_default"].get("peak_mib"), pr["peak_mib"])
            rows.append(row)
    if m == "gaussian":
        rows.append({"model": m, "route": "windowed", "applicable": False, "size": size, "sigma": sigma,
                     "reason": "full covariance: the Jacobian is non-local (every pixel couples to every pixel), "
                               "so no window short of the whole lattice is unbiased"})
    imp = {}
    if m == "patch" and a.impulse:
        dh = sub(m, "dense", size, sigma, "homogeneous", f"{backend}:{chunk}", a.probe)
        ih = sub(m, "impulse", size, sigma, "homogeneous", "-", a.probe)
        ir = sub(m, "impulse", size, sigma, "random", "-", a.probe)
        imp = {"model": m, "state": f"homogeneous x = {HOMOGENEOUS_M} * 1", "impulse_s": ih["time_s"],
               "impulse_mib": ih["peak_mib"], "impulse_jvp": ih["n_jvp"], "impulse_evals": ih["evals"],
               "dense_s": dh.get("time_s"), "dense_mib": dh.get("peak_mib"), "dense_jvp": dh.get("n_jvp"),
               "dense_failed": dh.get("failed"),
               "max_err_jd": None if "failed" in dh else float(np.abs(_jd(ih) - _jd(dh)).max()),
               "max_abs_jd_dense": None if "failed" in dh else float(np.abs(_jd(dh)).max()),
               "time_ratio": _ratio(dh.get("time_s"), ih["time_s"]),
               "mem_ratio": _ratio(dh.get("peak_mib"), ih["peak_mib"]),
               "random_state_max_err_jd": None if not ok else float(np.abs(_jd(ir) - _jd(dense)).max())}
    print(f"{m}: done in {time.perf_counter() - t0:.0f}s", flush=True)
    return rows, imp


def _f(v, fmt):
    return "-" if v is None else format(v, fmt)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--probe", default="phase")
    ap.add_argument("--target", type=float, default=0.05, help="relative SE per |k|>0 shell")
    ap.add_argument("--target-abs", type=float, default=0.05, help="softest shell's sigma^2 kappa, absolute")
    ap.add_argument("--models", default="gaussian,convnet,patch", help="comma-separated subset")
    ap.add_argument("--worker", nargs=7)
    ap.add_argument("--sweep-budget-s", type=float, default=420.0, help="per model: stop doubling M past this")
    ap.add_argument("--sweep", nargs=8)
    ap.add_argument("--no-impulse", dest="impulse", action="store_false",
                    help="skip the impulse rows (they need a second patch dense run, ~5 min)")
    a = ap.parse_args()
    if a.worker:
        m, route, size, sigma, kind, arg, probe = a.worker
        print(json.dumps(worker(m, route, int(size), float(sigma), kind, arg, probe)))
        return
    if a.sweep:
        m, size, sigma, probe, tr, ta, bud, win = a.sweep
        print(json.dumps(sweep(m, int(size), float(sigma), probe, float(tr), float(ta), float(bud),
                               None if win == "None" else int(win))))
        return
    torch.set_num_threads(1)
    size, sigma = (16, 0.7) if a.quick else (32, 0.7)
    t0 = time.perf_counter()
    rows, impulse = [], []
    for m in [m for m in a.models.split(",") if m]:
        r, imp = model_rows(m, size, sigma, a)
        rows += r
        if imp:
            impulse.append(imp)
    hdr = (f"{'model':9s} {'route':8s} {'R':>2s} {'target':19s} {'M':>5s} {'crit':>6s} {'met':>3s} {'err':>7s} "
           f"{'probe_s':>8s} {'dense_s':>8s} {'time_x':>7s} {'probeMiB':>8s} {'denseMiB':>8s} {'mem_x':>6s} "
           f"{'jvp_x':>6s} {'50x':>4s} | {'M1st':>4s} {'err1st':>7s} {'s_1st':>7s} {'time_x':>7s} {'50x':>4s}")
    print(hdr)
    for r in rows:
        if r.get("applicable") is False:
            print(f"{r['model']:9s} {r['route']:8s} {'-':>2s} not applicable: {r['reason']}")
            continue
        met = "yes" if r["target_met"] else "NO"
        first = (f"{r['M_first']:4d} {_f(r['first_err_vs_dense'], '7.4f')} {r['first_s']:7.3f} "
                 f"{_f(r['first_time_ratio'], '7.1f')} {'yes' if r['first_meets_50x'] else 'no':>4s}"
                 if r["M_first"] is not None else f"{'-':>4s} (not met)")
        print(f"{r['model']:9s} {r['route']:8s} {_f(r['window'], 'd'):>2s} {r['target']:19s} {r['M']:5d} "
              f"{r['criterion']:6.3f} {met:>3s} {_f(r['err_vs_dense'], '7.4f')} "
              f"{r['probe_s']:8.3f} {_f(r['dense_s'], '8.2f')} {_f(r['time_ratio'], '7.1f')} {r['probe_mib']:8.1f} "
              f"{_f(r['dense_mib'], '8.1f')} {_f(r['mem_ratio'], '6.1f')} {_f(r['jvp_ratio'], '6.0f')} "
              f"{'yes' if r['meets_50x'] else 'no':>4s} | {first}")
    for r in rows:
        if r.get("dense_default") and r["target"] == "shell_se_5pct" and r["route"] == "random":
            d = r["dense_default"]
            print(f"{r['model']}: library-default dense (jacfwd, all directions at once): {_f(d['time_s'], '.2f')}s "
                  f"{_f(d['peak_mib'], '.0f')} MiB: probe (M={r['M']}) {_f(r['time_ratio_default'], '.1f')}x faster, "
                  f"{_f(r['mem_ratio_default'], '.1f')}x less memory")
    for i in impulse:
        print(f"impulse ({i['state']}): {i['impulse_s']:.3f}s {i['impulse_jvp']} JVP vs dense {_f(i['dense_s'], '.1f')}s: "
              f"max|dJhat| {_f(i['max_err_jd'], '.2e')} (|Jhat| up to {_f(i['max_abs_jd_dense'], '.3f')}), "
              f"time ratio {_f(i['time_ratio'], '.0f')}x; at the random state max|dJhat| "
              f"{_f(i['random_state_max_err_jd'], '.3f')} (not circulant)")
    out = {"rows": rows, "impulse": impulse, "torch": torch.__version__, "machine": platform.machine(), "threads": 1,
           "target_rel_se": a.target, "target_abs_softest": a.target_abs, "min_M": MIN_M, "first_M": FIRST_M,
           "probe_seed": PROBE_SEED, "sweep_budget_s": a.sweep_budget_s, "quick": a.quick,
           "dense_config": {k: {"backend": v[0], "chunk": v[1]} for k, v in DENSE.items()},
           "total_s": time.perf_counter() - t0}
    path = HERE / "results" / ("bench_probes_quick.json" if a.quick else "bench_probes.json")
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path} ({out['total_s']:.0f}s)")


if __name__ == "__main__":
    main()
