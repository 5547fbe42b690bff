"""The ``sample`` experiment: draw samples from a model with any schedule and sampler, and write a PNG
grid of samples, a grid of one trajectory over time, tensors (safetensors) and a JSON of the run."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch

from .. import samplers as SM
from .. import schedules as S
from ..data import load as load_data
from ..denoisers import CountingDenoiser
from ..errors import check_choice, check_int
from ..io import atomic_write_bytes, save_json
from ..report.figures import image_grid, trajectory_strip
from .models import ANALYTIC, ModelOptions, build_model, model_kind

DTYPES = {"float32": torch.float32, "float64": torch.float64}
MODEL_SCHEDULE = "model"  # a diffusers model's own discrete sigmas (DDPMScheduler timesteps of its config)


@dataclass(frozen=True)
class SampleConfig:
    """Everything that determines a sampling run (round-trips through JSON)."""

    model: str = "patch"
    data: Optional[str] = "textures"
    stencil: str = "square:5"
    equivariant: bool = True
    boundary: str = "periodic"
    pool: str = "all"
    schedule: str = "vp-linear"
    sampler: str = "heun"
    spacing: str = "logsnr"
    steps: int = 30
    n: int = 16
    seed: int = 0
    label: Optional[int] = None
    dtype: str = "float32"
    trajectory_frames: int = 8
    like_pipeline: Optional[str] = None  # diffusers models: 'auto' (the folder's scheduler) or a scheduler kind

    def validate(self) -> "SampleConfig":
        kind = model_kind(self.model)
        if kind in ANALYTIC and not self.data:
            raise ValueError(f"data: model {kind!r} needs training data (--data SPEC)")
        check_int("steps", self.steps, 1)
        check_int("n", self.n, 1)
        check_int("seed", self.seed, 0)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("spacing", self.spacing, S.SPACINGS)
        check_choice("boundary", self.boundary, ("periodic", "zero"))
        if self.schedule != MODEL_SCHEDULE:
            S.get(self.schedule)
        SM.get(self.sampler)
        if self.like_pipeline is not None and model_kind(self.model) != "diffusers":
            raise ValueError("like_pipeline: needs a diffusers:DIR model")
        return self


def frame_steps(n_steps: int, frames: int) -> list[int]:
    """``frames`` step indices spread evenly over a run of ``n_steps`` steps (first and last included)."""
    frames = max(1, min(frames, n_steps))
    return sorted({round(i * (n_steps - 1) / max(frames - 1, 1)) for i in range(frames)})


def run_sample(cfg: SampleConfig, out_dir: "str | Path", progress: bool = True) -> dict:
    """Run the sampling experiment; return (and write to ``out_dir/run.json``) its record."""
    from tqdm.auto import tqdm

    cfg.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dtype = DTYPES[cfg.dtype]
    images = labels = None
    if model_kind(cfg.model) in ANALYTIC:
        images, labels = load_data(cfg.data, seed=cfg.seed)
        images = images.to(dtype)
    opts = ModelOptions(stencil=cfg.stencil, equivariant=cfg.equivariant, boundary=cfg.boundary, pool=cfg.pool)
    model = build_model(cfg.model, images, labels, opts)
    shape = tuple(images.shape[1:]) if images is not None else tuple(getattr(model, "sample_shape"))
    if cfg.label is not None and labels is not None and not (0 <= cfg.label <= int(labels.max())):
        raise ValueError(f"label: expected a class in [0, {int(labels.max())}], got {cfg.label}")

    if cfg.like_pipeline is not None:
        return _run_like_pipeline(cfg, model, out)
    schedule, sigmas = _grid(cfg, model)
    sampler = SM.get(cfg.sampler)
    x = SM.initial_noise((cfg.n, *shape), sigmas, SM.seed_generators(cfg.seed, cfg.n), dtype=dtype)
    counted = CountingDenoiser(model)
    rec = SM.Recorder(steps=frame_steps(cfg.steps, cfg.trajectory_frames))
    bar = tqdm(total=cfg.steps, desc=f"sample {cfg.model}", disable=not progress, leave=False)
    t0 = time.perf_counter()
    try:
        with torch.no_grad():
            final = sampler(counted, x, sigmas, label=cfg.label, generator=SM.seed_generators(cfg.seed + 1, cfg.n),
                            callback=[rec, lambda step: bar.update(1)])
    finally:
        bar.close()
    seconds = time.perf_counter() - t0

    from safetensors.torch import save as st_save

    atomic_write_bytes(out / "samples.safetensors", st_save({"samples": final.contiguous().cpu(), "sigmas": sigmas}))
    title = f"{cfg.model} on {cfg.data}" if cfg.data else cfg.model
    image_grid(final, out / "samples.png", title=f"samples: {title}")
    sig_rec, xs, x0s = rec.stacked()
    trajectory_strip(sig_rec.tolist() + [0.0], torch.cat([xs[:, 0], final[:1]]), torch.cat([x0s[:, 0], final[:1]]),
                     out / "trajectory.png", title="one trajectory: state (top) and denoiser output (bottom)")
    if images is not None:
        pick = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(cfg.seed))[:16]
        image_grid(images[pick], out / "training.png", title=f"training data: {cfg.data}")
    record = {
        "config": asdict(cfg),
        "shape": list(shape),
        "n_train": None if images is None else int(images.shape[0]),
        "schedule": schedule,
        "sigma_max": float(sigmas[0]),
        "sigma_min": float(sigmas[-2]),
        "logsnr_range": [-2 * math.log(float(sigmas[0])), -2 * math.log(float(sigmas[-2]))],
        "nfe_per_sample": counted.evaluations / cfg.n,
        "seconds": seconds,
        "model": getattr(model, "config", lambda: {})(),
        "sample_mean": float(final.mean()),
        "sample_std": float(final.std()),
        "files": ["samples.png", "trajectory.png", "samples.safetensors"] + (["training.png"] if images is not None else []),
    }
    save_json(out / "run.json", record)
    return record


def _grid(cfg: SampleConfig, model) -> tuple[dict, torch.Tensor]:
    """``(schedule record, sigma grid)``; a diffusers model checks that the grid lies in its trained range."""
    if model_kind(cfg.model) != "diffusers":
        if cfg.schedule == MODEL_SCHEDULE:
            raise ValueError("schedule: 'model' needs a diffusers:DIR model")
        schedule = S.get(cfg.schedule)
        return schedule.config(), S.sigma_grid(schedule, cfg.steps, cfg.spacing)
    from ..integrations.diffusers.adapter import diffusers_sigma_grid
    from ..integrations.diffusers.schedulers import check_model_range

    if cfg.schedule == MODEL_SCHEDULE:
        return {"name": MODEL_SCHEDULE, **model.schedule_info()}, diffusers_sigma_grid(model, cfg.steps, "ddpm")
    schedule = S.get(cfg.schedule)
    sigmas = S.sigma_grid(schedule, cfg.steps, cfg.spacing)
    check_model_range(model, sigmas)
    return schedule.config(), sigmas


def _run_like_pipeline(cfg: SampleConfig, model, out: Path) -> dict:
    """``--like-pipeline``: the diffusers pipeline's own draws, timesteps and steps (integrations.diffusers.pipeline)."""
    from safetensors.torch import save as st_save

    from ..integrations.diffusers.pipeline import sample_like_pipeline

    kind = None if cfg.like_pipeline == "auto" else cfg.like_pipeline
    t0 = time.perf_counter()
    images = sample_like_pipeline(model, cfg.n, cfg.steps, cfg.seed, sampler=kind, label=cfg.label)
    seconds = time.perf_counter() - t0
    atomic_write_bytes(out / "samples.safetensors", st_save({"images": images.contiguous().cpu()}))
    image_grid(images * 2 - 1, out / "samples.png", title=f"samples: {cfg.model} (like the pipeline)")
    record = {"config": asdict(cfg), "shape": list(images.shape[1:]), "like_pipeline": kind or model.scheduler_class,
              "seconds": seconds, "model": model.config(), "files": ["samples.png", "samples.safetensors"]}
    save_json(out / "run.json", record)
    return record
