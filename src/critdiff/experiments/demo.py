"""``critdiff demo``: the main job. Runs each section on the bundled data and writes one self-contained
HTML report (``report.html``) plus ``results.json`` with every number shown.

Sections are cached under ``OUT/sections/<key>-<hash>/`` (hash of the section's configuration): an
interrupted demo resumes where it stopped and a finished section is never recomputed.
"""

from __future__ import annotations

import html as _html
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from ..io import config_hash, save_json
from ..report.html import Section, table, write_report
from .sample import SampleConfig, run_sample

SectionFn = Callable[[Path], Section]


def _cached(out: Path, key: str, config: dict, build: Callable[[Path], Section], log) -> Section:
    folder = out / "sections" / f"{key}-{config_hash(config)}"
    done = folder / "section.json"
    if done.exists():
        log(f"[demo] {key}: cached ({folder.name})")
        d = json.loads(done.read_text())
        sec = Section(d["key"], d["title"], d["html"], d["results"])
    else:
        log(f"[demo] {key}: running")
        t0 = time.perf_counter()
        sec = build(folder)
        sec.results["seconds"] = time.perf_counter() - t0
        save_json(done, {"key": sec.key, "title": sec.title, "html": sec.html, "results": sec.results})
    # figures are referenced relative to the report folder
    sec.html = sec.html.replace('src="', f'src="sections/{folder.name}/')
    return sec


def sampling_section(key: str, title: str, cfg: SampleConfig, blurb: str) -> tuple[dict, Callable[[Path], Section]]:
    def build(folder: Path) -> Section:
        rec = run_sample(cfg, folder, progress=True)
        rows = [{"setting": k, "value": v} for k, v in (
            ("model", f"{cfg.model} ({'equivariant' if cfg.equivariant else 'local'}, {cfg.boundary})"),
            ("data", cfg.data), ("training images", rec["n_train"]), ("image shape", "x".join(map(str, rec["shape"]))),
            ("stencil", cfg.stencil), ("schedule / grid", f"{cfg.schedule}, {cfg.steps} steps uniform in {cfg.spacing}"),
            ("sampler", cfg.sampler), ("NFE per sample", rec["nfe_per_sample"]), ("seconds", round(rec["seconds"], 1)),
        )]
        html = (f"<p>{blurb}</p>{table(rows)}"
                f'<p><img src="training.png"> <img src="samples.png"></p><p><img src="trajectory.png"></p>')
        return Section(key, title, html, rec)

    return asdict(cfg), build


def theory_demo_section(key: str, data: str, stencil: str, schedule: str, blurb: str) -> tuple[dict, Callable[[Path], Section]]:
    """The theory section (docs/theory.md) on one data set: stiffness heatmap, t_c, k*, xi(t)."""
    config = {"data": data, "stencil": stencil, "schedule": schedule, "weights": "exact"}

    def build(folder: Path) -> Section:
        from ..report.theory import render_theory
        from .theory_section import demo_config, run_theory

        result = run_theory(demo_config(data, stencil, schedule), folder)
        sec = render_theory(result, folder, key=key, blurb=blurb)
        sec.results = result.to_dict()
        return sec

    return config, build


def net_demo_section(quick: bool) -> tuple[dict, Callable[[Path], Section]]:
    """Train (or reuse) the small conditional digits UNet, then measure its critical signatures."""
    config = {"kind": "net-criticality", "quick": quick, "version": 1}

    def build(folder: Path) -> Section:
        from ..report.net_criticality import render_net_criticality
        from .demo_model import train_demo_model
        from .net_criticality import demo_config, run_net_criticality

        model_dir = train_demo_model(folder / "model", quick=quick, progress=True)
        result = run_net_criticality(demo_config(quick, model_dir), folder)
        sec = render_net_criticality(result, folder, key="trained-net")
        sec.results = result.to_dict()
        return sec

    return config, build


def structure_demo_section() -> tuple[dict, Callable[[Path], Section]]:
    """The predicted structure factor against the nonlinear ensemble (default settings)."""
    from .structure_section import StructureConfig

    cfg = StructureConfig()

    def build(folder: Path) -> Section:
        from ..report.structure import render_structure
        from .structure_section import run_structure

        result = run_structure(cfg, folder)
        sec = render_structure(result, folder)
        sec.results = result.to_dict()
        return sec

    return {**cfg.to_dict(), "version": 2}, build


def load_shape_size(data_spec: str) -> int:
    """The ``size=`` option of a data spec."""
    from ..spec import parse_spec

    size = parse_spec(data_spec, "data").kwargs.get("size")
    if not isinstance(size, int):
        raise ValueError(f"data: expected an integer size= option in {data_spec!r}")
    return size


def guidance_demo_section(quick: bool) -> tuple[dict, Callable[[Path], Section]]:
    """Train (or reuse) the evaluation classifier on the textures, then run the guidance-pulse arms."""
    from .guide import demo_config

    gcfg = demo_config(quick)
    # the classifier sees many more crops of the same textures, at the guided model's image size
    size = load_shape_size(gcfg.data)
    ccfg = {"data": f"textures:size={size},n={60 if quick else 200},seed=1", "steps": 60 if quick else 300}
    config = {"kind": "guidance", "guide": asdict(gcfg), "classifier": ccfg, "version": 1}

    def build(folder: Path) -> Section:
        from ..nets.classifier import ClassifierTrainConfig, load_classifier, read_metrics
        from .guide import demo_section
        from .train import run_train_classifier

        clf_dir = folder / "classifier"
        if not (clf_dir / "metrics.json").is_file():
            run_train_classifier(ClassifierTrainConfig(data=ccfg["data"], steps=ccfg["steps"], batch=64), clf_dir, progress=True)
        sec = demo_section(folder / "guide", load_classifier(clf_dir), quick=quick)
        acc = read_metrics(clf_dir).get("heldout_accuracy")
        sec.key = "guidance"
        sec.results["classifier_heldout_accuracy"] = acc
        sec.html = (f"<p>Evaluation classifier trained on <code>{_html.escape(ccfg['data'])}</code>: held-out accuracy "
                    f"{acc if acc is None else round(float(acc), 4)}.</p>" + sec.html.replace('src="', 'src="guide/'))
        return sec

    return config, build


def _one_thread(spec: tuple[dict, Callable[[Path], Section]]) -> tuple[dict, Callable[[Path], Section]]:
    """Run a section's build on one torch thread: the probes' many small autograd ops (JVPs through the patch
    model) ran over 2x slower on two threads than on one on this 2-core machine (318 s vs ~140 s measured)."""
    config, build = spec

    def wrapped(folder: Path) -> Section:
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return build(folder)
        finally:
            torch.set_num_threads(n)

    return config, wrapped


def run_demo(out_dir: "str | Path", quick: bool = False, log=print) -> Path:
    """Run every section (cached) and write the report; returns the report path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    n = 8 if quick else 12
    steps = 12 if quick else 20
    specs = [
        sampling_section(
            "textures", "Equivariant patch model on textures",
            SampleConfig(model="patch", data="textures:size=24,n=20" if quick else "textures:size=24,n=30,scale=2",
                         stencil="square:5", sampler="ddim", steps=steps, n=n, seed=0),
            "The equivariant (ELS) patch model with a 5x5 stencil and periodic boundaries, built on random "
            "crops of scikit-image's brick, grass and gravel textures (no training), sampled with deterministic "
            "DDIM on a VP-linear schedule uniform in logsnr. Samples are new textures assembled from local patches.",
        ),
        sampling_section(
            "digits", "Equivariant patch model on digits",
            SampleConfig(model="patch", data="digits:size=16,n=150" if quick else "digits:size=16,n=300",
                         stencil="square:5", boundary="zero", sampler="ddim", steps=steps, n=n, seed=0),
            "The same model on scikit-learn digits upsampled to 16x16, with zero padding (the ELS convention "
            "for digits). Local patch statistics produce stroke-like, digit-like compositions rather than copies.",
        ),
    ]
    specs += [
        theory_demo_section(
            "theory-textures", "textures:size=24,n=20" if quick else "textures:size=24,n=30,scale=2", "square:5", "vp-linear",
            "The same patch model as above, linearised around its homogeneous solution: where the stiffness "
            "kappa(k, t) of each Fourier mode turns negative, fluctuations of that mode grow (DESIGN.md section 3).",
        ),
        theory_demo_section(
            "theory-stripes", "stripes:size=16,wavelength=4,n=200", "square:5", "vp-linear",
            "A known answer: stripes of wavelength 4 must give a critical mode with |k*| = 2 pi / 4 = 1.571 rad/pixel.",
        ),
    ]
    from .probe import probe_section

    specs += [structure_demo_section(),
              _one_thread(probe_section("stripes:size=16,wavelength=4,n=100", "square:5", None, quick=quick,
                                        eps_scan=(0.1, 0.3, 1.0))),
              _one_thread(probe_section("textures:size=24,n=20", "square:5", None, quick=quick)),
              net_demo_section(quick), guidance_demo_section(quick)]
    keys = ("textures", "digits", "theory-textures", "theory-stripes", "structure-factor", "probe-stripes",
            "probe-textures", "trained-net", "guidance")
    sections = [_cached(out, key, cfg, build, log) for (cfg, build), key in zip(specs, keys)]
    meta = {"critdiff": __import__("critdiff").__version__, "quick": quick, "torch": torch.__version__}
    report = write_report(out, "critdiff demo report", sections, meta)
    log(f"[demo] wrote {report} and {out / 'results.json'}")
    return report
