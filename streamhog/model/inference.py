"""Scoring datasets with a model: metrics, in-memory predictions, predictions to Parquet.

Every function streams the dataset's blocks with a :class:`~streamhog.io.stream.BatchStream`
(reader threads) to ``threads`` consumer threads (io/threads.Workers) that score batches
against the shared weights with the nogil margin kernels, through the model's head
(model/heads.py: margins, predictions, metrics). The first error anywhere (a reader's
``DataFormatError``, a consumer's failure, Ctrl-C) stops the readers and every consumer,
and is raised in the caller's thread; no thread is left running. A training run's scoring
after each epoch (:class:`RepeatedScorer`) streams its rows once and then hands the kept rows
to the same consumers from memory.

A dataset with more features than the model is refused before anything is read: the model
has no weight for them (fewer features is fine: the missing ones simply never occur).
"""
from __future__ import annotations

import threading
from typing import Callable

import numpy as np

from ..io.outputs import check_predictions_path, output, predictions_problem
from ..errors import DataFormatError, IncompatibleDataError, StreamhogError
from ..io.formats import open_dataset
from ..io.hashing import hash_batch
from ..io.batch import take_rows
from ..io.stream import BatchKeeper, BatchStream, KeptBatches, block_order
from ..io.threads import Workers, default_readers, default_threads
from .labels import check_scoring_data

__all__ = ["evaluate", "predict", "predict_to_parquet", "scorer", "RepeatedScorer"]

#: What a :class:`RepeatedScorer` keeps in memory at most (the holdout or validation rows a
#: training run scores after every epoch): 256 MiB, about 30M non-zeros with values.
SCORED_ROWS_CACHE_BYTES = 256 << 20


def _dataset_for(model, data, require_labels: bool = False, *, check_rows: bool = True, need_rows: bool = False):
    """Open ``data`` (a path or URL, data in memory, or an opened dataset as is) and check it
    fits ``model``: its features, and (``check_rows``) labels that fit the model's loss (and
    rows: ``need_rows``)."""
    ds = open_dataset(data, require_labels=require_labels)
    n_weights = len(model.weights)
    if model.hash_bits is None and int(ds.n_features) > min(model.n_features, n_weights):
        raise IncompatibleDataError(
            f"{ds.path}: the dataset has n_features {int(ds.n_features)} but the model {model.path} has "
            f"n_features {model.n_features}: a model cannot score features it has no weights for"
        )
    if check_rows and getattr(ds, "has_labels", True):
        check_scoring_data(ds, model, need_rows=need_rows)
    return ds


def _workers(ds, works: list[Callable], name: str, *, ordered: bool, readers: int | None,
             on_error=None) -> Workers:
    readers = default_readers() if readers is None else int(readers)
    order = block_order(ds.n_blocks, epoch=0, seed=0, shuffle=False)
    # Enough blocks in flight to keep every consumer busy while readers fetch the next ones.
    stream = BatchStream(ds, order, readers=readers, capacity=max(4, readers + len(works)), ordered=ordered)
    return Workers(stream, works, name=name, on_error=on_error)


def _n_consumers(threads, ds) -> int:
    return min(default_threads(threads), max(1, ds.n_blocks))


def scorer(model) -> Callable:
    """``margins(batch, out=None)``: the model's margins of a batch (n_rows, or (n_rows, K) for
    softmax), hashing the feature ids first when the model was trained with --hash-bits."""
    head, intercept, bits = model.head, model.intercept, model.hash_bits
    w = np.asarray(model.weights).reshape(-1)  # a softmax matrix flat, row-major: entry j*K + c

    def margins(batch, out=None):
        if bits is not None:
            batch = hash_batch(batch, bits, merge=False)  # as training hashed them
        return head.margins(batch, w, intercept, out=out)
    return margins


def evaluate(model, data, *, threads: int | None = None, readers: int | None = None,
             rows: Callable | None = None) -> dict:
    """Metrics of ``model`` on ``data`` (a dataset path or URL, labelled data in memory, or an
    opened dataset).

    ``{"logloss", "auc", "accuracy", "n_examples"}`` for binary classifiers (logistic,
    hinge), ``{"logloss", "accuracy", "n_examples"}`` for softmax, ``{"rmse", "mae",
    "n_examples"}`` for regression; importance-weighted when the data has weights (see
    :mod:`streamhog.model.metrics`). ``threads`` consumer threads score batches (default: one
    per CPU), ``readers`` threads read them. ``rows(batch)``, when given, picks the rows of
    each batch to score (a boolean mask: a training run's holdout).
    """
    # A run's holdout rows: their labels were checked when the run began.
    ds = _dataset_for(model, data, require_labels=True, check_rows=rows is None, need_rows=True)
    n = _n_consumers(threads, ds)
    # One consumer takes the blocks in dataset order: its sums, and so the figures, are the
    # same to the last bit on every call (the readers' arrival order varies under load).
    return _metrics(model, ds, lambda works: _workers(ds, works, "eval", ordered=n == 1, readers=readers), n, rows)


def _metrics(model, ds, workers: Callable, n_consumers: int, rows: Callable | None = None,
             keep: Callable | None = None, *, picked: bool = False) -> dict:
    """The metrics of ``model`` over the batches ``workers(works)`` runs ``works`` on (only the
    rows ``rows(batch)`` picks, when given); ``keep(batch)`` sees each batch's scored rows.
    ``picked``: the batches hold picked rows already (a holdout may weigh nothing at all)."""
    margins = scorer(model)
    accumulators = [model.head.accumulator() for _ in range(n_consumers)]

    def worker(acc) -> Callable:
        def work(batch):
            if rows is not None:  # only the picked rows are scored: a holdout is a tenth of its block
                batch = take_rows(batch, rows(batch))
            if keep is not None:
                keep(batch)
            acc.update(margins(batch), batch.labels, batch.weights)
        return work

    workers([worker(a) for a in accumulators]).run()
    total = accumulators[0]
    for acc in accumulators[1:]:
        total.merge(acc)
    if rows is None and not picked and not total.sum_weight > 0:
        raise DataFormatError(ds.path, "every importance weight is 0: no metric is defined")
    return total.result()


class RepeatedScorer:
    """:func:`evaluate` of the same data, or of the same picked rows of it (a training run's
    holdout), with the model as it is after each epoch. The first call reads the data as
    evaluate() does and keeps the scored rows of every block while all of them fit in
    ``cap_bytes``; the later calls score those from memory, without reading or decoding:
    on the 1.8M-row benchmark set the holdout's scoring took a quarter of an epoch's time,
    most of it reading and scoring the rows not held out. Beyond the cap every call reads the
    data again, in bounded memory. The figures are evaluate()'s (the same rows, scored by
    the same kernels; as with evaluate(), one thread sums the blocks in dataset order, the
    same figures to the last bit whether read or kept; more threads' partial sums merge in the
    order the threads took the blocks, so the last bits may differ between calls)."""

    def __init__(self, data, *, threads: int | None = None, readers: int | None = None,
                 rows: Callable | None = None, cap_bytes: int | None = None):
        self.data, self.threads, self.readers, self.rows = data, threads, readers, rows
        self.cap_bytes = SCORED_ROWS_CACHE_BYTES if cap_bytes is None else cap_bytes
        self._ds = None
        self._kept: list | None = None  # the scored rows of every block, in block order
        self._fits = self.cap_bytes > 0

    @property
    def in_memory(self) -> bool:
        """The scored rows are held: the next call reads nothing."""
        return self._kept is not None

    def __call__(self, model) -> dict:
        if self._kept is not None:
            return _metrics(model, self._ds, lambda works: Workers(KeptBatches(self._kept), works, name="eval"),
                            _n_consumers(self.threads, self._ds), picked=self.rows is not None)
        ds = self._ds = _dataset_for(model, self.data, require_labels=True, check_rows=self.rows is None,
                                     need_rows=True)
        keeper = BatchKeeper(self.cap_bytes if self._fits else 0,
                             lambda b: (b.indptr, b.indices, b.values, b.labels, b.weights))
        n = _n_consumers(self.threads, ds)
        metrics = _metrics(model, ds, lambda works: _workers(ds, works, "eval", ordered=n == 1, readers=self.readers),
                           n, self.rows, keeper if keeper.fits else None)
        self._kept, self._fits = keeper.kept(), keeper.fits  # past the cap: read again each time
        return metrics


def predict(model, data, *, threads: int | None = None, readers: int | None = None,
            margins: bool = False) -> np.ndarray:
    """Predictions (float64) for every row of ``data``, in dataset order: the probability of the
    positive class for logistic models, the score ``x·w + b`` for hinge and squared; for softmax
    models an (n_rows, K) array of class probabilities. ``margins=True``: the margins ``x·w + b``
    (K of them for softmax) before the loss's link.

    Holds the whole result in memory (8 bytes a row and output); see :func:`predict_to_parquet`
    otherwise.
    """
    ds = _dataset_for(model, data)
    score, head, raw = scorer(model), model.head, margins
    n_rows = int(ds.n_rows)
    out = np.empty((n_rows,) if head.n_classes is None else (n_rows, head.n_classes), dtype=np.float64)
    n = _n_consumers(threads, ds)
    done = [0] * n  # rows scored per thread: all rows must be covered exactly once

    def worker(i: int) -> Callable:
        def work(batch):
            r0 = int(batch.row_start)
            if r0 < 0 or r0 + batch.n_rows > n_rows:
                raise StreamhogError(f"{batch.source}: rows {r0}..{r0 + batch.n_rows} lie outside the "
                                     f"dataset's {n_rows} rows")
            # Blocks are disjoint row ranges: threads write to separate slices of `out`.
            part = out[r0:r0 + batch.n_rows]
            m = score(batch, out=part)
            part[...] = m if raw else head.predictions(m)
            done[i] += batch.n_rows
        return work

    _workers(ds, [worker(i) for i in range(n)], "predict", ordered=False, readers=readers).run()
    if sum(done) != n_rows:
        raise StreamhogError(f"{ds.path}: scored {sum(done)} rows but the dataset has {n_rows}")
    return out


class _OrderedSink:
    """Writes tables in dataset order although threads finish batches in any order."""

    def __init__(self, writer):
        self.writer = writer
        self.cond = threading.Condition()
        self.rows = 0  # rows written = row_start of the next batch to write
        self.aborted = False

    def write(self, row_start: int, table) -> None:
        with self.cond:
            # The ordered stream hands out blocks in order, so the batch ahead of ours is
            # already held by another consumer: this wait always ends.
            while self.rows != row_start and not self.aborted:
                self.cond.wait()
            if self.aborted:
                raise StreamhogError("prediction writing aborted")  # never the reported error
            if table.num_rows:
                self.writer.write_table(table, row_group_size=table.num_rows)
            self.rows += table.num_rows
            self.cond.notify_all()

    def abort(self) -> None:
        with self.cond:
            self.aborted = True
            self.cond.notify_all()


def predict_to_parquet(model, data, out_path, *, overwrite: bool = False, threads: int | None = None,
                       readers: int | None = None) -> int:
    """Stream predictions of ``model`` on ``data`` to the Parquet file ``out_path``; return its rows.

    One row per example in dataset order: the head's prediction columns (``prediction``,
    float32: probability for logistic, score for hinge and squared; softmax: ``class`` and
    ``probability``) then ``label`` (float32, copied from the data). Memory is bounded by
    the blocks in flight. The file is written under a temporary name and renamed on
    success; an existing ``out_path`` is refused unless ``overwrite``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_predictions_path(out_path)
    ds = _dataset_for(model, data)
    margins, head = scorer(model), model.head
    metadata = {"streamhog_model": str(model.path), "loss": model.loss, "prediction": head.prediction_meaning,
                "dataset": str(ds.path)}
    schema = head.prediction_schema()
    with output(out_path, overwrite=overwrite, replaceable=predictions_problem) as tmp:
        writer = pq.ParquetWriter(tmp, schema.with_metadata(metadata), compression="NONE",
                                  use_dictionary=False, write_statistics=False)
        try:
            sink = _OrderedSink(writer)

            def work(batch):
                columns = head.prediction_columns(margins(batch)) + [np.asarray(batch.labels, dtype=np.float32)]
                sink.write(int(batch.row_start), pa.Table.from_arrays([pa.array(c) for c in columns], schema=schema))

            _workers(ds, [work] * _n_consumers(threads, ds), "predict", ordered=True, readers=readers,
                     on_error=sink.abort).run()
        finally:
            writer.close()  # also on error: output() then removes the partial file
        if sink.rows != ds.n_rows:
            raise StreamhogError(f"{ds.path}: wrote {sink.rows} predictions but the dataset has {ds.n_rows} rows")
    return sink.rows
