"""SparseBatch: the unit that flows from reader threads to consumers.

A batch is a block of rows in CSR form. Arrays may be read-only views of Arrow or
Zarr buffers (zero-copy), so consumers must never write into them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SparseBatch:
    """Rows ``[row_start, row_start + n_rows)`` of a dataset, in CSR form.

    indptr   int64   (n_rows + 1,), ``indptr[0] == 0``
    indices  uint32  (nnz,), 0-based feature ids, strictly ascending within a row
    values   float32 (nnz,) or ``None`` when every value is 1.0 (binary features)
    labels   float32 (n_rows,)
    weights  float32 (n_rows,) or ``None`` (every weight 1.0)
    source   where the rows came from, for error messages ("a.parquet row group 3")
    row_start  index of the first row in its dataset (or input file)
    """

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray | None
    labels: np.ndarray
    weights: np.ndarray | None = None
    source: str = ""
    row_start: int = 0
    #: The dataset block (row group / Zarr row block) these rows came from; -1 when none.
    block: int = -1

    @property
    def n_rows(self) -> int:
        return len(self.labels)

    @property
    def nnz(self) -> int:
        return len(self.indices)

    def values_or_ones(self) -> np.ndarray:
        return self.values if self.values is not None else np.ones(self.nnz, dtype=np.float32)

    def to_scipy(self, n_features: int):
        """The rows as a ``scipy.sparse.csr_matrix`` of shape (n_rows, n_features)."""
        import scipy.sparse as sp

        return sp.csr_matrix(
            (self.values_or_ones(), self.indices.astype(np.int64), self.indptr),
            shape=(self.n_rows, n_features),
        )


def concat_batches(batches: list[SparseBatch], source: str = "") -> SparseBatch:
    """Rows of several batches, in order, as one batch (copies)."""
    if len(batches) == 1:
        return batches[0]
    nnz = np.cumsum([0] + [b.nnz for b in batches])
    indptr = np.concatenate([np.zeros(1, np.int64)] + [b.indptr[1:] + off for b, off in zip(batches, nnz[:-1])])
    has_values = any(b.values is not None for b in batches)
    has_weights = any(b.weights is not None for b in batches)
    return SparseBatch(
        indptr=indptr,
        indices=np.concatenate([b.indices for b in batches]),
        values=np.concatenate([b.values_or_ones() for b in batches]) if has_values else None,
        labels=np.concatenate([b.labels for b in batches]),
        weights=np.concatenate(
            [b.weights if b.weights is not None else np.ones(b.n_rows, np.float32) for b in batches]
        )
        if has_weights
        else None,
        source=source or batches[0].source,
        row_start=batches[0].row_start,
    )


def slice_rows(batch: SparseBatch, start: int, stop: int) -> SparseBatch:
    """Rows ``[start, stop)`` of a batch (views where possible)."""
    lo, hi = int(batch.indptr[start]), int(batch.indptr[stop])
    return SparseBatch(
        indptr=batch.indptr[start : stop + 1] - lo,
        indices=batch.indices[lo:hi],
        values=None if batch.values is None else batch.values[lo:hi],
        labels=batch.labels[start:stop],
        weights=None if batch.weights is None else batch.weights[start:stop],
        source=batch.source,
        row_start=batch.row_start + start,
    )


def take_rows(batch: SparseBatch, keep: np.ndarray) -> SparseBatch:
    """The rows of a batch where the boolean mask ``keep`` is set, in order, as one batch
    (copies; a scored holdout is a tenth of its block)."""
    rows = np.flatnonzero(keep)
    starts = batch.indptr[rows]
    lengths = batch.indptr[rows + 1] - starts
    indptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(lengths, out=indptr[1:])
    # Entry k of the result is entry starts[r] + (k - indptr[r]) of the batch, r its row.
    take = np.arange(indptr[-1], dtype=np.int64) + np.repeat(starts - indptr[:-1], lengths)
    return SparseBatch(
        indptr=indptr,
        indices=batch.indices[take],
        values=None if batch.values is None else batch.values[take],
        labels=batch.labels[rows],
        weights=None if batch.weights is None else batch.weights[rows],
        source=batch.source,
        row_start=batch.row_start,  # the first row's position no longer follows: rows are picked
        block=batch.block,
    )
