"""The Parquet sparse format: open it as a dataset of row groups, read blocks (parquet_write.py writes it).

One row per example: ``label`` float32, ``indices``, optional ``values``, optional
``weight`` float32; file key-value metadata ``n_features`` and ``format_version``
(docs/formats.md). ``indices``/``values`` come in two layouts: ``packed`` (the default),
one binary cell per row holding its ids as little-endian uint32 (values: float32), and
``list`` (list<uint32> / list<float32>). Packed decodes about 2x faster: Arrow copies a
binary column's bytes, where it rebuilds a list column from per-element repetition levels,
and decoding bounds streaming training. A dataset is one file or a directory of files, on
local disk or at a URL (storage.py); a block is one row group.

Files that are not streamhog's own (no ``format_version`` metadata, other column names or
types: what other tools write), or any file read with column options, are decoded by
columns.py; streamhog's files keep the fast path here unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..batch import SparseBatch
from ...errors import DataFormatError
from ..hashing import META_HASH_BITS, read_hash_bits
from ...kernels.validate import describe_csr_problem
from . import columns as foreign, spec
from .parquet_write import _PACKED, ParquetSparseWriter, parquet_schema  # noqa: F401 (re-exported)
from .storage import Remote, is_remote, local_path, open_input

# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _FileInfo:
    path: Path | str  # a local Path, or the file's URL
    n_features: int | None  # None: not in the file's metadata (found by a pass over the ids)
    has_values: bool
    has_weights: bool
    columns: tuple[str, ...]
    packed: bool = False  # indices/values in the packed layout (binary cells), else lists
    foreign: foreign.Layout | None = None  # read by columns.py (another tool's columns or options)
    source: str | None = None  # remote: the path within the filesystem


def list_parquet_files(path: Path) -> list[Path]:
    """The data files of a dataset directory: ``*.parquet``, skipping hidden and ``_`` files."""
    return sorted(p for p in path.iterdir()
                  if p.is_file() and p.suffix == ".parquet" and not p.name.startswith((".", "_")))


def _text_metadata(md: pq.FileMetaData) -> dict[str, str]:
    # Bytes that are not UTF-8 (a damaged footer) stay visible as U+FFFD: the checks below
    # then refuse the key or value, where a strict decode raised (found by tests/test_fuzz.py).
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in (md.metadata or {}).items()}


def _inspect_file(path, opts: foreign.ColumnOptions, remote: Remote | None = None,
                  source: str | None = None) -> tuple[_FileInfo, pq.FileMetaData]:
    try:
        handle = open_input(source, remote) if remote is not None else path
        try:
            md = pq.read_metadata(handle)
        finally:
            if remote is not None:
                handle.close()
    except Exception as exc:  # pyarrow says ArrowInvalid / OSError for non-Parquet files
        raise DataFormatError(path, f"not a readable Parquet file ({exc})") from exc
    kv = _text_metadata(md)
    version = kv.get(spec.META_FORMAT_VERSION)
    if version is None or not opts.is_default:
        return _inspect_foreign(path, md, kv, opts, source), md
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
    if not _native_types(schema):  # streamhog's metadata, other tools' columns (a rewritten file)
        return _inspect_foreign(path, md, kv, opts, source), md

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
    return _FileInfo(path, int(nf), has_values, has_weights, cols, packed, source=source), md


def _native_types(schema: pa.Schema) -> bool:
    """Whether ``indices`` (and ``values``) have exactly streamhog's types: else columns.py reads the file."""
    t = schema.field(spec.INDICES).type if spec.INDICES in schema.names else None
    v = schema.field(spec.VALUES).type if spec.VALUES in schema.names else None
    if t == _PACKED:
        return v in (None, _PACKED)
    return t is not None and pa.types.is_list(t) and t.value_type == pa.uint32() and (
        v is None or (pa.types.is_list(v) and v.value_type == pa.float32()))


def _inspect_foreign(path, md: pq.FileMetaData, kv: dict, opts: foreign.ColumnOptions, source) -> _FileInfo:
    try:
        layout = foreign.inspect_schema(md.schema.to_arrow_schema(), path, opts)
    except foreign.BadRows as exc:
        raise DataFormatError(path, str(exc)) from None
    nf = kv.get(spec.META_N_FEATURES)
    # streamhog's n_features counts 0-based ids: it holds for the file only as written.
    n_features = int(nf) if nf is not None and nf.isdigit() and opts.index_base == 0 else None
    return _FileInfo(path, n_features, layout.values is not None, layout.weight is not None,
                     tuple(layout.columns), layout.packed, layout, source)


class ParquetDataset:
    """A Parquet file or a directory of them, as a sequence of blocks (row groups).

    Only footers are read when opening. ``n_features`` is the largest over the files; a
    file without it in its metadata (another tool's) takes the ``n_features`` option, else
    a pass over its ids finds the largest (said in ``notes``). ``columns`` (ColumnOptions)
    names another tool's columns; ``path`` may be a URL (storage.py).
    """

    format = "parquet"

    def __init__(self, path, *, columns: foreign.ColumnOptions | None = None, n_features: int | None = None,
                 storage_options: dict | None = None):
        self.options = columns or foreign.ColumnOptions()
        self.remote = Remote(path, storage_options) if is_remote(path) else None
        self.notes: list[str] = []
        if self.remote is not None:
            self.path = self.remote.url
            files = self._remote_files()
        else:
            self.path = local_path(path)
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
            if self.remote is not None:
                info, md = _inspect_file(self.remote.url_of(f), self.options, self.remote, f)
            else:
                info, md = _inspect_file(f, self.options)
            self.files.append(info)
            kv_nnz = (md.metadata or {}).get(b"nnz", b"")
            nnz.append(int(kv_nnz) if kv_nnz.isdigit() else None)
            for rg in range(md.num_row_groups):
                block_file.append(i)
                block_rg.append(rg)
                block_rows.append(md.row_group(rg).num_rows)
            if i == 0:
                self.metadata = {k: v for k, v in _text_metadata(md).items() if not k.startswith("ARROW:")}
        self.n_features = self._find_n_features(n_features)
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

    def _remote_files(self) -> list[str]:
        r = self.remote
        # HTTP lists no directories (and asking would download the file): a URL there is one file.
        if r.protocol not in ("http", "https") and not self.path.endswith(".parquet") and r.isdir():
            files = [r.join(n) for n in r.listdir() if n.endswith(".parquet") and not n.startswith((".", "_"))]
            if not files:
                raise DataFormatError(self.path, "directory holds no .parquet files")
            return files
        if not r.exists():
            raise FileNotFoundError(f"{self.path}: no such file or directory")
        return [r.root]

    def _find_n_features(self, given: int | None) -> int:
        """The largest n_features of the files' metadata; files without it take ``given``, else a
        pass over their ids (the id column only) finds the largest."""
        known = [f.n_features for f in self.files if f.n_features is not None]
        unknown = [i for i, f in enumerate(self.files) if f.n_features is None]
        if not unknown:
            return max(known)
        if given is not None:
            return max(known + [int(given)])
        top = -1
        for i in unknown:
            info = self.files[i]
            with self._open_file(info) as pf:
                for rg in range(pf.num_row_groups):
                    table = pf.read_row_group(rg, columns=[info.foreign.indices])
                    try:
                        top = max(top, foreign.max_id(table, info.foreign))
                    except foreign.BadRows as exc:
                        raise DataFormatError(info.path, str(exc), where=f"row group {rg}") from None
        n = max(known + [top + 1])
        self.notes.append(f"{self.path}: no n_features in the file metadata: {n:,} (the largest feature id + 1, "
                          "found by a pass over the ids; --n-features N skips the pass)")
        return n

    def _open_file(self, info: _FileInfo) -> pq.ParquetFile:
        if self.remote is None:
            return pq.ParquetFile(info.path, memory_map=True)
        return pq.ParquetFile(open_input(info.source, self.remote), pre_buffer=True)

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
            label = spec.LABEL if info.foreign is None else info.foreign.label
            with self._open_file(info) as pf:
                for rg in range(pf.num_row_groups):
                    yield np.asarray(pf.read_row_group(rg, columns=[label]).column(0))

    def info(self) -> dict:
        return {"format": "parquet", "path": str(self.path), "files": len(self.files),
                "n_rows": self.n_rows, "n_features": self.n_features, "nnz": self.nnz,
                "blocks": self.n_blocks, "layout": self.layout, "has_values": self.has_values,
                "has_weights": self.has_weights,
                "bytes_on_disk": sum(f.path.stat().st_size if self.remote is None else self.remote.size(f.source)
                                     for f in self.files),
                "format_version": int(v) if (v := self.metadata.get(spec.META_FORMAT_VERSION, "")).isdigit() else None,
                **({"hash_bits": self.hash_bits} if self.hash_bits is not None else {}),
                **({"notes": self.notes} if self.notes else {})}


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
            pf = self.dataset._open_file(self.dataset.files[i])
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
        if info.foreign is not None:
            try:
                batch = foreign.decode(table, info.foreign)
            except foreign.BadRows as exc:
                raise DataFormatError(info.path, str(exc), where=where) from None
            batch, problem = foreign.checked(batch, ds.n_features, info.foreign.fix_rows)
            if problem:
                raise DataFormatError(info.path, problem, where=where)
            return SparseBatch(batch.indptr, batch.indices, batch.values, batch.labels, batch.weights,
                               source=f"{info.path} row group {rg}", row_start=int(ds.block_row_start[block]),
                               block=block)
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
            pf.close(force=True)  # a remote handle too
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
