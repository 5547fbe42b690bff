"""Render a :class:`~critdiff.experiments.sample.SampleResult`: the samples, one trajectory, the settings."""

from __future__ import annotations

from .fmt import num
from .html import Section, table


def _late(plan) -> str:
    if plan is None:
        return "off (full range from pure noise)"
    return (f"logsnr {num(plan.logsnr)} (sigma {num(plan.sigma)}; {plan.source}), Gaussian with "
            f"{plan.covariance} covariance from {plan.moments_from}")


def render_sample(result, folder=None, key: str = "sample", title: str = "", blurb: str = "") -> Section:
    """A section showing a sampling run (its PNG artefacts are in the run's folder)."""
    cfg = result.config
    model = cfg.model if cfg.kind != "patch" else \
        f"patch ({'equivariant' if cfg.equivariant else 'local'}, {cfg.boundary}, stencil {cfg.stencil})"
    rows = [{"setting": k, "value": v} for k, v in (
        ("model", model), ("data", cfg.data), ("training images", result.n_train),
        ("image shape", "x".join(map(str, result.shape))),
        ("schedule / grid", f"{cfg.schedule}, {cfg.steps} steps " + (
            "placed by the measured step density (critical)" if cfg.spacing == "critical" else f"uniform in {cfg.spacing}")),
        ("late start", _late(getattr(result, "late_start", None))),
        ("sampler", cfg.sampler), ("NFE per sample", result.nfe_per_sample), ("seconds", result.seconds))]
    images = "".join(f'<img src="{f}"> ' for f in ("training.png", "samples.png") if f in result.files)
    html = (f"<p>{blurb}</p>" if blurb else "") + table(rows) + f"<p>{images}</p><p><img src=\"trajectory.png\"></p>"
    finding = (f"{cfg.n} samples from {model} on {cfg.data or 'its own data'} in {num(result.seconds)} s "
               f"({num(result.nfe_per_sample)} NFE each); sample mean {num(result.sample_mean)}, "
               f"std {num(result.sample_std)}.")
    return Section(key, title or f"Samples: {cfg.model}", html,
                   question="What does the model generate from this data, and how does one trajectory unfold?",
                   findings=[finding])
