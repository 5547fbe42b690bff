"""``critdiff sample``: samples, one trajectory and the run's settings."""

from __future__ import annotations

from ..experiments.sample import SampleConfig, run_sample
from .common import add_out_arg, threads_of
from .generate import add_config_args, config_from_args

CONFIG = SampleConfig


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="draw samples from a model and write PNG grids and a JSON record")
    add_config_args(p, SampleConfig)
    add_out_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    cfg = config_from_args(SampleConfig, args)
    with threads_of(cfg):
        res = run_sample(cfg, args.out)
    if res.like_pipeline is not None:
        ships = res.model.get("scheduler")
        other = f", not the folder's {ships}" if ships != res.like_pipeline else ""
        print(f"wrote {args.out}/samples.png, samples.safetensors, result.json (like {res.like_pipeline}{other}, "
              f"{res.model.get('dtype')}, {res.seconds:.1f} s)")
        return 0
    print(f"wrote {args.out}/samples.png, trajectory.png, result.json ({res.nfe_per_sample:.0f} NFE per sample, "
          f"{res.seconds:.1f} s)")
    return 0
