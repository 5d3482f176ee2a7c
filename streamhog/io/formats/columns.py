"""Sparse rows in other tools' columns: what Spark, DuckDB, Polars or pandas write.

streamhog's own Parquet files (docs/formats.md) take the fast path of ``parquet.py``. Any
other table of one example per row is read here, as Parquet row groups or as an in-memory
``pyarrow.Table``:

- the feature ids: a list column (``list``/``large_list``) of any integer type, 0- or
  1-based (``index_base``), or streamhog's packed binary cells; ids that are negative,
  below the base, or beyond uint32 after it are errors naming the row;
- the values: a list column of floats or integers (cast to float32; a value beyond
  float32's range is an error), as long as the ids in every row, or absent (every value 1);
- the label and the optional importance weight: numeric (or boolean) columns;
- any column names (``label_column``, ``indices_column``, ``values_column``,
  ``weight_column``).

Rows must hold strictly ascending ids, as streamhog's format requires. A row that does not
(unsorted, or an id twice) is an error naming the file, row group and row, unless
``fix_rows`` is set: then each such block is sorted and duplicates summed (in float64,
rounded once to float32), exactly as hashed collisions are merged (hashing.merge_duplicates).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..batch import SparseBatch
from ...errors import ConfigError
from ...kernels.validate import NOT_ASCENDING, csr_problem
from . import spec

_MAX_ID = spec.MAX_INDEX


class BadRows(Exception):
    """A problem in a block; the caller adds the file and the row group."""


@dataclass(frozen=True)
class ColumnOptions:
    """How to read a table of sparse rows (the ``--*-column``, ``--index-base``, ``--fix-rows`` options)."""

    label: str = spec.LABEL
    indices: str = spec.INDICES
    values: str = spec.VALUES
    weight: str = spec.WEIGHT
    index_base: int = 0
    fix_rows: bool = False
    #: Names the user gave explicitly: such a column must exist (the default ones are optional).
    required: tuple[str, ...] = ()

    @classmethod
    def make(cls, label_column=None, indices_column=None, values_column=None, weight_column=None,
             index_base=0, fix_rows=False) -> "ColumnOptions":
        given = {k: v for k, v in (("values", values_column), ("weight", weight_column)) if v is not None}
        for flag, name in (("label_column", label_column), ("indices_column", indices_column),
                           ("values_column", values_column), ("weight_column", weight_column)):
            if name is not None and (not isinstance(name, str) or not name):
                raise ConfigError(f"{flag} must be a column name, got {name!r}")
        if isinstance(index_base, str) and index_base.isdigit():
            index_base = int(index_base)
        if index_base not in (0, 1) or isinstance(index_base, bool):
            raise ConfigError(f"index_base must be 0 or 1, got {index_base!r}")
        if not isinstance(fix_rows, bool):
            raise ConfigError(f"fix_rows must be True or False, got {fix_rows!r}")
        return cls(label=label_column or spec.LABEL, indices=indices_column or spec.INDICES,
                   values=values_column or spec.VALUES, weight=weight_column or spec.WEIGHT,
                   index_base=index_base, fix_rows=fix_rows, required=tuple(given.values()))

    @property
    def is_default(self) -> bool:
        return self == ColumnOptions()


@dataclass(frozen=True)
class Layout:
    """The columns of one file (or table) as found: names, and how the ids are stored."""

    label: str | None       # None: labels given separately (in-memory data), or none at all
    indices: str
    values: str | None
    weight: str | None
    packed: bool            # binary cells of little-endian uint32 (streamhog's packed layout)
    index_base: int
    fix_rows: bool

    @property
    def columns(self) -> list[str]:
        return [c for c in (self.label, self.indices, self.values, self.weight) if c is not None]


def _is_list(t) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t)


def _numeric(t) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)


def inspect_schema(schema: pa.Schema, where, opts: ColumnOptions, *, label_required: bool = True) -> Layout:
    """The layout of a table with ``schema``; raises BadRows naming the column and what it expected."""
    names = schema.names

    def field(name):
        return schema.field(name).type

    missing_hint = f" (columns: {', '.join(names[:12])}{', ...' if len(names) > 12 else ''})"
    if opts.indices not in names:
        raise BadRows(f"missing column '{opts.indices}' of feature ids (a list of integers per row){missing_hint}; "
                      "name it with --indices-column (indices_column=)")
    t = field(opts.indices)
    packed = t == pa.binary()
    if not packed and not (_is_list(t) and pa.types.is_integer(t.value_type)):
        raise BadRows(f"column '{opts.indices}' has type {t}; feature ids must be a list of integers "
                      "(list<int32|int64|uint32>) or streamhog's packed binary")
    label = opts.label if opts.label in names else None
    if label is None and label_required:
        raise BadRows(f"missing label column '{opts.label}'{missing_hint}; name it with --label-column (label_column=)")
    if label is not None and not _numeric(field(label)):
        raise BadRows(f"column '{label}' has type {field(label)}; labels must be numbers")
    values = opts.values if opts.values in names else None
    if values is None and opts.values in opts.required:
        raise BadRows(f"missing values column '{opts.values}'{missing_hint}")
    if values is not None:
        vt = field(values)
        ok = vt == pa.binary() if packed else (_is_list(vt) and (pa.types.is_floating(vt.value_type)
                                                               or pa.types.is_integer(vt.value_type)))
        if not ok:
            expected = ("binary (packed little-endian float32), like" if packed
                        else "a list of numbers (list<float32|float64>), like")
            raise BadRows(f"column '{values}' has type {vt}, expected {expected} '{opts.indices}'")
    weight = opts.weight if opts.weight in names else None
    if weight is None and opts.weight in opts.required:
        raise BadRows(f"missing weight column '{opts.weight}'{missing_hint}")
    if weight is not None and not _numeric(field(weight)):
        raise BadRows(f"column '{weight}' has type {field(weight)}; weights must be numbers")
    return Layout(label, opts.indices, values, weight, packed, opts.index_base, opts.fix_rows)


def _array(table: pa.Table, name: str) -> pa.Array:
    col = table.column(name)
    arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    if isinstance(arr, pa.ChunkedArray):  # no chunks at all
        arr = pa.array([], col.type)
    if arr.null_count:
        row = int(np.flatnonzero(np.asarray(arr.is_null()))[0])
        raise BadRows(f"row {row}: column '{name}' is null")
    return arr


def _list_parts(arr: pa.Array, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Offsets rebased to 0 (int64) and this slice's child values, zero-copy."""
    if pa.types.is_binary(arr.type):
        return _packed_parts(arr, name)
    offsets = np.asarray(arr.offsets).astype(np.int64, copy=False)
    child = arr.values
    start, end = int(offsets[0]), int(offsets[-1])
    if child.null_count and child.slice(start, end - start).null_count:
        pos = start + int(np.flatnonzero(np.asarray(child.slice(start, end - start).is_null()))[0])
        raise BadRows(f"row {_row_of(offsets, pos)}: column '{name}' holds a null element")
    data = np.asarray(child.slice(start, end - start)) if end > start else np.zeros(0, child.type.to_pandas_dtype())
    return offsets - start, data


def _packed_parts(arr: pa.Array, name: str) -> tuple[np.ndarray, np.ndarray]:
    _, offset_buf, data_buf = arr.buffers()
    if offset_buf is None:
        return np.zeros(1, np.int64), np.zeros(0, np.uint8)
    offsets = np.frombuffer(offset_buf, np.int32, count=len(arr) + 1, offset=4 * arr.offset).astype(np.int64)
    ragged = np.diff(offsets) & 3
    if ragged.any():
        row = int(np.flatnonzero(ragged)[0])
        raise BadRows(f"row {row}: '{name}' holds {int(offsets[row + 1] - offsets[row])} bytes, not a whole number "
                      "of 4-byte entries")
    start, end = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(data_buf, np.uint8, count=end - start, offset=start) if end > start else np.zeros(0, np.uint8)
    return (offsets - start) >> 2, data


def _row_of(offsets: np.ndarray, pos: int) -> int:
    return int(np.searchsorted(offsets, pos, side="right") - 1)


def feature_ids(raw: np.ndarray, offsets: np.ndarray, base: int, name: str) -> np.ndarray:
    """0-based uint32 ids from any integer array (zero-copy when already so); BadRows names the
    row of the first id that is negative, below the base, or beyond uint32."""
    if raw.dtype == np.uint32 and base == 0:
        return raw
    if len(raw) == 0:
        return np.zeros(0, np.uint32)
    lo, hi = raw.min(), raw.max()
    if lo < base:
        pos = int(np.argmax(raw < base))
        v = int(raw[pos])
        what = "is negative" if v < 0 else "is not allowed with index base 1 (ids start at 1)"
        raise BadRows(f"row {_row_of(offsets, pos)}: '{name}' id {v} {what}")
    if int(hi) - base > _MAX_ID:
        pos = int(np.argmax(raw.astype(np.int64, copy=False) - base > _MAX_ID)) if raw.dtype != np.uint64 \
            else int(np.argmax(raw > np.uint64(_MAX_ID + base)))
        raise BadRows(f"row {_row_of(offsets, pos)}: '{name}' id {int(raw[pos])} is beyond uint32 "
                      f"(the largest id is {_MAX_ID + base:,} with index base {base})")
    if base == 0 and raw.dtype == np.int32:
        return raw.view(np.uint32)  # all >= 0: the same bits
    return (raw - base).astype(np.uint32) if base else raw.astype(np.uint32)


def to_float32(raw: np.ndarray, offsets: np.ndarray | None, what: str) -> np.ndarray:
    """``raw`` as float32 (zero-copy when it is); a finite value beyond float32's range is an error."""
    if raw.dtype == np.float32:
        return raw
    out = raw.astype(np.float32)
    if raw.dtype.kind == "f":
        bad = ~np.isfinite(out) & np.isfinite(raw)
        if bad.any():
            pos = int(np.argmax(bad))
            row = _row_of(offsets, pos) if offsets is not None else pos
            raise BadRows(f"row {row}: {what} {raw[pos]:g} is beyond float32's range")
    return out


def decode(table: pa.Table, layout: Layout, labels: np.ndarray | None = None,
           weights: np.ndarray | None = None) -> SparseBatch:
    """The rows of ``table`` as a CSR block (views where the types allow). ``labels`` /
    ``weights`` (in-memory data) stand in for absent columns."""
    offsets, raw = _list_parts(_array(table, layout.indices), layout.indices)
    if layout.packed:
        raw = np.frombuffer(raw, "<u4") if len(raw) else np.zeros(0, np.uint32)
        if not raw.dtype.isnative or not raw.flags.aligned:
            raw = raw.astype(np.uint32)
    indices = feature_ids(raw, offsets, layout.index_base, layout.indices)
    values = None
    if layout.values is not None:
        voffsets, vraw = _list_parts(_array(table, layout.values), layout.values)
        if layout.packed:
            vraw = np.frombuffer(vraw, "<f4").astype(np.float32) if len(vraw) else np.zeros(0, np.float32)
        if not np.array_equal(np.diff(voffsets), np.diff(offsets)):
            row = int(np.flatnonzero(np.diff(voffsets) != np.diff(offsets))[0])
            raise BadRows(f"row {row}: '{layout.indices}' has {int(offsets[row + 1] - offsets[row])} entries but "
                          f"'{layout.values}' has {int(voffsets[row + 1] - voffsets[row])}")
        values = to_float32(vraw, offsets, "value")
    if layout.label is not None:
        labels = to_float32(np.asarray(_array(table, layout.label)), None, "label")
    if layout.weight is not None:
        weights = to_float32(np.asarray(_array(table, layout.weight)), None, "weight")
    if labels is None:
        raise BadRows("no labels")
    return SparseBatch(offsets, indices, values, labels, weights)


def checked(batch: SparseBatch, n_features: int, fix_rows: bool, hint: str = " (or --fix-rows / fix_rows=True "
            "to sort each row's ids and sum duplicates)") -> tuple[SparseBatch, str | None]:
    """The block validated (kernels/validate.py), its rows sorted and merged first when
    ``fix_rows`` and they need it; returns (batch, problem or None)."""
    code, problem = csr_problem(batch.indptr, batch.indices, batch.values, batch.labels, batch.weights, n_features)
    if code == NOT_ASCENDING and fix_rows:
        from ..hashing import merge_duplicates

        batch = merge_duplicates(batch)
        code, problem = csr_problem(batch.indptr, batch.indices, batch.values, batch.labels, batch.weights,
                                    n_features)
    if code == NOT_ASCENDING:
        problem += hint
    return batch, problem


def max_id(table: pa.Table, layout: Layout) -> int:
    """The largest 0-based id in ``table`` (-1 if none), checking the ids as :func:`decode` does."""
    offsets, raw = _list_parts(_array(table, layout.indices), layout.indices)
    if layout.packed:
        raw = np.frombuffer(raw, "<u4") if len(raw) else np.zeros(0, np.uint32)
    ids = feature_ids(raw, offsets, layout.index_base, layout.indices)
    return int(ids.max()) if len(ids) else -1
