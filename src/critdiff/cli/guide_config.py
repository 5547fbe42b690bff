"""``critdiff guide-config``: the critical time and a guidance pulse/interval in every unit a diffusers user needs."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("guide-config", help="critical time and guidance pulse as t, logsnr, sigma, timestep, step index")
    p.add_argument("--model", required=True, help="diffusers:DIR")
    p.add_argument("--tc-logsnr", type=float, required=True, help="critical logsnr (measure it with `critdiff probe`)")
    p.add_argument("--steps", type=int, default=50, help="num_inference_steps (default: %(default)s)")
    p.add_argument("--scheduler", default=None, help="ddpm | ddim | euler | heun | euler-ancestral | dpmpp-2m "
                                                     "(default: the folder's)")
    p.add_argument("--spacing", default=None, help="timestep_spacing override: leading | trailing | linspace")
    p.add_argument("--width", type=float, default=3.0, help="pulse width in logsnr (default: %(default)s)")
    p.add_argument("--height", type=float, default=3.0, help="guidance scale inside the pulse (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="write one JSON object to stdout")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..experiments.models import build_model
    from ..integrations.diffusers.callbacks import guide_config

    if not args.model.startswith("diffusers:"):
        raise ValueError("model: guide-config expects diffusers:DIR")
    model = build_model(args.model)
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
