"""``critdiff guide-config``: the critical time and a guidance pulse/interval in every unit a diffusers user needs."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Literal, Optional

from ..config import JsonConfig, arg
from ..experiments.guide.config import DEFAULT_TC_FROM, TC_FROM_CHOICES
from .common import add_run_args
from .generate import add_config_args, config_from_args


@dataclass(frozen=True)
class GuideConfigRequest(JsonConfig):
    """What ``critdiff guide-config`` converts: a critical logsnr and a pulse, for one diffusers model and grid."""

    model: str = arg(help="diffusers:DIR")
    tc_logsnr: Optional[float] = arg(None, "critical logsnr; default: measured now by --tc-from's estimator, as "
                                           "`critdiff guide` does (with its default sampler, steps and seed)")
    tc_from: Literal[TC_FROM_CHOICES] = arg(DEFAULT_TC_FROM, "critical-time estimator when --tc-logsnr is not given: "
                                                            + ", ".join(TC_FROM_CHOICES))
    data: Optional[str] = arg(None, "data spec, for the estimators that need data (speciation, ensemble, ...)")
    cond: Optional[str] = arg(None, "text UNet: a .safetensors file with encoder_hidden_states and "
                                    "null_encoder_hidden_states (the estimator evaluates the model)")
    prompt: Optional[str] = arg(None, "text UNet in a full pipeline folder: encode this prompt with its own text "
                                      "encoder (needs transformers)")
    seed: int = arg(0, "seed of the estimator's run")
    steps: int = arg(50, "num_inference_steps")
    scheduler: Optional[str] = arg(None, "ddpm | ddim | euler | heun | euler-ancestral | dpmpp-2m (default: the folder's)")
    spacing: Optional[str] = arg(None, "timestep_spacing override: leading | trailing | linspace")
    width: float = arg(3.0, "pulse width in logsnr")
    height: float = arg(3.0, "guidance scale inside the pulse")
    window: Optional[tuple[float, float]] = arg(None, "a guidance window [LO, HI] in logsnr to convert as well "
                                                      "(default: the estimator's window, e.g. --tc-from sensitivity)",
                                                nargs=2, metavar=("LO", "HI"))


CONFIG = GuideConfigRequest


def add_parser(sub) -> None:
    p = sub.add_parser("guide-config", help="critical time and guidance pulse as t, logsnr, sigma, timestep, step index")
    add_config_args(p, GuideConfigRequest)
    p.add_argument("--classifier", default=None,
                   help="folder of a classifier (critdiff train-classifier) or pretrained:NAME, for --tc-from decision-entropy / commitment")
    p.add_argument("--json", action="store_true", help="write one JSON object to stdout")
    add_run_args(p, only=("device",))
    p.set_defaults(run=run)


def run(args) -> int:
    from ..integrations.diffusers.callbacks import guide_config

    req = config_from_args(GuideConfigRequest, args)
    if not req.model.startswith("diffusers:"):
        raise ValueError("model: guide-config expects diffusers:DIR")
    model, tc = _critical_time(req, args.classifier, args.device)
    args = argparse.Namespace(**req.to_dict(), json=args.json)
    over = {} if args.spacing is None else {"timestep_spacing": args.spacing}
    cfg = guide_config(model, tc.logsnr, args.steps, kind=args.scheduler, width=args.width, height=args.height,
                       source=tc.source, logsnr_ci=tc.logsnr_ci, **over)
    window = req.window if req.window is not None else getattr(tc, "window", None)
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
    for end in ("lo", "hi"):
        e = pulse[end]
        print(f"pulse {end}: logsnr {e['logsnr']:.4f}  sigma {e['sigma']:.6g}  timestep {e['timestep']:.3f}  "
              f"t {e['t']:.4f}  step {e['step']}")
    print(f"pulse covers steps {pulse['steps']} at guidance_scale {pulse['height']:g}")
    if "window" in cfg:
        for end in ("lo", "hi"):
            e = cfg["window"][end]
            print(f"window {end}: logsnr {e['logsnr']:.4f}  sigma {e['sigma']:.6g}  timestep {e['timestep']:.3f}  "
                  f"t {e['t']:.4f}  step {e['step']}")
        print(f"window covers steps {cfg['window']['steps']} at guidance_scale {cfg['window']['height']:g}")
    print("step  timestep        sigma     logsnr  guidance_scale")
    for r in cfg["table"]:
        print(f"{r['step']:4d}  {r['timestep']!s:>8}  {r['sigma']:11.6g}  {r['logsnr']:9.4f}  {r['guidance_scale']:g}")
    return 0


def _critical_time(req: GuideConfigRequest, classifier_dir: Optional[str], device: str = "cpu"):
    """``(model, CriticalTime)``: ``--tc-logsnr`` as given, else measured by ``critdiff guide``'s own estimator
    (:func:`critdiff.experiments.guide.tc.resolve_tc` on a ``GuideConfig`` of this model, data, seed and device)."""
    from ..experiments.guide.config import GuideConfig
    from ..experiments.guide.estimators import chosen_source
    from ..experiments.guide.tc import resolve_tc
    from ..experiments.models import load_model
    from ..pretrained import load_classifier

    gcfg = GuideConfig(model=req.model, data=req.data, tc_logsnr=req.tc_logsnr, tc_from=req.tc_from, seed=req.seed,
                       device=device, cond=req.cond, prompt=req.prompt)
    gcfg.validate()
    if req.tc_logsnr is None and req.data is None and chosen_source(gcfg) != "linear-response":
        raise ValueError(f"data: --tc-from {chosen_source(gcfg)} needs --data SPEC (linear-response needs none; or give "
                         "--tc-logsnr)")
    loaded = load_model(gcfg, need_data=req.data is not None, data_seed=0)
    classifier = load_classifier(classifier_dir, device=gcfg.torch_device) if classifier_dir else None
    return loaded.model, resolve_tc(gcfg, loaded.images, loaded.model, classifier)
