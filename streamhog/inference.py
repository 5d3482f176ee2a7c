"""Scoring datasets with a model: metrics, in-memory predictions, predictions to Parquet.

Every function streams the dataset's blocks with a :class:`~streamhog.stream.BatchStream`
(reader threads) to ``threads`` consumer threads that score batches with the nogil
:func:`~streamhog.kernels.predict.csr_margins` kernel against the shared weight vector.
The first error anywhere (a reader's ``DataFormatError``, a consumer's failure, Ctrl-C)
stops the readers and every consumer, and is raised in the caller's thread; no thread is
left running.

A dataset with more features than the model is refused before anything is read: the model
has no weight for them (fewer features is fine: the missing ones simply never occur).
"""
from __future__ import annotations

import os
import threading
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.special import expit

from .atomic import atomic_output
from .config import default_readers
from .errors import DataFormatError, StreamhogError
from .formats import open_dataset
from .hashing import hash_batch
from .labels import check_scoring_data
from .kernels.predict import BAD_INDPTR, INDEX_OUT_OF_RANGE, batch_margins, weight_vector
from .kernels.softmax import softmax_margins, softmax_probabilities
from .metrics import MetricAccumulator, MulticlassAccumulator
from .outputs import check_predictions_path, predictions_problem
from .stream import BatchStream, block_order

__all__ = ["IncompatibleDataError", "evaluate", "predict", "predict_to_parquet", "PREDICTION_SCHEMA"]

#: Columns of :func:`predict_to_parquet`'s output.
PREDICTION_SCHEMA = pa.schema([
    pa.field("prediction", pa.float32(), nullable=False),
    pa.field("label", pa.float32(), nullable=False),
])


#: Columns of a softmax model's predictions.
MULTICLASS_SCHEMA = pa.schema([
    pa.field("class", pa.int32(), nullable=False),
    pa.field("probability", pa.float32(), nullable=False),
    pa.field("label", pa.float32(), nullable=False),
])


class IncompatibleDataError(StreamhogError, ValueError):
    """The dataset does not fit the model (more features than the model has weights)."""


def _dataset_for(model, data, *, check_rows: bool = True, need_rows: bool = False):
    """Open ``data`` (a path, or an opened dataset as is) and check it fits ``model``: its
    features, and (``check_rows``) labels that fit the model's loss (and rows: ``need_rows``)."""
    ds = open_dataset(data) if isinstance(data, (str, os.PathLike)) else data
    n_weights = len(model.weights)
    if model.hash_bits is None and int(ds.n_features) > min(model.n_features, n_weights):
        raise IncompatibleDataError(
            f"{ds.path}: the dataset has n_features {int(ds.n_features)} but the model {model.path} has "
            f"n_features {model.n_features}: a model cannot score features it has no weights for"
        )
    if check_rows:
        check_scoring_data(ds, model, need_rows=need_rows)
    return ds


def _n_threads(threads: int | None) -> int:
    n = (os.cpu_count() or 1) if threads is None else int(threads)
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return n


def _stream(ds, *, ordered: bool, consumers: int, readers: int | None) -> BatchStream:
    readers = default_readers(os.cpu_count() or 1) if readers is None else int(readers)
    order = block_order(ds.n_blocks, epoch=0, seed=0, shuffle=False)
    # Enough blocks in flight to keep every consumer busy while readers fetch the next ones.
    return BatchStream(ds, order, readers=readers, capacity=max(4, readers + consumers), ordered=ordered)


def _consume(stream: BatchStream, workers: list[Callable], name: str,
             on_error: Callable[[], None] | None = None) -> None:
    """Feed every batch of ``stream`` to one of ``workers``, each in its own thread.

    The first exception (from the stream or a worker) is raised here after every thread has
    stopped: the failing thread closes the stream, so the others see its end and return.
    """
    errors: list[BaseException] = []
    lock = threading.Lock()

    def stop(exc: BaseException | None) -> None:
        if exc is not None:
            with lock:
                errors.append(exc)
        if on_error is not None:
            on_error()  # wake consumers waiting on something other than the stream
        stream.close()

    def loop(work: Callable) -> None:
        try:
            while (batch := stream.next_batch()) is not None:
                work(batch)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            stop(exc)

    with stream:
        if len(workers) == 1:
            loop(workers[0])  # in the caller's thread: nothing to start or join
        else:
            threads = [threading.Thread(target=loop, args=(w,), name=f"streamhog-{name}-{i}", daemon=True)
                       for i, w in enumerate(workers)]
            for t in threads:
                t.start()
            try:
                for t in threads:
                    t.join()
            except BaseException as exc:  # Ctrl-C while waiting: stop everyone, then report it
                stop(None)
                for t in threads:
                    t.join()
                raise exc
    if errors:
        raise errors[0]


def _scorer(model) -> Callable:
    """``margins(batch, out=None)``: the model's margins of a batch (n_rows, or (n_rows, K) for
    softmax), hashing the feature ids first when the model was trained with --hash-bits."""
    intercept, bits, k = model.intercept, model.hash_bits, model.n_classes
    if k is None:
        w = weight_vector(model.weights)
    else:
        w = np.asarray(model.weights).reshape(-1)  # (n_features, K) row-major, flat: entry j*K + c

    def margins(batch, out=None):
        if bits is not None:
            batch = hash_batch(batch, bits, merge=False)  # as training hashed them
        if k is None:
            return batch_margins(batch, w, intercept, out=out)
        return softmax_batch_margins(batch, w, k, intercept)
    return margins


def softmax_batch_margins(batch, w_flat: np.ndarray, n_classes: int, intercepts: np.ndarray) -> np.ndarray:
    """Margins (n_rows, K) of a softmax model's flat weights; ValueError on a bad batch."""
    out = np.empty((batch.n_rows, n_classes), dtype=np.float64)
    values = batch.values if batch.values is not None else np.zeros(0, np.float32)
    code, row, pos = softmax_margins(batch.indptr, batch.indices, values, batch.values is not None, w_flat,
                                     n_classes, np.ascontiguousarray(intercepts, dtype=np.float64), out)
    if code == INDEX_OUT_OF_RANGE:
        raise ValueError(f"{batch.source or 'batch'}: row {row}: feature index {int(batch.indices[pos])} >= "
                         f"model n_features {len(w_flat) // n_classes}")
    if code != 0:
        raise ValueError(f"{batch.source or 'batch'}: inconsistent row offsets or shapes (code {code})"
                         + ("" if code != BAD_INDPTR else ": indptr must have n_rows + 1 entries, never decrease"))
    return out


def _to_predictions(loss: str, margins: np.ndarray) -> np.ndarray:
    """In place: the probability of the positive class for logistic, the score otherwise."""
    if loss == "logistic":
        expit(margins, out=margins)  # stable sigmoid; ufuncs release the GIL
    return margins


def evaluate(model, data, *, threads: int | None = None, readers: int | None = None,
             rows: Callable | None = None) -> dict:
    """Metrics of ``model`` on ``data`` (a dataset path or an opened dataset).

    ``{"logloss", "auc", "accuracy", "n_examples"}`` for classifiers (logistic, hinge),
    ``{"rmse", "mae", "n_examples"}`` for squared loss; importance-weighted when the data
    has weights (see :mod:`streamhog.metrics`). ``threads`` consumer threads score batches
    (default: one per CPU), ``readers`` threads read them (default 2). ``rows(batch)``, when
    given, picks the rows of each batch to score (a boolean mask: a training run's holdout).
    """
    ds = _dataset_for(model, data, check_rows=rows is None, need_rows=True)  # holdout rows: checked by train
    margins = _scorer(model)
    n = min(_n_threads(threads), max(1, ds.n_blocks))
    accumulators = [MetricAccumulator(model.loss) if model.n_classes is None else MulticlassAccumulator(model.n_classes)
                    for _ in range(n)]

    def worker(acc: MetricAccumulator) -> Callable:
        def work(batch):
            if rows is None:
                acc.update(margins(batch), batch.labels, batch.weights)
            else:
                keep = rows(batch)
                acc.update(margins(batch)[keep], batch.labels[keep],
                           None if batch.weights is None else batch.weights[keep])
        return work

    _consume(_stream(ds, ordered=False, consumers=n, readers=readers), [worker(a) for a in accumulators], "eval")
    total = accumulators[0]
    for acc in accumulators[1:]:
        total.merge(acc)
    if rows is None and not total.sum_weight > 0:
        raise DataFormatError(ds.path, "every importance weight is 0: no metric is defined")
    return total.result()


def predict(model, data, *, threads: int | None = None, readers: int | None = None) -> np.ndarray:
    """Predictions (float64) for every row of ``data``, in dataset order: the probability of the
    positive class for logistic models, the score ``x·w + b`` for hinge and squared; for softmax
    models an (n_rows, K) array of class probabilities.

    Holds the whole result in memory (8 bytes a row); see :func:`predict_to_parquet` otherwise.
    """
    ds = _dataset_for(model, data)
    margins, loss, k = _scorer(model), model.loss, model.n_classes
    n_rows = int(ds.n_rows)
    out = np.empty(n_rows if k is None else (n_rows, k), dtype=np.float64)
    n = min(_n_threads(threads), max(1, ds.n_blocks))
    done = [0] * n  # rows scored per thread: all rows must be covered exactly once

    def worker(i: int) -> Callable:
        def work(batch):
            r0 = int(batch.row_start)
            if r0 < 0 or r0 + batch.n_rows > n_rows:
                raise StreamhogError(f"{batch.source}: rows {r0}..{r0 + batch.n_rows} lie outside the "
                                     f"dataset's {n_rows} rows")
            # Blocks are disjoint row ranges: threads write to separate slices of `out`.
            if k is None:
                _to_predictions(loss, margins(batch, out=out[r0:r0 + batch.n_rows]))
            else:
                out[r0:r0 + batch.n_rows] = softmax_probabilities(margins(batch))
            done[i] += batch.n_rows
        return work

    _consume(_stream(ds, ordered=False, consumers=n, readers=readers), [worker(i) for i in range(n)], "predict")
    if sum(done) != n_rows:
        raise StreamhogError(f"{ds.path}: scored {sum(done)} rows but the dataset has {n_rows}")
    return out


class _OrderedSink:
    """Writes tables in dataset order although threads finish batches in any order."""

    def __init__(self, writer: pq.ParquetWriter):
        self.writer = writer
        self.cond = threading.Condition()
        self.rows = 0  # rows written = row_start of the next batch to write
        self.aborted = False

    def write(self, row_start: int, table: pa.Table) -> None:
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

    One row per example in dataset order, columns ``prediction`` (float32: probability for
    logistic, score for hinge and squared) and ``label`` (float32, copied from the data).
    Memory is bounded by the blocks in flight. The file is written under a temporary name
    and renamed on success; an existing ``out_path`` is refused unless ``overwrite``.
    """
    check_predictions_path(out_path)
    ds = _dataset_for(model, data)
    margins, loss, k = _scorer(model), model.loss, model.n_classes
    n = min(_n_threads(threads), max(1, ds.n_blocks))
    what = {"logistic": "probability of the positive class", "softmax": "the most probable class and its "
            "probability"}.get(loss, "score x.w + b")
    metadata = {"streamhog_model": str(model.path), "loss": loss, "prediction": what, "dataset": str(ds.path)}
    schema = PREDICTION_SCHEMA if k is None else MULTICLASS_SCHEMA
    with atomic_output(out_path, overwrite=overwrite, replaceable=predictions_problem) as tmp:
        writer = pq.ParquetWriter(tmp, schema.with_metadata(metadata), compression="NONE",
                                  use_dictionary=False, write_statistics=False)
        try:
            sink = _OrderedSink(writer)

            def work(batch):
                labels = pa.array(np.asarray(batch.labels, dtype=np.float32))
                if k is None:
                    columns = [pa.array(_to_predictions(loss, margins(batch)).astype(np.float32)), labels]
                else:
                    p = softmax_probabilities(margins(batch))
                    best = p.argmax(axis=1)
                    columns = [pa.array(best.astype(np.int32)),
                               pa.array(p[np.arange(len(best)), best].astype(np.float32)), labels]
                sink.write(int(batch.row_start), pa.Table.from_arrays(columns, schema=schema))

            stream = _stream(ds, ordered=True, consumers=n, readers=readers)
            _consume(stream, [work] * n, "predict", on_error=sink.abort)
        finally:
            writer.close()  # also on error: atomic_output then removes the partial file
        if sink.rows != ds.n_rows:
            raise StreamhogError(f"{ds.path}: wrote {sink.rows} predictions but the dataset has {ds.n_rows} rows")
    return sink.rows
