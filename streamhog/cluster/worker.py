"""What runs inside a Dask worker process: its share of a run, kept between rounds.

Dask tasks are functions; a worker's model must outlive them. Each worker process keeps
its runs in a registry (``_RUNS``, keyed by the run's id): the dataset it opened (never
held in memory: blocks are streamed), the model it trains (``live``: weights, optimizer
state, intercept state, in memory — ``np.zeros`` pages cost nothing until touched) and
the round's base model (``base``: what every worker and the client held when the round
began). The client pins one task per worker and round (``train_round``), and the
reduction tasks (``combine``, ``finalize``) on the workers that hold the pieces, so that
changes move worker to worker, never through the client (client.py drives them).

A round trains blocks exactly as one machine's epoch engine does (training/engine.py):
the same kernels (kernels/block.train_block), reader threads and a bounded stream
(io/stream.BatchStream over a :class:`~streamhog.cluster.view.BlockSubset`), Hogwild!
consumer threads (io/threads.Workers), each block's rows in the order of (seed, epoch,
block) and the holdout of (row, seed), the learning-rate step counted from the global step
the client hands out. The intercept's bounded-staleness publication inside a worker is the
kernels' (sync_rows/sync_change for the worker's thread count); across workers it is
combined every round.
"""
from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict

import numpy as np

from ..errors import ClusterError, DataFormatError, DivergenceError, StreamhogError, WorkerLost
from ..io.formats import open_dataset
from ..io.hashing import hash_batch
from ..io.stream import BatchStream
from ..io.threads import Workers
from ..kernels.block import ModelArrays, UpdateRule, train_block
from ..kernels.linear import CONSTANT, INVSCALING
from ..kernels.losses import LOSS_IDS
from ..kernels.objective import block_loss_grad
from ..kernels.optimizers import OPTIMIZER_IDS
from ..kernels.sparse_sets import mark, union_positions
from ..model.directory import OPTIMIZER_STATE
from ..training.config import TrainConfig
from ..training.early_stopping import holdout_mask
from . import changes as ch
from .view import BlockSubset

_RUNS: "OrderedDict[str, WorkerRun]" = OrderedDict()
_LOCK = threading.Lock()
_MAX_RUNS = 4  # runs of clients that vanished are dropped, oldest first
_MASK_LIMIT = 1 << 28  # model entries up to which a round's coordinates are marked in a byte mask


class WorkerRun:
    """One run's state in one worker process (see the module docstring)."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.cfg = TrainConfig(**spec["config"])
        self.n_outputs = int(spec["n_outputs"])
        self.optimizer = self.cfg.optimizer
        self.rules = ch.ARRAY_RULES[self.optimizer]
        n_state = len(OPTIMIZER_STATE[self.optimizer])
        self.live = ModelArrays.zeros(spec["n_features"], n_state, self.n_outputs)
        self.base = ModelArrays.zeros(spec["n_features"], n_state, self.n_outputs)
        self.touched = np.zeros(0, np.int64)  # coordinates the current round changed
        # Marks of the coordinates a round's blocks touch (one byte per model entry, pages
        # committed as touched); past _MASK_LIMIT entries the ids are sorted instead.
        n_entries = len(self.live.w)
        self.mask = np.zeros(n_entries, np.uint8) if n_entries <= _MASK_LIMIT else None
        self.rule = UpdateRule.for_threads(
            self.cfg.threads, OPTIMIZER_IDS[self.optimizer], LOSS_IDS.get(self.cfg.loss, -1),
            INVSCALING if self.cfg.lr_schedule == "invscaling" else CONSTANT, power_t=self.cfg.power_t,
            l1=self.cfg.l1, l2=self.cfg.l2, beta=self.cfg.smoothing, use_lock=self.cfg.sync == "lock")
        self.dataset = open_dataset(spec["data"], **spec.get("data_options", {}))
        want = spec["schema"]
        if (self.dataset.n_rows, self.dataset.n_blocks) != (want["n_rows"], want["n_blocks"]):
            raise DataFormatError(spec["data"], f"this worker sees {self.dataset.n_rows:,} rows in "
                                                f"{self.dataset.n_blocks} blocks, the client {want['n_rows']:,} "
                                                f"in {want['n_blocks']}: not the same data (is the path shared?)")

    def arrays(self, which: ModelArrays) -> list[np.ndarray]:
        return [which.w] + [a for a in (which.acc, which.aux) if len(a)]

    # -- the model -------------------------------------------------------------------------------
    def load(self, change: ch.Change) -> None:
        """Both models become ``change`` (a values change: a whole model's non-zeros, or a round's result)."""
        ch.assign(change, self.arrays(self.base), self.base.bstate)
        ch.assign(change, self.arrays(self.live), self.live.bstate)
        self.touched = np.zeros(0, np.int64)

    def rollback(self) -> None:
        """Forget the current round: the live model back to the base (a round to redo)."""
        idx = self.touched
        for live, base in zip(self.arrays(self.live), self.arrays(self.base)):
            live[idx] = base[idx]
        self.live.bstate[:] = self.base.bstate
        self.touched = np.zeros(0, np.int64)

    # -- a round of training -------------------------------------------------------------------
    def train(self, queue, *, epoch: int, lr: float, t0: int, max_rows: int | None, max_seconds: float | None,
              delay: float = 0.0) -> ch.Change:
        """Train blocks of ``queue`` (base block ids, in order) until ``max_rows`` rows or
        ``max_seconds`` (at least one block); the leaf of this worker's round."""
        cfg = self.cfg
        view = BlockSubset(self.dataset, queue)
        lock = threading.Lock()
        done, touched = [], []
        counters = {"rows": 0, "step": int(t0), "stop": False}
        start = time.perf_counter()

        def work(batch) -> bool:
            with lock:
                over = (max_rows is not None and counters["rows"] >= max_rows) or (
                    max_seconds is not None and time.perf_counter() - start >= max_seconds)
                if counters["stop"] or (done and over):
                    counters["stop"] = True
                    return False
            if delay:
                time.sleep(delay)  # test hook: a slow worker
            block, row0 = view.base_block(batch.block), view.base_row_start(batch.block)
            rows = np.random.default_rng([cfg.seed, epoch, block]).permutation(batch.n_rows)
            nnz = batch.nnz
            if cfg.holdout:
                rows = rows[~holdout_mask(row0, batch.n_rows, cfg.holdout, cfg.seed)[rows]]
                nnz = int(np.diff(batch.indptr)[rows].sum())
            indices = None if cfg.hash_bits is None else hash_batch(batch, cfg.hash_bits, merge=False).indices
            with lock:
                t = counters["step"]
                counters["step"] += len(rows)
                counters["rows"] += len(rows)
            res = train_block(batch, rows, self.live, self.rule, lr=lr, t0=t, indices=indices)
            _check(res, batch, epoch, self.spec["n_features"], self.n_outputs, lr)
            ids = batch.indices if indices is None else indices
            if self.mask is not None:
                mark(ids, self.n_outputs, self.mask)
                used = None
            else:
                used = np.unique(ids).astype(np.int64)
                if self.n_outputs > 1:
                    used = (used[:, None] * self.n_outputs + np.arange(self.n_outputs)).ravel()
            with lock:
                if used is not None:
                    touched.append(used)
                done.append([block, len(rows), nnz, res.loss_sum, res.weight_sum])
            return True

        stream = BatchStream(view, np.arange(view.n_blocks), readers=min(cfg.readers, max(1, view.n_blocks)),
                             capacity=cfg.capacity, ordered=cfg.threads == 1)
        Workers(stream, [work] * cfg.threads, name="cluster-train").run()
        seconds = time.perf_counter() - start
        post = time.perf_counter()
        if self.mask is not None:  # ascending and distinct already: no sort
            new = np.flatnonzero(self.mask)
            self.mask[new] = 0
        else:
            new = np.unique(np.concatenate(touched)) if touched else np.zeros(0, np.int64)
        self.touched = union_positions(self.touched, new)[0] if len(self.touched) else new
        index = self.touched.astype(ch.index_dtype(len(self.live.w)))
        leaf = ch.values_of(self.arrays(self.live), self.live.bstate, index, trained=bool(done))
        leaf.stats = {"blocks": done, "compute_s": [round(seconds, 6)], "leaf_bytes": [leaf.nbytes],
                      "leaf_coordinates": [leaf.n_coordinates], "gather_s": [round(time.perf_counter() - post, 6)]}
        return leaf

    # -- the objective of full-batch L-BFGS --------------------------------------------------------
    def loss_grad(self, point: "Point", queue) -> "GradPart":
        """Sum of s_i loss_i and its gradient over the (non-held-out) rows of ``queue`` at ``point``."""
        cfg = self.cfg
        n = self.spec["n_features"]
        w = np.zeros(n, np.float64)
        w[point.index] = point.values
        view = BlockSubset(self.dataset, queue)
        grads = [np.zeros(n + 1, np.float64) for _ in range(cfg.threads)]
        sums = [[0.0, 0.0, 0] for _ in range(cfg.threads)]
        loss_id = LOSS_IDS[cfg.loss]
        start = time.perf_counter()

        def worker(t):
            def work(batch):
                row0 = view.base_row_start(batch.block)
                rows = np.arange(batch.n_rows, dtype=np.int64)
                if cfg.holdout:
                    rows = rows[~holdout_mask(row0, batch.n_rows, cfg.holdout, cfg.seed)]
                ids = batch.indices if cfg.hash_bits is None else hash_batch(batch, cfg.hash_bits, merge=False).indices
                values = batch.values if batch.values is not None else np.zeros(0, np.float32)
                weights = batch.weights if batch.weights is not None else np.zeros(0, np.float32)
                loss, weight, flags = block_loss_grad(batch.indptr, ids, values, batch.values is not None,
                                                      batch.labels, weights, batch.weights is not None, rows, w,
                                                      float(point.intercept), loss_id, grads[t])
                if flags:
                    _check_objective(flags, batch, n)
                sums[t][0] += loss
                sums[t][1] += weight
                sums[t][2] += len(rows)
            return work

        stream = BatchStream(view, np.arange(view.n_blocks), readers=min(cfg.readers, max(1, view.n_blocks)),
                             capacity=cfg.capacity)
        Workers(stream, [worker(t) for t in range(cfg.threads)], name="cluster-objective").run()
        g = grads[0]
        for other in grads[1:]:
            g += other
        idx = np.flatnonzero(g[:n])
        return GradPart(idx, g[idx], float(g[n]), sum(s[0] for s in sums), sum(s[1] for s in sums),
                        sum(s[2] for s in sums), [round(time.perf_counter() - start, 6)])


class Point:
    """A full-batch iterate on its way to the workers: the non-zero weights and the intercept."""

    def __init__(self, w: np.ndarray, intercept: float):
        self.index = np.flatnonzero(w)
        self.values = w[self.index]
        self.intercept = float(intercept)

    @property
    def nbytes(self) -> int:
        return int(self.index.nbytes + self.values.nbytes + 8)


class GradPart:
    """A partial sum of the objective over some workers: the gradient's non-zeros (float64)."""

    def __init__(self, index, values, g_intercept, loss, weight, rows, compute_s):
        self.index, self.values, self.g_intercept = index, values, g_intercept
        self.loss, self.weight, self.rows, self.compute_s = loss, weight, rows, compute_s
        self.moved = 0  # bytes of the partial sums moved between workers to build this one

    @property
    def nbytes(self) -> int:
        return int(self.index.nbytes + self.values.nbytes + 32)

    def __add__(self, other: "GradPart") -> "GradPart":
        idx = np.union1d(self.index, other.index)
        v = np.zeros(len(idx))
        v[np.searchsorted(idx, self.index)] += self.values
        v[np.searchsorted(idx, other.index)] += other.values
        out = GradPart(idx, v, self.g_intercept + other.g_intercept, self.loss + other.loss,
                       self.weight + other.weight, self.rows + other.rows, self.compute_s + other.compute_s)
        out.moved = self.moved + other.moved + other.nbytes
        return out


def _check(res, batch, epoch: int, n_features: int, n_outputs: int, lr: float) -> None:
    if res.bad_label:
        raise DataFormatError(batch.source, f"a label is not a class id 0..{n_outputs - 1}; the block was refused")
    if res.out_of_range:
        raise DataFormatError(batch.source, f"a feature index is >= the model's n_features {n_features:,}; "
                                            "the block was refused")
    if res.bad_call:
        raise RuntimeError(f"{batch.source}: the training kernel refused the model's arrays")
    if res.n_nonfinite or not np.isfinite(res.loss_sum):
        raise DivergenceError(f"training diverged in epoch {epoch + 1}, {batch.source}: the margin became NaN "
                              f"or infinite; lower --lr (now {lr:g})")


def _check_objective(flags: int, batch, n_features: int) -> None:
    from ..kernels.objective import OUT_OF_RANGE

    if flags & OUT_OF_RANGE:
        raise DataFormatError(batch.source, f"a feature index is >= the model's n_features {n_features:,}")
    raise DivergenceError(f"{batch.source}: a margin is not finite at this L-BFGS iterate")


# -- the tasks the client submits (module-level functions: what Dask ships by reference) -----------
def _task(fn):
    """A task's streamhog errors cross to the client as ClusterError (its message kept; the
    classes with structured constructors do not unpickle), divergence as itself."""
    @functools.wraps(fn)
    def task(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (DivergenceError, ClusterError):
            raise
        except StreamhogError as exc:
            raise ClusterError(str(exc)) from None
    return task


def _run(run_id: str) -> WorkerRun:
    with _LOCK:
        run = _RUNS.get(run_id)
    if run is None:  # a worker restarted under the same address: as good as lost, the client restarts the run
        raise WorkerLost(f"run {run_id} is not known to this worker (it was restarted)")
    return run


@_task
def start_run(spec: dict, model: ch.Change | None) -> int:
    """Open the data and set up the model (``model``: a whole model's non-zeros, or None: zeros)."""
    run = WorkerRun(spec)
    if model is not None:
        run.load(model)
    with _LOCK:
        _RUNS[spec["run_id"]] = run
        while len(_RUNS) > _MAX_RUNS:
            _RUNS.popitem(last=False)
    return int(run.dataset.n_blocks)


def end_run(run_id: str) -> None:
    with _LOCK:
        _RUNS.pop(run_id, None)


@_task
def train_round(run_id: str, update: ch.Change | None, queue, epoch: int, lr: float, t0: int,
                max_rows: int | None, max_seconds: float | None, delay: float = 0.0) -> ch.Change:
    run = _run(run_id)
    start = time.perf_counter()
    if update is not None:
        run.load(update)
    applied = time.perf_counter() - start
    leaf = run.train(queue, epoch=epoch, lr=lr, t0=t0, max_rows=max_rows, max_seconds=max_seconds, delay=delay)
    leaf.stats["apply_s"] = [round(applied, 6)]
    return leaf


@_task
def combine(run_id: str, a: ch.Change, b: ch.Change) -> ch.Change:
    """Reduce two changes where ``a`` lives (``b`` was moved here: its bytes are counted)."""
    run = _run(run_id)
    moved = b.nbytes
    da = ch.to_delta(a, run.arrays(run.base), run.base.bstate, run.rules)
    db = ch.to_delta(b, run.arrays(run.base), run.base.bstate, run.rules)
    start = time.perf_counter()
    out = ch.merge(da, db, run.rules)
    out.stats["reduce_bytes"] = out.stats.get("reduce_bytes", 0) + moved
    out.stats["merge_s"] = out.stats.get("merge_s", 0.0) + time.perf_counter() - start
    return out


@_task
def finalize(run_id: str, partial: ch.Change, lr: float) -> ch.Change:
    run = _run(run_id)
    if partial.kind == "values":  # a single leaf: its values are the result
        return partial
    cfg, combine_rule = run.cfg, run.spec["combine"]
    ftrl = (lr, cfg.l1, cfg.l2, cfg.ftrl_beta) if run.optimizer == "ftrl" else None
    return ch.finalize(partial, run.arrays(run.base), run.base.bstate, run.rules, combine_rule, ftrl)


def relay(x):
    """Identity, pinned to a worker: a copy of ``x`` moves there (one edge of a broadcast tree)."""
    return x


@_task
def rollback(run_id: str) -> None:
    _run(run_id).rollback()


@_task
def export(run_id: str) -> ch.Change:
    """This worker's base model, sparsely (to initialise a worker that joined)."""
    run = _run(run_id)
    return ch.nonzero_export(run.arrays(run.base), run.base.bstate)


@_task
def loss_grad(run_id: str, point: Point, queue) -> GradPart:
    return _run(run_id).loss_grad(point, queue)


def add_grads(a: GradPart, b: GradPart) -> GradPart:
    return a + b
