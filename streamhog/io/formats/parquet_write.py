"""Writing the Parquet sparse format (parquet.py reads it): ``packed`` or ``list`` layout,
one row group per ``rows_per_group`` rows, PLAIN encoding, no statistics (docs/formats.md)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ...errors import ConfigError
from ..batch import SparseBatch
from . import spec
from .writer import SparseWriter

_INDEX_LIST = pa.list_(pa.field("element", pa.uint32(), nullable=False))
_VALUE_LIST = pa.list_(pa.field("element", pa.float32(), nullable=False))
_PACKED = pa.binary()
#: The largest row group a packed column holds: its cells' byte offsets are int32.
_MAX_PACKED_NNZ = (2**31 - 1) // 4
_CODEC = {"none": "NONE", "snappy": "SNAPPY", "zstd": "ZSTD", "lz4": "LZ4", "gzip": "GZIP"}


def parquet_schema(with_values: bool, with_weights: bool, layout: str = spec.DEFAULT_PARQUET_LAYOUT) -> pa.Schema:
    packed = layout == "packed"
    fields = [pa.field(spec.LABEL, pa.float32(), nullable=False),
              pa.field(spec.INDICES, _PACKED if packed else _INDEX_LIST, nullable=False)]
    if with_values:
        fields.append(pa.field(spec.VALUES, _PACKED if packed else _VALUE_LIST, nullable=False))
    if with_weights:
        fields.append(pa.field(spec.WEIGHT, pa.float32(), nullable=False))
    return pa.schema(fields)


def _packed_column(indptr: np.ndarray, data: np.ndarray, dtype: str) -> pa.Array:
    """One binary cell per row: the row's ``data`` entries as little-endian ``dtype`` bytes."""
    body = np.ascontiguousarray(data, dtype=dtype)
    offsets = (np.asarray(indptr, np.int64) * 4).astype(np.int32)
    return pa.BinaryArray.from_buffers(_PACKED, len(offsets) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(body)])


class ParquetSparseWriter(SparseWriter):
    """Writes a single Parquet file, one row group per ``rows_per_group`` rows, in the
    ``packed`` (default) or ``list`` layout."""

    def __init__(self, path, *, layout: str = spec.DEFAULT_PARQUET_LAYOUT, **kwargs):
        super().__init__(path, **kwargs)
        if self.compression not in _CODEC:
            raise ConfigError(f"Parquet compression must be one of {spec.PARQUET_COMPRESSIONS}, got {self.compression!r}")
        if layout not in spec.PARQUET_LAYOUTS:
            raise ConfigError(f"Parquet layout must be one of {spec.PARQUET_LAYOUTS}, got {layout!r}")
        self.layout = layout
        self._writer: pq.ParquetWriter | None = None

    def _schema(self) -> pa.Schema:
        return parquet_schema(self.with_values, self.has_weights, self.layout)

    def _open(self, path) -> pq.ParquetWriter:
        # Plain encoding: decoding it is a copy, where dictionary pages cost a lookup per nnz.
        return pq.ParquetWriter(path, self._schema(), compression=_CODEC[self.compression], use_dictionary=False,
                                write_statistics=False)

    def metadata(self) -> dict:
        meta = super().metadata()
        if self.layout == "packed":  # readers of version 1 know only the list layout
            meta[spec.META_FORMAT_VERSION] = spec.PACKED_FORMAT_VERSION
        return meta

    def _start(self) -> None:
        self._writer = self._open(self.path)

    def _table(self, g: SparseBatch) -> pa.Table:
        packed = self.layout == "packed"
        limit = _MAX_PACKED_NNZ if packed else np.iinfo(np.int32).max
        if g.nnz > limit:
            raise ConfigError(f"{g.source}: a row group holds more than {limit:,} values; lower rows_per_group")
        cols = [pa.array(g.labels, pa.float32())]
        if packed:
            cols.append(_packed_column(g.indptr, g.indices, "<u4"))
            if self.with_values:
                cols.append(_packed_column(g.indptr, g.values_or_ones(), "<f4"))
        else:
            offsets = pa.array(g.indptr.astype(np.int32, copy=False))
            cols.append(pa.ListArray.from_arrays(offsets, pa.array(g.indices, pa.uint32()), type=_INDEX_LIST))
            if self.with_values:
                cols.append(pa.ListArray.from_arrays(offsets, pa.array(g.values_or_ones(), pa.float32()),
                                                     type=_VALUE_LIST))
        if self.has_weights:
            cols.append(pa.array(g.weights, pa.float32()))
        return pa.Table.from_arrays(cols, schema=self._schema())

    def _write_group(self, group: SparseBatch) -> None:
        table = self._table(group)
        self._writer.write_table(table, row_group_size=max(1, table.num_rows))

    def _add_values_column(self) -> None:
        # Rare path (a binary prefix, then real values): rewrite what was written with ones added.
        self._writer.close()
        old = Path(str(self.path) + ".binary-prefix")
        os.rename(self.path, old)
        self.with_values = True
        self._writer = self._open(self.path)
        prefix = pq.ParquetFile(old)
        for rg in range(prefix.num_row_groups):
            t = prefix.read_row_group(rg)
            indptr = _row_offsets(t.column(spec.INDICES).combine_chunks(), self.layout == "packed")
            ones = np.ones(int(indptr[-1]), np.float32)
            if self.layout == "packed":
                col, kind = _packed_column(indptr, ones, "<f4"), _PACKED
            else:
                col = pa.ListArray.from_arrays(pa.array(indptr.astype(np.int32)), pa.array(ones), type=_VALUE_LIST)
                kind = _VALUE_LIST
            t = t.add_column(2, pa.field(spec.VALUES, kind, nullable=False), col)
            self._writer.write_table(t.cast(self._schema()), row_group_size=max(1, t.num_rows))
        prefix.close()
        old.unlink()

    def _finish(self) -> None:
        meta = {k: str(v) for k, v in self.metadata().items()}
        self._writer.add_key_value_metadata(meta)
        self._writer.close()
        self._writer = None

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:
                pass
            self._writer = None


def _row_offsets(ids: pa.Array, packed: bool) -> np.ndarray:
    """Row offsets (int64, n_rows + 1) of a column this writer wrote: a packed column's cell
    byte offsets / 4 (uint32 ids), a list column's offsets."""
    offsets = np.frombuffer(ids.buffers()[1], dtype=np.int32)[ids.offset:ids.offset + len(ids) + 1]
    return offsets.astype(np.int64) // (4 if packed else 1) - (offsets[0] // (4 if packed else 1))
