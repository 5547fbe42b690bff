"""Preflight: what a run will cost and whether its inputs hold, judged from its configuration before anything is
allocated or written (docs/reliability.md, R7 and R10).

A run's memory is estimated from its configuration alone -- the data's shape from the spec
(:func:`critdiff.data.shapes.shape_of`, headers only), the model's size from its config file, the batch and ensemble
sizes, the patch pool, the sweep's grid -- and compared with the memory this process may use: the machine's
memory, less when an address-space limit (``ulimit -v``) is set, or a GPU's memory for what lives there. A run
that cannot fit is refused in one line that names the largest part and the flag that lowers it::

    memory: this run needs about 25.6 GB (sample states 25.1 GB, data 0.4 GB); this machine has 24.0 GB; lower
    --n, or pass --max-memory GB to run anyway

``--max-memory GB`` (:attr:`RunConfig.max_memory`, the one override) replaces the machine's figure by the user's.
The estimates are upper bounds of the peak, built from the arrays each stage holds (a rough factor per sampler
state and network activation); they are meant to separate a run that fits from one that is off by orders of
magnitude (``--n 1000000000``, ``size=5000``), not to predict the peak to the megabyte.

Everything else that can be checked from the configuration is checked here too, before the first write: every file a
run will read (network and classifier configs, diffusers configs, data files' headers), the classifier's image size
against the model's (``guide``), and every unit of a sweep. Time is not bounded: a long run is legitimate.
"""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

GB = 1e9
DEFAULT_CHUNK = 1 << 16  # pool patches evaluated at once by the patch model (scores.patch.DEFAULT_CHUNK)
SAMPLER_STATES = 10  # copies of the batch a sampler step holds: x, d, x_next, noise, the model's working copies
RECORD_BYTES_PER_VALUE = 48  # a float in a trial record: the Python float in a list, and its JSON text
UNIT_BYTES = 4096  # one sweep unit's configuration, key and row


@dataclass
class Cost:
    """Estimated peak bytes per part, each with the flag that lowers it (``host``: CPU memory, ``device``: the run's
    device when it is not the CPU)."""

    parts: list = field(default_factory=list)  # (name, bytes, hint, on_device)

    def add(self, name: str, nbytes: float, hint: str, on_device: bool = False) -> "Cost":
        self.parts.append((name, float(nbytes), hint, on_device))
        return self

    def total(self, on_device: Optional[bool] = None) -> float:
        return sum(b for _, b, _, d in self.parts if on_device is None or d == on_device)

    def largest(self, on_device: Optional[bool] = None):
        parts = [p for p in self.parts if on_device is None or p[3] == on_device]
        return max(parts, key=lambda p: p[1]) if parts else None


# --- what this process may use ----------------------------------------------------------------------------------
def host_budget() -> tuple[float, str]:
    """``(bytes, description)``: physical memory, or less when an address-space limit is set (then minus what the
    process already maps)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    what = f"this machine has {total / GB:.1f} GB"
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        try:
            mapped = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            mapped = 0
        left = max(soft - mapped, 0)
        if left < total:
            total, what = left, f"this process may map {left / GB:.2f} GB more (address-space limit {soft / GB:.1f} GB)"
    return float(total), what


def device_budget(device: str) -> "tuple[float, str] | None":
    """``(bytes, description)`` of a CUDA device's memory; ``None`` for the CPU (see :func:`host_budget`)."""
    if not str(device).startswith("cuda"):
        return None
    import torch

    from ..devices import resolve

    dev = resolve(device)
    total = torch.cuda.get_device_properties(dev.index or 0).total_memory
    return float(total), f"{dev} has {total / GB:.1f} GB"


def check_fits(cost: Cost, device: str = "cpu", max_memory: Optional[float] = None) -> Cost:
    """Refuse (one-line ``ValueError`` starting ``memory:``) a run whose estimate exceeds the budget; ``max_memory``
    (GB, ``--max-memory``) replaces the machine's figure."""
    sides = [(False, host_budget())]
    dev = device_budget(device)
    if dev is not None:
        sides.append((True, dev))
    else:
        cost = Cost([(n, b, h, False) for n, b, h, _ in cost.parts])  # the CPU holds everything
    for on_device, (budget, what) in sides:
        if max_memory is not None:
            budget, what = float(max_memory) * GB, f"--max-memory is {float(max_memory):g} GB"
        need = cost.total(on_device)
        if need > budget:
            parts = sorted((p for p in cost.parts if p[3] == on_device), key=lambda p: -p[1])
            shown = ", ".join(f"{n} {b / GB:.3g} GB" for n, b, _, _ in parts[:3])
            hints = list(dict.fromkeys(h for _, b, h, _ in parts if h and b >= 0.1 * need))
            raise ValueError(f"memory: this run needs about {need / GB:.3g} GB ({shown}); {what}; "
                             f"{'; '.join(hints)}; or pass --max-memory GB to run anyway")
    return cost


# --- parts -----------------------------------------------------------------------------------------------------
def _itemsize(dtype: str) -> int:
    return 8 if dtype == "float64" else 4


def data_cost(cost: Cost, spec: str, dtype: str = "float32"):
    """Add the data set's bytes (the source read, the float32 images, a resize's and a cast's copies); returns its
    :class:`~critdiff.data.shapes.DataShape`."""
    from ..data.shapes import shape_of

    sh = shape_of(spec)
    d = sh.c * sh.h * sh.w
    cost.add("data", sh.raw_bytes + sh.n * d * (3 * 4 + _itemsize(dtype)), "lower n= or size= in --data")
    return sh


def n_classes_of(spec: str) -> Optional[int]:
    """The number of classes a data spec has when it is known without loading (bundled and synthetic sets)."""
    from ..spec import parse_spec

    s = parse_spec(spec, "data")
    classes = s.kwargs.get("classes")
    if s.name in ("digits", "mnist"):
        return 10 if classes is None else len(str(classes).split("+"))
    return {"textures": 3, "twopoint": 2, "stripes": 2}.get(s.name)


def unet_activation_bytes(cfg) -> float:
    """Activations of one sample through a :class:`~critdiff.nets.unet.UNet` (``cfg``: its UNetConfig): every level's
    feature maps at that level's resolution, about 8 tensors per residual block, float32."""
    hw = cfg.height * cfg.width_px
    per = sum(cfg.width * m * hw / 4 ** level * 8 * (cfg.num_res_blocks + 1) for level, m in enumerate(cfg.channel_mult))
    return 4.0 * 2 * per  # encoder and decoder


def n_params(module_factory) -> int:
    """Parameter count of a module built on the ``meta`` device (nothing is allocated)."""
    import torch

    with torch.device("meta"):
        return sum(p.numel() for p in module_factory().parameters())


@dataclass(frozen=True)
class ModelInfo:
    """What the preflight knows of a model before building it: the image shape it makes (or None) and its cost."""

    image: "tuple | None"
    classes: Optional[int] = None


def model_cost(cost: Cost, cfg, image: "tuple | None", rows: int) -> ModelInfo:
    """Add the model's bytes (weights or training images, its working memory for ``rows`` images at once) and read
    its files (validated as inputs). ``image``: the data's ``(C, H, W)`` (analytic models), else None."""
    from .config import model_kind

    kind = model_kind(cfg.model)
    item = _itemsize(cfg.dtype)
    on_dev = str(cfg.device).startswith("cuda")
    if kind in ("empirical", "patch", "gaussian"):
        c, h, w = image
        d = c * h * w
        cost.add("model", 0, "", on_dev)
        if kind == "patch":
            from ..stencil import parse_stencil

            width = len(parse_stencil(cfg.stencil).offsets) * c + 2
            cost.add("patch pool chunks and queries", (DEFAULT_CHUNK + rows * h * w) * width * item * 3 + 4e6,
                     "lower --n (or --batch), or use a smaller --stencil", on_dev)
        elif kind == "empirical":
            cost.add("empirical distances", rows * min(DEFAULT_CHUNK, 10 ** 6) * item * 2, "lower --n (or --batch)", on_dev)
        else:
            k = (n_classes_of(cfg.data) or 10) + 1
            cov = 3 * k * d * d * 8 if d <= 4096 else 4 * k * d * 16
            cost.add("Gaussian covariances", cov, "lower size= in --data", on_dev)
        return ModelInfo(image)
    path = cfg.model.split(":", 1)[1] if ":" in cfg.model else ""
    if not path:
        raise ValueError(f"model: {kind!r} needs a directory, as {kind}:DIR")
    if kind == "pretrained":  # a shipped network: its (verified) folder is a net:DIR checkpoint
        from .. import pretrained

        path, kind = pretrained.resolve(cfg.model, "unet"), "net"
    if kind == "net":
        from ..nets import checkpoint as ckpt
        from ..nets.unet import UNet, UNetConfig

        _, ncfg = ckpt.read_typed_config(path, "unet", UNetConfig, "a diffusion network")
        p = n_params(lambda: UNet(ncfg))
        cost.add("network weights", p * 4 * 2, "", on_dev)
        cost.add("network activations", rows * unet_activation_bytes(ncfg), "lower --n (or --batch)", on_dev)
        return ModelInfo(ncfg.sample_shape, ncfg.n_classes or None)
    from ..integrations.diffusers.loading import load_diffusers_spec_configs

    ucfg, weights_bytes = load_diffusers_spec_configs(path)
    size = ucfg.get("sample_size")
    hw = (size, size) if isinstance(size, int) else tuple(size) if size else (64, 64)
    chans = ucfg.get("block_out_channels") or [128]
    cost.add("network weights", weights_bytes * 2, "", on_dev)
    cost.add("network activations", rows * hw[0] * hw[1] * chans[0] * 40 * 4, "lower --n (or --batch)", on_dev)
    return ModelInfo((int(ucfg["in_channels"]), *hw) if size else None)


# --- commands --------------------------------------------------------------------------------------------------
def run_cost(cfg, batch: Optional[int] = None) -> "tuple[Cost, ModelInfo]":
    """The cost of a :class:`RunConfig`-based run (``sample``, ``probe``, ``guide``): data, model, sampler states."""
    from .guide.config import GuideConfig
    from .probe import ProbeConfig

    cfg.validate()
    cost = Cost()
    item = _itemsize(cfg.dtype)
    on_dev = str(cfg.device).startswith("cuda")
    sh = data_cost(cost, cfg.data, cfg.dtype) if cfg.data else None
    guide = isinstance(cfg, GuideConfig)
    rows = min(cfg.batch, cfg.n) * 2 if guide else cfg.n  # guidance evaluates [x; x] at once
    info = model_cost(cost, cfg, sh.image if sh else None, rows)
    if cfg.kind in ("net", "pretrained") and sh is not None and tuple(info.image) != tuple(sh.image):
        raise ValueError(f"data: model {cfg.model!r} makes images of shape {tuple(info.image)}, but {cfg.data!r} gives "
                         f"{tuple(sh.image)}; choose the data's size= to match")
    image = info.image or (sh.image if sh else None)
    if image is None:
        return cost, info
    d = math.prod(image)
    cost.add("sigma grid", cfg.steps * 8 * 4, "lower --steps")
    if guide:
        arms = len(cfg.arms) - ("sweep" in cfg.arms) + (cfg.sweep if "sweep" in cfg.arms else 0)
        cost.add("sampler states", rows * d * item * SAMPLER_STATES, "lower --batch", on_dev)
        cost.add("trial records", cfg.n * arms * d * RECORD_BYTES_PER_VALUE + cfg.n * 64 + (cfg.n + cfg.calib_n) * 8,
                 "lower --n, or give fewer --arms or a smaller --sweep")
    elif isinstance(cfg, ProbeConfig):
        cost.add("sampler states and probes", cfg.n * d * item * (SAMPLER_STATES + 4 * cfg.times * cfg.probes),
                 "lower --n or --times", on_dev)
    else:
        cost.add("sample states", cfg.n * d * item * (SAMPLER_STATES + 2 * 8), "lower --n", on_dev)
    return cost, info


def check_classifier(folder: str, image: "tuple | None", classes: Optional[int], what: str = "classifier") -> None:
    """The classifier folder exists, its config is valid, and it takes the images the run makes (before any sample
    is drawn: a mismatch found at the metric would leave the samples written for nothing)."""
    from .. import pretrained
    from ..nets import checkpoint as ckpt
    from ..nets.classifier import ClassifierConfig

    try:
        folder = pretrained.resolve(folder, "classifier")  # pretrained:NAME -> its shipped folder
        _, ccfg = ckpt.read_typed_config(folder, "classifier", ClassifierConfig, "a classifier")
    except ValueError as exc:
        text = str(exc).splitlines()[0]
        raise ValueError(f"{what}: {text[len('model: '):] if text.startswith('model: ') else text}") from None
    if image is not None and tuple(ccfg.sample_shape) != tuple(image):
        raise ValueError(f"{what}: {folder!r} takes images {tuple(ccfg.sample_shape)} but the run makes {tuple(image)}; "
                         "train the classifier on data of the run's size")
    if classes is not None and ccfg.n_classes < classes:
        raise ValueError(f"{what}: {folder!r} knows {ccfg.n_classes} classes but the data have {classes}")


def check_run(cfg, classifier: Optional[str] = None) -> Cost:
    """Preflight of ``sample``, ``probe`` and ``guide`` (module docstring)."""
    cost, info = run_cost(cfg)
    if classifier is not None:
        image = info.image if info.image is not None else None
        check_classifier(classifier, image, n_classes_of(cfg.data) if cfg.data else None)
    return check_fits(cost, cfg.device, cfg.max_memory)


def train_cost(cfg) -> Cost:
    """``train``: data, weights with gradients, Adam moments and the EMA copy, activations of a batch (forward and
    backward) and of the sample grid."""
    from ..nets.unet import UNet, UNetConfig

    cost = Cost()
    sh = data_cost(cost, cfg.data)
    k = n_classes_of(cfg.data) or 0
    ncfg = UNetConfig(channels=sh.c, height=sh.h, width_px=sh.w, width=cfg.width, channel_mult=cfg.channel_mult,
                      num_res_blocks=cfg.num_res_blocks, n_classes=k if cfg.conditional else 0,
                      groups=min(8, cfg.width), padding=cfg.padding, prediction=cfg.prediction)
    p = n_params(lambda: UNet(ncfg))
    cost.add("weights, gradients, Adam moments, EMA", p * 4 * 6, "lower --width or --channel-mult")
    cost.add("activations", min(cfg.batch, sh.n) * unet_activation_bytes(ncfg) * 3, "lower --batch")
    cost.add("sample grid", 80 * unet_activation_bytes(ncfg), "lower --width")
    return cost


def classifier_cost(cfg) -> Cost:
    """``train-classifier``: data, weights with gradients and Adam moments, activations of a batch."""
    from ..nets.classifier import Classifier, ClassifierConfig

    cost = Cost()
    sh = data_cost(cost, cfg.data)
    ccfg = ClassifierConfig(channels=sh.c, height=sh.h, width_px=sh.w, n_classes=max(n_classes_of(cfg.data) or 10, 2),
                            width=cfg.width)
    p = n_params(lambda: Classifier(ccfg))
    cost.add("weights, gradients, Adam moments", p * 4 * 5, "lower --width")
    cost.add("activations", min(cfg.batch, sh.n) * sh.h * sh.w * cfg.width * 4 * 12 * 3, "lower --batch")
    return cost


def theory_cost(cfg) -> Cost:
    """``theory``: data and the patch pool of every position (float64, with its weights)."""
    from ..stencil import parse_stencil

    cost = Cost()
    sh = data_cost(cost, cfg.data)
    s = len(parse_stencil(cfg.stencil).offsets)
    cost.add("patch pool", sh.n * sh.h * sh.w * (s * sh.c + 2) * 8 * 3, "lower n= or size= in --data, or a smaller --stencil")
    return cost


# --- sweeps ----------------------------------------------------------------------------------------------------
def grid_size(spec: dict) -> int:
    """The number of units a sweep spec expands to, counted without expanding it."""
    n = 0
    for body in spec.values():
        grid = body.get("grid", {}) if isinstance(body, dict) else {}
        if isinstance(grid, dict):
            n += math.prod(len(v) if isinstance(v, list) else 1 for v in grid.values())
    return n


def check_grid(spec: dict, max_memory: Optional[float] = None) -> int:
    """Refuse a sweep grid too large to expand (counted, not expanded: :func:`grid_size`); returns the count."""
    n = grid_size(spec) if isinstance(spec, dict) else 0
    check_fits(Cost().add("sweep units", n * UNIT_BYTES, f"the grid has {n} units: give fewer grid values"),
               "cpu", max_memory)
    return n


def check_units(units: list, kinds: dict, workers: int = 1, max_memory: Optional[float] = None) -> None:
    """Preflight of a sweep's units (``kinds``: unit kind -> configuration class): every unit's configuration, data
    spec and files, classifier and memory (``workers`` units at once), before any unit runs or any file is written;
    an error names the unit by its grid values."""
    worst = Cost()
    for u in units:
        try:
            cost, info = run_cost(kinds[u.kind].from_dict(u.config))
            if u.classifier is not None:
                cfg_data = u.config.get("data")
                check_classifier(u.classifier, info.image, n_classes_of(cfg_data) if cfg_data else None,
                                 what=f"{u.kind}.classifier")
        except (ValueError, TypeError, FileNotFoundError) as exc:
            axes = ", ".join(f"{k}={v!r}" for k, v in u.axes.items())
            raise ValueError(f"spec: {u.kind} unit ({axes or 'no grid'}): {str(exc).splitlines()[0]}") from None
        if cost.total() > worst.total():
            worst = cost
    parallel = Cost([(f"{name} (x{workers} workers)" if workers > 1 else name, b * workers, h, d)
                     for name, b, h, d in worst.parts])
    check_fits(parallel, "cpu", max_memory)


# --- the demo --------------------------------------------------------------------------------------------------
def demo_costs(quick: bool, device: str = "cpu") -> list:
    """``[(section key, Cost)]`` of every demo section whose configuration is a run configuration or a theory."""
    from .config import config_fields
    from .demo.sections import demo_sections
    from .guide.config import GuideConfig
    from .probe import ProbeConfig
    from .sample import SampleConfig
    from .theory_section import TheoryConfig

    out = []
    for sec in demo_sections(quick, device):
        c = sec.config
        if "sample" in c:
            out.append((sec.key, run_cost(SampleConfig.from_dict(config_fields(c["sample"])))[0]))
        elif "probe" in c:
            out.append((sec.key, run_cost(ProbeConfig.from_dict(config_fields(c["probe"])))[0]))
        elif "guide" in c:
            out.append((sec.key, run_cost(GuideConfig.from_dict(config_fields(c["guide"])))[0]))
        elif "theory" in c:
            out.append((sec.key, theory_cost(TheoryConfig.from_dict(config_fields(c["theory"])))))
    return out


def check_demo(quick: bool, device: str = "cpu", max_memory: Optional[float] = None) -> None:
    for key, cost in demo_costs(quick, device):
        try:
            check_fits(cost, device, max_memory)
        except ValueError as exc:
            raise ValueError(f"{exc} (demo section {key})") from None
