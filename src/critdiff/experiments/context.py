"""What an experiment is given besides its configuration: where it writes, how it runs units, how it shows
progress and where its lines go. Every experiment is ``run_<kind>(cfg, ctx) -> Result``.

The configuration says *what* is computed (it is the run's identity); the :class:`Context` says *how* the run is
carried out and shown, none of which changes a number:

- ``out``: the output folder (created on :meth:`Context.folder`); the result is written as ``OUT/result.json`` by
  :meth:`Context.save` (:func:`critdiff.experiments.result.save_result`, the one record format);
- ``executor``: runs independent units of work (:mod:`critdiff.experiments.executors`; default serial);
- ``progress``: whether :meth:`Context.bar` shows a bar (:func:`critdiff.progress.progress_bar`, the one bar);
- ``log``: where the run's lines go; the default :func:`critdiff.progress.log_line` writes above an open bar, so
  a line never tears a bar apart.

An experiment takes ``ctx`` as :func:`as_context` accepts it: a :class:`Context`, or a folder (``str`` or
``Path``: the default context writing there), so ``run_sample(cfg, "out")`` keeps working.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

from ..progress import log_line, progress_bar
from .executors.base import Executor, SerialExecutor
from .result import save_result


def _silent(message: str) -> None:
    """A log that drops every line."""


@dataclass(frozen=True)
class Context:
    """How one run is carried out and shown (module docstring). ``out=None``: nothing is written (the experiments
    that can run without a folder: theory, structure factor, net criticality)."""

    out: Optional[Path] = None
    executor: Executor = field(default_factory=SerialExecutor)
    progress: bool = True
    log: Callable[[str], None] = log_line

    def __post_init__(self) -> None:
        if self.out is not None and not isinstance(self.out, Path):
            if not isinstance(self.out, str):
                raise TypeError(f"out: expected a folder (str or Path) or None, got {type(self.out).__name__}")
            object.__setattr__(self, "out", Path(self.out))

    @classmethod
    def quiet(cls, out: "str | Path | None" = None, **kw) -> "Context":
        """A context without a bar and without log lines (tests, sweep units, demo sections)."""
        return cls(out, progress=False, log=_silent, **kw)

    def replace(self, **changes) -> "Context":
        """This context with ``changes`` (e.g. another ``out`` for a unit of a sweep)."""
        return dataclasses.replace(self, **changes)

    def folder(self) -> Path:
        """The output folder, created if missing; a one-line error when the context has none."""
        if self.out is None:
            raise ValueError("out: this experiment writes files and needs an output folder")
        self.out.mkdir(parents=True, exist_ok=True)
        return self.out

    def bar(self, total: int, desc: str, initial: int = 0):
        """A progress bar of ``total`` units (a no-op bar when ``progress`` is off); a context manager."""
        return progress_bar(total, desc, enabled=self.progress, initial=initial)

    def save(self, result) -> Optional[Path]:
        """Write ``result`` as ``OUT/result.json`` (atomically); nothing without a folder. Returns the path."""
        if self.out is None:
            return None
        return save_result(self.folder(), result)


ContextLike = Union[Context, str, Path, None]


def as_context(ctx: ContextLike) -> Context:
    """``ctx`` as a :class:`Context`: a context as it is, a folder as the default context writing there, ``None``
    as the default context without a folder."""
    if isinstance(ctx, Context):
        return ctx
    if ctx is None or isinstance(ctx, (str, Path)):
        return Context(ctx)
    raise TypeError(f"ctx: expected a Context or an output folder (str or Path), got {type(ctx).__name__}")
