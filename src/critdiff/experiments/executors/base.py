"""The executor contract and the serial executor (the Ray one: :mod:`.ray`; the factory: :func:`make_executor` in
:mod:`critdiff.experiments.executors`).

Executors run independent units of work: serial (the default) or a Ray pool of workers.

A *unit* is one independent piece of work (a guidance trial, a probe run, a guide run of a sweep), named by a
``key``. Work is given as two picklable callables:

- ``setup()`` -> ``state``: run once per worker (loads the model: once per worker, not per unit);
- ``work(state, payload)`` -> ``record`` (a JSON-able dict): one unit.

:meth:`Executor.run` calls ``on_done(key, outcome)`` in the driver for every unit, in the order the units were
given, whatever order the workers finish in: so the driver stays the single writer of its log and a serial run and
a Ray run append the same records in the same order. ``outcome`` is an :class:`Outcome`: the record, or the error
of a unit whose worker died ``retries + 1`` times (each death restarts the worker, which loads its model again).
An exception raised by ``work`` itself is a bug or bad input, not a lost worker: it is raised in the driver, as in
a serial run. On Ctrl-C (``KeyboardInterrupt``) the Ray executor hands every unit that had finished to
``on_done`` (in order), stops its workers and re-raises, so nothing finished is lost.

Executor specs (``--executor``): ``serial``; ``ray`` (a local Ray runtime with ``--workers N``); ``ray:ADDRESS``
(join a running cluster, e.g. ``ray:auto`` or ``ray:10.0.0.1:6379``). See docs/scale.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from ...config import JsonConfig, arg
from ...errors import check_int

@dataclass(frozen=True)
class ExecutorConfig(JsonConfig):
    """How units of work are run (not part of any run's identity: the numbers do not depend on it)."""

    executor: str = arg("serial", "serial | ray (local Ray runtime with --workers) | ray:ADDRESS (join a cluster)")
    workers: int = arg(2, "Ray workers (one model each; one GPU each when the run's device is cuda)")
    retries: int = arg(2, "times a unit whose worker died is retried before it is reported as failed")

    def validate(self) -> "ExecutorConfig":
        if not isinstance(self.executor, str) or not (self.executor in ("serial", "ray")
                                                      or (self.executor.startswith("ray:") and len(self.executor) > 4)):
            raise ValueError(f"executor: expected serial, ray or ray:ADDRESS, got {self.executor!r}")
        check_int("workers", self.workers, 1)
        check_int("retries", self.retries, 0)
        return self


@dataclass(frozen=True)
class Outcome:
    """What became of one unit: ``record`` when it finished, else ``error`` (after ``attempts`` tries)."""

    record: Optional[dict] = None
    error: Optional[str] = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None


class Executor:
    """Runs units (module docstring). Subclasses implement :meth:`run`. ``local``: units run in this process
    (a caller may then hand ``setup`` the state it already holds instead of building it again)."""

    local = False

    def run(self, setup: Callable[[], Any], work: Callable[[Any, Any], dict], units: Sequence[tuple[str, Any]],
            on_done: Callable[[str, Outcome], None]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the executor's resources (a no-op for the serial executor)."""


class SerialExecutor(Executor):
    """Every unit in this process, in order (today's behaviour); ``setup`` runs once, and only if there is work."""

    local = True

    def run(self, setup, work, units, on_done) -> None:
        state = None
        for i, (key, payload) in enumerate(units):
            if i == 0:
                state = setup()
            on_done(key, Outcome(record=work(state, payload)))
