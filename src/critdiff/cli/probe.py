"""``critdiff probe``: measure the critical time of a model with every probe, and the theory's for the patch model."""

from __future__ import annotations

import json
import sys

from ..experiments.probe import ProbeConfig, run_probe
from .common import add_model_args, add_sampling_args, add_threads_arg, apply_threads


def add_parser(sub) -> None:
    p = sub.add_parser("probe", help="measure t_c (stiffness, xi, chi) with bootstrap intervals; compare with theory")
    add_model_args(p)
    add_sampling_args(p)
    p.set_defaults(steps=16, n=8, sampler="ddim")
    p.add_argument("--times", type=int, default=6, help="number of probed steps spread over the grid (default: %(default)s)")
    p.add_argument("--probes", type=int, default=1, help="random phase probes per state (default: %(default)s)")
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap replicates (default: %(default)s)")
    p.add_argument("--homogeneous", type=int, default=41,
                   help="logsnr points of the probe at the homogeneous states (patch model; 0 = off) (default: %(default)s)")
    p.add_argument("--linear", type=int, default=24,
                   help="coarse logsnr steps of the symmetric branch's linear-response run (a 2x finer run is added "
                        "for Richardson extrapolation; 0 = off) (default: %(default)s)")
    p.add_argument("--linear-n", type=int, default=4, help="ensemble members of that run (default: %(default)s)")
    p.add_argument("--linear-eps", type=float, default=0.01,
                   help="their fluctuation amplitude relative to the noise (default: %(default)s)")
    p.add_argument("--eps-scan", default="",
                   help="comma-separated further amplitudes for the growth-onset scan t(eps), e.g. 0.1,0.3,1 "
                        "(1 = the sampler's own ensemble) (default: none)")
    p.add_argument("--window", type=int, default=None,
                   help="receptive-field radius R of the model (patch model: the stencil's radius): random probes keep "
                        "only lags |output - input| <= R, unbiased when the Jacobian is that local and about "
                        "HW/(2R+1)^2 times less variance (default: all lags)")
    p.add_argument("--no-chi", action="store_true", help="skip the susceptibility (it reruns the sampler once per probed step)")
    p.add_argument("--label", type=int, default=None, help="class label for a class-conditional model")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    add_threads_arg(p)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(run=run)


def run(args) -> int:
    apply_threads(args)
    cfg = ProbeConfig(model=args.model, data=args.data, stencil=args.stencil, equivariant=not args.local,
                      boundary=args.boundary, pool=args.pool, schedule=args.schedule, sampler=args.sampler,
                      spacing=args.spacing, steps=args.steps, n=args.n, times=args.times, probes=args.probes,
                      seed=args.seed, label=args.label, dtype=args.dtype, n_boot=args.n_boot,
                      homogeneous=args.homogeneous, chi=not args.no_chi, linear=args.linear, linear_n=args.linear_n,
                      linear_eps=args.linear_eps, eps_scan=_floats("eps-scan", args.eps_scan),
                      window=args.window)
    rec = run_probe(cfg, args.out, progress=not args.json)
    if args.json:
        from ..io import to_jsonable

        keys = ("signals", "combined", "ensemble_combined", "nfe", "theory")
        json.dump(to_jsonable({k: rec[k] for k in keys}), sys.stdout)
        sys.stdout.write("\n")
    else:
        c = rec["combined"]
        e = rec["ensemble_combined"]
        print(f"wrote {args.out}/probe.json and figures; combined logsnr_c = {c['logsnr_c']} "
              f"(t_c = {c['t_c']}; {c.get('source')}); sampler ensemble logsnr_c = {e['logsnr_c']}; "
              f"{rec['nfe']['total_per_sample']:.0f} NFE per sample, {rec['seconds']['total']:.1f} s")
    return 0


def _floats(name: str, text: str) -> tuple:
    """``'0.1,0.3'`` -> ``(0.1, 0.3)``; a bad entry is a usage error naming ``--name``."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            try:
                out.append(float(part))
            except ValueError:
                raise ValueError(f"--{name}: expected comma-separated numbers, got {part!r}") from None
    return tuple(out)
