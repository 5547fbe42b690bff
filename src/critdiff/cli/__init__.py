"""The ``critdiff`` command line. It only parses arguments and calls experiments.

Usage errors (bad specs, files, values) print one line ``critdiff: error: ...`` and exit with status 2,
never a traceback; ``--debug`` re-raises them. Ctrl-C exits with status 130 after the running job
has kept what it finished (results are written atomically).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand modules, each with add_parser(subparsers) and run(args) -> int
COMMANDS = ("sample", "train", "train-classifier", "theory", "guide", "demo", "probe", "report", "guide-config")


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


def main(argv: "list[str] | None" = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed on one line
        return int(exc.code or 0)
    try:
        return int(_modules()[args.command].run(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        if args.debug:
            raise
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"critdiff: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("critdiff: interrupted; finished results were kept (rerun the same command to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
