"""The command line's preflight: each command's configuration, built from its flags as the command will build it,
handed to :mod:`critdiff.experiments.preflight` before the output folder is created or locked (R7, R10).

:func:`check_command` is called once, by :func:`critdiff.cli._run`, for every command.
"""

from __future__ import annotations

from .generate import config_from_args, given_fields


def check_command(args) -> None:
    """Check the configuration of ``args.command`` (one-line ``ValueError`` on failure); commands without a
    preflight (``report``, ``guide-config``) pass."""
    from ..devices import resolve
    from ..experiments import preflight as P

    command = args.command
    device = getattr(args, "device", None) or getattr(args, "cfg__device", None)
    if device is not None:
        resolve(device)  # first: the cheapest check, and the one a run on the wrong machine meets
    if command in ("sample", "probe", "guide"):
        from . import guide, probe, sample

        cls = {"sample": sample, "probe": probe, "guide": guide}[command].CONFIG
        cfg = config_from_args(cls, args)
        P.check_run(cfg, classifier=getattr(args, "classifier", None))
    elif command == "train":
        from ..experiments.train import resolve_config

        cfg = resolve_config(args.out, given_fields(args), args.resume)
        P.check_fits(P.train_cost(cfg), args.device, args.max_memory)
    elif command == "train-classifier":
        from . import train_classifier

        cfg = config_from_args(train_classifier.CONFIG, args).validate()
        P.check_fits(P.classifier_cost(cfg), args.device, args.max_memory)
    elif command == "theory":
        from . import theory

        cfg = config_from_args(theory.CONFIG, args)
        P.check_fits(P.theory_cost(cfg), args.device, args.max_memory)
    elif command == "demo":
        P.check_demo(args.quick, args.device, args.max_memory)
    elif command == "sweep":
        from ..experiments.sweep import KINDS, sweep_units
        from .sweep import read_spec

        spec = read_spec(args.spec)
        P.check_grid(spec, args.max_memory)
        workers = args.workers if str(args.executor).startswith("ray") else 1
        P.check_units(sweep_units(spec), KINDS, workers, args.max_memory)
