"""A training run on a Dask cluster: the one-machine run (training/run.py) with its epochs
trained by workers.

:class:`ClusterRun` is a :class:`~streamhog.training.run.TrainingRun` — the same
checkpoints, holdout scoring, early stopping, signals and rollback, on the client's model
directory, which stays the crash-safe copy — whose epoch is trained in rounds by the
workers (``--sync-mode average``: this module; ``async``: downpour.py; ``lbfgs`` and
``--polish lbfgs``: lbfgs.py). A round: every worker trains its next blocks (about
``--sync-every`` rows, or seconds) from the same model; their sparse changes are combined
up a tree of workers; the result goes back down the tree and, once, to the client, which
assigns it into its memory-mapped model and counts the round's blocks as done. Checkpoints
fall between rounds (a round is the cluster's block boundary), so ``--resume`` after the
client is killed re-deals the blocks not done.

An epoch's blocks are dealt round-robin over the workers in the epoch's seeded order (a new
split each epoch). When a worker is lost mid-round, the round is redone: the run restarts
on the workers present from the client's model, and the blocks not done are dealt again.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import asdict

import numpy as np

from ..errors import WorkerLost
from ..io.stream import block_order
from ..training.run import TrainingRun
from . import changes as ch
from . import worker as remote
from .session import ClusterSession

_MAX_ROUNDS_LOGGED = 1000  # per-round figures kept in an epoch's history record


class ClusterRun(TrainingRun):
    """A TrainingRun whose epochs the workers of ``client`` train (see the module docstring)."""

    def __init__(self, model, dataset, config, state, *, client, options, data_ref: dict, **kw):
        kw["cache"] = None  # workers decode their own blocks
        super().__init__(model, dataset, config, state, **kw)
        self.opts = options
        spec = dict(run_id=uuid.uuid4().hex, data=data_ref["data"], data_options=data_ref.get("options", {}),
                    combine=options.combine,
                    config=asdict(config), n_features=model.n_features, n_outputs=model.head.n_outputs,
                    schema={"n_rows": dataset.n_rows, "n_blocks": dataset.n_blocks})
        self.session = ClusterSession(client, spec, say=self.say, max_restarts=options.max_restarts,
                                      n_workers=options.n_workers)
        self._updates: dict = {}      # worker -> its copy of the last round's result (applied next round)
        self._rounds: list = []       # the epoch's per-round figures
        self._epoch_totals = _Totals()
        self.downpour = None

    # -- the client's model ------------------------------------------------------------------
    def client_arrays(self) -> list[np.ndarray]:
        a = self.engine.arrays
        return [a.w] + [x for x in (a.acc, a.aux) if len(x)]

    def client_model(self) -> ch.Change:
        return ch.nonzero_export(self.client_arrays(), self.bstate)

    # -- the run -----------------------------------------------------------------------------
    def run(self, epochs: int) -> None:
        from .lbfgs import LbfgsDriver

        self.session.start(self.client_model())
        try:
            if self.opts.sync_mode == "lbfgs":
                LbfgsDriver(self).run(epochs)
                return
            if self.opts.sync_mode == "async":
                from .downpour import Downpour
                self.downpour = Downpour(self)
            super().run(epochs)
            if self.opts.polish == "lbfgs":
                LbfgsDriver(self, phase="polish").run(self.state.epoch + self.opts.polish_iterations)
        finally:
            self.session.stop()

    def _run_epoch(self) -> bool:
        if self.downpour is not None:
            return self.downpour.run_epoch()
        st, cfg = self.state, self.cfg
        epoch, lr = st.epoch, cfg.kernel_lr(st.epoch)
        order = block_order(self.dataset.n_blocks, epoch=epoch, seed=cfg.seed).tolist()
        queues = self.deal(self._not_done(order))
        while any(queues.values()):
            if self.signal_received is not None:
                return False
            start = time.perf_counter()
            try:
                result, futures = self._round(queues, epoch, lr)
            except WorkerLost as exc:
                self.session.restart(self.client_model(), str(exc))
                self._updates = {}
                self._epoch_totals.restarts += 1
                queues = self.deal(self._not_done(order))
                continue
            applied = time.perf_counter()
            ch.assign(result, self.client_arrays(), self.bstate)
            result.stats["client_apply_s"] = time.perf_counter() - applied
            trained = self._count(result, queues)
            wall = time.perf_counter() - start
            st.epoch_seconds += wall
            self._log_round(result, wall)
            if self._blocks_left is not None:
                self._blocks_left -= trained
                if self._blocks_left <= 0:
                    self.stop()
                    return False
            if (self.checkpoint_every is not None and any(queues.values())
                    and time.monotonic() - self._last_checkpoint >= self.checkpoint_every):
                self.checkpoint("running")
        return True

    def _not_done(self, order: list[int]) -> list[int]:
        done = set(self.state.done_blocks)
        return [b for b in order if b not in done]

    def deal(self, blocks: list[int]) -> dict:
        """The blocks, in order, dealt round-robin over the workers: {worker: its queue}."""
        workers = self.session.workers
        return {w: blocks[i::len(workers)] for i, w in enumerate(workers)}

    def _round(self, queues: dict, epoch: int, lr: float):
        """One round of every worker (see the module docstring); the combined result."""
        s, opts = self.session, self.opts
        lr = lr * opts.worker_lr_factor(len(s.workers))
        leaves = []
        for i, w in enumerate(s.workers):
            queue = queues.get(w, [])
            max_rows, max_seconds = opts.sync_rows, opts.sync_seconds
            if max_rows is not None:  # exactly the round's blocks: nothing is read ahead in vain
                rows = np.cumsum(self.dataset.block_rows[queue]) if queue else np.zeros(0)
                queue = queue[:int(np.searchsorted(rows, max_rows)) + 1]
            leaves.append((w, s.submit(remote.train_round, s.run_id, self._updates.get(w), queue, epoch, lr,
                                       self.state.step, max_rows, max_seconds, float(opts.delays.get(i, 0.0)),
                                       worker=w)))
        top = s.reduce(leaves, remote.combine, s.run_id)
        root = s.submit(remote.finalize, s.run_id, top, lr, worker=s.workers[0])
        copies = s.broadcast(root, s.workers)
        futures = [f for _, f in leaves] + [root] + list(copies.values())
        try:
            s.wait([root])
            fetch = time.perf_counter()
            result = root.result()
            result.stats["fetch_s"] = time.perf_counter() - fetch
        except WorkerLost:
            s.cancel(futures)
            raise
        self._updates = copies
        return result, futures

    def _count(self, result: ch.Change, queues: dict) -> int:
        """Move the round's blocks into the run's state (in the order the workers trained them)."""
        st = self.state
        trained = result.stats.get("blocks", [])
        owner = {b: w for w, q in queues.items() for b in q}
        for block, rows, nnz, loss, weight in trained:
            st.done_blocks.append(int(block))
            st.epoch_rows += int(rows)
            st.epoch_nnz += int(nnz)
            st.epoch_loss += loss
            st.epoch_weight += weight
            st.step += int(rows)
            queues[owner[block]].remove(block)
        return len(trained)

    def checkpoint(self, status: str, snapshot: bool = False) -> dict:
        """TrainingRun's checkpoint, with how the cluster trained in model.json."""
        o = self.opts
        self.model.meta["cluster"] = {"sync_mode": o.sync_mode, "sync_every": o.sync_every, "combine": o.combine,
                                      "polish": o.polish, "workers": len(self.session.workers)}
        return super().checkpoint(status, snapshot)

    # -- what an epoch reports ---------------------------------------------------------------------
    def _log_round(self, result: ch.Change, wall: float) -> None:
        k = len(self.session.workers)
        compute = max(result.stats.get("compute_s", [0.0]))
        figures = {"rows": int(sum(b[1] for b in result.stats.get("blocks", []))),
                   "coordinates": result.n_coordinates,
                   "bytes_up": int(result.stats.get("reduce_bytes", 0)),
                   "bytes_down": result.nbytes * (k - 1), "bytes_to_client": result.nbytes,
                   "compute_s": round(compute, 6), "comm_s": round(max(0.0, wall - compute), 6),
                   "round_s": round(wall, 6)}
        # Where the rest of the round went: the workers' applying of the last result and
        # gathering of their change, the merges, the client's fetch and apply (all seconds).
        for key in ("apply_s", "gather_s"):
            figures[key] = round(max(result.stats.get(key, [0.0])), 6)
        for key in ("merge_s", "fetch_s", "client_apply_s"):
            figures[key] = round(float(result.stats.get(key, 0.0)), 6)
        self._epoch_totals.add(figures)
        self._rounds.append(figures)

    def _score(self, record: dict) -> None:
        super()._score(record)
        t = self._epoch_totals
        report = {"mode": self.opts.sync_mode, "workers": len(self.session.workers), "rounds": t.rounds,
                  "bytes_up": t.bytes_up, "bytes_down": t.bytes_down, "bytes_to_client": t.bytes_to_client,
                  "bytes_per_round": round((t.bytes_up + t.bytes_down) / max(t.rounds, 1)),
                  "compute_s": round(t.compute_s, 4), "comm_s": round(t.comm_s, 4), "restarts": t.restarts}
        if self.opts.sync_mode == "average":
            report["combine"] = self.opts.combine
            report["per_round"] = self._rounds[:_MAX_ROUNDS_LOGGED]
        if self.downpour is not None:
            report.update(self.downpour.report())
        record["cluster"] = report
        self.say(f"  cluster: {report['workers']} workers, {t.rounds} rounds, "
                 f"{_size(t.bytes_up + t.bytes_down)} between workers, compute {t.compute_s:.2f} s, "
                 f"communication {t.comm_s:.2f} s" + (f", {t.restarts} restarts" if t.restarts else ""))
        self._rounds, self._epoch_totals = [], _Totals()


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


class _Totals:
    """An epoch's sums of the per-round figures."""

    def __init__(self):
        self.rounds = self.bytes_up = self.bytes_down = self.bytes_to_client = self.restarts = 0
        self.compute_s = self.comm_s = 0.0

    def add(self, f: dict) -> None:
        self.rounds += 1
        self.bytes_up += f["bytes_up"]
        self.bytes_down += f["bytes_down"]
        self.bytes_to_client += f["bytes_to_client"]
        self.compute_s += f["compute_s"]
        self.comm_s += f["comm_s"]
