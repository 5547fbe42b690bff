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

from ..result import Result
from ..sample import SampleConfig, run_sample

PROBE_THREADS = 1  # the probes' many small autograd ops ran over 2x slower on two threads on the 2-core machine


@dataclass(frozen=True)
class DemoSection:
    """One section of the demo: its ``key``, a JSON-able ``config`` (the cache key), ``run(folder) -> Result``,
    options for its renderer (title, blurb) and the torch ``threads`` it runs on (None: unchanged)."""

    key: str
    config: dict
    run: Callable[[Path], Result]
    render_options: dict
    threads: "int | None" = None


def _keyed(config: dict, device: str) -> dict:
    """A section's cache key: its configuration, plus the device when it is not the CPU (CPU keys unchanged)."""
    return config if device == "cpu" else {**config, "device": device}


def _sampling(key: str, title: str, cfg: SampleConfig, blurb: str):
    return DemoSection(key, {"sample": cfg.identity(), "version": 2}, lambda folder: run_sample(cfg, folder),
                       {"title": title, "blurb": blurb})


def _theory(key: str, data: str, blurb: str, device: str):
    from ..theory_section import demo_config, run_theory

    cfg = demo_config(data)
    return DemoSection(key, _keyed({"theory": cfg.to_dict(), "version": 2}, device),
                       lambda folder: run_theory(cfg, folder, device=device),
                       {"title": f"Theory: linear stability of the patch model: {data}", "blurb": blurb})


def _net(quick: bool, device: str):
    def run(folder: Path):
        from .model import train_demo_model
        from ..net_criticality import demo_config, run_net_criticality

        model_dir = train_demo_model(folder / "model", quick=quick, progress=True, device=device)
        return run_net_criticality(demo_config(quick, str(model_dir)), folder, device=device)

    return DemoSection("trained-net", _keyed({"kind": "net-criticality", "quick": quick, "version": 2}, device), run, {})


def _data_size(data_spec: str) -> int:
    """The ``size=`` option of a data spec."""
    from ...spec import parse_spec

    size = parse_spec(data_spec, "data").kwargs.get("size")
    if not isinstance(size, int):
        raise ValueError(f"data: expected an integer size= option in {data_spec!r}")
    return size


def _guidance(quick: bool, device: str):
    from ..guide.run import demo_config, run_guide

    gcfg = demo_config(quick).replace(device=device)
    # the classifier sees many more crops of the same textures, at the guided model's image size
    ccfg = {"data": f"textures:size={_data_size(gcfg.data)},per_class={60 if quick else 200},seed=1", "steps": 60 if quick else 300}

    def run(folder: Path):
        from ...nets.classifier import ClassifierTrainConfig, load_classifier
        from ..train import run_train_classifier

        clf_dir = folder / "classifier"
        if not (clf_dir / "metrics.json").is_file():
            run_train_classifier(ClassifierTrainConfig(data=ccfg["data"], steps=ccfg["steps"], batch=64), clf_dir,
                                 progress=True, device=device)
        return run_guide(gcfg, folder, classifier=load_classifier(clf_dir, device=device))

    config = {"kind": "guidance", "guide": gcfg.identity(), "classifier": ccfg, "version": 3}
    return DemoSection("guidance", config, run, {})


def _probe(data: str, quick: bool, device: str, eps_scan: tuple = ()):
    from ..probe import demo_config, run_probe

    cfg = demo_config(quick, data, "square:5", eps_scan).replace(device=device)
    key = "probe-" + data.split(":")[0]
    return DemoSection(key, {"probe": cfg.identity(), "version": 3}, lambda folder: run_probe(cfg, folder),
                       {"title": f"Probes vs theory: {data}"}, threads=PROBE_THREADS)


def _structure(device: str):
    from ..structure_section import StructureConfig, run_structure

    cfg = StructureConfig()
    return DemoSection("structure-factor", _keyed({"structure": cfg.to_dict(), "version": 2}, device),
                       lambda folder: run_structure(cfg, folder, device=device), {})


def demo_sections(quick: bool, device: str = "cpu") -> list:
    """Every section of the demo, in report order, computed on ``device``."""
    n, steps = (8, 12) if quick else (12, 20)
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
        _probe("stripes:size=16,wavelength=4,n=100", quick, device, eps_scan=(0.1, 0.3, 1.0)),
        _probe("textures:size=24,per_class=20", quick, device),
        _net(quick, device),
        _guidance(quick, device),
    ]
