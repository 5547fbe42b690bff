"""The one configuration vocabulary of the experiments: :class:`RunConfig`, composed by every command.

``RunConfig`` names what every run needs: the model (``--model``, with the analytic models' options
``stencil``, ``equivariant`` (``--local`` turns it off), ``boundary``, ``pool``), the data, the noise
``schedule``, the ``sampler`` and its sigma grid (``spacing``, ``steps``), the ensemble size ``n``, the
``seed``, ``dtype``, ``device`` and CPU ``threads``. Commands subclass it with their own fields (and may
override a default by redeclaring the field); the command line is generated from these dataclasses
(:mod:`critdiff.cli.generate`), so every default lives here, once.

:meth:`RunConfig.validate` checks every shared field (and that options a model does not use were not
changed from their defaults: ``--stencil`` given to a Gaussian model is a usage error, not silence).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar, Literal, Optional

import torch

from .. import samplers as SM
from .. import schedules as S
from ..config import JsonConfig, arg
from ..devices import resolve as resolve_device
from ..errors import check_choice, check_int, check_positive, check_seed
from ..late_start import parse_late_start
from ..spec import parse_spec

DTYPES = {"float32": torch.float32, "float64": torch.float64}
ANALYTIC = ("empirical", "patch", "gaussian")
KINDS = ANALYTIC + ("diffusers", "net", "pretrained")
PATCH_OPTIONS = ("stencil", "equivariant", "boundary", "pool")
MODEL_SCHEDULE = "model"  # --schedule model: a diffusers model's own discrete sigmas
AUTO_SCHEDULE = "auto"  # the default of --schedule, resolved by resolve_schedule
DEFAULT_SCHEDULE = "vp-linear"  # what 'auto' means for every model that has no schedule of its own


def model_kind(spec: str) -> str:
    """The kind named by a model spec (``patch``, ``net:DIR``, ...), validated."""
    s = parse_spec(spec, "model")
    if s.name not in KINDS:
        raise ValueError(f"model: unknown model {s.name!r}; expected one of {', '.join(KINDS)} "
                         "(diffusers as diffusers:DIR, net as net:DIR, pretrained as pretrained:NAME)")
    if s.name in ANALYTIC and (s.args or s.kwargs):
        raise ValueError(f"model: {s.name!r} takes no options in its spec (got {spec!r}); "
                         "set them with --stencil, --local, --boundary, --pool")
    if s.name == "pretrained":
        from .. import pretrained

        pretrained.entry(pretrained.spec_name(spec), "unet")  # a one-line error naming the shipped models
    return s.name


def resolve_schedule(schedule: str, model: str, model_schedule: bool) -> str:
    """The schedule a run uses for ``--schedule SCHEDULE``: ``'auto'`` (the default) is ``'model'`` (the
    model's own timesteps) for a ``diffusers:DIR`` model in a command that can run it (``model_schedule``:
    ``sample``), :data:`DEFAULT_SCHEDULE` otherwise; any other value is kept. An invalid model spec keeps
    ``'auto'`` (``validate`` reports the model)."""
    if schedule != AUTO_SCHEDULE:
        return schedule
    try:
        diffusers = model_kind(model) == "diffusers"
    except (TypeError, ValueError):
        return schedule
    return MODEL_SCHEDULE if diffusers and model_schedule else DEFAULT_SCHEDULE


WEIGHTS_SUFFIX = "@weights"  # not an identifier: never a config field (e.g. uniform_weights)


def with_weights_id(identity: dict, keys) -> dict:
    """``identity`` plus ``KEY@weights`` for every field in ``keys`` naming trained weights: a shipped model
    (``pretrained:NAME``, :func:`critdiff.pretrained.weights_id`) or a checkpoint folder (``net:DIR``, or the folder
    itself in a field that takes one; :func:`critdiff.nets.checkpoint.weights_id`), so logs and caches keyed on a
    run's identity are not resumed with other weights under the same name (another release, a continued training)."""
    from ..nets.checkpoint import weights_id as folder_id
    from ..pretrained import spec_name, weights_id

    out = dict(identity)
    for k in keys:
        spec = out.get(k)
        if not isinstance(spec, str):
            continue
        if spec_name(spec) is not None:
            w = weights_id(spec)
        else:
            w = folder_id(spec[4:] if spec.startswith("net:") else spec)
        if w is not None:
            out[k + WEIGHTS_SUFFIX] = w
    return out


def config_fields(identity: dict) -> dict:
    """A run's identity (:func:`with_weights_id`) back to its config's fields: without the weights' ids."""
    return {k: v for k, v in identity.items() if not k.endswith(WEIGHTS_SUFFIX)}


@dataclass(frozen=True)
class RunConfig(JsonConfig):
    """What every run needs (module docstring). Subclasses add a command's own fields."""

    model: str = arg("patch", "empirical | patch | gaussian | net:DIR | diffusers:DIR | "
                                     "pretrained:NAME (shipped: mnist28)")
    data: Optional[str] = arg(None, "data spec, e.g. digits:size=16 or textures:size=24 (see critdiff.data.DATASETS)")
    stencil: str = arg("square:5", "patch stencil: square:K, cross:R, dilated:K,D")
    equivariant: bool = arg(True, "position-specific patch pool (LS) instead of the equivariant one (ELS)", flag="--local")
    boundary: Literal["periodic", "zero"] = arg("periodic", "patch boundary")
    pool: Literal["all", "valid"] = arg("all", "patch pool: every position, or only patches wholly inside training images")
    schedule: str = arg(AUTO_SCHEDULE, "noise schedule: vp-linear | vp-cosine | ve | edm, with options; model: a "
                                       "diffusers model's own timesteps (sample only); auto: model for a diffusers:DIR "
                                       "model where the command supports it, else vp-linear")
    sampler: str = arg("heun", "sampler: heun | euler | euler-maruyama | ddpm | ddim[:eta=E]")
    spacing: Literal["t", "logsnr", "karras", "critical"] = arg(
        "logsnr", "sigma grid spacing; critical: denser where the model's denoiser output moves fastest (measured, "
                  "docs/samplers.md; sample and guide only)")
    late_start: str = arg("off", "Gaussian late start: off | auto (the model's critical logsnr minus a margin) | a start "
                                 "logsnr; the first state is drawn from the Gaussian with the data's moments "
                                 "(docs/samplers.md; sample and guide only)", metavar="off|auto|LOGSNR")
    steps: int = arg(30, "number of sampler steps")
    n: int = arg(16, "number of samples")
    seed: int = arg(0, "random seed; a seed reproduces a run exactly on the CPU")
    dtype: Literal["float32", "float64"] = arg("float32", "floating-point type of the model and the samples")
    device: str = arg("cpu", "torch device: cpu, cuda or cuda:N")
    cond: Optional[str] = arg(None, "diffusers UNet2DConditionModel: a .safetensors file with encoder_hidden_states "
                                    "(the prompt; label selects it) and null_encoder_hidden_states (label None)")
    prompt: Optional[str] = arg(None, "diffusers UNet2DConditionModel in a full pipeline folder: encode this prompt "
                                      "(and the null prompt \"\") with its own tokenizer and text encoder "
                                      "(needs transformers)")
    threads: Optional[int] = arg(None, "CPU threads for torch (default: torch's choice; 1 is much faster on a busy machine)")
    max_memory: Optional[float] = arg(None, "memory budget in GB that the preflight compares the run's estimated peak "
                                            "with (default: this machine's memory, or the GPU's); raise it to run "
                                            "anyway")

    MODEL_SCHEDULE_OK: ClassVar[bool] = False  # the command can sample a diffusers model on its own timesteps
    LATE_START_OK: ClassVar[bool] = False  # the command runs --late-start and --spacing critical

    def __post_init__(self) -> None:
        """Resolve ``schedule='auto'`` once (:func:`resolve_schedule`); :meth:`replace` re-resolves it."""
        resolved = resolve_schedule(self.schedule, self.model, self.MODEL_SCHEDULE_OK)
        object.__setattr__(self, "_schedule_auto", self.schedule == AUTO_SCHEDULE)
        object.__setattr__(self, "schedule", resolved)

    def replace(self, **changes):
        """``dataclasses.replace``; a schedule that was ``'auto'`` follows a new ``model``."""
        if getattr(self, "_schedule_auto", False) and "schedule" not in changes:
            changes["schedule"] = AUTO_SCHEDULE
        return super().replace(**changes)

    # -- derived -------------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return model_kind(self.model)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def torch_device(self) -> torch.device:
        """``device`` resolved (:func:`critdiff.devices.resolve`): where the model is built and its states live."""
        return resolve_device(self.device)

    @property
    def analytic(self) -> bool:
        return self.kind in ANALYTIC

    @property
    def analytic_patch(self) -> bool:
        """The equivariant periodic patch model with the full pool: the one the linear theory describes."""
        return self.kind == "patch" and self.equivariant and self.boundary == "periodic" and self.pool == "all"

    def identity(self) -> dict:
        """The fields that determine the numbers (``threads`` and ``max_memory`` do not): what caches and logs are keyed on."""
        d = self.to_dict()
        d.pop("threads", None)
        d.pop("max_memory", None)
        return with_weights_id(d, ("model",))

    # -- validation ----------------------------------------------------------------------------------
    def validate(self):
        """Check the shared fields; return ``self``. Subclasses extend it and call ``super().validate()``."""
        kind = self.kind
        if kind in ANALYTIC and not self.data:
            raise ValueError(f"data: model {kind!r} needs training data (--data SPEC)")
        check_int("steps", self.steps, 1)
        check_int("n", self.n, 1)
        check_seed("seed", self.seed)
        if self.threads is not None:
            check_int("threads", self.threads, 1)
        if self.max_memory is not None:
            check_positive("max_memory", self.max_memory)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("spacing", self.spacing, S.SPACINGS)
        if parse_late_start(self.late_start) is not None and not self.LATE_START_OK:
            raise ValueError("late_start: --late-start is supported by sample and guide only")
        if self.spacing == "critical" and not self.LATE_START_OK:
            raise ValueError("spacing: 'critical' is supported by sample and guide only")
        check_choice("boundary", self.boundary, ("periodic", "zero"))
        check_choice("pool", self.pool, ("all", "valid"))
        resolve_device(self.device)
        if kind == "patch":
            from ..stencil import parse_stencil

            parse_stencil(self.stencil)
        else:
            self._check_unused_patch_options(kind)
        if kind != "diffusers":
            for name in ("cond", "prompt"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}: --{name} conditions a diffusers:DIR UNet2DConditionModel; "
                                     f"model {kind!r} ignores it")
        elif self.cond is not None and self.prompt is not None:
            raise ValueError("cond: give either --cond or --prompt, not both")
        if self.schedule == MODEL_SCHEDULE:
            if kind != "diffusers":
                raise ValueError(f"schedule: {MODEL_SCHEDULE!r} needs a diffusers:DIR model")
            if not self.MODEL_SCHEDULE_OK:
                raise ValueError(f"schedule: {MODEL_SCHEDULE!r} is supported by sample only; give a schedule "
                                 f"inside the model's range (e.g. {DEFAULT_SCHEDULE})")
        else:
            S.get(self.schedule)
        SM.get(self.sampler)
        return self

    def _check_unused_patch_options(self, kind: str) -> None:
        defaults = {f.name: f.default for f in fields(RunConfig)}
        for name in PATCH_OPTIONS:
            if getattr(self, name) != defaults[name]:
                flag = "--local" if name == "equivariant" else f"--{name}"
                raise ValueError(f"{name}: only the patch model uses {flag}; model {kind!r} ignores it")

