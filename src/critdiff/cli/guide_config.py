"""``critdiff guide-config``: the critical time and a guidance pulse/interval in every unit a diffusers user needs."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Optional

from ..config import JsonConfig, arg
from .generate import add_config_args, config_from_args


@dataclass(frozen=True)
class GuideConfigRequest(JsonConfig):
    """What ``critdiff guide-config`` converts: a critical logsnr and a pulse, for one diffusers model and grid."""

    model: str = arg(help="diffusers:DIR")
    tc_logsnr: float = arg(help="critical logsnr (measure it with `critdiff probe`)")
    steps: int = arg(50, "num_inference_steps")
    scheduler: Optional[str] = arg(None, "ddpm | ddim | euler | heun | euler-ancestral | dpmpp-2m (default: the folder's)")
    spacing: Optional[str] = arg(None, "timestep_spacing override: leading | trailing | linspace")
    width: float = arg(3.0, "pulse width in logsnr")
    height: float = arg(3.0, "guidance scale inside the pulse")


CONFIG = GuideConfigRequest


def add_parser(sub) -> None:
    p = sub.add_parser("guide-config", help="critical time and guidance pulse as t, logsnr, sigma, timestep, step index")
    add_config_args(p, GuideConfigRequest)
    p.add_argument("--json", action="store_true", help="write one JSON object to stdout")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..experiments.config import RunConfig
    from ..experiments.models import build_model
    from ..integrations.diffusers.callbacks import guide_config

    req = config_from_args(GuideConfigRequest, args)
    if not req.model.startswith("diffusers:"):
        raise ValueError("model: guide-config expects diffusers:DIR")
    model = build_model(RunConfig(model=req.model))
    args = argparse.Namespace(**req.to_dict(), json=args.json)
    over = {} if args.spacing is None else {"timestep_spacing": args.spacing}
    cfg = guide_config(model, args.tc_logsnr, args.steps, kind=args.scheduler, width=args.width, height=args.height, **over)
    if args.json:
        print(json.dumps(cfg))
        return 0
    tc, pulse = cfg["tc"], cfg["pulse"]
    print(f"{cfg['scheduler']}, {cfg['steps']} steps, spacing {cfg['spacing']}")
    print(f"critical time: logsnr {tc['logsnr']:.4f}  sigma {tc['sigma']:.6g}  timestep {tc['timestep']:.3f}  "
          f"t {tc['t']:.4f}  step {tc['step']}")
    for end in ("lo", "hi"):
        e = pulse[end]
        print(f"pulse {end}: logsnr {e['logsnr']:.4f}  sigma {e['sigma']:.6g}  timestep {e['timestep']:.3f}  "
              f"t {e['t']:.4f}  step {e['step']}")
    print(f"pulse covers steps {pulse['steps']} at guidance_scale {pulse['height']:g}")
    print("step  timestep        sigma     logsnr  guidance_scale")
    for r in cfg["table"]:
        print(f"{r['step']:4d}  {r['timestep']!s:>8}  {r['sigma']:11.6g}  {r['logsnr']:9.4f}  {r['guidance_scale']:g}")
    return 0
