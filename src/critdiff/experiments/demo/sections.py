"""The sections of ``critdiff demo`` and their settings (CPU-sized; ``quick`` for the tests).

Each entry is a :class:`DemoSection`: a cache key (its configuration), a
``run(folder) -> Result`` and the options of its renderer (:func:`critdiff.report.render.render`).
Every section computes on the demo's ``device`` (``critdiff demo --device``); a device other than the CPU is
part of each cache key, so results of different devices are never mixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..context import Context
from ..result import Result
from ..sample import SampleConfig, run_sample

PROBE_THREADS = 1  # the probes' many small autograd ops ran over 2x slower on two threads on the 2-core machine


@dataclass(frozen=True)
class DemoSection:
    """One section of the demo: its ``key``, a JSON-able ``config`` (the cache key), ``run(folder) -> Result``,
    options for its renderer (title, blurb), the torch ``threads`` it runs on (None: unchanged) and its ``cost``:
    roughly its CPU seconds on one core (full settings), which orders the sections when two run at a time."""

    key: str
    config: dict
    run: Callable[[Path], Result]
    render_options: dict
    threads: "int | None" = None
    cost: float = 10.0


def _keyed(config: dict, device: str) -> dict:
    """A section's cache key: its configuration, plus the device when it is not the CPU (CPU keys unchanged)."""
    return config if device == "cpu" else {**config, "device": device}


def _sampling(key: str, title: str, cfg: SampleConfig, blurb: str):
    return DemoSection(key, {"sample": cfg.identity(), "version": 2}, lambda folder: run_sample(cfg, folder),
                       {"title": title, "blurb": blurb}, cost=15.0)


def _theory(key: str, data: str, blurb: str, device: str):
    from ..theory_section import demo_config, run_theory

    cfg = demo_config(data)
    return DemoSection(key, _keyed({"theory": cfg.to_dict(), "version": 2}, device),
                       lambda folder: run_theory(cfg, folder, device=device),
                       {"title": f"Theory: linear stability of the patch model: {data}", "blurb": blurb}, cost=5.0)


REFERENCE = "pretrained:mnist28"  # the reference network that ships with critdiff (docs/models.md)
REFERENCE_CLASSIFIER = "pretrained:mnist28-clf"  # its evaluation classifier


def _shipped(*specs: str) -> dict:
    """The sha256s of the shipped files a section reads: part of its cache key, so new weights are never mixed
    with results of old ones."""
    from ... import pretrained

    return {spec: pretrained.entry(pretrained.spec_name(spec))["files"] for spec in specs}


def _net(quick: bool, device: str):
    from ..net_criticality import demo_config, run_net_criticality

    cfg = demo_config(quick, REFERENCE)
    return DemoSection("trained-net", _keyed({"net": cfg.to_dict(), "files": _shipped(REFERENCE), "version": 4}, device),
                       lambda folder: run_net_criticality(cfg, folder, device=device),
                       {"title": "The reference network: mode softening, correlation growth and its critical time"},
                       cost=70.0)


def guide_config(quick: bool, device: str = "cpu"):
    """The demo's guidance section: the reference network and classifier on real MNIST, DDPM, the pulse at the
    default critical time (:data:`~..guide.config.DEFAULT_TC_FROM`) against random centres, constant and interval
    guidance at the same height, and plain conditional sampling (w = 1)."""
    from ..guide.config import GuideConfig

    arms = ("cond", "constant", "interval", "tc", "random")
    if quick:
        return GuideConfig(model=REFERENCE, data="mnist", arms=arms, n=10, batch=10, steps=8, n_boot=500,
                           n_boot_set=50, device=device)
    # n = 30 per arm (the whole demo's 5-minute budget): at n = 40 with the step-4500 weights, pulse at the default
    # t_c (linear-response+offset, logsnr -2.689) minus random centres measured +0.575 [+0.425, +0.725] in accuracy
    # and +4.43 [+3.04, +5.86] in log p (2026-12-05); the set-level intervals (FD, precision, recall, diversity) use
    # 100 bootstrap replicates: at 200 their bootstrap was most of this section's time
    return GuideConfig(model=REFERENCE, data="mnist", arms=arms, n=30, batch=30, steps=20, n_boot_set=100,
                       device=device)


def _guidance(quick: bool, device: str, log):
    from ..guide.run import run_guide

    gcfg = guide_config(quick, device)

    def run(folder: Path):
        from ...pretrained import load_classifier

        return run_guide(gcfg, Context(folder, log=log), classifier=load_classifier(REFERENCE_CLASSIFIER, device=device),
                         verbose=True)

    config = {"kind": "guidance", "guide": gcfg.identity(), "files": _shipped(REFERENCE, REFERENCE_CLASSIFIER), "version": 4}
    return DemoSection("guidance", config, run, {"title": "Guidance on the reference network: a pulse at the "
                                                          "critical time against random pulses, constant and interval"},
                       cost=65.0)


def agreement_config(quick: bool, device: str = "cpu"):
    """The demo's patch-model-vs-network agreement: a few seeds from the same noise, a small pool and few candidate
    stencils (the full protocol is benchmarks/bench_agreement.py, docs/agreement.md)."""
    from ..agreement import AgreementConfig

    if quick:
        return AgreementConfig(net=REFERENCE, pool="mnist:n=50", seeds=2, steps=4, batch=2, n_cal_traj=1,
                               n_cal_train=8, stencils=("square:3", "ls:square:7"), n_boot=200, device=device)
    return AgreementConfig(net=REFERENCE, pool="mnist:n=200", seeds=3, steps=8, batch=3, n_cal_traj=2, n_cal_train=16,
                           stencils=("square:3", "square:5", "ls:square:7", "ls:square:27"), device=device)


def _agreement(quick: bool, device: str):
    from ..agreement import run_agreement

    cfg = agreement_config(quick, device)
    return DemoSection("agreement", {"agreement": cfg.to_dict(), "files": _shipped(REFERENCE), "version": 1},
                       lambda folder: run_agreement(cfg, Context(folder, progress=False)),
                       {"title": "Patch model vs the reference network from the same noise (a few seeds)"}, cost=25.0)


# the textures probe repeats the stripes probe's story on a second data set, at smaller settings and on 16x16
# textures with 10 crops per class (measured on this round's quiet 2-core machine, one thread per section: 24x24 with
# 20 per class took 222 s, 16x16 with 10 per class 27 s, the stripes probe 198 s; the costs below are those seconds)
SMALL_PROBE = dict(n=6, steps=12, times=5, homogeneous=21, linear=16, linear_n=3)


def _probe(data: str, quick: bool, device: str, eps_scan: tuple = (), small: bool = False, cost: float = 50.0):
    from ..probe import demo_config, run_probe

    cfg = demo_config(quick, data, "square:5", eps_scan).replace(device=device)
    if small and not quick:
        cfg = cfg.replace(**SMALL_PROBE)
    key = "probe-" + data.split(":")[0]
    return DemoSection(key, {"probe": cfg.identity(), "version": 3}, lambda folder: run_probe(cfg, folder),
                       {"title": f"Probes vs theory: {data}"}, threads=PROBE_THREADS, cost=cost)


def _structure(device: str):
    from ..structure_section import StructureConfig, run_structure

    cfg = StructureConfig()
    return DemoSection("structure-factor", _keyed({"structure": cfg.to_dict(), "version": 2}, device),
                       lambda folder: run_structure(cfg, folder, device=device), {}, cost=10.0)


def demo_sections(quick: bool, device: str = "cpu", log=lambda message: None) -> list:
    """Every section of the demo, in report order, computed on ``device``; ``log`` receives the per-trial lines of
    the guidance section (the demo passes them on only with ``--verbose``)."""
    n, steps = (8, 12) if quick else (8, 16)
    textures = "textures:size=24,per_class=20" if quick else "textures:size=24,per_class=30,scale=2"
    return [
        _sampling("textures", "Equivariant patch model on textures",
                  SampleConfig(model="patch", data=textures, stencil="square:5", sampler="ddim", steps=steps, n=n, seed=0,
                               device=device),
                  "The equivariant (ELS) patch model with a 5x5 stencil and periodic boundaries, built on random "
                  "crops of scikit-image's brick, grass and gravel textures (no training), sampled with deterministic "
                  "DDIM on a VP-linear schedule uniform in logsnr. Samples are new textures assembled from local patches."),
        _sampling("digits", "Equivariant patch model on digits",
                  SampleConfig(model="patch", data="digits:size=16,n=150" if quick else "digits:size=16,n=300",
                               stencil="square:5", boundary="zero", sampler="ddim", steps=steps, n=n, seed=0,
                               device=device),
                  "The same model on scikit-learn digits upsampled to 16x16, with zero padding (the ELS convention "
                  "for digits). Local patch statistics produce stroke-like, digit-like compositions rather than copies."),
        _theory("theory-textures", textures,
                "The same patch model as above, linearised around its homogeneous solution: where the stiffness "
                "kappa(k, t) of each Fourier mode turns negative, fluctuations of that mode grow (DESIGN.md section 3).",
                device),
        _theory("theory-stripes", "stripes:size=16,wavelength=4,n=200",
                "A known answer: stripes of wavelength 4 must give a critical mode with |k*| = 2 pi / 4 = 1.571 rad/pixel.",
                device),
        _structure(device),
        _probe("stripes:size=16,wavelength=4,n=100", quick, device, eps_scan=(0.1, 1.0), cost=200.0),
        _probe("textures:size=16,per_class=10", quick, device, small=True, cost=30.0),
        _net(quick, device),
        _guidance(quick, device, log),
        _agreement(quick, device),
    ]
