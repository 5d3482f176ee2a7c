"""Datasets already in memory: scipy.sparse matrices, dense NumPy arrays, Arrow tables.

``InMemoryData(X, y, sample_weight)`` is a dataset like ParquetDataset or ZarrDataset (the
same protocol: ``n_rows``, ``n_features``, ``n_blocks``, ``block_rows``, ``open_reader().read(k)``
-> SparseBatch, ``iter_labels``, ``info``), so training, evaluation and prediction run it
through the same reader threads and kernels, with no file written. A block is
``rows_per_block`` rows (16,384 by default, the row group of a converted Parquet file, so
the same data trains the same way from memory as from the file):

- **CSR** (``csr_matrix``/``csr_array``): a block is a view. ``indptr`` is sliced and
  rebased (n_rows + 1 integers per block); ``indices`` is viewed as uint32 when it is
  int32 (scipy's usual dtype; zero-copy), else converted one block at a time; ``data`` is
  viewed when float32, else converted one block at a time. The matrix is never copied whole.
  Rows with unsorted or repeated column indices (scipy's non-canonical form) are sorted and
  summed one block at a time: duplicates mean a sum in scipy.
- **CSC and the other sparse formats**: converted to CSR once, which copies the matrix.
- **dense** 2-D arrays (float, int or bool): each block's non-zeros are found when it is
  read (zeros dropped per row); NaN and infinities are refused when the data is opened.
- **pyarrow Table / RecordBatch** (or anything with ``__arrow_c_stream__``: a Polars or
  pandas frame) of one example per row, in streamhog's columns or another tool's
  (columns.py: ``label_column``, ``indices_column``, ...): a block is a zero-copy slice of
  the table, decoded like a Parquet row group.

Labels come from ``y`` (or the table's label column); without either the data can be
scored but not trained on or evaluated (``has_labels`` is False). Everything is checked
when the dataset is made: shapes, lengths, types, finite numbers; a problem is a
DataFormatError (or DataTypeError) naming the argument, the row and the column.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..batch import SparseBatch
from ...errors import DataFormatError, DataTypeError, ConfigError
from . import columns as foreign, spec

#: Rows per block of in-memory data: Parquet's row group (spec.DEFAULT_ROWS_PER_GROUP).
DEFAULT_ROWS_PER_BLOCK = spec.DEFAULT_ROWS_PER_GROUP["parquet"]
_F32_MAX = float(np.finfo(np.float32).max)


def _is_sparse(x) -> bool:
    try:
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover - scipy is a dependency
        return False
    return sp.issparse(x)


def describe(x) -> str:
    """A short name of an in-memory object for messages: ``<csr_matrix 100x20>``."""
    shape = getattr(x, "shape", None)
    if isinstance(x, (pa.Table, pa.RecordBatch)):
        shape = (x.num_rows, x.num_columns)
    dims = "x".join(str(int(d)) for d in shape) if shape is not None else "?"
    return f"<{type(x).__name__} {dims}>"


def _finite_or_fail(arr: np.ndarray, name: str, what: str, cols: int | None = None, row0: int = 0) -> None:
    """Refuse NaN/inf (and, for floats, numbers float32 cannot hold), naming the first place."""
    if arr.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(arr)
    if arr.dtype.itemsize > 4:
        bad |= np.abs(arr) > _F32_MAX
    if bad.any():
        pos = int(np.argmax(bad.reshape(-1)))
        v = arr.reshape(-1)[pos]
        problem = "is not finite" if not np.isfinite(v) else "is beyond float32's range"
        where = f"row {row0 + pos // cols}, column {pos % cols}" if cols else f"row {row0 + pos}"
        raise DataFormatError(name, f"{where}: {what} {float(v)!r} {problem}")


def _vector(v, n_rows: int, name: str, what: str) -> np.ndarray:
    """Labels or weights as float32 (n_rows,), checked."""
    if _is_sparse(v):
        raise DataTypeError(f"{name}: {what} must be a 1-D array of numbers, got a sparse matrix")
    try:
        arr = np.asarray(v)
    except Exception as exc:  # noqa: BLE001 - ragged lists and the like
        raise DataTypeError(f"{name}: {what} must be a 1-D array of numbers ({exc})") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]  # a column vector, as scikit-learn accepts
    if arr.ndim != 1:
        raise DataFormatError(name, f"{what} must be a 1-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise DataTypeError(f"{name}: {what} must be numbers, got dtype {arr.dtype}")
    if len(arr) != n_rows:
        raise DataFormatError(name, f"{what} have {len(arr):,} entries but the data has {n_rows:,} rows")
    _finite_or_fail(arr, name, what[:-1] if what.endswith("s") else what)
    return np.ascontiguousarray(arr, dtype=np.float32)


class InMemoryData:
    """A dataset over ``X`` (scipy.sparse, 2-D NumPy array, pyarrow Table/RecordBatch) with
    labels ``y`` and importance weights ``sample_weight`` (see the module docstring).

    >>> import numpy as np, streamhog
    >>> X = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]])
    >>> ds = streamhog.InMemoryData(X, [1, 0])
    >>> ds.n_rows, ds.n_features, ds.n_blocks
    (2, 3, 1)
    >>> b = ds.open_reader().read(0)
    >>> b.indptr.tolist(), b.indices.tolist(), b.values.tolist()
    ([0, 1, 3], [1, 0, 2], [2.0, 1.0, 3.0])
    """

    format = "memory"
    hash_bits = None
    #: The block cache (block_cache.py) would copy the data to disk: in-memory data needs none.
    cache_blocks = False

    def __init__(self, X, y=None, sample_weight=None, *, n_features: int | None = None,
                 rows_per_block: int | None = None, name: str | None = None,
                 columns: foreign.ColumnOptions | None = None):
        self.options = columns or foreign.ColumnOptions()
        self._frame = None
        if not isinstance(X, (pa.Table, pa.RecordBatch, np.ndarray)) and not _is_sparse(X) \
                and hasattr(X, "__arrow_c_stream__"):
            self._frame = f"{type(X).__module__.split('.')[0]}.{type(X).__name__}"
            X = pa.table(X)  # Polars / pandas frames, through the Arrow C stream
        if isinstance(X, pa.RecordBatch):
            X = pa.Table.from_batches([X])
        self.path = name or describe(X)
        self.notes: list[str] = []
        rpb = DEFAULT_ROWS_PER_BLOCK if rows_per_block is None else rows_per_block
        if isinstance(rpb, bool) or not isinstance(rpb, (int, np.integer)) or rpb < 1:
            raise ConfigError(f"rows_per_block must be a positive integer, got {rows_per_block!r}")
        if isinstance(X, pa.Table):
            self._kind = "arrow"
            self._init_table(X, y)
        elif _is_sparse(X):
            self._kind = "csr"
            self._init_sparse(X)
        elif isinstance(X, np.ndarray) or isinstance(X, (list, tuple)):
            self._kind = "dense"
            self._init_dense(np.asarray(X) if not isinstance(X, np.ndarray) else X)
        else:
            raise DataTypeError(f"{self.path}: cannot train on or score a {type(X).__module__}.{type(X).__name__}; "
                                "give a scipy.sparse matrix, a 2-D NumPy array, a pyarrow Table or RecordBatch, or "
                                "a dataset path or URL")
        if y is not None:
            self.labels = _vector(y, self.n_rows, self.path, "labels")
        self.has_labels = self.labels is not None or (self._kind == "arrow" and self._layout.label is not None)
        self.weights = None if sample_weight is None else _vector(sample_weight, self.n_rows, self.path, "sample weights")
        self.has_weights = self.weights is not None or (self._kind == "arrow" and self._layout.weight is not None)
        if self.weights is not None and self._kind == "arrow" and self._layout.weight is not None:
            raise DataFormatError(self.path, f"weights given twice: the column '{self._layout.weight}' and sample_weight")
        if n_features is not None:
            if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) or n_features < 1:
                raise ConfigError(f"n_features must be a positive integer, got {n_features!r}")
            if n_features < self.n_features:
                raise DataFormatError(self.path, f"n_features {n_features:,} is below the data's {self.n_features:,} "
                                                 "columns")
            self.n_features = int(n_features)
        starts = np.arange(0, self.n_rows, int(rpb), dtype=np.int64)
        self.block_row_start = starts
        self.block_rows = np.minimum(starts + int(rpb), self.n_rows) - starts

    # -- the kinds of data ------------------------------------------------------------------
    def _init_sparse(self, X) -> None:
        fmt = X.format
        if fmt != "csr":
            self.notes.append(f"{self.path}: a {fmt.upper()} matrix is converted to CSR once (a copy)")
            X = X.tocsr()
        if X.ndim != 2:
            raise DataFormatError(self.path, f"expected a 2-D matrix, got shape {X.shape}")
        if X.dtype.kind not in "biuf":
            raise DataTypeError(f"{self.path}: the matrix must hold real numbers, got dtype {X.dtype}")
        self.n_rows, self.n_features = (int(d) for d in X.shape)
        if self.n_features > spec.MAX_INDEX + 1:
            raise DataFormatError(self.path, f"{self.n_features:,} columns: feature ids must fit uint32 (at most 2^32)")
        data = X.data
        # Per row: the first data index of each row, so a bad value is reported with its row.
        bad = ~np.isfinite(data) if data.dtype.kind == "f" else None
        if bad is not None and data.dtype.itemsize > 4:
            bad |= np.abs(data) > _F32_MAX
        if bad is not None and bad.any():
            pos = int(np.argmax(bad))
            row = int(np.searchsorted(X.indptr, pos, side="right") - 1)
            v = data[pos]
            problem = "is not finite" if not np.isfinite(v) else "is beyond float32's range"
            raise DataFormatError(self.path, f"row {row}, column {int(X.indices[pos])}: value {float(v)!r} {problem}")
        self._X = X
        self._canonical = bool(X.has_canonical_format)
        self.has_values = not bool(np.all(data == 1))  # binary: the kernels skip the values
        self.nnz = int(X.nnz)
        self.labels = None

    def _init_dense(self, X: np.ndarray) -> None:
        if X.ndim != 2:
            hint = "; reshape(1, -1) for one example, reshape(-1, 1) for one feature" if X.ndim == 1 else ""
            raise DataFormatError(self.path, f"expected a 2-D array (n_rows, n_features), got shape {X.shape}{hint}")
        if X.dtype.kind not in "biuf":
            raise DataTypeError(f"{self.path}: the array must hold real numbers, got dtype {X.dtype}")
        self.n_rows, self.n_features = (int(d) for d in X.shape)
        for r0 in range(0, self.n_rows, 65_536):  # in slices: the check's mask stays small
            _finite_or_fail(X[r0:r0 + 65_536], self.path, "value", self.n_features, r0)
        self._X = X
        self.has_values = True
        self.nnz = None  # known once read
        self.labels = None

    def _init_table(self, table: pa.Table, y) -> None:
        try:
            self._layout = foreign.inspect_schema(table.schema, self.path, self.options, label_required=False)
        except foreign.BadRows as exc:
            hint = (f"; a {self._frame} of numeric feature columns is dense data: pass .to_numpy()"
                    if self._frame and "missing column" in str(exc) else "")
            raise DataFormatError(self.path, str(exc) + hint) from None
        if y is not None and self._layout.label is not None:
            raise DataFormatError(self.path, f"labels given twice: the column '{self._layout.label}' and y")
        self._X = table
        self.n_rows = int(table.num_rows)
        self.has_values = self._layout.values is not None
        self.nnz = None
        self.labels = None
        meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        nf = meta.get(spec.META_N_FEATURES, "")
        if nf.isdigit() and self.options.index_base == 0:
            self.n_features = int(nf)
            return
        try:
            top = foreign.max_id(table, self._layout)
        except foreign.BadRows as exc:
            raise DataFormatError(self.path, str(exc)) from None
        self.n_features = max(top + 1, 1)

    # -- the dataset protocol ---------------------------------------------------------------
    @property
    def n_blocks(self) -> int:
        return len(self.block_row_start)

    def describe_block(self, block: int) -> str:
        r0 = int(self.block_row_start[block])
        return f"{self.path}: rows {r0}-{r0 + int(self.block_rows[block]) - 1}"

    def open_reader(self) -> "InMemoryReader":
        return InMemoryReader(self)

    def iter_labels(self):
        """The labels, one block at a time."""
        if self._kind == "arrow" and self._layout.label is not None:
            for r0, n in zip(self.block_row_start.tolist(), self.block_rows.tolist()):
                yield np.asarray(self._X.column(self._layout.label).slice(r0, n))
            return
        if self.labels is None:
            raise DataFormatError(self.path, "no labels: pass y (InMemoryData(X, y) or open_dataset(X, labels=y))")
        for r0, n in zip(self.block_row_start.tolist(), self.block_rows.tolist()):
            yield self.labels[r0:r0 + n]

    def info(self) -> dict:
        return {"format": "memory", "path": self.path, "kind": self._kind, "n_rows": self.n_rows,
                "n_features": self.n_features, "nnz": self.nnz, "blocks": self.n_blocks,
                "has_values": self.has_values, "has_weights": self.has_weights, "has_labels": self.has_labels,
                **({"notes": self.notes} if self.notes else {})}


class InMemoryReader:
    """Builds blocks (views where the types allow) for one reader thread; nothing to open."""

    def __init__(self, dataset: InMemoryData):
        self.ds = dataset

    def read(self, block: int) -> SparseBatch:
        ds = self.ds
        r0 = int(ds.block_row_start[block])
        r1 = r0 + int(ds.block_rows[block])
        labels = ds.labels[r0:r1] if ds.labels is not None else np.zeros(r1 - r0, np.float32)
        weights = ds.weights[r0:r1] if ds.weights is not None else None
        try:
            if ds._kind == "csr":
                batch = self._csr(r0, r1, labels, weights)
            elif ds._kind == "dense":
                batch = self._dense(r0, r1, labels, weights)
            else:
                batch = foreign.decode(ds._X.slice(r0, r1 - r0), ds._layout, labels if ds._layout.label is None
                                       else None, weights)
        except foreign.BadRows as exc:
            raise DataFormatError(ds.path, _shift_row(str(exc), r0)) from None
        fix = ds.options.fix_rows or (ds._kind == "csr" and not ds._canonical)
        batch, problem = foreign.checked(batch, ds.n_features, fix, hint=" (fix_rows=True sorts each row's ids "
                                         "and sums duplicates)")
        if problem:
            raise DataFormatError(ds.path, _shift_row(problem, r0))
        # No labels: NaN says so where predictions are written beside them (training and
        # evaluation refuse such data before reading it).
        labels = batch.labels if ds.has_labels else np.full(r1 - r0, np.nan, np.float32)
        return SparseBatch(batch.indptr, batch.indices, batch.values, labels, batch.weights,
                           source=f"{ds.path} rows {r0}-{r1 - 1}", row_start=r0, block=block)

    def _csr(self, r0: int, r1: int, labels, weights) -> SparseBatch:
        X = self.ds._X
        lo, hi = int(X.indptr[r0]), int(X.indptr[r1])
        indptr = X.indptr[r0:r1 + 1].astype(np.int64)
        indptr -= lo
        idx = X.indices[lo:hi]
        # int32 ids are >= 0 in a CSR matrix (and checked below): the same bits as uint32.
        indices = idx.view(np.uint32) if idx.dtype == np.int32 else foreign.feature_ids(idx, indptr, 0, "indices")
        values = None
        if self.ds.has_values:
            values = foreign.to_float32(X.data[lo:hi], indptr, "value")
        return SparseBatch(indptr, indices, values, labels, weights)

    def _dense(self, r0: int, r1: int, labels, weights) -> SparseBatch:
        part = self.ds._X[r0:r1]
        rows, cols = np.nonzero(part)
        indptr = np.zeros(r1 - r0 + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=r1 - r0), out=indptr[1:])
        values = np.ascontiguousarray(part[rows, cols], dtype=np.float32)
        return SparseBatch(indptr, cols.astype(np.uint32), values, labels, weights)

    def close(self) -> None:
        pass


def _shift_row(problem: str, r0: int) -> str:
    """A block's "row k: ..." as the data's row number (r0 + k)."""
    if problem.startswith("row ") and r0:
        head, _, rest = problem.partition(":")
        if head[4:].isdigit():
            return f"row {int(head[4:]) + r0}:{rest}"
    return problem
