"""The Parquet sparse format: write it, open it as a dataset of row groups, read blocks.

One row per example: ``label`` float32, ``indices``, optional ``values``, optional
``weight`` float32; file key-value metadata ``n_features`` and ``format_version``
(docs/formats.md). ``indices``/``values`` come in two layouts: ``packed`` (the default),
one binary cell per row holding its ids as little-endian uint32 (values: float32), and
``list`` (list<uint32> / list<float32>). Packed decodes about 2x faster: Arrow copies a
binary column's bytes, where it rebuilds a list column from per-element repetition levels,
and decoding bounds streaming training. A dataset is one file or a directory of files; a
block is one row group.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..batch import SparseBatch
from ..errors import DataFormatError
from ..hashing import META_HASH_BITS, read_hash_bits
from ..kernels.validate import describe_csr_problem
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
            raise ValueError(f"Parquet compression must be one of {spec.PARQUET_COMPRESSIONS}, got {self.compression!r}")
        if layout not in spec.PARQUET_LAYOUTS:
            raise ValueError(f"Parquet layout must be one of {spec.PARQUET_LAYOUTS}, got {layout!r}")
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
            raise ValueError(f"{g.source}: a row group holds more than {limit:,} values; lower rows_per_group")
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
        info = _FileInfo(old, 0, False, self.has_weights, (), self.layout == "packed")  # no metadata yet
        for rg in range(prefix.num_row_groups):
            t = prefix.read_row_group(rg)
            batch = _decode_table(t, info)
            ones = np.ones(batch.nnz, np.float32)
            if self.layout == "packed":
                col, kind = _packed_column(batch.indptr, ones, "<f4"), _PACKED
            else:
                col = pa.ListArray.from_arrays(pa.array(batch.indptr.astype(np.int32)), pa.array(ones), type=_VALUE_LIST)
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


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _FileInfo:
    path: Path
    n_features: int
    has_values: bool
    has_weights: bool
    columns: tuple[str, ...]
    packed: bool = False  # indices/values in the packed layout (binary cells), else lists


def list_parquet_files(path: Path) -> list[Path]:
    """The data files of a dataset directory: ``*.parquet``, skipping hidden and ``_`` files."""
    return sorted(p for p in path.iterdir()
                  if p.is_file() and p.suffix == ".parquet" and not p.name.startswith((".", "_")))


def _text_metadata(md: pq.FileMetaData) -> dict[str, str]:
    # Bytes that are not UTF-8 (a damaged footer) stay visible as U+FFFD: the checks below
    # then refuse the key or value, where a strict decode raised (found by tests/test_fuzz.py).
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in (md.metadata or {}).items()}


def _inspect_file(path: Path) -> tuple[_FileInfo, pq.FileMetaData]:
    try:
        md = pq.read_metadata(path)
    except Exception as exc:  # pyarrow says ArrowInvalid / OSError for non-Parquet files
        raise DataFormatError(path, f"not a readable Parquet file ({exc})") from exc
    kv = _text_metadata(md)
    version = kv.get(spec.META_FORMAT_VERSION)
    if version is None:
        raise DataFormatError(path, f"missing key-value metadata '{spec.META_FORMAT_VERSION}' "
                                    "(not a streamhog sparse Parquet file; see docs/formats.md)")
    if not (version.isascii() and version.isdigit()) or int(version) not in spec.READABLE_VERSIONS:
        raise DataFormatError(path, f"format_version {version!r} is not supported by this streamhog "
                                    f"(reads {', '.join(map(str, spec.READABLE_VERSIONS))})")
    nf = kv.get(spec.META_N_FEATURES)
    if nf is None or not (nf.isascii() and nf.isdigit()):
        raise DataFormatError(path, f"key-value metadata '{spec.META_N_FEATURES}' is missing or not a "
                                    f"non-negative integer: {nf!r}")
    if int(nf) > spec.MAX_N_FEATURES:
        raise DataFormatError(path, f"key-value metadata '{spec.META_N_FEATURES}' is {int(nf):,}, above the "
                                    f"format's limit of 2^32 (feature ids are uint32)")
    schema = md.schema.to_arrow_schema()
    names = schema.names

    def require(name, ok, expected, required=True):
        if name not in names:
            if required:
                raise DataFormatError(path, f"missing column '{name}' ({expected})")
            return False
        t = schema.field(name).type
        if not ok(t):
            raise DataFormatError(path, f"column '{name}' has type {t}, expected {expected}")
        return True

    def is_list_of(kind):
        return lambda t: pa.types.is_list(t) and t.value_type == kind

    require(spec.LABEL, lambda t: pa.types.is_floating(t) or pa.types.is_integer(t), "float32")
    require(spec.INDICES, lambda t: is_list_of(pa.uint32())(t) or t == _PACKED,
            "list<uint32>, or binary (packed little-endian uint32)")
    packed = schema.field(spec.INDICES).type == _PACKED
    if packed:  # values in the same layout as the indices
        has_values = require(spec.VALUES, lambda t: t == _PACKED,
                             "binary (packed little-endian float32), like 'indices'", required=False)
    else:
        has_values = require(spec.VALUES, is_list_of(pa.float32()), "list<float32>, like 'indices'", required=False)
    has_weights = require(spec.WEIGHT, lambda t: pa.types.is_floating(t) or pa.types.is_integer(t),
                          "float32", required=False)
    cols = (spec.LABEL, spec.INDICES) + ((spec.VALUES,) if has_values else ()) + ((spec.WEIGHT,) if has_weights else ())
    return _FileInfo(path, int(nf), has_values, has_weights, cols, packed), md


class ParquetDataset:
    """A Parquet file or a directory of them, as a sequence of blocks (row groups).

    Only footers are read when opening. ``n_features`` is the largest over the files.
    """

    format = "parquet"

    def __init__(self, path):
        self.path = Path(path)
        if self.path.is_dir():
            files = list_parquet_files(self.path)
            if not files:
                raise DataFormatError(self.path, "directory holds no .parquet files")
        elif self.path.is_file():
            files = [self.path]
        else:
            raise FileNotFoundError(f"{self.path}: no such file or directory")
        self.files: list[_FileInfo] = []
        block_file, block_rg, block_rows = [], [], []
        self.metadata: dict = {}
        nnz = []
        for i, f in enumerate(files):
            info, md = _inspect_file(f)
            self.files.append(info)
            kv_nnz = (md.metadata or {}).get(b"nnz", b"")
            nnz.append(int(kv_nnz) if kv_nnz.isdigit() else None)
            for rg in range(md.num_row_groups):
                block_file.append(i)
                block_rg.append(rg)
                block_rows.append(md.row_group(rg).num_rows)
            if i == 0:
                self.metadata = {k: v for k, v in _text_metadata(md).items() if not k.startswith("ARROW:")}
        self.n_features = max(f.n_features for f in self.files)
        self.hash_bits = read_hash_bits(self.metadata.get(META_HASH_BITS), self.files[0].path)
        self.has_values = any(f.has_values for f in self.files)
        self.has_weights = any(f.has_weights for f in self.files)
        packed = {f.packed for f in self.files}
        self.layout = "mixed" if len(packed) > 1 else ("packed" if packed.pop() else "list")
        self._block_file = np.asarray(block_file, dtype=np.int64)
        self._block_rg = np.asarray(block_rg, dtype=np.int64)
        self.block_rows = np.asarray(block_rows, dtype=np.int64)
        self.block_row_start = np.concatenate([[0], np.cumsum(self.block_rows)[:-1]]).astype(np.int64)
        self.n_rows = int(self.block_rows.sum())
        self.nnz = sum(nnz) if None not in nnz else None  # known when every writer recorded it

    @property
    def n_blocks(self) -> int:
        return len(self._block_rg)

    def describe_block(self, block: int) -> str:
        f = self.files[self._block_file[block]].path
        return f"{f}: row group {int(self._block_rg[block])}"

    def open_reader(self) -> "ParquetBlockReader":
        return ParquetBlockReader(self)

    def iter_labels(self):
        """The label column, one row group at a time (no other column is read)."""
        for info in self.files:
            with pq.ParquetFile(info.path) as pf:
                for rg in range(pf.num_row_groups):
                    yield np.asarray(pf.read_row_group(rg, columns=[spec.LABEL]).column(0))

    def info(self) -> dict:
        return {"format": "parquet", "path": str(self.path), "files": len(self.files),
                "n_rows": self.n_rows, "n_features": self.n_features, "nnz": self.nnz,
                "blocks": self.n_blocks, "layout": self.layout, "has_values": self.has_values,
                "has_weights": self.has_weights,
                "bytes_on_disk": sum(f.path.stat().st_size for f in self.files),
                "format_version": int(self.metadata.get(spec.META_FORMAT_VERSION, 0)),
                **({"hash_bits": self.hash_bits} if self.hash_bits is not None else {})}


class ParquetBlockReader:
    """Reads blocks for one thread. Each thread needs its own: sharing a ParquetFile between
    threads calling ``read_row_group`` deadlocked with pyarrow 26."""

    def __init__(self, dataset: ParquetDataset):
        self.dataset = dataset
        self._open: dict[int, pq.ParquetFile] = {}

    def _file(self, i: int) -> pq.ParquetFile:
        pf = self._open.get(i)
        if pf is None:
            if len(self._open) >= 16:  # bound open handles on directories of many files
                self._open.pop(next(iter(self._open))).close()
            pf = pq.ParquetFile(self.dataset.files[i].path, memory_map=True)
            self._open[i] = pf
        return pf

    def read(self, block: int) -> SparseBatch:
        ds = self.dataset
        fi = int(ds._block_file[block])
        rg = int(ds._block_rg[block])
        info = ds.files[fi]
        where = f"row group {rg}"
        try:
            table = self._file(fi).read_row_group(rg, columns=list(info.columns), use_threads=False)
        except Exception as exc:
            raise DataFormatError(info.path, f"cannot be read ({exc})", where=where) from exc
        try:
            batch = _decode_table(table, info)
        except _BadBlock as exc:
            raise DataFormatError(info.path, str(exc), where=where) from None
        problem = describe_csr_problem(batch.indptr, batch.indices, batch.values, batch.labels,
                                       batch.weights, ds.n_features)
        if problem:
            raise DataFormatError(info.path, problem, where=where)
        return SparseBatch(batch.indptr, batch.indices, batch.values, batch.labels, batch.weights,
                           source=f"{info.path} row group {rg}", row_start=int(ds.block_row_start[block]),
                           block=block)

    def close(self) -> None:
        for pf in self._open.values():
            pf.close()
        self._open.clear()


class _BadBlock(Exception):
    pass


def _column(table: pa.Table, name: str) -> pa.Array:
    col = table.column(name)
    arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    if arr.null_count:
        raise _BadBlock(f"column '{name}' holds {arr.null_count} null rows")
    return arr


def _list_parts(arr: pa.Array, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (rebased to 0) and the child values of this list array only, zero-copy.

    ``arr.values`` is the whole child buffer even for a slice: cut it at offsets[0]..offsets[-1].
    """
    offsets = np.asarray(arr.offsets)
    child = arr.values
    if child.null_count:
        raise _BadBlock(f"column '{name}' holds null elements")
    start, end = int(offsets[0]), int(offsets[-1])
    return offsets, np.asarray(child)[start:end]


def _packed_parts(arr: pa.Array, name: str, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """A packed column's cell offsets, counted in entries and rebased to 0, and the entries
    of this array's cells as ``dtype`` (little-endian), zero-copy when aligned."""
    _, offset_buf, data_buf = arr.buffers()
    if offset_buf is None:  # no rows
        return np.zeros(1, np.int32), np.zeros(0, np.dtype(dtype).newbyteorder("="))
    offsets = np.frombuffer(offset_buf, np.int32, count=len(arr) + 1, offset=4 * arr.offset)
    ragged = np.diff(offsets) & 3
    if ragged.any():
        row = int(np.flatnonzero(ragged)[0])
        raise _BadBlock(f"row {row}: '{name}' holds {int(offsets[row + 1] - offsets[row])} bytes, not a whole "
                        f"number of 4-byte entries")
    start, end = int(offsets[0]), int(offsets[-1])
    if start == end:
        data = np.zeros(0, np.dtype(dtype).newbyteorder("="))
    else:
        data = np.frombuffer(data_buf, np.dtype(dtype), count=(end - start) // 4, offset=start)
    if not data.dtype.isnative or not data.flags.aligned:
        data = data.astype(data.dtype.newbyteorder("="))  # numba takes aligned, native arrays
    return (offsets - start) >> 2, data


def _decode_table(table: pa.Table, info: _FileInfo) -> SparseBatch:
    labels = np.asarray(_column(table, spec.LABEL))
    if labels.dtype != np.float32:
        labels = labels.astype(np.float32)
    if info.packed:
        def parts(name, dtype):
            return _packed_parts(_column(table, name), name, dtype)
    else:
        def parts(name, dtype):
            return _list_parts(_column(table, name), name)
    offsets, indices = parts(spec.INDICES, "<u4")
    indptr = offsets.astype(np.int64)
    if offsets[0]:
        indptr -= offsets[0]
    values = None
    if info.has_values:
        voffsets, values = parts(spec.VALUES, "<f4")
        if not np.array_equal(np.diff(voffsets), np.diff(offsets)):
            row = int(np.flatnonzero(np.diff(voffsets) != np.diff(offsets))[0])
            raise _BadBlock(f"row {row}: 'indices' has {int(offsets[row + 1] - offsets[row])} entries but "
                            f"'values' has {int(voffsets[row + 1] - voffsets[row])}")
    weights = None
    if info.has_weights:
        weights = np.asarray(_column(table, spec.WEIGHT))
        if weights.dtype != np.float32:
            weights = weights.astype(np.float32)
    return SparseBatch(indptr, indices, values, labels, weights)
