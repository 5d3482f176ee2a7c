"""Scoring interaction data with a factorization model: metrics and predictions, streamed.

Blocks come from a :class:`~streamhog.io.stream.BatchStream` (reader threads, bounded buffer)
to ``threads`` consumer threads that run the nogil ``predict_block`` kernel against the
shared memory-mapped factors. The first error anywhere stops every thread and is raised
in the caller's thread. A training run's scoring after each epoch (:class:`RepeatedScorer`)
streams its rows once and then hands the kept rows to the same consumers from memory.
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import replace
from functools import cached_property
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ConfigError
from .._fs.atomic import atomic_output
from ..io.outputs import check_predictions_path, predictions_problem
from ..io.stream import BatchKeeper, BatchStream, KeptBatches, block_order
from . import kernels as K
from .format import InteractionBatch, InteractionDataset
from .implicit_kernels import SCORING_EPOCH, implicit_sums, negatives_key
from .model import PARAMETERS, MFModel, _readonly, started_rows

#: Columns of :func:`predict_to_parquet`'s output, one row per input row, in input order.
PREDICTION_COLUMNS = ("user", "item", "prediction", "rating")
_EMPTY_BOOL = np.zeros(0, bool)
_EMPTY_F32 = np.zeros(0, np.float32)
for _a in (_EMPTY_BOOL, _EMPTY_F32):
    _a.flags.writeable = False
#: What a :class:`RepeatedScorer` keeps in memory at most: the scored rows of a holdout (or
#: validation data) up to this size are read from the files once per run, not after every
#: epoch. 256 MiB: about 20M ratings with 32-bit ids.
SCORED_ROWS_CACHE_BYTES = 256 << 20


def n_threads(threads: int | None) -> int:
    n = (os.cpu_count() or 1) if not threads else int(threads)
    if n < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    return n


def run_consumers(stream: BatchStream, workers: list[Callable]) -> None:
    """Feed every batch of ``stream`` to one of ``workers``, each in its own thread (the
    caller's when there is one); the first exception is raised here once all have stopped."""
    errors: list[BaseException] = []

    def loop(work: Callable) -> None:
        try:
            while (batch := stream.next_batch()) is not None:
                work(batch)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)
            stream.close()  # the others see the end of the stream and return

    with stream:
        if len(workers) == 1:
            loop(workers[0])
        else:
            threads = [threading.Thread(target=loop, args=(w,), name=f"streamhog-mf-{i}", daemon=True)
                       for i, w in enumerate(workers)]
            for t in threads:
                t.start()
            try:
                for t in threads:
                    t.join()
            except BaseException:  # Ctrl-C while waiting: stop everyone, then report it
                stream.close()
                for t in threads:
                    t.join()
                raise
    if errors:
        raise errors[0]


def open_stream(ds, threads: int, ordered: bool = False) -> BatchStream:
    readers = max(1, min(threads, os.cpu_count() or 1))
    order = block_order(ds.n_blocks, epoch=0, seed=0, shuffle=False)
    return BatchStream(ds, order, readers=readers, capacity=max(4, readers + threads), ordered=ordered)


class _Scorer:
    """Predictions of a batch's rows with one model (arrays mapped read-only once): the
    kernel's (ratings, or logits under implicit feedback) by ``__call__``, what the user
    sees (model.outputs) by ``outputs``."""

    def __init__(self, model: MFModel, clip: bool, pool: np.ndarray | None = None):
        self.model = model
        self._pool = pool  # implicit feedback's negatives: a training run's pool, else found once when needed
        self.P, self.Q, self.bu, self.bi = (_readonly(model.arrays[n]) for n in PARAMETERS)
        self.mu = model.mu
        self.lo, self.hi = model.clip_range(clip)

    def __call__(self, batch) -> np.ndarray:
        out = np.empty(batch.n_rows, np.float64)
        K.predict_block(batch.users, batch.items, self.P, self.Q, self.bu, self.bi, self.mu, self.lo, self.hi, out)
        return out

    def outputs(self, batch) -> np.ndarray:
        return self.model.outputs(self(batch))

    def implicit_sums(self, batch) -> tuple:
        """implicit_kernels.implicit_sums of the batch's rows, negatives drawn from the pool with
        a key fixed for the block (the same draws whenever the same rows are scored)."""
        w = batch.weights
        key = negatives_key(np.uint64(0), np.uint64(SCORING_EPOCH), np.uint64(max(batch.block, 0)))
        return implicit_sums(batch.users, batch.items, w if w is not None else _EMPTY_F32, w is not None, self.P,
                             self.Q, self.bu, self.bi, self.mu, self.pool, self.model.negatives, key)

    @cached_property
    def pool(self) -> np.ndarray:
        """The negatives' pool: the given one, else the items the model saw (the started rows of
        its item factors, read along their data extents; only scoring of implicit feedback asks)."""
        pool = self._pool if self._pool is not None else started_rows(self.model.path / "item_factors.npy")
        return _readonly(np.ascontiguousarray(pool, dtype=np.int64))


def metrics_from_sums(se: float, ae: float, ws: float, n: int) -> dict:
    """{"rmse", "mae", "n_examples"} from the weighted sums of squared and absolute errors."""
    return {"rmse": math.sqrt(se / ws) if ws else math.nan, "mae": ae / ws if ws else math.nan, "n_examples": n}


def implicit_metrics(loss: float, ws: float, wins: float, pairs: float, n: int) -> dict:
    """{"logloss", "auc", "n_examples"} of implicit feedback: the logistic loss per observation
    (each positive and its sampled negatives) and the sampled AUC; n_examples counts positives."""
    return {"logloss": loss / ws if ws else math.nan, "auc": wins / pairs if pairs else math.nan, "n_examples": n}


def _selected(batch: InteractionBatch, select: np.ndarray | None) -> InteractionBatch:
    """The batch's rows where ``select`` (all when None), as read-only arrays."""
    if select is None:
        return batch
    w, r = batch.weights, batch.ratings
    return replace(batch, users=_readonly(batch.users[select]), items=_readonly(batch.items[select]),
                   ratings=None if r is None else _readonly(r[select]), weights=None if w is None else _readonly(w[select]))


def _block_sums(score: "_Scorer", batch: InteractionBatch) -> tuple:
    """(sum s e², sum s |e|, sum s, rows) of every row of ``batch``; under implicit feedback
    (sum s loss, sum s, the pairs' wins, the pairs, rows)."""
    if score.model.implicit:
        return (*score.implicit_sums(batch), batch.n_rows)
    w = batch.weights
    se, ae, ws = K.error_sums(_readonly(score(batch)), batch.ratings, w if w is not None else _EMPTY_F32,
                              w is not None, _EMPTY_BOOL, False)
    return se, ae, ws, batch.n_rows


def _score_blocks(model: MFModel, stream, threads: int, clip: bool, rows: Callable | None = None,
                  keep: Callable | None = None, pool: np.ndarray | None = None) -> dict:
    """The metrics of ``model`` on every batch of ``stream`` (only the rows ``rows(batch)``
    selects, when given); ``keep(batch)`` sees each batch's scored rows."""
    score = _Scorer(model, clip, pool)
    # Each block's sums, added up in block order at the end: the figures do not depend on
    # which thread scored which block (per-thread running sums differed in the last bit),
    # nor on whether the rows came from the files or from a RepeatedScorer's memory.
    parts: list[dict] = [{} for _ in range(threads)]

    def worker(done: dict) -> Callable:
        def work(batch) -> None:
            # Only the selected rows are predicted: a 10% holdout costs a tenth of the block.
            batch = _selected(batch, rows(batch) if rows is not None else None)
            if keep is not None:
                keep(batch)
            done[batch.block] = _block_sums(score, batch)
        return work

    run_consumers(stream, [worker(done) for done in parts])
    blocks = {b: v for done in parts for b, v in done.items()}
    total = [0.0] * (5 if model.implicit else 4)
    for b in sorted(blocks):
        total = [t + v for t, v in zip(total, blocks[b])]
    return implicit_metrics(*total[:4], int(total[4])) if model.implicit else metrics_from_sums(*total[:3],
                                                                                                  int(total[3]))


def evaluate(model: MFModel, data, *, threads: int | None = None, rows: Callable | None = None,
             clip: bool = True) -> dict:
    """RMSE and MAE (importance-weighted when the data has weights) of ``model`` on ``data``
    (a path or an InteractionDataset); under implicit feedback the logistic loss and the
    sampled AUC of every row against negatives drawn from the items the model saw
    (implicit_metrics). ``rows(batch)``, when given, selects the rows scored (a boolean
    mask): the holdout."""
    ds = data if isinstance(data, InteractionDataset) else InteractionDataset(data)
    if not model.implicit:
        ds.require_ratings("evaluation")
    threads = n_threads(threads)
    return _score_blocks(model, open_stream(ds, threads), threads, clip, rows)


class RepeatedScorer:
    """:func:`evaluate` of the same data, or the same selected rows of it (a holdout), after
    every epoch. The first call reads the files as evaluate() does and keeps each block's
    scored rows while all of them fit in ``cap_bytes``; the later calls score those from
    memory, without reading or decoding anything: on a 5M-rating set with a 10% holdout the
    scoring after each epoch cost a third of the epoch. The figures are evaluate()'s to the
    last bit (the same rows, the same per-block sums added in block order). Data whose scored
    rows exceed the cap is read again every time, in bounded memory."""

    def __init__(self, data, *, threads: int | None = None, rows: Callable | None = None, clip: bool = True,
                 cap_bytes: int | None = None, implicit: bool = False, pool: np.ndarray | None = None):
        self.dataset = data if isinstance(data, InteractionDataset) else InteractionDataset(data)
        if not implicit:
            self.dataset.require_ratings("evaluation")
        self.threads, self.rows, self.clip, self.pool = n_threads(threads), rows, clip, pool
        self.cap_bytes = SCORED_ROWS_CACHE_BYTES if cap_bytes is None else cap_bytes
        self._kept: list[InteractionBatch] | None = None  # the scored rows, in block order
        self._fits = self.cap_bytes > 0

    @property
    def in_memory(self) -> bool:
        """The scored rows are held: the next call reads nothing."""
        return self._kept is not None

    def __call__(self, model: MFModel) -> dict:
        if self._kept is not None:
            return _score_blocks(model, KeptBatches(self._kept), self.threads, self.clip, pool=self.pool)
        keeper = BatchKeeper(self.cap_bytes if self._fits else 0,
                             lambda b: (b.users, b.items, b.ratings, b.weights))
        metrics = _score_blocks(model, open_stream(self.dataset, self.threads), self.threads, self.clip,
                                self.rows, keeper if keeper.fits else None, self.pool)
        self._kept, self._fits = keeper.kept(), keeper.fits  # past the cap: read again each time
        return metrics


def predict(model: MFModel, data, *, threads: int | None = None, clip: bool = True) -> np.ndarray:
    """Predicted ratings of every row of ``data``, in dataset order (float64)."""
    ds = data if isinstance(data, InteractionDataset) else InteractionDataset(data)
    out = np.empty(ds.n_rows, np.float64)
    score = _Scorer(model, clip)

    def work(batch) -> None:
        out[batch.row_start:batch.row_start + batch.n_rows] = score.outputs(batch)

    threads = n_threads(threads)
    run_consumers(open_stream(ds, threads), [work] * threads)
    return out


def predict_to_parquet(model: MFModel, data, out_path, *, threads: int | None = None, clip: bool = True,
                       overwrite: bool = False) -> int:
    """Write one row per input row (user, item, prediction float32, rating) to ``out_path``
    in input order, with memory bounded by a few blocks; returns the number of rows. The
    file appears only when complete. Data of (user, item) pairs without ratings gives no
    rating column."""
    ds = data if isinstance(data, InteractionDataset) else InteractionDataset(data)
    score = _Scorer(model, clip)
    rated = ds.has_ratings
    schema = pa.schema([pa.field("user", pa.uint64(), nullable=False), pa.field("item", pa.uint64(), nullable=False),
                        pa.field("prediction", pa.float32(), nullable=False)]
                       + ([pa.field("rating", pa.float32(), nullable=False)] if rated else []),
                       # What predict --overwrite recognises as its own output (io/outputs.py).
                       metadata={"streamhog_model": str(model.path), "loss": "mf", "prediction": "rating"})
    n = 0
    out_path = check_predictions_path(out_path)
    with atomic_output(out_path, overwrite=overwrite, replaceable=predictions_problem) as tmp:
        with pq.ParquetWriter(tmp, schema) as writer, open_stream(ds, n_threads(threads), ordered=True) as stream:
            # In order, in this thread: scoring is far cheaper than writing.
            for batch in stream:
                cols = [pa.array(batch.users.astype(np.uint64, copy=False)), pa.array(batch.items.astype(np.uint64, copy=False)),
                        pa.array(score.outputs(batch).astype(np.float32))] + ([pa.array(batch.ratings)] if rated else [])
                writer.write_table(pa.Table.from_arrays(cols, schema=schema))
                n += batch.n_rows
    return n
