"""``critdiff sample``: samples, one trajectory and the run's settings."""

from __future__ import annotations

from ..experiments.sample import SampleConfig, run_sample
from .common import add_model_args, add_sampling_args


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="draw samples from a model and write PNG grids and a JSON record")
    add_model_args(p)
    add_sampling_args(p)
    p.add_argument("--label", type=int, default=None, help="class label for a class-conditional model")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(run=run)


def run(args) -> int:
    cfg = SampleConfig(model=args.model, data=args.data, stencil=args.stencil, equivariant=not args.local,
                       boundary=args.boundary, pool=args.pool, schedule=args.schedule, sampler=args.sampler,
                       spacing=args.spacing, steps=args.steps, n=args.n, seed=args.seed, label=args.label, dtype=args.dtype)
    rec = run_sample(cfg, args.out)
    print(f"wrote {args.out}/samples.png, trajectory.png, run.json ({rec['nfe_per_sample']:.0f} NFE per sample, {rec['seconds']:.1f} s)")
    return 0
