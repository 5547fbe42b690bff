"""Loading a ``save_pretrained`` folder as a :class:`.adapter.DiffusersDenoiser` (the ``diffusers:DIR`` spec).

Layouts: a pipeline folder (``model_index.json`` with a ``unet`` or ``transformer`` component and a
``scheduler``; optionally ``vae/`` for a latent-space model and ``tokenizer/`` + ``text_encoder/`` for
``--prompt``), or a bare network folder with its scheduler config beside it or in ``scheduler/``.

Weights: ``diffusion_pytorch_model.safetensors`` or ``.bin`` (the format on disk is passed to diffusers,
so no false "An error occurred while trying to fetch ... safetensors" line is logged); a folder holding
only a variant (``diffusion_pytorch_model.fp16.safetensors``) is loaded with that ``variant=``, and a
``variant=`` asked for that is not on disk is a one-line error naming the variants present. Only local
files are read.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional

import torch

from ...inputs import Fields, read_json
from ...limits import MAX_CHANNELS, MAX_CLASS_ID, MAX_LEVELS, MAX_NET_WIDTH, MAX_SIDE, MAX_TIMESTEPS
from ...spec import parse_value
from .adapter import (BACKBONES, PREDICTION_TYPES, TEXT_BACKBONE, DiffusersDenoiser, _check_conditioning,
                      _import_diffusers, _quiet)

WEIGHTS = "diffusion_pytorch_model"
# diffusion_pytorch_model[.VARIANT].(safetensors|bin)[.index.json] (the index of sharded weights)
_WEIGHT_FILE = re.compile(rf"^{WEIGHTS}(?:\.([A-Za-z0-9_-]+))?\.(safetensors|bin)(?:\.index\.json)?$")
NETWORK_PARTS = ("unet", "transformer")


def _read_json(path: Path, what: str) -> dict:
    """A config file of the folder, validated as an input (:mod:`critdiff.inputs`): a JSON object."""
    doc = read_json(path, "model", what)
    Fields(doc, path, "model")
    return doc


def check_index(root: Path, index: dict) -> None:
    """``model_index.json``: every component is ``[library, class]`` (strings, or nulls for an absent part; other
    keys are pipeline settings), and
    the classes critdiff loads are ones it knows: the network's one of :data:`BACKBONES`, the scheduler's a
    diffusers scheduler (:func:`check_scheduler_class`), the VAE's ``AutoencoderKL``."""
    path = root / "model_index.json"
    f = Fields(index, path, "model")
    components = NETWORK_PARTS + ("scheduler", "vae", "text_encoder", "tokenizer")
    for key, value in index.items():
        if key.startswith("_") or (not isinstance(value, list) and key not in components):
            continue  # a pipeline setting such as requires_safety_checker, not a component
        if not (isinstance(value, list) and len(value) == 2 and all(v is None or isinstance(v, str) for v in value)):
            raise f.fail(key, "a pair [library, class] of strings", value)
    known = {**{p: BACKBONES for p in NETWORK_PARTS}, "vae": ("AutoencoderKL",)}
    for key, classes in known.items():
        value = index.get(key)
        if value is not None and value[1] is not None and value[1] not in classes:
            raise f.fail(key, f"[library, class] with class one of {', '.join(classes)}", value)
    if isinstance(index.get("scheduler"), list) and index["scheduler"][1] is not None:
        check_scheduler_class(index["scheduler"][1], path, "scheduler")


def check_scheduler_class(name, path: Path, key: str = "_class_name"):
    """The diffusers scheduler class called ``name`` (one with ``from_config``); a one-line error naming the file."""
    diffusers = _import_diffusers()
    scls = getattr(diffusers, name, None) if isinstance(name, str) else None
    if scls is None or not hasattr(scls, "from_config") or not name.endswith("Scheduler"):
        raise ValueError(f"model: unsupported scheduler {name!r} in {str(path)!r} (field {key!r}); expected a "
                         "diffusers discrete-time scheduler such as DDPMScheduler or DDIMScheduler")
    return scls


def check_network_config(path: Path, ucfg: dict) -> None:
    """The UNet/transformer ``config.json`` fields critdiff reads, typed and bounded (a bad ``sample_size`` or
    ``in_channels`` is named here, not met as an unpacking error later)."""
    f = Fields(ucfg, path, "model")
    f.int("in_channels", 1, MAX_CHANNELS)
    f.int("out_channels", 1, 2 * MAX_CHANNELS, default=None)
    size = ucfg.get("sample_size")
    if isinstance(size, list):
        if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE
                                     for v in size):
            raise f.fail("sample_size", f"an integer in [1, {MAX_SIDE}] or a pair of them", size)
    else:
        f.int("sample_size", 1, MAX_SIDE, default=None)
    channels = f.list("block_out_channels", default=None, min_len=1, max_len=MAX_LEVELS)
    if channels is not None and not all(isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= MAX_NET_WIDTH
                                        for c in channels):
        raise f.fail("block_out_channels", f"integers in [1, {MAX_NET_WIDTH}]", channels)
    f.int("num_class_embeds", 1, MAX_CLASS_ID + 1, default=None)
    f.int("num_embeds_ada_norm", 1, MAX_CLASS_ID + 1, default=None)
    f.int("cross_attention_dim", 1, MAX_NET_WIDTH, default=None)


def check_scheduler_config(path: Path, scfg: dict) -> None:
    """The scheduler config fields that define the noise levels, typed and bounded (``num_train_timesteps: -5``
    is named here, not met as an error inside diffusers' ``linspace``)."""
    f = Fields(scfg, path, "model")
    f.int("num_train_timesteps", 1, MAX_TIMESTEPS, default=None)
    lo = f.number("beta_start", 0.0, 1.0, default=None, open_lo=True)
    hi = f.number("beta_end", 0.0, 1.0, default=None, open_lo=True)
    if lo is not None and hi is not None and lo > hi:
        raise f.fail("beta_end", f"a number >= beta_start ({lo:g})", hi)
    f.text("beta_schedule", default=None)
    betas = f.list("trained_betas", default=None, max_len=MAX_TIMESTEPS)
    if betas is not None and not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 < b < 1
                                     for b in betas):
        raise f.fail("trained_betas", "numbers in (0, 1)", betas)
    ptype = scfg.get("prediction_type", "epsilon")
    if ptype not in PREDICTION_TYPES:
        raise ValueError(f"model: unsupported prediction_type {ptype!r} in {str(path)!r} (field 'prediction_type'); "
                         f"expected one of {', '.join(PREDICTION_TYPES)}")
    f.int("steps_offset", 0, MAX_TIMESTEPS, default=0)
    f.number("clip_sample_range", 0.0, math.inf, default=1.0, open_lo=True)
    for key in ("clip_sample", "thresholding", "set_alpha_to_one"):
        f.boolean(key, default=None)


def _layout(root: Path) -> tuple[Path, Path]:
    """``(network_dir, scheduler_config_file)`` of a pipeline dir or of a bare network dir."""
    if (root / "model_index.json").is_file():
        index = _read_json(root / "model_index.json", "pipeline index")
        check_index(root, index)
        part = next((p for p in NETWORK_PARTS if index.get(p) is not None), None)
        if part is None:
            raise ValueError(f"model: the pipeline {str(root)!r} has no 'unet' or 'transformer' component in "
                             "model_index.json")
        if "scheduler" not in index:
            raise ValueError(f"model: the pipeline {str(root)!r} has no 'scheduler' component in model_index.json")
        unet_dir, sched_file = root / part, root / "scheduler" / "scheduler_config.json"
    elif (root / "config.json").is_file():
        unet_dir = root
        candidates = [root / "scheduler_config.json", root / "scheduler" / "scheduler_config.json"]
        sched_file = next((c for c in candidates if c.is_file()), candidates[0])
        if not sched_file.is_file():
            raise ValueError(f"model: {str(root)!r} holds a UNet but no scheduler config "
                             "(scheduler_config.json here or in scheduler/); save one with scheduler.save_pretrained")
    else:
        raise ValueError(f"model: {str(root)!r} holds neither model_index.json (a pipeline) nor config.json "
                         "(a bare UNet) written by save_pretrained")
    if not (unet_dir / "config.json").is_file():
        raise ValueError(f"model: missing UNet config {str(unet_dir / 'config.json')!r}")
    if not sched_file.is_file():
        raise ValueError(f"model: missing scheduler config {str(sched_file)!r}")
    return unet_dir, sched_file


def weights_format(folder: Path, variant: Optional[str] = None) -> dict:
    """``from_pretrained`` keywords for the weights on disk: ``use_safetensors`` and ``variant``.

    Without ``variant`` the plain file is used, else the only variant present; a variant that is not on
    disk, several variants and no plain file, or no weights at all are one-line ``ValueError``s.
    """
    found: dict[Optional[str], set] = {}
    for f in folder.iterdir() if folder.is_dir() else ():
        m = _WEIGHT_FILE.match(f.name)
        if m:
            found.setdefault(m.group(1), set()).add(m.group(2))
    variants = sorted(k for k in found if k is not None)
    if variant is None and None not in found and len(variants) == 1:
        variant = variants[0]
    if variant not in found:
        what = f"variant {variant!r}" if variant is not None else "weights"
        have = f"; variants on disk: {', '.join(variants)} (pick one with ,variant=NAME)" if variants else ""
        raise ValueError(f"model: cannot load the diffusers model: no {what} ({WEIGHTS}"
                         f"{'.' + variant if variant else ''}.safetensors or .bin) in {str(folder)!r}{have}")
    return {"use_safetensors": "safetensors" in found[variant], "variant": variant}


def _load_part(diffusers, cls, folder: Path, variant: Optional[str], device, dtype):
    kw = weights_format(folder, variant)
    try:
        with _quiet(diffusers):
            net = cls.from_pretrained(str(folder), local_files_only=True, **kw)
            net = net.to(device=device, dtype=dtype)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, NotImplementedError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"model: cannot load the diffusers model from {str(folder)!r}: {first}") from None
    for name, t in net.state_dict().items():  # weights that are not finite make every output meaningless (R9)
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"model: the weights in {str(folder)!r}: tensor {name!r} holds non-finite values "
                             "(nan or inf)")
    return net.eval().requires_grad_(False)


def _vae(root: Path, diffusers, variant, device, dtype):
    """The pipeline's ``vae/`` (an ``AutoencoderKL``) when there is one, else ``None``."""
    if not (root / "model_index.json").is_file() or not (root / "vae" / "config.json").is_file():
        return None
    vname = _read_json(root / "vae" / "config.json", "VAE config").get("_class_name")
    if vname != "AutoencoderKL":
        raise ValueError(f"model: unsupported VAE class {vname!r} in {str(root / 'vae')!r}; expected AutoencoderKL")
    return _load_part(diffusers, diffusers.AutoencoderKL, root / "vae", variant, device, dtype)


def _conditioning(root: Path, ucfg: dict, cond, prompt):
    """The text conditioning from ``cond`` or ``prompt``, checked against the network before any weights load."""
    from .conditioning import encode_prompt, load_cond

    if cond is not None and prompt is not None:
        raise ValueError("cond: give either --cond or --prompt, not both")
    uname = ucfg.get("_class_name", "UNet2DModel")
    if uname != TEXT_BACKBONE:
        return _check_conditioning(uname, ucfg, None if cond is None and prompt is None else True)
    text = load_cond(cond) if cond is not None else encode_prompt(root, prompt) if prompt is not None else None
    return _check_conditioning(uname, ucfg, text)


def read_configs(root: "str | Path") -> "tuple[dict, dict]":
    """``(network config, scheduler config)`` of a diffusers folder, every file validated as an input (layout,
    ``model_index.json``, both configs; their classes); no weights are read, diffusers is imported only to check
    the scheduler class. What the preflight reads to check a ``diffusers:DIR`` model before a run."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ValueError(f"model: diffusers directory {str(root)!r} does not exist or is not a directory")
    unet_dir, sched_file = _layout(root)
    ucfg = _read_json(unet_dir / "config.json", "UNet config")
    uname = ucfg.get("_class_name", "UNet2DModel")
    if uname not in BACKBONES:
        raise ValueError(f"model: unsupported UNet class {uname!r} in {str(unet_dir)!r}; expected one of "
                         f"{', '.join(BACKBONES)}")
    index = root / "model_index.json"
    if index.is_file():
        part = next(p for p in NETWORK_PARTS if unet_dir == root / p) if unet_dir != root else None
        named = _read_json(index, "pipeline index").get(part) if part else None
        if named is not None and named[1] is not None and named[1] != uname:
            raise ValueError(f"model: {str(index)!r}: field {part!r} names class {named[1]!r} but "
                             f"{str(unet_dir / 'config.json')!r} holds a {uname!r}")
    check_network_config(unet_dir / "config.json", ucfg)
    scfg = _read_json(sched_file, "scheduler config")
    check_scheduler_config(sched_file, scfg)
    return ucfg, scfg


def load_diffusers(path, device: "torch.device | str" = "cpu", dtype: torch.dtype = torch.float32, *,
                   cond=None, prompt: Optional[str] = None, variant: Optional[str] = None,
                   **options) -> DiffusersDenoiser:
    """Load a ``save_pretrained`` directory as a :class:`DiffusersDenoiser` (module docstring for layouts).

    The network (and VAE) are put in eval mode, on ``device`` in ``dtype``, with frozen parameters
    (gradients with respect to ``x`` still flow, for Jacobian probes). ``cond`` (a ``--cond`` safetensors
    file) or ``prompt`` give a ``UNet2DConditionModel`` its text conditioning; ``variant`` picks a weights
    variant; ``options`` go to :class:`DiffusersDenoiser` (``clip_sample``, ``clip_sample_range``,
    ``thresholding``, ``null_class``, ``quantize``, ``math_attention``).
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ValueError(f"model: diffusers directory {str(path)!r} does not exist or is not a directory")
    unet_dir, sched_file = _layout(root)
    diffusers = _import_diffusers()
    ucfg, scfg = read_configs(root)
    uname = ucfg.get("_class_name", "UNet2DModel")
    scls = check_scheduler_class(scfg.get("_class_name"), sched_file)
    conditioning = _conditioning(root, ucfg, cond, prompt)
    try:
        with _quiet(diffusers):
            scheduler = scls.from_config(scfg)
    except (ValueError, TypeError, KeyError, RuntimeError, NotImplementedError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"model: the scheduler config {str(sched_file)!r} is not usable: {first}") from None
    unet = _load_part(diffusers, getattr(diffusers, uname), unet_dir, variant, device, dtype)
    vae = _vae(root, diffusers, variant, device, dtype)
    model = DiffusersDenoiser(unet, scheduler, conditioning=conditioning, vae=vae, **options)
    model.path = str(root)
    return model


# options of the ``diffusers:DIR[,key=value,...]`` model spec (see :func:`load_diffusers_spec`)
SPEC_OPTIONS = ("clip_sample", "clip_sample_range", "thresholding", "null_class", "quantize", "math_attention",
                "dtype", "variant")
DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _spec_path(text: str) -> "tuple[str, dict]":
    """``(directory, options)`` of the part after ``diffusers:`` (see :func:`load_diffusers_spec`)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("model: 'diffusers' needs a directory, as diffusers:DIR[,key=value,...]")
    items = text.strip().split(",")
    options: dict = {}
    while len(items) > 1:
        key, eq, value = items[-1].partition("=")
        if not eq or key.strip() not in SPEC_OPTIONS:
            break
        options.setdefault(key.strip(), parse_value(value.strip()) if key.strip() != "variant" else value.strip())
        items.pop()
    return ",".join(items), options


def load_diffusers_spec_configs(text: str) -> "tuple[dict, int]":
    """``(network config, bytes of its weights on disk)`` of a ``diffusers:`` spec, every config file validated
    (:func:`read_configs`) and no weights read: what the preflight needs to judge a run on this model."""
    path, _ = _spec_path(text)
    ucfg, _ = read_configs(path)
    unet_dir, _ = _layout(Path(path).expanduser())
    size = sum(f.stat().st_size for f in unet_dir.iterdir() if _WEIGHT_FILE.match(f.name) and f.is_file())
    return ucfg, size


def load_diffusers_spec(text: str, device: "torch.device | str" = "cpu", *, cond=None,
                        prompt: Optional[str] = None) -> DiffusersDenoiser:
    """Load the model named by the part after ``diffusers:`` of a model spec: ``DIR[,key=value,...]``.

    Trailing ``key=value`` items whose key is one of :data:`SPEC_OPTIONS` are options (``dtype`` is
    ``float32`` (default), ``float64``, ``float16`` or ``bfloat16``; ``variant`` a weights variant such as
    ``fp16``; the others go to :class:`DiffusersDenoiser`); everything before them is the directory, so a
    path may itself contain commas. Example: ``./ddpm-cifar,clip_sample=false,null_class=0``. ``cond`` and
    ``prompt`` are the ``--cond`` / ``--prompt`` of the run (:func:`load_diffusers`).
    """
    path, options = _spec_path(text)
    dtype = options.pop("dtype", "float32")
    if dtype not in DTYPES:
        raise ValueError(f"model: dtype expected one of {', '.join(DTYPES)}, got {dtype!r}")
    for key in ("clip_sample", "thresholding", "quantize", "math_attention"):
        if key in options and not isinstance(options[key], bool):
            raise ValueError(f"model: {key} expected true or false, got {options[key]!r}")
    return load_diffusers(path, device=device, dtype=DTYPES[dtype], cond=cond, prompt=prompt, **options)
