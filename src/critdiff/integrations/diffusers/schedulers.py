"""The sampling plan of a diffusers scheduler, read into critdiff's denoiser frame.

A diffusers scheduler, after ``set_timesteps(n)``, evaluates the model at a list of timesteps and
moves the state between noise levels. :func:`scheduler_plan` builds a fresh scheduler of the model's
configuration (or of another class given by name), lets it build its own grid (timestep spacing,
``steps_offset``, Karras/exponential sigmas, interpolation type, final sigma), and records per
step ``i``: the sigma the model is evaluated at, the integer or float timestep it is fed, and the
sigma the step lands on (DESIGN.md section 1: ``sigma = sqrt((1 - abar) / abar)``). Nothing is ever
stepped: critdiff's own samplers run the plan (:mod:`.loops`).

Two state frames occur: DDPM, DDIM, DPM-Solver, PNDM, UniPC, DEIS and LCM keep the VP state
``z = x / sqrt(1 + sigma^2)``; Euler, Heun, Euler ancestral and LMS keep ``x`` itself (their ``scale_model_input`` divides by
``sqrt(1 + sigma^2)``). ``frame`` says which, so initial noise and outputs convert exactly.

Settings a plan cannot reproduce are refused with one line naming the setting (see
``docs/diffusers.md``, "Refused").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from .adapter import LEARNED_VARIANCE, DiffusersDenoiser, _import_diffusers, _quiet

# diffusers scheduler class -> critdiff's name for its update rule
SCHEDULER_KINDS = {
    "DDPMScheduler": "ddpm",
    "DDIMScheduler": "ddim",
    "EulerDiscreteScheduler": "euler",
    "HeunDiscreteScheduler": "heun",
    "EulerAncestralDiscreteScheduler": "euler-ancestral",
    "DPMSolverMultistepScheduler": "dpmpp-2m",
    "PNDMScheduler": "pndm",
    "UniPCMultistepScheduler": "unipc",
    "DEISMultistepScheduler": "deis",
    "LMSDiscreteScheduler": "lms",
    "LCMScheduler": "lcm",
}
X_FRAME_KINDS = ("euler", "heun", "euler-ancestral", "lms")  # scale_model_input divides by sqrt(1 + sigma^2)
THRESHOLDING_KINDS = ("ddpm", "ddim", "unipc", "deis", "lcm")  # the schedulers whose thresholding critdiff applies
KIND_CLASSES = {v: k for k, v in SCHEDULER_KINDS.items()}
VARIANCE_TYPES = ("fixed_small", "fixed_small_log", "fixed_large", "learned_range")


@dataclass(frozen=True)
class SchedulerPlan:
    """What a diffusers scheduler does over ``n`` steps, in the denoiser frame.

    ``sigmas [N]`` the level of the state each model evaluation sees; ``timesteps [N]`` the timestep
    fed to the model there; ``sigmas_next [N]`` the level each step lands on (for DDIM this need not be
    the next evaluated level, and the last may be > 0); ``init_noise_sigma`` the scheduler's scale of
    the initial noise in its own frame; ``frame`` ``'vp'`` or ``'x'``; ``config`` the scheduler config.
    All float64 on the CPU; Heun's repeated entries are collapsed (one entry per sigma).
    """

    kind: str
    sigmas: torch.Tensor
    timesteps: torch.Tensor
    sigmas_next: torch.Tensor
    init_noise_sigma: float
    frame: Literal["vp", "x"]
    config: dict
    n_steps: int = 0  # the num_inference_steps of set_timesteps
    warmup: int = 0  # PNDM: the evaluations of its Runge-Kutta warm-up (0 with skip_prk_steps)

    @property
    def grid(self) -> torch.Tensor:
        """The sigma grid ``[N + 1]`` for critdiff's samplers (evaluated levels, then the last landing level)."""
        return torch.cat([self.sigmas, self.sigmas_next[-1:]])

    def timestep_of(self) -> dict:
        """``{sigma: timestep}`` for every evaluated level (the sampler evaluates at grid sigmas only)."""
        return {float(s): float(t) for s, t in zip(self.sigmas, self.timesteps)}


def _refuse(cond: bool, cls: str, what: str, supported: str) -> None:
    if cond:
        raise ValueError(f"scheduler: {cls} with {what} is not supported; supported: {supported} "
                         "(docs/diffusers.md, 'Refused')")


def _check_config(kind: str, cfg: dict) -> None:
    """One-line refusals of settings the plan cannot reproduce: the class, the option and what is supported."""
    cls = KIND_CLASSES[kind]
    _refuse(bool(cfg.get("rescale_betas_zero_snr")), cls, "rescale_betas_zero_snr=True (sigma_max is infinite)",
            "rescale_betas_zero_snr=False")
    _refuse(bool(cfg.get("thresholding")) and kind not in THRESHOLDING_KINDS, cls, "thresholding=True",
            "thresholding with " + ", ".join(KIND_CLASSES[k] for k in THRESHOLDING_KINDS) + " only")
    _refuse(bool(cfg.get("use_flow_sigmas")) or bool(cfg.get("use_dynamic_shifting")), cls,
            "use_flow_sigmas / use_dynamic_shifting (a flow-matching grid)", "both False")
    if kind in ("pndm", "unipc", "deis", "lms", "lcm"):
        _check_multistep(kind, cls, cfg)
    if kind == "ddpm":
        vt = cfg.get("variance_type") or "fixed_small"
        _refuse(vt not in VARIANCE_TYPES, cls, f"variance_type={vt!r}", f"variance_type {', '.join(VARIANCE_TYPES)}")
    if kind in ("euler", "euler-ancestral", "heun"):
        _refuse(cfg.get("timestep_type", "discrete") != "discrete", cls, "timestep_type='continuous'",
                "timestep_type='discrete'")
        _refuse(cfg.get("final_sigmas_type", "zero") != "zero", cls, "final_sigmas_type='sigma_min'",
                "final_sigmas_type='zero'")
    if kind == "dpmpp-2m":
        _refuse(cfg.get("algorithm_type") != "dpmsolver++", cls, f"algorithm_type={cfg.get('algorithm_type')!r}",
                "algorithm_type='dpmsolver++'")
        _refuse(int(cfg.get("solver_order", 2)) != 2, cls, f"solver_order={cfg.get('solver_order')}", "solver_order=2")
        _refuse(cfg.get("solver_type") != "midpoint", cls, f"solver_type={cfg.get('solver_type')!r}",
                "solver_type='midpoint'")
        _refuse(cfg.get("final_sigmas_type", "zero") != "zero", cls, "final_sigmas_type='sigma_min'",
                "final_sigmas_type='zero'")
        _refuse(bool(cfg.get("use_lu_lambdas")), cls, "use_lu_lambdas=True", "use_lu_lambdas=False")
        _refuse(cfg.get("variance_type") in LEARNED_VARIANCE, cls, f"variance_type={cfg.get('variance_type')!r}",
                "no learned variance (variance_type None)")


def _check_multistep(kind: str, cls: str, cfg: dict) -> None:
    """The options of PNDM, UniPC, DEIS, LMS and LCM that critdiff does not reproduce (docs/diffusers.md, 'Refused')."""
    ptype = cfg.get("prediction_type", "epsilon")
    if kind == "pndm":
        _refuse(ptype not in ("epsilon", "v_prediction"), cls, f"prediction_type={ptype!r} (diffusers' own step() "
                "rejects it)", "prediction_type 'epsilon', 'v_prediction'")
    if kind == "unipc":
        _refuse(not cfg.get("predict_x0", True), cls, "predict_x0=False (the noise-prediction UniPC)",
                "predict_x0=True")
        _refuse(cfg.get("solver_type", "bh2") not in ("bh1", "bh2"), cls, f"solver_type={cfg.get('solver_type')!r}",
                "solver_type 'bh1', 'bh2'")
        _refuse(int(cfg.get("solver_order", 2)) not in (1, 2, 3), cls, f"solver_order={cfg.get('solver_order')}",
                "solver_order 1, 2, 3")
        _refuse(not cfg.get("lower_order_final", True) and cfg.get("final_sigmas_type", "zero") == "zero", cls,
                "lower_order_final=False and final_sigmas_type='zero' (diffusers' own last step is inf/NaN: "
                "r_k = 0 at h = inf)", "lower_order_final=True, or final_sigmas_type='sigma_min'")
    if kind == "deis":
        _refuse(int(cfg.get("solver_order", 2)) not in (1, 2, 3), cls, f"solver_order={cfg.get('solver_order')}",
                "solver_order 1, 2, 3")
        _refuse(cfg.get("algorithm_type", "deis") != "deis" or cfg.get("solver_type", "logrho") != "logrho", cls,
                f"algorithm_type={cfg.get('algorithm_type')!r} / solver_type={cfg.get('solver_type')!r}",
                "algorithm_type='deis', solver_type='logrho'")


def build_scheduler(model: DiffusersDenoiser, kind: "str | None" = None, **overrides):
    """A fresh diffusers scheduler: the model's own class and config, or ``kind``'s class from that config."""
    diffusers = _import_diffusers()
    name = model.scheduler_class if kind is None else KIND_CLASSES.get(kind)
    if name not in SCHEDULER_KINDS:
        what = f"kind {kind!r}" if kind is not None else f"the model's scheduler {model.scheduler_class!r}"
        raise ValueError(f"scheduler: {what} is not supported; expected one of {', '.join(KIND_CLASSES)}")
    with _quiet(diffusers):
        return getattr(diffusers, name).from_config({**model.scheduler_config, **overrides})


def _check_steps(model: DiffusersDenoiser, n_steps) -> int:
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or not 1 <= n_steps <= model.num_train_timesteps:
        raise ValueError(f"n_steps: expected an int in [1, {model.num_train_timesteps}], got {n_steps!r}")
    return n_steps


def scheduler_plan(model: DiffusersDenoiser, n_steps: int, kind: "str | None" = None, **overrides) -> SchedulerPlan:
    """The :class:`SchedulerPlan` of the model's scheduler (or of ``kind``) for ``n_steps`` steps.

    ``kind`` is one of ``ddpm``, ``ddim``, ``euler``, ``heun``, ``euler-ancestral``, ``dpmpp-2m``, ``pndm``, ``unipc``,
    ``deis``, ``lms``, ``lcm`` (``None``: the model's own scheduler class); ``overrides`` replace entries of the config (e.g.
    ``timestep_spacing='trailing'``, ``use_karras_sigmas=True``).
    """
    sched = build_scheduler(model, kind, **overrides)
    kind = SCHEDULER_KINDS[type(sched).__name__]
    cfg = dict(sched.config)
    _check_config(kind, cfg)
    if kind == "lcm" and n_steps > int(cfg.get("original_inference_steps", 50)):
        raise ValueError(f"n_steps: LCMScheduler takes at most original_inference_steps="
                         f"{cfg.get('original_inference_steps', 50)} steps, got {n_steps}")
    sched.set_timesteps(_check_steps(model, n_steps))
    ts = sched.timesteps.detach().to("cpu", torch.float64)
    T = model.num_train_timesteps
    if bool((ts < 0).any()) or bool((ts > T - 1).any()):
        raise ValueError(f"n_steps: the scheduler produced timesteps outside [0, {T - 1}]")
    sig = model.sigmas()
    if kind in ("ddpm", "ddim"):
        idx = ts.long()
        if kind == "ddpm":  # DDPMScheduler.previous_timestep: the next listed timestep, then abar = 1
            nxt = [sig[int(t)] for t in idx[1:]] + [torch.tensor(0.0, dtype=torch.float64)]
        else:  # DDIMScheduler.step: t - T // n, then final_alpha_cumprod
            final = 0.0 if cfg.get("set_alpha_to_one", True) else float(sig[0])
            prev = idx - T // n_steps
            nxt = [sig[int(p)] if p >= 0 else torch.tensor(final, dtype=torch.float64) for p in prev]
        return SchedulerPlan(kind, sig[idx], ts, torch.stack(nxt).to(torch.float64), 1.0, "vp", cfg, n_steps)
    if kind in ("pndm", "lcm"):  # integer timesteps; PNDM lands on final_alpha_cumprod, LCM returns its x0 estimate
        idx = ts.long()
        final = 0.0 if kind == "lcm" or cfg.get("set_alpha_to_one", False) else float(sig[0])
        nxt = torch.cat([sig[idx[1:]], torch.tensor([final], dtype=torch.float64)])
        warm = 0 if kind == "lcm" or cfg.get("skip_prk_steps") else len(sched.prk_timesteps)
        return SchedulerPlan(kind, sig[idx], ts, nxt, 1.0, "vp", cfg, n_steps, warm)
    sigmas = sched.sigmas.detach().to("cpu", torch.float64)
    sched.sigmas = sigmas  # the scheduler's own init_noise_sigma rule, evaluated in float64
    init = float(sched.init_noise_sigma)
    if kind == "heun":  # [s0, s1, s1, ..., s_{N-1}, s_{N-1}, 0] and [t0, t1, t1, ...]: one entry per level
        sigmas = torch.cat([sigmas[:1], sigmas[1:-1:2], sigmas[-1:]])
        ts = torch.cat([ts[:1], ts[1::2]])
    frame = "x" if kind in X_FRAME_KINDS else "vp"
    return SchedulerPlan(kind, sigmas[:-1], ts, sigmas[1:], init, frame, cfg, n_steps)


def check_model_range(model: DiffusersDenoiser, sigmas) -> None:
    """A grid must stay inside the model's trained range ``[sigma_min, sigma_max]`` (zeros aside): no silent clamp."""
    s = torch.as_tensor(sigmas, dtype=torch.float64)
    s = s[s > 0]
    lo, hi = model.sigma_min, model.sigma_max
    tol = 4 * torch.finfo(torch.float32).eps
    bad = s[(s < lo * (1 - tol)) | (s > hi * (1 + tol))]
    if bad.numel():
        raise ValueError(f"schedule: sigma {float(bad[0]):.6g} lies outside the model's range [{lo:.6g}, {hi:.6g}] "
                         "(timesteps would be clamped); use schedule 'model' or a grid inside that range")
