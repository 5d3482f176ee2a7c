"""``--sync-mode async``: Downpour SGD (Dean et al., NIPS 2012) over parameter-server shards.

Each worker trains a replica of the model on its blocks, ``--push-every`` blocks at a time
(a *step*); after each step it pushes the sparse change of its replica since its last push
to the shards (shards.py; one per worker, each holding a contiguous range of coordinates),
and every ``--fetch-every`` blocks it fetches from them the values of every coordinate
changed since its last fetch — never per example. Workers never wait for each other: the
client starts a worker's next step as soon as its previous one ends (its fetch ordered
after its own pushes), so fast workers push many times while a slow one computes; the
shards measure each push's staleness, scale every push by 1/(1 + staleness) and drop those
beyond ``--max-staleness`` under ``--stale-policy drop`` (shards.py). The epoch's staleness
figures (mean, max, pushes scaled, beyond the bound and dropped, the scaling rule) and
bytes are in its history record.

The client's model directory gets the shards' model at the end of each epoch (and when a
signal stops the run: the steps in flight finish first), where the checkpoint is written
(``--checkpoint-every`` has no mid-epoch effect in this mode). A worker lost mid-epoch
loses its shard: the epoch is redone from the client's model on the workers present.
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import WorkerLost
from ..io.stream import block_order
from . import changes as ch
from .shards import Shard
from .worker import _run, _task


# -- on the workers ---------------------------------------------------------------------------------
@_task
def ps_init(run_id: str, s: int, n_shards: int, model: ch.Change) -> None:
    run = _run(run_id)
    n = len(run.live.w)
    cfg = run.cfg
    ftrl = (cfg.lr, cfg.l1, cfg.l2, cfg.ftrl_beta) if run.optimizer == "ftrl" else None
    run.shard = Shard(s * n // n_shards, (s + 1) * n // n_shards, len(run.arrays(run.live)),
                      model.bstate if s == 0 else None, run.rules, run.optimizer, ftrl)
    run.shard.load(model)


@_task
def ps_push(run_id: str, worker: int, part: ch.Change, max_staleness: int, policy: str, scaling: str):
    return _run(run_id).shard.push(worker, part, max_staleness, policy, scaling)


@_task
def ps_fetch(run_id: str, worker: int, *after) -> ch.Change:
    """``after``: the worker's own pushes, which this fetch must follow."""
    return _run(run_id).shard.fetch(worker)


@_task
def ps_export(run_id: str) -> ch.Change:
    return _run(run_id).shard.export()


def _part(step: dict, j: int) -> ch.Change:
    return step["parts"][j]


def _stats(step: dict) -> dict:
    return step["stats"]


@_task
def async_step(run_id: str, fetched, queue, epoch: int, lr: float, t0: int, delay: float, bounds) -> dict:
    """Apply the fetched values, train ``queue``, and split the change since the last push by shard."""
    run = _run(run_id)
    fetch_bytes = 0
    for f in fetched or ():
        idx = f.index.astype(np.int64)
        for arrays in (run.arrays(run.live), run.arrays(run.base)):
            for target, values in zip(arrays, f.arrays):
                target[idx] = values
        if len(f.bstate):
            run.live.bstate[:] = f.bstate
            run.base.bstate[:] = f.bstate
        fetch_bytes += f.nbytes
    leaf = run.train(queue, epoch=epoch, lr=lr, t0=t0, max_rows=None, max_seconds=None, delay=delay)
    delta = ch.to_delta(leaf, run.arrays(run.base), run.base.bstate, run.rules)
    for base, live in zip(run.arrays(run.base), run.arrays(run.live)):
        base[leaf.index] = live[leaf.index]
    run.base.bstate[:] = run.live.bstate
    run.touched = np.zeros(0, np.int64)
    cuts = np.searchsorted(delta.index, bounds)
    parts = []
    for j in range(len(bounds) - 1):
        sl = slice(cuts[j], cuts[j + 1])
        parts.append(ch.Change("delta", delta.index[sl], [a[sl] for a in delta.arrays],
                               delta.bstate if j == 0 else np.zeros_like(delta.bstate), delta.count[sl],
                               trained=delta.trained if j == 0 else 0))
    stats = dict(leaf.stats, push_bytes=[sum(p.nbytes for p in parts)], fetch_bytes=[fetch_bytes])
    return {"parts": parts, "stats": stats}


# -- on the client ----------------------------------------------------------------------------------
class Downpour:
    """The client's side of async mode for a ClusterRun (see the module docstring)."""

    def __init__(self, run):
        self.run = run
        self.session = run.session
        self.report_ = {}
        self._init_shards()

    def _init_shards(self) -> None:
        s = self.session
        workers = s.workers
        n = len(self.run.engine.arrays.w)
        self.bounds = [k * n // len(workers) for k in range(len(workers) + 1)]
        first = s.client.scatter(self.run.client_model(), workers=[workers[0]], broadcast=False, hash=False)
        copies = s.broadcast(first, workers)
        s.wait([s.submit(ps_init, s.run_id, k, len(workers), copies[w], worker=w) for k, w in enumerate(workers)])
        self.shard_workers = list(workers)
        self.fresh = True  # replicas and shards hold the same model

    def run_epoch(self) -> bool:
        st = self.run.state
        saved = (list(st.done_blocks), st.step, st.epoch_rows, st.epoch_nnz, st.epoch_loss, st.epoch_weight)
        while True:
            try:
                return self._epoch()
            except WorkerLost as exc:  # the shards of the lost worker are gone: redo the epoch
                (st.done_blocks, st.step, st.epoch_rows, st.epoch_nnz, st.epoch_loss, st.epoch_weight) = (
                    list(saved[0]), *saved[1:])
                self.session.restart(self.run.client_model(), str(exc))
                self.run._epoch_totals.restarts += 1
                self._init_shards()

    def _epoch(self) -> bool:
        run, s, opts, st = self.run, self.session, self.run.opts, self.run.state
        epoch, lr = st.epoch, run.cfg.kernel_lr(st.epoch)
        order = block_order(run.dataset.n_blocks, epoch=epoch, seed=run.cfg.seed).tolist()
        done = set(st.done_blocks)
        queues = run.deal([b for b in order if b not in done])
        workers = s.workers
        n_shards = len(self.shard_workers)
        bound = opts.max_staleness if opts.max_staleness is not None else 2 * len(workers)
        fetch_steps = max(1, opts.fetch_every // opts.push_every)
        active, pushes, since_fetch = {}, [], {w: 0 for w in workers}
        start = time.perf_counter()
        stats = {"steps": 0, "push_bytes": 0, "fetch_bytes": 0, "compute_s": 0.0}

        def launch(k: int, w: str, fetched) -> None:
            blocks, queues[w] = queues[w][:opts.push_every], queues[w][opts.push_every:]
            step = s.submit(async_step, s.run_id, fetched, blocks, epoch, lr, st.step,
                            float(opts.delays.get(k, 0.0)), self.bounds, worker=w)
            parts = [s.submit(_part, step, j, worker=w) for j in range(n_shards)]
            mine = [s.submit(ps_push, s.run_id, k, parts[j], bound, opts.stale_policy, opts.stale_scaling,
                             worker=self.shard_workers[j]) for j in range(n_shards)]
            active[s.submit(_stats, step, worker=w)] = (k, w, mine)

        for k, w in enumerate(workers):
            if queues[w]:  # a later epoch starts from the shards' model: what changed since the last fetch
                launch(k, w, None if self.fresh else [s.submit(ps_fetch, s.run_id, k, worker=self.shard_workers[j])
                                                      for j in range(n_shards)])
        self.fresh = False
        stopped = False
        while active:
            finished = s.wait_any(list(active))
            for f in finished:
                k, w, mine = active.pop(f)
                pushes += mine
                got = f.result()
                blocks = got["blocks"]
                for block, rows, nnz, loss, weight in blocks:
                    st.done_blocks.append(int(block))
                    st.epoch_rows += int(rows)
                    st.epoch_nnz += int(nnz)
                    st.epoch_loss += loss
                    st.epoch_weight += weight
                    st.step += int(rows)
                stats["steps"] += 1
                stats["push_bytes"] += sum(got["push_bytes"])
                stats["fetch_bytes"] += sum(got["fetch_bytes"])
                stats["compute_s"] += sum(got["compute_s"])
                if run._blocks_left is not None:
                    run._blocks_left -= len(blocks)
                    stopped = stopped or run._blocks_left <= 0
                stopped = stopped or run.signal_received is not None
                if queues[w] and not stopped:
                    since_fetch[w] += 1
                    fetched = None
                    if since_fetch[w] >= fetch_steps:
                        since_fetch[w] = 0
                        fetched = [s.submit(ps_fetch, s.run_id, k, *mine, worker=self.shard_workers[j])
                                   for j in range(n_shards)]
                    launch(k, w, fetched)
        s.wait(pushes)
        staleness = [p.result() for p in pushes]
        self._collect()
        wall = time.perf_counter() - start
        st.epoch_seconds += wall
        self._report(stats, staleness, bound, wall)
        if stopped:
            if run._blocks_left is not None and run._blocks_left <= 0:
                run.stop()
            return False
        return True

    def _collect(self) -> None:
        """The shards' model into the client's model directory."""
        s = self.session
        parts = [s.submit(ps_export, s.run_id, worker=w) for w in self.shard_workers]
        s.wait(parts)
        arrays = self.run.client_arrays()
        for f in parts:
            part = f.result()
            for target, values in zip(arrays, part.arrays):
                target[part.index] = values
            if part.trained:
                self.run.bstate[:] = part.bstate

    def _report(self, stats: dict, staleness: list, bound: int, wall: float) -> None:
        taus = np.array([t for t, _ in staleness] or [0])
        factors = np.array([f for _, f in staleness] or [1.0])
        self.report_ = {"steps": stats["steps"], "pushes": len(staleness), "max_staleness": bound,
                        "staleness_mean": round(float(taus.mean()), 3), "staleness_max": int(taus.max()),
                        "pushes_scaled": int(((factors > 0) & (factors < 1)).sum()),
                        "pushes_beyond_bound": int((taus > bound).sum()),
                        "pushes_dropped": int((factors == 0).sum()), "stale_policy": self.run.opts.stale_policy,
                        "stale_scaling": self.run.opts.stale_scaling}
        t = self.run._epoch_totals
        t.rounds += stats["steps"]
        t.bytes_up += stats["push_bytes"]
        t.bytes_down += stats["fetch_bytes"]
        t.compute_s += stats["compute_s"]
        t.comm_s += max(0.0, wall - stats["compute_s"] / max(1, len(self.session.workers)))

    def report(self) -> dict:
        return dict(self.report_)
