"""The ``sample`` experiment: draw samples from a model with any schedule and sampler.

``run_sample(cfg, ctx) -> SampleResult``. Artefacts written to ``ctx.out``: ``samples.safetensors`` (the
samples and the sigma grid), ``samples.png`` (grid), ``trajectory.png`` (one trajectory: state and
``x0_hat`` over time), ``training.png`` (a few training images, analytic models) and ``result.json`` (the
result's record, :func:`critdiff.experiments.result.save_result`). Seeds: initial noise from ``seed_generators(seed, n)``, sampler noise from
``seed_generators(derive(seed, 'sampler-noise'), n)`` (one generator per sample: a sample does not depend on its batch).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, Optional

import torch

from .. import samplers as SM
from .. import schedules as S
from ..config import arg
from ..denoisers import CountingDenoiser
from ..errors import check_finite
from ..io import atomic_write_bytes
from ..late_start import cut_grid, parse_late_start
from ..seeding import derive
from ..spec import parse_spec
from .config import AUTO_SCHEDULE as AUTO, DTYPES, MODEL_SCHEDULE, RunConfig
from .finite import FiniteGuard
from .models import decode_samples, load_model
from .context import Context, ContextLike, as_context
from .result import Result
from .start import StartPlan, initial_state, plan_start, run_grid


@dataclass(frozen=True)
class SampleConfig(RunConfig):
    """A sampling run: :class:`RunConfig` plus the class ``label`` and the trajectory frames shown.

    A ``diffusers:DIR`` model samples on its own timesteps by default (``schedule='model'``); with
    ``--sampler ddpm`` or ``ddim[:eta=E]`` the run is that diffusers scheduler's loop, step for step
    (:func:`critdiff.integrations.diffusers.run_plan`: its timesteps, landing levels, clipping and variance
    type, e.g. no extra final step when it ends on ``abar_0 < 1``); other samplers run on the sigmas of the
    model's DDPM timesteps, ending in 0.
    """

    MODEL_SCHEDULE_OK = True
    LATE_START_OK = True

    sampler: str = arg(AUTO, "sampler: heun | euler | euler-maruyama | ddpm | ddim[:eta=E] | dpmpp-2m | plms | "
                             "lms[:order=K] | deis[:order=K] | unipc[:order=K,variant=bh1|bh2] | lcm (auto: heun); with "
                             "--like-pipeline it names the pipeline's scheduler (ddpm | ddim[:eta=E] | euler | heun | "
                             "dpmpp-2m | pndm | unipc | deis | lms | lcm; auto: --like-pipeline's)")
    spacing: Literal["auto", "t", "logsnr", "karras", "critical"] = arg(
        AUTO, "sigma grid spacing (auto: logsnr; --like-pipeline runs the scheduler's own timesteps); critical: denser "
              "where the model's denoiser output moves fastest (docs/samplers.md)")
    label: Optional[int] = arg(None, "class label for a class-conditional model")
    like_pipeline: Optional[str] = arg(None, "diffusers models: reproduce the folder's pipeline (DDPM/DDIMPipeline, "
                                             "StableDiffusionPipeline with --prompt, DiTPipeline with --label; seed, "
                                             "steps, n, --guidance-scale) image for image; KIND = ddpm | ddim | euler | heun | euler-ancestral | "
                                             "dpmpp-2m | pndm | unipc | deis | lms | lcm (default: the folder's scheduler)", const="auto", metavar="KIND")
    guidance_scale: Optional[float] = arg(None, "with --like-pipeline: the pipeline's guidance_scale (classifier-free "
                                                "guidance of --label or the prompt when > 1, as DiTPipeline and "
                                                "StableDiffusionPipeline do)")
    trajectory_frames: int = arg(8, "frames of the trajectory figure", cli=False)

    def __post_init__(self) -> None:
        """``sampler``/``spacing`` ``'auto'`` are RunConfig's defaults, except with ``like_pipeline``: the
        pipeline's scheduler and timesteps (:func:`like_pipeline_request`), so a given flag is never dropped."""
        super().__post_init__()
        if self.like_pipeline is None:
            defaults = {f.name: f.default for f in fields(RunConfig)}
            for name in ("sampler", "spacing"):
                if getattr(self, name) == AUTO:
                    object.__setattr__(self, name, defaults[name])

    def validate(self) -> "SampleConfig":
        if self.like_pipeline is None:
            super().validate()
        else:  # the shared checks, with the flags --like-pipeline does not use at their defaults
            RunConfig.validate(dataclasses.replace(self, like_pipeline=None, sampler=AUTO, spacing=AUTO))
            like_pipeline_request(self)
        if self.like_pipeline is not None and self.kind != "diffusers":
            raise ValueError("like_pipeline: needs a diffusers:DIR model")
        if self.guidance_scale is not None:
            if self.like_pipeline is None:
                raise ValueError("guidance_scale: only --like-pipeline uses --guidance-scale (critdiff guide runs guidance)")
            check_finite("guidance_scale", self.guidance_scale)
        late = parse_late_start(self.late_start) is not None
        if (late or self.spacing == "critical") and self.like_pipeline is not None:
            raise ValueError("late_start: --like-pipeline runs the pipeline's own loop; for a late start in a pipeline "
                             "use critdiff.integrations.diffusers.late_start")
        if self.schedule == MODEL_SCHEDULE and self.sampler.split(":", 1)[0] in ("ddpm", "ddim") and late:
            raise ValueError("late_start: the diffusers scheduler loop (--schedule model with ddpm/ddim) starts at its "
                             "own first timestep; choose another sampler or --schedule")
        if self.schedule == MODEL_SCHEDULE and self.spacing == "critical":
            raise ValueError("spacing: --schedule model runs the model's own timesteps; 'critical' needs a schedule")
        return self


def like_pipeline_request(cfg: SampleConfig) -> tuple[Optional[str], float]:
    """``(kind, eta)`` of a ``--like-pipeline`` run from its flags (``kind`` ``None``: the folder's scheduler).

    ``--sampler`` names the scheduler too (``ddim:eta=E`` is ``DDIMPipeline(eta=E)``) and must agree with an
    explicit ``--like-pipeline KIND``; ``--spacing``, a ``--schedule`` other than ``model`` and ``--data`` have no
    meaning for a pipeline call and are refused (one line each), never dropped.
    """
    from ..integrations.diffusers.schedulers import SCHEDULER_KINDS

    kinds = tuple(SCHEDULER_KINDS.values())
    asked = None if cfg.like_pipeline in (None, AUTO) else cfg.like_pipeline
    if asked is not None and asked not in kinds:
        raise ValueError(f"like_pipeline: expected one of {', '.join(kinds)} (or no KIND: the folder's scheduler), "
                         f"got {asked!r}")
    if cfg.spacing != AUTO:
        raise ValueError(f"spacing: --like-pipeline runs the scheduler's own timesteps (its timestep_spacing); "
                         f"--spacing {cfg.spacing} does not apply")
    if cfg.schedule != MODEL_SCHEDULE:
        raise ValueError(f"schedule: --like-pipeline runs the model's own schedule; --schedule {cfg.schedule} does "
                         "not apply")
    if cfg.data is not None:
        raise ValueError("data: --like-pipeline samples the pipeline alone; --data does not apply")
    eta = 0.0
    if cfg.sampler != AUTO:
        s = parse_spec(cfg.sampler, "sampler")
        if s.name not in kinds or s.args or (s.kwargs and s.name != "ddim"):
            raise ValueError(f"sampler: with --like-pipeline, --sampler names the pipeline's scheduler: "
                             f"{' | '.join(k + ('[:eta=E]' if k == 'ddim' else '') for k in kinds)}; got {cfg.sampler!r}")
        eta = float(SM.get(cfg.sampler).keywords["eta"]) if s.kwargs else 0.0
        if asked is not None and asked != s.name:
            raise ValueError(f"sampler: --sampler {cfg.sampler} and --like-pipeline {asked} name different schedulers")
        asked = s.name
    return asked, eta


@dataclass(frozen=True)
class SampleResult(Result):
    """What a sampling run produced (the samples themselves are in ``samples.safetensors``)."""

    kind = "sample"
    config: SampleConfig
    shape: tuple[int, ...]
    n_train: Optional[int]
    schedule: dict
    sigma_max: Optional[float]
    sigma_min: Optional[float]
    logsnr_range: Optional[tuple[float, float]]
    nfe_per_sample: Optional[float]
    seconds: float
    model: dict
    sample_mean: float
    sample_std: float
    files: tuple[str, ...]
    like_pipeline: Optional[str] = None  # the diffusers scheduler reproduced (--like-pipeline), else None
    late_start: Optional[StartPlan] = None  # the Gaussian late start (--late-start), else None


def frame_steps(n_steps: int, frames: int) -> list[int]:
    """``frames`` step indices spread evenly over a run of ``n_steps`` steps (first and last included)."""
    frames = max(1, min(frames, n_steps))
    return sorted({round(i * (n_steps - 1) / max(frames - 1, 1)) for i in range(frames)})


def _check_label(label: Optional[int], labels: Optional[torch.Tensor]) -> None:
    if label is not None and labels is not None and not (0 <= label <= int(labels.max())):
        raise ValueError(f"label: expected a class in [0, {int(labels.max())}], got {label}")


def run_sample(cfg: SampleConfig, ctx: ContextLike) -> SampleResult:
    """Run the sampling experiment; write its artefacts and ``result.json`` to ``ctx.out``; return
    the result. ``ctx``: a :class:`~critdiff.experiments.context.Context` or an output folder."""
    cfg.validate()
    ctx = as_context(ctx)
    out = ctx.folder()
    loaded = load_model(cfg)
    _check_label(cfg.label, loaded.labels)
    if cfg.like_pipeline is not None:
        return _run_like_pipeline(cfg, loaded.model, ctx)
    start = plan_start(cfg, loaded, tc=lambda: sample_tc(cfg, loaded))
    schedule, sigmas = _grid(cfg, loaded, None if start is None else start[0].sigma)
    plan = _model_plan(cfg, loaded.model)
    sampler = SM.get(cfg.sampler)
    z = SM.randn_like(torch.empty((cfg.n, *loaded.shape), dtype=cfg.torch_dtype, device=cfg.torch_device),
                      SM.seed_generators(cfg.seed, cfg.n))  # N(0, I), one generator per sample
    x_init = z * float(sigmas[0]) if start is None else \
        initial_state(cfg, loaded.shape, sigmas, SM.seed_generators(cfg.seed, cfg.n), start[1])
    counted = CountingDenoiser(loaded.model)
    rec = SM.Recorder(steps=frame_steps(cfg.steps, cfg.trajectory_frames))
    t0 = time.perf_counter()
    with ctx.bar(cfg.steps, f"sample {cfg.model}") as bar, torch.no_grad():
        noise = SM.seed_generators(derive(cfg.seed, "sampler-noise"), cfg.n)
        guard = FiniteGuard("sample")
        callback = [guard, rec, lambda step: bar.update(1)]
        if plan is None:
            final = sampler(counted, x_init, sigmas, label=cfg.label, generator=noise, callback=callback)
        else:
            final = _run_model_plan(loaded.model, plan, z, cfg.label, noise, callback,
                                    eta=getattr(sampler, "keywords", {}).get("eta", 0.0))
            sigmas = plan.grid
        guard.final(final)
    seconds = time.perf_counter() - t0
    files = _write_artefacts(out, cfg, final, sigmas, rec, loaded.images, decode=lambda x: decode_samples(loaded.model, x))
    result = SampleResult(
        config=cfg, shape=loaded.shape, n_train=None if loaded.images is None else int(loaded.images.shape[0]),
        schedule=schedule, sigma_max=float(sigmas[0]), sigma_min=float(sigmas[sigmas > 0][-1]),
        logsnr_range=(-2 * math.log(float(sigmas[0])), -2 * math.log(float(sigmas[sigmas > 0][-1]))),
        nfe_per_sample=counted.evaluations / cfg.n if plan is None else float(len(plan.sigmas)),  # ddpm/ddim: 1 per step
        seconds=seconds,
        model=getattr(loaded.model, "config", lambda: {})(), sample_mean=float(final.mean()),
        sample_std=float(final.std()), files=files, late_start=None if start is None else start[0])
    ctx.save(result)
    return result


def sample_tc(cfg: SampleConfig, loaded):
    """The model's critical time for ``--late-start auto``: the guidance experiment's default estimator
    (:func:`critdiff.experiments.guide.estimators.chosen_source`); :func:`.start.start_logsnr` starts from its
    unshifted estimate (the linear-response growth onset) when it is a shifted one."""
    from .guide.estimators import chosen_source, estimate

    return estimate(chosen_source(cfg), cfg, loaded.images, loaded.model)


def _write_artefacts(out: Path, cfg: SampleConfig, final, sigmas, rec, images, decode=lambda x: x) -> tuple[str, ...]:
    """The samples (latents for a latent model: the figures show them decoded) and the figures."""
    from safetensors.torch import save as st_save

    from ..figures import image_grid, trajectory_strip  # matplotlib: only when figures are drawn

    atomic_write_bytes(out / "samples.safetensors", st_save({"samples": final.detach().contiguous().cpu(),
                                                             "sigmas": sigmas}))
    title = f"{cfg.model} on {cfg.data}" if cfg.data else cfg.model
    shown = decode(final)
    image_grid(shown, out / "samples.png", title=f"samples: {title}")
    sig_rec, xs, x0s = rec.stacked()
    decoded = shown is not final
    trajectory_strip(sig_rec.tolist() + [0.0], torch.cat([xs[:, 0], final[:1]]),
                     torch.cat([decode(x0s[:, 0]), shown[:1]]), out / "trajectory.png",
                     title="one trajectory: state (top" + (", latents" if decoded else "") + ") and denoiser output "
                           "(bottom" + (", decoded" if decoded else "") + ")")
    files = ["samples.png", "trajectory.png", "samples.safetensors"]
    if images is not None:
        pick = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(cfg.seed))[:16]
        image_grid(images[pick], out / "training.png", title=f"training data: {cfg.data}")
        files.append("training.png")
    return tuple(files)


def _grid(cfg: SampleConfig, loaded, start_sigma: Optional[float] = None) -> tuple[dict, torch.Tensor]:
    """``(schedule record, sigma grid)`` (:func:`.start.run_grid`: started at ``start_sigma`` with the same number
    of steps); a diffusers model checks that the grid lies in its trained range, and on its own timesteps
    (``--schedule model``) a late start keeps the model's levels below the start (:func:`~critdiff.late_start.cut_grid`)."""
    model = loaded.model
    if cfg.kind != "diffusers":
        return S.get(cfg.schedule).config(), run_grid(cfg, model, loaded.shape, start_sigma)
    from ..integrations.diffusers.adapter import diffusers_sigma_grid
    from ..integrations.diffusers.schedulers import check_model_range

    if cfg.schedule == MODEL_SCHEDULE:
        sigmas = diffusers_sigma_grid(model, cfg.steps, "ddpm")
        return {"name": MODEL_SCHEDULE, **model.schedule_info()}, \
            sigmas if start_sigma is None else cut_grid(sigmas, start_sigma)
    sigmas = run_grid(cfg, model, loaded.shape, start_sigma)
    check_model_range(model, sigmas)
    return S.get(cfg.schedule).config(), sigmas


def _model_plan(cfg: SampleConfig, model):
    """The diffusers scheduler plan that ``--schedule model --sampler ddpm|ddim`` runs, else ``None``."""
    name = cfg.sampler.split(":", 1)[0]
    if cfg.schedule != MODEL_SCHEDULE or name not in ("ddpm", "ddim"):
        return None
    from ..integrations.diffusers.schedulers import scheduler_plan

    return scheduler_plan(model, cfg.steps, name)


def _run_model_plan(model, plan, noise, label, generator, callback, eta: float):
    """The diffusers loop of ``plan`` from standard normal ``noise`` (the scheduler's prior ``z_T = noise``);
    returns the state that loop returns (``x0`` when the plan ends at sigma 0, else ``z`` at its last level)."""
    from ..integrations.diffusers.loops import initial_state, run_plan

    return run_plan(model, plan, initial_state(plan, noise), label=label, generator=generator,
                    callback=callback, eta=eta)


def _run_like_pipeline(cfg: SampleConfig, model, ctx: Context) -> SampleResult:
    """``--like-pipeline``: the diffusers pipeline's own draws, timesteps and steps (integrations.diffusers.pipeline).

    ``result.json`` records what ran: the scheduler kind (``like_pipeline``), DDIM's eta (``sampler``), the dtype.
    """
    from safetensors.torch import save as st_save

    from ..integrations.diffusers.pipeline import pipeline_guidance, pipeline_kind, sample_like_pipeline
    from ..integrations.diffusers.schedulers import KIND_CLASSES
    from ..figures import image_grid

    out = ctx.folder()
    asked, eta = like_pipeline_request(cfg)
    dtype = _like_pipeline_dtype(cfg, model)
    kind = pipeline_kind(model, asked)
    t0 = time.perf_counter()
    images = sample_like_pipeline(model, cfg.n, cfg.steps, cfg.seed, sampler=asked, eta=eta, label=cfg.label,
                                  guidance=pipeline_guidance(cfg.guidance_scale))
    seconds = time.perf_counter() - t0
    atomic_write_bytes(out / "samples.safetensors", st_save({"images": images.contiguous().cpu()}))
    image_grid(images * 2 - 1, out / "samples.png", title=f"samples: {cfg.model} (like the pipeline)")
    ran = dataclasses.replace(cfg, like_pipeline=kind, sampler=f"ddim:eta={eta!r}" if kind == "ddim" else AUTO,
                              dtype=dtype if dtype in DTYPES else cfg.dtype)
    result = SampleResult(
        config=ran, shape=tuple(images.shape[1:]), n_train=None, schedule={"name": MODEL_SCHEDULE, **model.schedule_info()},
        sigma_max=None, sigma_min=None, logsnr_range=None, nfe_per_sample=None, seconds=seconds,
        model={**model.config(), "dtype": dtype}, sample_mean=float(images.mean()), sample_std=float(images.std()),
        files=("samples.png", "samples.safetensors"), like_pipeline=KIND_CLASSES[kind])
    ctx.save(result)
    return result


def _like_pipeline_dtype(cfg: SampleConfig, model) -> str:
    """The dtype the pipeline runs in: the spec's ``dtype=`` if given (a different non-default ``--dtype`` is
    refused), else ``--dtype`` (the network and VAE are moved to it, as ``pipe.to(dtype)`` does)."""
    from ..integrations.diffusers.loading import _spec_path

    spec = _spec_path(cfg.model.split(":", 1)[1])[1].get("dtype")
    default = next(f.default for f in fields(RunConfig) if f.name == "dtype")
    if spec is not None:
        if cfg.dtype != default and cfg.dtype != spec:
            raise ValueError(f"dtype: --dtype {cfg.dtype} and the model spec's dtype={spec} disagree; give one")
        return str(spec)
    from ..integrations.diffusers.adapter import _import_diffusers, _quiet

    with _quiet(_import_diffusers()):  # diffusers logs a warning on any .to(dtype)
        for part in (model.unet, model.vae):
            if part is not None:
                part.to(cfg.torch_dtype)
    return cfg.dtype
