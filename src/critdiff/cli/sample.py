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
    p.add_argument("--like-pipeline", nargs="?", const="auto", default=None, metavar="KIND",
                   help="diffusers models: reproduce DDPMPipeline/DDIMPipeline (seed, steps, n) image for image; "
                        "KIND = ddpm | ddim | euler | heun | euler-ancestral | dpmpp-2m (default: the folder's scheduler)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(run=run)


def run(args) -> int:
    cfg = SampleConfig(model=args.model, data=args.data, stencil=args.stencil, equivariant=not args.local,
                       boundary=args.boundary, pool=args.pool, schedule=args.schedule, sampler=args.sampler,
                       spacing=args.spacing, steps=args.steps, n=args.n, seed=args.seed, label=args.label, dtype=args.dtype,
                       like_pipeline=args.like_pipeline)
    rec = run_sample(cfg, args.out)
    if args.like_pipeline is not None:
        print(f"wrote {args.out}/samples.png, samples.safetensors, run.json (like {rec['like_pipeline']}, {rec['seconds']:.1f} s)")
        return 0
    print(f"wrote {args.out}/samples.png, trajectory.png, run.json ({rec['nfe_per_sample']:.0f} NFE per sample, {rec['seconds']:.1f} s)")
    return 0
