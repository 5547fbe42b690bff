"""Patch-model-vs-network agreement at the protocol of Kamb & Ganguli (2024): Pearson r of samples from identical noise.

``run_agreement(cfg, ctx) -> AgreementResult``. A trained network (``net:DIR``, sampled unconditionally:
``label=None``, since the patch model here is unconditional) and the patch model of the pool ``cfg.pool``
(default the full MNIST-5k ``mnist``; zero boundary; ``pool='valid'`` for its ELS stencils by default, the
convention of Kamb & Ganguli's ELS-machine code, DESIGN.md section 2), equivariant (ELS) or position-specific
(LS) per level as calibrated, both run deterministic DDIM (eta = 0)
for ``cfg.steps`` steps, uniform in logsnr of the network's training schedule, from the same initial noise: sample ``j`` starts from
``seeding.generator(cfg.seed, j)`` (the ``j``-th of ``samplers.seed_generators``), so the noise does not depend
on the batch. The patch model's stencil is calibrated first (:mod:`critdiff.probes.calibration`) at every
level of the grid, on states of ``n_cal_traj`` network trajectories (their own seed stream), with patch models of
``n_cal_train`` pool images; ``stencil_rule='per-time'`` uses each level's calibrated stencil
(:class:`~critdiff.probes.calibration.CalibratedPatchScore`), ``'modal'`` the most frequent one everywhere. The
patch model uses its certified pruned path at ``tol`` (None: its default). Metrics
(:mod:`critdiff.probes.agreement`): Pearson r of the final images per seed (median, quartiles, bootstrap interval
of the median) and, per level, the r of the two denoisers on the network's states.

Resumable: ``OUT/agreement.jsonl`` (:class:`~critdiff.experiments.guide.store.TrialLog`) holds the calibration
and one record per finished seed; a rerun (also with more ``--seeds``) computes only the missing seeds.
``OUT/result.json`` is the result. :mod:`critdiff.report.agreement` renders it.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import torch

from ..config import JsonConfig, arg
from ..errors import check_choice, check_int, check_seed
from ..probes.agreement import median_summary, paired_ddim
from ..probes.calibration import (CalibratedPatchScore, Calibration, calibrate_patch_size, candidate_family, candidate_model,
                                  check_candidates)
from ..probes.final_calibration import select_by_final_agreement, switch_assignments
from ..samplers import Recorder, initial_noise, sample_ddim, seed_generators
from ..schedules import get as get_schedule
from ..schedules import sigma_grid
from ..seeding import derive, generator
from .config import with_weights_id
from .guide.store import TrialLog
from .net_criticality import load_trained
from .net_signals import _pool_order
from .context import ContextLike, as_context
from .result import Result

ANCHOR_R = 0.94  # Kamb & Ganguli (2024): median r of their calibrated ELS machine vs trained nets on MNIST
LOG = "agreement.jsonl"
# calibration candidates: ELS stencils from 3 to 13 and LS stencils from 3 to the whole-frame-sized 27
# (probes/calibration.py); on the MNIST UNet LS wins at high noise and ELS at low noise (docs/agreement.md)
CANDIDATES = ("square:3", "square:5", "square:7", "square:9", "square:13",
              "ls:square:3", "ls:square:7", "ls:square:13", "ls:square:19", "ls:square:27")
EXAMPLES = 8  # sample pairs kept in the result (shown by the report)
RECORDS = {"stencil-calibration": ("sigma", "stencils", "calibration", "seconds"),
           "calibration-table": ("sigma", "calibration", "seconds"),
           "seed": ("seed", "r", "level_r", "seconds", "bound")}


@dataclass(frozen=True)
class AgreementConfig(JsonConfig):
    """The agreement run (module docstring)."""

    net: str = arg(help="folder of a network trained by critdiff train, or pretrained:NAME (e.g. pretrained:mnist28)")
    pool: str = arg("mnist", "data spec of the patch model's training pool")
    seeds: int = arg(100, "samples (one seed each)")
    steps: int = arg(20, "DDIM (eta = 0) steps, uniform in logsnr of the network's training schedule")
    batch: int = arg(8, "seeds sampled together")
    seed: int = arg(0, "base seed: sample j starts from noise derive(seed, j)")
    stencils: tuple[str, ...] = arg(CANDIDATES, "calibration candidates: ELS stencils ('square:7') and LS ones "
                                                "('ls:square:27')")
    stencil_rule: Literal["per-time", "modal", "final"] = arg(
        "per-time", "the calibrated stencil of each level, the most frequent one at every level, or the per-level "
                    "assignment whose final images agree best with the network's on the calibration seeds "
                    "(probes/final_calibration.py)")
    switch_stride: int = arg(2, "final rule: switch levels searched, every this many levels from the per-level "
                                "calibration's first non-LS level")
    conditional: bool = arg(False, "class-conditional comparison: sample j at label j mod 10 (the class count), the "
                                   "patch model's pool of that class against the network at that label")
    n_cal_traj: int = arg(8, "network trajectories whose states calibrate the stencil")
    n_cal_train: int = arg(128, "pool images of the calibration's patch models")
    boundary: Literal["periodic", "zero"] = arg("zero", "patch boundary (zero: as a zero-padded UNet)")
    patch_pool: Literal["all", "valid"] = arg("valid", "patch pool: only patches wholly inside the training images "
                                                       "(Kamb & Ganguli's ELS machine), or every position")
    tol: Optional[float] = arg(None, "certified tolerance of the patch model's pruned path (default: its own)")
    n_boot: int = arg(2000, "bootstrap replicates of the median's interval")
    device: str = arg("cpu", "torch device: cpu, cuda or cuda:N")
    threads: Optional[int] = arg(None, "CPU threads for torch (default: torch's choice)")

    def validate(self) -> "AgreementConfig":
        for name in ("seeds", "steps", "batch", "n_cal_traj", "n_cal_train", "n_boot", "switch_stride"):
            check_int(name, getattr(self, name), 1)
        check_seed("seed", self.seed)
        check_choice("stencil_rule", self.stencil_rule, ("per-time", "modal", "final"))
        if not isinstance(self.conditional, bool):
            raise TypeError(f"conditional: expected a bool, got {self.conditional!r}")
        check_choice("boundary", self.boundary, ("periodic", "zero"))
        check_choice("patch_pool", self.patch_pool, ("all", "valid"))
        check_candidates(self.stencils)
        return self

    def identity(self) -> dict:
        """The fields that determine a seed's numbers (the log is keyed on them): not seeds, batch, threads, n_boot."""
        d = {k: v for k, v in self.to_dict().items() if k not in ("seeds", "batch", "threads", "n_boot")}
        return with_weights_id(d, ("net",))


@dataclass(frozen=True)
class AgreementResult(Result):
    """Per seed ``r [S]`` (seeds ``0..S-1``); per level (``level_sigma [T]``, sampling order) the stencil and the
    median and quartiles of the denoisers' r; ``summary``: :func:`~critdiff.probes.agreement.median_summary` of
    ``r``; ``seconds_per_seed``: mean wall time of one seed (both runs and the per-level comparison);
    ``cpu_seconds_per_seed``: its mean CPU time (``time.process_time``, every thread of the process), over the
    seeds whose records carry it (None if none do: logs written before it was recorded), the cost on a shared
    machine, where wall time depends on the load."""

    kind = "agreement"
    config: AgreementConfig
    schedule: str
    sampler: str
    n_pool: int
    net: dict
    patch: dict
    calibration: dict
    level_sigma: tuple[float, ...]
    level_logsnr: tuple[float, ...]
    level_stencil: tuple[str, ...]
    level_r_median: tuple
    level_r_q25: tuple
    level_r_q75: tuple
    r: tuple
    summary: dict
    seconds_per_seed: float
    max_bound: float
    calibration_seconds: float
    cpu_seconds_per_seed: Optional[float] = None
    calibration_cpu_seconds: Optional[float] = None
    shape: tuple[int, ...] = ()
    examples: tuple = ()  # the first EXAMPLES seeds: {"seed", "r", "x_patch", "x_net"} (flattened final images)
    anchor_r: float = ANCHOR_R
    label: Optional[int] = None  # both models sample unconditionally (config.conditional: seed j at label j mod 10)
    final_selection: Optional[dict] = None  # stencil_rule 'final': median r of every assignment on the calibration seeds


def _floats(values) -> np.ndarray:
    """JSON numbers (``None`` for a non-finite one) -> float64 array with NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _labels(seeds, pool_labels, cfg: AgreementConfig):
    """The labels of ``seeds`` (``j mod n_classes``) for a conditional comparison, else None (unconditional)."""
    if not cfg.conditional:
        return None
    return torch.tensor([j % (int(pool_labels.max()) + 1) for j in seeds], device=cfg.device)


def _patch_kwargs(cfg: AgreementConfig, pool_labels) -> dict:
    return {"boundary": cfg.boundary, "pool": cfg.patch_pool, "tol": cfg.tol, "device": cfg.device,
            "labels": pool_labels if cfg.conditional else None}


def _calibrate(net, pool, pool_labels, sigmas, cfg: AgreementConfig, log: TrialLog) -> tuple[dict, dict]:
    """The calibration record (the stencil per level, from the network's DDIM states at every level) and the
    full-pool models the final rule built (reused for sampling; empty for the other rules). The final rule logs
    the per-level table first (a ``calibration-table`` record), so an interrupted selection resumes after it."""
    t0, c0 = time.perf_counter(), time.process_time()
    rec = Recorder()
    seeds = list(range(cfg.n_cal_traj))
    lab = _labels(seeds, pool_labels, cfg)
    x = initial_noise((cfg.n_cal_traj, *net.sample_shape), sigmas,
                      seed_generators(derive(cfg.seed, "calibration"), cfg.n_cal_traj), device=cfg.device)
    with torch.no_grad():
        final_net = sample_ddim(net, x, sigmas, label=lab, callback=rec)
    table = log.find("calibration-table")
    if table is None:
        order = _pool_order(pool, cfg.seed)[:cfg.n_cal_train]
        cal = calibrate_patch_size(net, pool[order], stencils=cfg.stencils, states=list(zip(rec.sigma, rec.x)),
                                   boundary=cfg.boundary, pool=cfg.patch_pool, label=lab,
                                   labels=pool_labels[order] if cfg.conditional else None)
        table = {"type": "calibration-table", "sigma": cal.sigma.tolist(), "calibration": cal.to_dict(),
                 "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}
        if cfg.stencil_rule == "final":
            log.append(table)
    t1, c1 = time.perf_counter(), time.process_time()
    cal = Calibration.from_dict(table["calibration"])
    record = {"type": "stencil-calibration", "sigma": table["sigma"], "calibration": table["calibration"]}
    models: dict = {}
    if cfg.stencil_rule == "final":
        assignments = switch_assignments(cal, cfg.switch_stride)
        kw = _patch_kwargs(cfg, pool_labels)
        for st in sorted({c for a in assignments.values() for c in a}, key=lambda c: candidate_family(c) == "boundary"):
            models[st] = candidate_model(pool, st, parts=models, **kw)
        sel = select_by_final_agreement(models, assignments, x, sigmas, final_net, label=lab)
        record["final"] = {**sel, "assignments": assignments, "seconds": time.perf_counter() - t1}
        stencils = sel["stencils"]
    else:
        stencils = cal.best_stencil if cfg.stencil_rule == "per-time" else [cal.modal_stencil()] * len(cal.sigma)
    record.update(stencils=stencils, seconds=table["seconds"] + time.perf_counter() - t1)
    if "cpu_seconds" in table:  # a table logged before CPU time was recorded has none
        record["cpu_seconds"] = table["cpu_seconds"] + time.process_time() - c1
    return record, models


def _run_batch(patch, net, seeds: list[int], sigmas, cfg: AgreementConfig, bar, pool_labels) -> list[dict]:
    """One record per seed of ``seeds`` (sampled together); ``bar`` counts patch evaluations of one sample
    (``2 T`` per seed); ``bound``: the largest certified bound of the batch's patch evaluations; ``seconds`` and
    ``cpu_seconds``: the batch's wall and CPU time divided by its seeds."""
    t0, c0 = time.perf_counter(), time.process_time()
    x = initial_noise((len(seeds), *net.sample_shape), sigmas, [generator(cfg.seed, j) for j in seeds],
                      device=cfg.device)
    bounds = [0.0]

    def patch_d(x_, sigma, label=None):
        out = patch(x_, sigma, label)
        bounds.append(patch.last_bound)
        bar.update(len(seeds))
        return out

    run = paired_ddim(patch_d, net, x, sigmas, label=_labels(seeds, pool_labels, cfg))
    seconds = (time.perf_counter() - t0) / len(seeds)
    cpu_seconds = (time.process_time() - c0) / len(seeds)
    return [{"type": "seed", "seed": j, "r": float(run.r[b]), "level_r": run.level_r[:, b].tolist(),
             "seconds": seconds, "cpu_seconds": cpu_seconds, "bound": max(bounds),
             "x_patch": run.final_a[b].cpu().flatten().tolist(), "x_net": run.final_b[b].cpu().flatten().tolist()}
            for b, j in enumerate(seeds)]


def run_agreement(cfg: AgreementConfig, ctx: ContextLike) -> AgreementResult:
    """Run (or resume) the agreement measurement (module docstring); write ``result.json`` to ``ctx.out`` (a
    :class:`~critdiff.experiments.context.Context` or a folder); return the result."""
    from ..threads import torch_threads

    cfg.validate()
    ctx = as_context(ctx)
    out = ctx.folder()
    net, pool, _, schedule, pool_labels = load_trained(cfg.net, cfg.pool, with_labels=True)
    if cfg.conditional and pool_labels is None:
        raise ValueError(f"conditional: the pool {cfg.pool!r} has no class labels")
    net = net.to(device=cfg.device)
    sigmas = sigma_grid(get_schedule(schedule), cfg.steps, "logsnr")
    log = TrialLog(out / LOG, cfg.identity(), required=RECORDS)
    done = {r["seed"] for r in log.of_type("seed")}
    missing = [j for j in range(cfg.seeds) if j not in done]
    n_evals = len(missing) * 2 * cfg.steps  # patch evaluations of one sample
    with torch_threads(cfg.threads), ctx.bar(n_evals, "agreement (patch evaluations)") as bar:
        models: dict = {}
        if log.find("stencil-calibration") is None:
            bar.set_postfix_str("calibrating the stencil")
            record, models = _calibrate(net, pool, pool_labels, sigmas, cfg, log)
            log.append(record)
        cal = log.find("stencil-calibration")
        patch = CalibratedPatchScore(pool, cal["sigma"], cal["stencils"], models=models,
                                     **_patch_kwargs(cfg, pool_labels))
        bar.set_postfix_str("sampling")
        for i in range(0, len(missing), cfg.batch):
            for rec in _run_batch(patch, net, missing[i:i + cfg.batch], sigmas, cfg, bar, pool_labels):
                log.append(rec)
    result = _summarise(cfg, log, cal, sigmas, schedule, net, patch, n_pool=int(pool.shape[0]))
    ctx.save(result)
    return result


def _mean_cpu(recs) -> Optional[float]:
    """Mean ``cpu_seconds`` of the seed records that carry it (logs written before it was recorded: None)."""
    cpu = [r["cpu_seconds"] for r in recs if "cpu_seconds" in r]
    return float(np.mean(cpu)) if cpu else None


def _summarise(cfg, log: TrialLog, cal: dict, sigmas, schedule: str, net, patch, n_pool: int) -> AgreementResult:
    recs = sorted((r for r in log.of_type("seed") if r["seed"] < cfg.seeds), key=lambda r: r["seed"])
    level_r = np.stack([_floats(r["level_r"]) for r in recs], 1)  # [T, S]
    with warnings.catch_warnings():  # a level where every r is NaN (constant images) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        q25, q50, q75 = np.nanquantile(level_r, [0.25, 0.5, 0.75], axis=1)
    lev = sigmas[:-1].numpy()
    return AgreementResult(
        config=cfg, schedule=schedule, sampler="ddim:eta=0", n_pool=n_pool, net=net.config(), patch=patch.config(),
        calibration=cal["calibration"], level_sigma=tuple(lev), level_logsnr=tuple(-2.0 * np.log(lev)),
        level_stencil=tuple(patch.stencil_at(s) for s in lev), level_r_median=tuple(q50), level_r_q25=tuple(q25),
        level_r_q75=tuple(q75), r=tuple(_floats([r["r"] for r in recs])),
        summary=median_summary(_floats([r["r"] for r in recs]), n_boot=cfg.n_boot, seed=cfg.seed),
        seconds_per_seed=float(np.mean([r["seconds"] for r in recs])), max_bound=max(r["bound"] for r in recs),
        calibration_seconds=cal["seconds"], shape=tuple(net.sample_shape),
        cpu_seconds_per_seed=_mean_cpu(recs), calibration_cpu_seconds=cal.get("cpu_seconds"),
        final_selection={k: cal["final"][k] for k in ("chosen", "median_r", "assignments")} if "final" in cal else None,
        examples=tuple({k: r[k] for k in ("seed", "r", "x_patch", "x_net")} for r in recs[:EXAMPLES]))
