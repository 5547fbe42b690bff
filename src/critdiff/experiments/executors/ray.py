"""The Ray executor (see :mod:`.base`): one actor per worker holds the state ``setup()`` built (the model),
units are handed to idle actors, records come back to the driver, which calls ``on_done`` in unit order.

A worker that dies (killed, out of memory, its machine lost) is replaced by a fresh actor (which runs ``setup``
again) and its unit is retried, at most ``retries`` times; then the unit is reported failed with the error.
Ray itself is imported when the executor first runs (:func:`_ray`), so this module imports without it.
"""

from __future__ import annotations

from collections import deque
from typing import Optional

from .base import Executor, Outcome


def _ray():
    """The ``ray`` package, imported on first use (an optional dependency: ``pip install 'critdiff[ray]'``)."""
    import ray
    import ray.exceptions  # noqa: F401 - RayError, RayTaskError

    return ray


class UnitWorker:
    """A Ray actor: ``setup()`` once, then ``work(state, payload)`` per unit."""

    def __init__(self, setup, work):
        self.state, self.work_fn = setup(), work

    def work(self, payload):
        return self.work_fn(self.state, payload)


class RayExecutor(Executor):
    """``workers`` actors on a local Ray runtime (``address=None``) or on the cluster at ``address``."""

    def __init__(self, workers: int, *, address: Optional[str] = None, retries: int = 2, gpus_per_worker: float = 0.0):
        self.workers, self.address, self.retries, self.gpus = int(workers), address, int(retries), float(gpus_per_worker)
        self._started = False

    def _init(self) -> None:
        ray = _ray()
        if ray.is_initialized():
            return
        kw = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if self.address is None:
            ray.init(num_cpus=self.workers, **kw)
        else:
            ray.init(address=self.address, **kw)
        self._started = True

    def close(self) -> None:
        if self._started and _ray().is_initialized():
            _ray().shutdown()
        self._started = False

    def run(self, setup, work, units, on_done) -> None:
        units = list(units)
        if not units:
            return
        self._init()
        ray = _ray()
        RayError, RayTaskError = ray.exceptions.RayError, ray.exceptions.RayTaskError
        actor_cls = ray.remote(num_cpus=1, num_gpus=self.gpus, max_restarts=0)(UnitWorker)
        actors = [actor_cls.remote(setup, work) for _ in range(min(self.workers, len(units)))]
        queue, idle = deque(range(len(units))), deque(range(len(actors)))
        inflight: dict = {}  # object ref -> (actor slot, unit index)
        done: dict[int, Outcome] = {}
        attempts = [0] * len(units)
        emitted = 0
        try:
            while queue or inflight:
                while queue and idle:
                    a, i = idle.popleft(), queue.popleft()
                    attempts[i] += 1
                    inflight[actors[a].work.remote(units[i][1])] = (a, i)
                (ref,), _ = ray.wait(list(inflight), num_returns=1)
                a, i = inflight.pop(ref)
                try:
                    done[i] = Outcome(record=ray.get(ref), attempts=attempts[i])
                except RayTaskError as exc:  # the unit itself raised: a bug or bad input, as in a serial run
                    raise exc.as_instanceof_cause() from None
                except RayError as exc:  # the worker died: a fresh one, and the unit again (bounded)
                    ray.kill(actors[a], no_restart=True)
                    actors[a] = actor_cls.remote(setup, work)
                    if attempts[i] <= self.retries:
                        queue.appendleft(i)
                    else:
                        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                        done[i] = Outcome(error=f"{type(exc).__name__}: {msg}", attempts=attempts[i])
                idle.append(a)
                while emitted in done:
                    on_done(units[emitted][0], done.pop(emitted))
                    emitted += 1
        except KeyboardInterrupt:
            self._keep_finished(inflight, done, attempts)
            for i in sorted(done):  # what finished is kept, in unit order
                on_done(units[i][0], done.pop(i))
            raise
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)

    @staticmethod
    def _keep_finished(inflight: dict, done: dict, attempts: list) -> None:
        """Collect the records of units that had already finished when the run was interrupted."""
        ray = _ray()
        ready, _ = ray.wait(list(inflight), num_returns=len(inflight), timeout=0) if inflight else ([], [])
        for ref in ready:
            try:
                _, i = inflight[ref]
                done[i] = Outcome(record=ray.get(ref, timeout=0), attempts=attempts[i])
            except ray.exceptions.RayError:
                pass
