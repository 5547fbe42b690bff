"""``critdiff guide-config``: the critical time and a guidance pulse/interval in every unit a diffusers user needs."""

from __future__ import annotations

import argparse
import json
import dataclasses
from dataclasses import dataclass
from typing import Optional

from ..config import JsonConfig, arg, field_types
from ..experiments.guide.config import GuideConfig
from .common import add_run_args
from .generate import add_config_args, config_from_args


GUIDE_FIELDS = ("model", "data", "cond", "prompt", "seed", "steps", "width", "height", "tc_logsnr", "tc_from",
                "window")  # GuideConfig's own fields


@dataclass(frozen=True)
class SchedulerGrid(JsonConfig):
    """The diffusers scheduler whose steps ``critdiff guide-config`` lists (the rest of its request is
    :data:`GUIDE_FIELDS` of :class:`~critdiff.experiments.guide.config.GuideConfig`)."""

    scheduler: Optional[str] = arg(None, "ddpm | ddim | euler | heun | euler-ancestral | dpmpp-2m | pndm | unipc | "
                                         "deis | lms | lcm (default: the folder's)")
    spacing: Optional[str] = arg(None, "timestep_spacing override: leading | trailing | linspace")


def _request_class() -> type:
    """``GuideConfigRequest``: :data:`GUIDE_FIELDS` of ``GuideConfig`` (same defaults, help texts, flags) and the
    :class:`SchedulerGrid` fields, so that no default is declared twice."""
    own = {f.name: f for f in dataclasses.fields(GuideConfig)}
    types = {**field_types(GuideConfig), **field_types(SchedulerGrid)}
    specs = [(n, types[n], dataclasses.field(default=own[n].default, metadata=own[n].metadata)) for n in GUIDE_FIELDS]
    specs += [(f.name, types[f.name], dataclasses.field(default=f.default, metadata=f.metadata))
              for f in dataclasses.fields(SchedulerGrid)]
    cls = dataclasses.make_dataclass("GuideConfigRequest", specs, bases=(JsonConfig,), frozen=True)
    cls.__doc__ = "What ``critdiff guide-config`` converts: a critical time and a pulse, for one diffusers model and grid."
    cls.__module__ = __name__
    return cls


GuideConfigRequest = _request_class()


def guide_config_of(req, device: str = "cpu") -> GuideConfig:
    """The ``GuideConfig`` of a request (its :data:`GUIDE_FIELDS`), validated."""
    return GuideConfig(**{n: getattr(req, n) for n in GUIDE_FIELDS}, device=device).validate()


CONFIG = GuideConfigRequest


def add_parser(sub) -> None:
    p = sub.add_parser("guide-config", help="critical time and guidance pulse as t, logsnr, sigma, timestep, step index")
    add_config_args(p, GuideConfigRequest)
    p.add_argument("--classifier", default=None,
                   help="folder of a classifier (critdiff train-classifier) or pretrained:NAME, for --tc-from "
                        "decision-entropy / commitment* / sensitivity (without one, sensitivity reads the model's "
                        "implicit classifier)")
    p.add_argument("--json", action="store_true", help="write one JSON object to stdout")
    add_run_args(p, only=("device",))
    p.set_defaults(run=run)


def run(args) -> int:
    from ..integrations.diffusers.callbacks import guide_config

    req = config_from_args(GuideConfigRequest, args)
    if not req.model.startswith("diffusers:"):
        raise ValueError(f"model: guide-config expects --model diffusers:DIR, got {req.model!r}")
    model, tc = _critical_time(req, args.classifier, args.device)
    args = argparse.Namespace(**req.to_dict(), json=args.json)
    over = {} if args.spacing is None else {"timestep_spacing": args.spacing}
    cfg = guide_config(model, tc, args.steps, kind=args.scheduler, width=args.width, height=args.height, **over)
    window = req.window if req.window is not None else tc.extras.get("window")
    if window is not None:  # the estimated window [lo, hi]: the same builder, as a box from lo to hi
        lo, hi = (float(v) for v in window)
        if not lo < hi:
            raise ValueError(f"window: expected LO < HI in logsnr, got {lo:g} {hi:g}")
        cfg["window"] = guide_config(model, 0.5 * (lo + hi), args.steps, kind=args.scheduler, width=hi - lo,
                                     height=args.height, **over)["pulse"]
    if args.json:
        print(json.dumps(cfg))
        return 0
    tc, pulse = cfg["tc"], cfg["pulse"]
    print(f"{cfg['scheduler']}, {cfg['steps']} steps, spacing {cfg['spacing']}")
    print(f"critical time: logsnr {tc['logsnr']:.4f}  sigma {tc['sigma']:.6g}  timestep {tc['timestep']:.3f}  "
          f"t {tc['t']:.4f}  step {tc['step']}  ({tc['source']})")
    _print_box("pulse", pulse)
    if "window" in cfg:
        _print_box("window", cfg["window"])
    print("step  timestep        sigma     logsnr  guidance_scale")
    for r in cfg["table"]:
        print(f"{r['step']:4d}  {r['timestep']!s:>8}  {r['sigma']:11.6g}  {r['logsnr']:9.4f}  {r['guidance_scale']:g}")
    return 0


def _print_box(name: str, box: dict) -> None:
    """The ends and steps of a box of guidance (the pulse, the estimated window) as guide-config prints them."""
    for end in ("lo", "hi"):
        e = box[end]
        print(f"{name} {end}: logsnr {e['logsnr']:.4f}  sigma {e['sigma']:.6g}  timestep {e['timestep']:.3f}  "
              f"t {e['t']:.4f}  step {e['step']}")
    print(f"{name} covers steps {box['steps']} at guidance_scale {box['height']:g}")


def _critical_time(req, classifier_dir: Optional[str], device: str = "cpu"):
    """``(model, TimeEstimate)``: ``--tc-logsnr`` as given, else measured by ``critdiff guide``'s own estimator
    (:func:`critdiff.experiments.guide.estimators.resolve_tc` on a ``GuideConfig`` of this model, data, seed and device)."""
    from ..experiments.guide.estimators import chosen_source, resolve_tc
    from ..experiments.guide.offsets import base_of
    from ..experiments.models import load_model
    from ..pretrained import load_classifier

    gcfg = guide_config_of(req, device)
    source = chosen_source(gcfg)
    if req.tc_logsnr is None and req.data is None and (base_of(source) or source) != "linear-response":
        raise ValueError(f"data: --tc-from {source} needs --data SPEC (linear-response and linear-response+offset "
                         "need none; or give --tc-logsnr)")
    loaded = load_model(gcfg, need_data=req.data is not None, data_seed=0)
    classifier = load_classifier(classifier_dir, device=gcfg.torch_device) if classifier_dir else None
    return loaded.model, resolve_tc(gcfg, loaded.images, loaded.model, classifier)
