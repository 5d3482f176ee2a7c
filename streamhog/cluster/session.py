"""The client's side of a run's workers: who they are, tasks pinned to them, trees over them.

Every task is pinned to one worker (``workers=[address]``, ``allow_other_workers=False``,
``pure=False``: the lightgbm.dask / xgboost.dask pattern), so each worker trains its own
blocks and keeps its model between rounds (worker.py). A round's changes are reduced up a
binary tree of ``combine`` tasks, each on the worker holding its left input, so Dask moves
the right input worker to worker; the root finalizes the result and it is relayed down the
same tree (each worker fetches it from its parent, not all from one). The client fetches
the result once (its model directory is the crash-safe copy) and only small statistics
besides.

A worker that leaves mid-round (kill -9, a crash: its address vanishes from the scheduler,
or a task fails for a reason that is not streamhog's) raises :class:`WorkerLost` from
:meth:`ClusterSession.wait`; :meth:`ClusterSession.restart` then starts the run again on
the workers now present — the survivors and any that joined (a nanny restarts a killed
worker) — from the client's model, and the caller redoes the round.
"""
from __future__ import annotations

import time

from ..errors import ClusterError, StreamhogError, WorkerLost
from . import changes as ch
from . import worker as remote


class ClusterSession:
    """The workers of one run (``spec``: what worker.WorkerRun needs)."""

    def __init__(self, client, spec: dict, *, say=None, max_restarts: int = 3, n_workers: int | None = None):
        from .connect import import_distributed

        self.distributed = import_distributed()
        self.client = client
        self.spec = spec
        self.run_id = spec["run_id"]
        self.say = say or (lambda msg: None)
        self.workers: list[str] = []
        self.max_restarts = max_restarts
        self.restarts = 0
        self.n_workers = n_workers

    # -- workers ---------------------------------------------------------------------------------
    def present(self) -> list[str]:
        return sorted(self.client.scheduler_info(n_workers=-1)["workers"])

    def usable(self) -> list[str]:
        """The workers a (re)start uses: those present, at most ``n_workers`` of them."""
        return self.present()[:self.n_workers]

    def submit(self, fn, *args, worker: str):
        return self.client.submit(fn, *args, workers=[worker], allow_other_workers=False, pure=False)

    def start(self, model: ch.Change, *, timeout: float = 120.0) -> None:
        """Start the run on every worker present, with ``model`` (the client's, sparsely)."""
        deadline = time.monotonic() + timeout
        while not (workers := self.usable()):
            if time.monotonic() > deadline:
                raise ClusterError("the cluster has no workers")
            time.sleep(0.2)
        first = self.client.scatter(model, workers=[workers[0]], broadcast=False, hash=False)
        copies = self.broadcast(first, workers)
        futures = [self.submit(remote.start_run, self.spec, copies[w], worker=w) for w in workers]
        self.workers = workers
        self.wait(futures)

    def restart(self, model: ch.Change, reason: str) -> None:
        """After a lost worker: start again on the workers present, from ``model``."""
        self.restarts += 1
        if self.restarts > self.max_restarts:
            raise ClusterError(f"{reason}; workers were lost {self.restarts} times, more than the "
                               f"{self.max_restarts} allowed: giving up (the model directory holds the last "
                               "checkpoint; --resume continues)")
        self.say(f"{reason}: restarting on the workers present from the client's model; the round is redone")
        self.start(model)

    def stop(self) -> None:
        """Drop the run from the workers (best effort: they may be gone)."""
        try:
            futures = [self.submit(remote.end_run, self.run_id, worker=w) for w in self.workers]
            self.distributed.wait(futures, timeout=10)
        except Exception:  # noqa: BLE001 - the run is over either way; workers evict stale runs
            pass

    # -- trees -----------------------------------------------------------------------------------
    def broadcast(self, root, workers: list[str]) -> dict:
        """A copy of ``root`` (a future on ``workers[0]``) on every worker, each fetched from its
        parent in a binary tree; {worker: future}."""
        copies = {workers[0]: root}
        for i in range(1, len(workers)):
            copies[workers[i]] = self.submit(remote.relay, copies[workers[(i - 1) // 2]], worker=workers[i])
        return copies

    def reduce(self, leaves: list, fn, *extra) -> object:
        """``fn(*extra, left, right)`` up a binary tree over ``leaves`` ((worker, future) pairs,
        pairwise by level); each node runs where its left input is. The root's future."""
        level = list(leaves)
        while len(level) > 1:
            nxt = []
            for i in range(0, len(level), 2):
                if i + 1 < len(level):
                    (w, a), (_, b) = level[i], level[i + 1]
                    nxt.append((w, self.submit(fn, *extra, a, b, worker=w)))
                else:
                    nxt.append(level[i])
            level = nxt
        return level[0][1]

    # -- waiting ---------------------------------------------------------------------------------
    def wait(self, futures, *, poll: float = 0.2, on_poll=None):
        """Wait for ``futures``; raise WorkerLost when a worker of the run vanished or a task
        failed for a reason that is not streamhog's, a worker's StreamhogError as it is."""
        futures = list(futures)
        while True:
            self._wait_once(futures, poll, "ALL_COMPLETED")
            if all(f.status == "finished" for f in futures):
                return
            self._check_workers()
            if on_poll is not None:
                on_poll()

    def wait_any(self, futures, *, poll: float = 0.2) -> list:
        """The futures of ``futures`` that finished (at least one), with wait's error handling."""
        while True:
            self._wait_once(futures, poll, "FIRST_COMPLETED")
            done = [f for f in futures if f.status == "finished"]
            if done:
                return done
            self._check_workers()

    def _wait_once(self, futures, poll: float, return_when: str) -> None:
        """One bounded wait, then raise for a failed or cancelled task."""
        try:
            self.distributed.wait(futures, timeout=poll, return_when=return_when)
        except TimeoutError:
            pass
        for f in futures:
            if f.status == "error":
                self._raise(f)
            if f.status == "cancelled":
                raise WorkerLost("a task was cancelled (its worker left the cluster)")

    def _check_workers(self) -> None:
        lost = sorted(set(self.workers) - set(self.present()))
        if lost:
            raise WorkerLost(f"worker {', '.join(lost)} left the cluster")

    @staticmethod
    def _raise(future) -> None:
        exc = future.exception()
        if isinstance(exc, StreamhogError):
            raise exc
        raise WorkerLost(f"a task failed on a worker ({type(exc).__name__}: {exc})")

    def cancel(self, futures) -> None:
        try:
            self.client.cancel(list(futures), force=True)
        except Exception:  # noqa: BLE001 - nothing more to do for futures of a lost round
            pass
