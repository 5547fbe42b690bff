"""The ``critdiff`` command line. It only parses arguments and calls experiments.

Usage errors (bad specs, files, values) print one line ``critdiff: error: ...`` and exit with status 2,
never a traceback; ``--debug`` re-raises them. Ctrl-C, SIGINT (also in a background job) and SIGTERM
exit with status 130 after the running job has kept what it finished (results are written atomically).
A command's ``--out`` folder is locked for the run; a second run on it exits 2 (docs/reliability.md).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading

# subcommand modules, each with add_parser(subparsers) and run(args) -> int
COMMANDS = ("sample", "train", "train-classifier", "theory", "guide", "demo", "probe", "report", "guide-config", "sweep")


def _modules() -> dict:
    return {name: importlib.import_module(f"{__name__}.{name.replace('-', '_')}") for name in COMMANDS}


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on ONE line (``critdiff: error: argument --steps: ...``), exit 2."""

    def error(self, message: str):
        self.exit(2, f"critdiff: error: {message.splitlines()[0]} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="critdiff", description="Find, measure and use the critical regime of diffusion models.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"critdiff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in _modules().values():
        module.add_parser(sub)
    return parser


def _interrupt(signum, frame):
    """SIGTERM (and SIGINT) stop the run as Ctrl-C does: ``KeyboardInterrupt`` where the program is."""
    raise KeyboardInterrupt


@contextlib.contextmanager
def _stoppable():
    """Make SIGINT and SIGTERM raise ``KeyboardInterrupt`` for the ``with`` block (docs/reliability.md, R2).

    A shell starts background jobs with SIGINT ignored; the default handler is installed again so that
    ``kill -INT`` stops a background run too. The previous handlers are restored afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.signal(sig, h) for sig, h in ((signal.SIGINT, signal.default_int_handler),
                                                      (signal.SIGTERM, _interrupt))}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _run(args) -> int:
    """Run the chosen command; a command with an ``--out`` folder holds it locked (:mod:`critdiff.outdir`)."""
    from ..outdir import locked_output
    from .preflight import check_command

    out = getattr(args, "out", None)
    check_command(args)  # everything checkable from the configuration, before the folder is made (R7, R10)
    with locked_output(out, kind=args.command) if out is not None else contextlib.nullcontext():
        return int(_modules()[args.command].run(args) or 0)


def guarded(fn, prog: str = "critdiff", debug: bool = False) -> int:
    """Run ``fn() -> int`` as the command line runs a command (module docstring): a usage error prints one line
    ``PROG: error: ...`` and gives 2 (``debug`` re-raises it); Ctrl-C, SIGINT and SIGTERM print one line and
    give 130. ``benchmarks/bench_agreement.py`` runs its main body through it too."""
    try:
        with _stoppable():
            return int(fn() or 0)
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        if debug:
            raise
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:  # an allocation the preflight (R7) did not foresee or was told to allow
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if debug or not (isinstance(exc, MemoryError) or "allocate" in text):
            raise
        print(f"{prog}: error: memory: the run ran out of memory ({text[:200]}); lower its size or "
              "--max-memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; finished results were kept (rerun the same command to resume)", file=sys.stderr)
        return 130


def main(argv: "list[str] | None" = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed on one line
        return int(exc.code or 0)
    return guarded(lambda: _run(args), debug=args.debug)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
