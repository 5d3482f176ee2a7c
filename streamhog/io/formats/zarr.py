"""The Zarr v3 sparse format: write it, open it as a dataset of row blocks, read blocks.

A group with 1-D arrays ``indptr`` int64 (n_rows + 1), ``indices`` uint32, optional
``values`` float32, ``labels`` float32, optional ``weights`` float32; attributes
``n_features`` and ``format_version`` (docs/formats.md).

Layout for streaming: a block is ``rows_per_block`` rows, which is exactly one chunk of
``labels``/``weights``/``indptr``. ``indices``/``values`` chunks are sized from the nnz of
the first block (about 1/8 of a block, 4K..4M entries), so a block is fetched with ~9
small reads and at most ~25% over-read. Arrays are sharded (8 row blocks, or 64 nnz chunks
but at most 8M entries, per shard) to keep the file count low; the writer buffers and
appends whole shards only.

Damage is an error, never zeros: zarr reads a missing chunk (or shard) file as the array's
fill value. So the reader checks that the chunk files of every array exist when it opens the
store (one directory walk per array) and again for the chunks each block reads (a few
``stat`` calls), naming the array and the file; a file that cannot be decoded (a truncated
shard fails its checksum) is named with its array and block. The writer stores every chunk
(``write_empty_chunks``) with fill values no valid data holds (NaN, -1, 2^32-1), so a chunk
missing inside a shard reads as invalid data and is reported, not trained on. ``indptr``
must start at 0 and end at nnz (checked at open) and never decrease (checked per block).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import zarr
import zarr.codecs

from ..batch import SparseBatch
from ...errors import ConfigError, DataFormatError
from ..hashing import META_HASH_BITS, read_hash_bits
from ...kernels.validate import describe_csr_problem
from ..._fs.sparse_files import apparent_size
from . import spec
from .storage import Remote, is_remote, local_path
from .writer import SparseWriter

ROW_CHUNKS_PER_SHARD = 8
NNZ_CHUNKS_PER_SHARD = 64
#: A shard is buffered whole before it is written: cap it at 8M entries (32 MB) per array.
MAX_SHARD_ENTRIES = 1 << 23
#: Fill values no valid store holds (NaN is refused, indptr never negative, and the id 2^32-1
#: only exists with n_features = 2^32): a chunk lost inside a shard reads as invalid data.
FILL_VALUES = {"float32": float("nan"), "int64": -1, "uint32": 2**32 - 1}


def _compressors(name: str):
    if name == "none":
        return None
    if name == "zstd":
        return zarr.codecs.ZstdCodec(level=3)
    if name == "lz4":
        return zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
    if name == "gzip":
        return zarr.codecs.GzipCodec(level=5)
    raise ConfigError(f"Zarr compression must be one of {spec.ZARR_COMPRESSIONS}, got {name!r}")


def nnz_chunk_size(nnz_per_block: int) -> int:
    """Power of two near 1/8 of a block's nnz, clamped to [2^12, 2^22] entries."""
    target = max(1, nnz_per_block // 8)
    return int(min(max(1 << (target.bit_length() - 1), 1 << 12), 1 << 22))


class _ShardAppender:
    """Fills a preallocated shard buffer and appends whole shards only (zarr: write whole
    shards); memory is one shard per array, whatever the dataset size."""

    def __init__(self, array: zarr.Array):
        self.array = array
        self._buf = np.empty(array.shards[0], dtype=array.dtype)
        self._fill = 0

    def append(self, data: np.ndarray) -> None:
        data = np.asarray(data)
        while len(data):
            take = min(len(data), len(self._buf) - self._fill)
            self._buf[self._fill : self._fill + take] = data[:take]
            self._fill += take
            data = data[take:]
            if self._fill == len(self._buf):
                self.array.append(self._buf)
                self._fill = 0

    def flush(self) -> None:
        if self._fill:
            self.array.append(self._buf[: self._fill])
            self._fill = 0


class ZarrSparseWriter(SparseWriter):
    """Writes a Zarr v3 group; ``rows_per_group`` becomes the dataset's ``rows_per_block``."""

    def __init__(self, path, **kwargs):
        super().__init__(path, **kwargs)
        self._codec = _compressors(self.compression)  # validate early
        self._group: zarr.Group | None = None
        self._arrays: dict[str, _ShardAppender] = {}
        self._nnz_chunk = 0

    def _new_array(self, name: str, dtype, chunk: int, per_shard: int) -> _ShardAppender:
        per_shard = max(1, min(per_shard, MAX_SHARD_ENTRIES // chunk))
        # write_empty_chunks: every chunk is stored, even one equal to the fill value, so
        # that a missing chunk or shard file always means damage (see the module docstring).
        arr = self._group.create_array(name, shape=(0,), dtype=dtype, chunks=(chunk,),
                                       shards=(chunk * per_shard,), compressors=self._codec,
                                       fill_value=FILL_VALUES[dtype], config={"write_empty_chunks": True})
        app = _ShardAppender(arr)
        self._arrays[name] = app
        return app

    def _start(self) -> None:
        self._group = zarr.open_group(str(self.path), mode="w-", zarr_format=3)
        r = self.rows_per_group
        self._new_array(spec.INDPTR, "int64", r, ROW_CHUNKS_PER_SHARD).append(np.zeros(1, np.int64))
        self._new_array(spec.LABELS, "float32", r, ROW_CHUNKS_PER_SHARD)
        if self.has_weights:
            self._new_array(spec.WEIGHTS, "float32", r, ROW_CHUNKS_PER_SHARD)

    def _write_group(self, g: SparseBatch) -> None:
        if not self._nnz_chunk:  # sized from the first block, see the module docstring
            self._nnz_chunk = nnz_chunk_size(g.nnz)
            self._new_array(spec.INDICES, "uint32", self._nnz_chunk, NNZ_CHUNKS_PER_SHARD)
            if self.with_values:
                self._new_array(spec.VALUES, "float32", self._nnz_chunk, NNZ_CHUNKS_PER_SHARD)
        a = self._arrays
        a[spec.INDPTR].append(g.indptr[1:] + self.nnz)
        a[spec.LABELS].append(g.labels)
        a[spec.INDICES].append(g.indices)
        if self.with_values:
            a[spec.VALUES].append(g.values_or_ones())
        if self.has_weights:
            a[spec.WEIGHTS].append(g.weights)

    def _add_values_column(self) -> None:
        # A binary prefix, then real values: add the array, ones for what was written.
        app = self._new_array(spec.VALUES, "float32", self._nnz_chunk, NNZ_CHUNKS_PER_SHARD)
        ones = np.ones(self._nnz_chunk, np.float32)
        for start in range(0, self.nnz, len(ones)):
            app.append(ones[: min(len(ones), self.nnz - start)])

    def _finish(self) -> None:
        if not self._nnz_chunk:  # no rows: still create the arrays
            self._write_group(SparseBatch(np.zeros(1, np.int64), np.zeros(0, np.uint32),
                                          np.zeros(0, np.float32) if self.with_values else None,
                                          np.zeros(0, np.float32),
                                          np.zeros(0, np.float32) if self.has_weights else None))
        for app in self._arrays.values():
            app.flush()
        attrs = self.metadata()
        attrs["rows_per_block"] = self.rows_per_group
        self._group.attrs.update(attrs)


class _ChunkFiles:
    """The chunk (or, for a sharded array, shard) files of a 1-D array, to check they exist:
    zarr would read a missing one as the fill value."""

    def __init__(self, root, name: str, arr: zarr.Array, remote=None):
        self.name = name
        # A remote store is listed once at open (a request per block and array would cost
        # more than the read); a local one is also checked per block, cheaply (a stat).
        self.remote = remote
        self.root = remote.join(name) if remote is not None else root / name
        self.sharded = arr.shards is not None
        self.unit = int((arr.shards or arr.chunks)[0])  # entries per file
        self.chunk = int(arr.chunks[0])  # entries per chunk (a shard holds several)
        self.length = int(arr.shape[0])
        encoding = getattr(arr.metadata, "chunk_key_encoding", None)
        if encoding is not None:
            self.key = lambda k: encoding.encode_chunk_key((k,))
        else:  # Zarr v2 metadata: 1-D keys are the chunk number
            self.key = lambda k: str(k)
        self.fill_value = arr.fill_value

    def describe(self, k: int) -> str:
        lo = k * self.unit
        text = (f"array '{self.name}': {'shard' if self.sharded else 'chunk'} file {self.name}/{self.key(k)} "
                f"(entries {lo}-{min(lo + self.unit, self.length) - 1}) is missing; the store is damaged or "
                "incomplete (copy it again, or convert the source again)")
        if not np.isnan(np.float64(self.fill_value)) and self.fill_value == 0:
            # Written by an older streamhog or another tool, which skip chunks of zeros.
            text += "; an older streamhog or another tool may have left out a file of zeros: convert the source again"
        return text

    def first_missing(self, start: int = 0, stop: int | None = None, present=None) -> int | None:
        """The first chunk file of entries [start, stop) that does not exist, or None."""
        stop = self.length if stop is None else stop
        for k in range(start // self.unit, -(-stop // self.unit)):
            key = self.key(k)
            if present is not None:
                if key not in present:
                    return k
            elif self.remote is None and not os.path.isfile(self.root / key):
                return k
        return None

    def check_all(self, path: Path) -> None:
        """At open: one directory walk, then every expected file looked up in it."""
        if self.remote is not None:
            found = self.remote._guard("list it", self.remote.fs.find, self.root)
            present = {str(f)[len(self.root.rstrip("/")) + 1:] for f in found}
        else:
            present = {str(Path(dirpath, f).relative_to(self.root)).replace(os.sep, "/")
                       for dirpath, _, files in os.walk(self.root) for f in files}
        k = self.first_missing(present=present)
        if k is not None:
            raise DataFormatError(path, self.describe(k))


class ZarrDataset:
    """A Zarr v3 sparse group as a sequence of blocks of ``rows_per_block`` rows."""

    format = "zarr"

    def __init__(self, path, *, storage_options: dict | None = None):
        self.remote = Remote(path, storage_options) if is_remote(path) else None
        self.path = self.remote.url if self.remote is not None else local_path(path)
        if not (self.remote.exists() if self.remote is not None else self.path.exists()):
            raise FileNotFoundError(f"{self.path}: no such file or directory")
        try:
            group = self._group()
        except Exception as exc:
            raise DataFormatError(self.path, f"not a readable Zarr group ({exc})") from exc
        attrs = dict(group.attrs)
        version = attrs.get(spec.META_FORMAT_VERSION)
        if version is None:
            raise DataFormatError(self.path, f"missing group attribute '{spec.META_FORMAT_VERSION}' "
                                             "(not a streamhog sparse Zarr store; see docs/formats.md)")
        if version not in spec.READABLE_VERSIONS:
            raise DataFormatError(self.path, f"format_version {version!r} is not supported by this streamhog")
        nf = attrs.get(spec.META_N_FEATURES)
        if not isinstance(nf, int) or isinstance(nf, bool) or not 0 <= nf <= spec.MAX_N_FEATURES:
            raise DataFormatError(self.path, f"group attribute 'n_features' must be a non-negative integer "
                                             f"of at most 2^32 (feature ids are uint32), got {nf!r}")
        self.n_features = nf
        self.metadata = attrs
        self.hash_bits = read_hash_bits(attrs.get(META_HASH_BITS), self.path)

        def require(name, dtype, required=True):
            # One array at a time: listing the group would fail on any member's damaged
            # metadata with zarr's own error, naming nothing.
            if not self._has_member(name):
                if required:
                    raise DataFormatError(self.path, f"missing array '{name}' ({dtype})")
                return None
            try:
                arr = group[name]
                chunk = (arr.shards or arr.chunks)[0]
            except Exception as exc:
                raise DataFormatError(self.path, f"array '{name}': its metadata {name}/zarr.json cannot be read "
                                                 f"({type(exc).__name__}: {exc})") from exc
            if not isinstance(arr, zarr.Array) or chunk < 1:
                raise DataFormatError(self.path, f"'{name}' is not an array with chunks")
            if arr.ndim != 1 or arr.dtype != np.dtype(dtype):
                raise DataFormatError(self.path, f"array '{name}' is {arr.dtype}{list(arr.shape)}, expected 1-D {dtype}")
            return arr

        indptr = require(spec.INDPTR, "int64")
        indices = require(spec.INDICES, "uint32")
        labels = require(spec.LABELS, "float32")
        values = require(spec.VALUES, "float32", required=False)
        weights = require(spec.WEIGHTS, "float32", required=False)
        self.n_rows = labels.shape[0]
        self.nnz = indices.shape[0]
        if indptr.shape[0] != self.n_rows + 1:
            raise DataFormatError(self.path, f"'indptr' has {indptr.shape[0]} entries, expected n_rows + 1 = {self.n_rows + 1}")
        if values is not None and values.shape[0] != self.nnz:
            raise DataFormatError(self.path, f"'values' has {values.shape[0]} entries but 'indices' has {self.nnz}")
        if weights is not None and weights.shape[0] != self.n_rows:
            raise DataFormatError(self.path, f"'weights' has {weights.shape[0]} entries, expected {self.n_rows}")
        self.has_values = values is not None
        self.has_weights = weights is not None
        self.chunk_files = {name: _ChunkFiles(self.path, name, arr, self.remote) for name, arr in
                            ((spec.INDPTR, indptr), (spec.INDICES, indices), (spec.LABELS, labels),
                             (spec.VALUES, values), (spec.WEIGHTS, weights)) if arr is not None}
        for files in self.chunk_files.values():
            files.check_all(self.path)
        self._check_indptr_ends(indptr)
        rpb = attrs.get("rows_per_block", labels.chunks[0])
        if not isinstance(rpb, int) or rpb < 1:
            raise DataFormatError(self.path, f"group attribute 'rows_per_block' must be a positive integer, got {rpb!r}")
        self.rows_per_block = rpb
        n_blocks = -(-self.n_rows // rpb)
        self.block_row_start = np.arange(n_blocks, dtype=np.int64) * rpb
        self.block_rows = np.minimum(self.block_row_start + rpb, self.n_rows) - self.block_row_start

    def _group(self) -> zarr.Group:
        """A handle of its own on the group (one per reader thread)."""
        if self.remote is None:
            return zarr.open_group(str(self.path), mode="r")
        return zarr.open_group(self.remote.url, mode="r", storage_options=self.remote.storage_options or None)

    def _has_member(self, name: str) -> bool:
        """Whether the store holds array ``name`` (its metadata file), local or remote."""
        if self.remote is not None:
            return any(self.remote.exists(self.remote.join(f"{name}/{meta}")) for meta in ("zarr.json", ".zarray"))
        return (self.path / name / "zarr.json").is_file() or (self.path / name / ".zarray").is_file()

    def _check_indptr_ends(self, indptr: zarr.Array) -> None:
        """docs/formats.md: indptr[0] == 0 and indptr[-1] == nnz (the blocks check the rest)."""
        try:
            first, last = int(indptr[0]), int(indptr[self.n_rows])
        except Exception as exc:
            raise DataFormatError(self.path, f"array 'indptr' cannot be read ({exc})") from exc
        if first != 0 or last != self.nnz:
            raise DataFormatError(self.path, f"array 'indptr' runs from {first} to {last}; it must start at 0 "
                                             f"and end at nnz = {self.nnz} (the length of 'indices')")

    @property
    def n_blocks(self) -> int:
        return len(self.block_row_start)

    def describe_block(self, block: int) -> str:
        r0 = int(self.block_row_start[block])
        return f"{self.path}: block {block} (rows {r0}-{r0 + int(self.block_rows[block]) - 1})"

    def open_reader(self) -> "ZarrBlockReader":
        return ZarrBlockReader(self)

    def iter_labels(self):
        """The labels array, one block at a time (no other array is read)."""
        labels = self._group()[spec.LABELS]
        for block, (r0, n) in enumerate(zip(self.block_row_start.tolist(), self.block_rows.tolist())):
            yield _read(self, spec.LABELS, labels, r0, r0 + n, f"block {block}")

    def info(self) -> dict:
        return {"format": "zarr", "path": str(self.path), "n_rows": self.n_rows, "n_features": self.n_features,
                "nnz": self.nnz, "blocks": self.n_blocks, "rows_per_block": self.rows_per_block,
                "has_values": self.has_values, "has_weights": self.has_weights,
                "bytes_on_disk": apparent_size(self.path) if self.remote is None else self.remote.total_size(),
                "format_version": self.metadata.get(spec.META_FORMAT_VERSION),
                **({"hash_bits": self.hash_bits} if self.hash_bits is not None else {})}


class ZarrBlockReader:
    """Reads blocks for one thread, with its own handle on the group."""

    def __init__(self, dataset: ZarrDataset):
        self.dataset = dataset
        g = dataset._group()
        self._indptr = g[spec.INDPTR]
        self._indices = g[spec.INDICES]
        self._labels = g[spec.LABELS]
        self._values = g[spec.VALUES] if dataset.has_values else None
        self._weights = g[spec.WEIGHTS] if dataset.has_weights else None

    def read(self, block: int) -> SparseBatch:
        ds = self.dataset
        r0 = int(ds.block_row_start[block])
        r1 = r0 + int(ds.block_rows[block])
        where = f"block {block} (rows {r0}-{r1 - 1})"
        offsets = _read(ds, spec.INDPTR, self._indptr, r0, r1 + 1, where)
        lo, hi = int(offsets[0]), int(offsets[-1])
        if not 0 <= lo <= hi <= ds.nnz:
            lost = _lost_chunk(ds, ((spec.INDPTR, offsets, r0),))
            raise DataFormatError(ds.path, lost or f"indptr runs from {lo} to {hi}, outside [0, nnz={ds.nnz}]",
                                  where=where)
        indices = _read(ds, spec.INDICES, self._indices, lo, hi, where)
        values = _read(ds, spec.VALUES, self._values, lo, hi, where) if self._values is not None else None
        labels = _read(ds, spec.LABELS, self._labels, r0, r1, where)
        weights = _read(ds, spec.WEIGHTS, self._weights, r0, r1, where) if self._weights is not None else None
        indptr = offsets - lo
        problem = describe_csr_problem(indptr, indices, values, labels, weights, ds.n_features)
        if problem:
            lost = _lost_chunk(ds, ((spec.INDPTR, offsets, r0), (spec.INDICES, indices, lo), (spec.VALUES, values, lo),
                                    (spec.LABELS, labels, r0), (spec.WEIGHTS, weights, r0)))
            raise DataFormatError(ds.path, lost or problem, where=where)
        return SparseBatch(indptr, indices, values, labels, weights,
                           source=f"{ds.path} block {block}", row_start=r0, block=block)

    def close(self) -> None:
        pass


def _read(ds: ZarrDataset, name: str, arr: zarr.Array, start: int, stop: int, where: str) -> np.ndarray:
    """``arr[start:stop]`` once its chunk files are known to exist; any failure names the array."""
    files = ds.chunk_files[name]
    k = files.first_missing(start, stop)
    if k is not None:
        raise DataFormatError(ds.path, files.describe(k), where=where)
    try:
        return arr[start:stop]
    except Exception as exc:  # a truncated or damaged shard: zarr's checksum or codec error
        raise DataFormatError(ds.path, f"array '{name}' cannot be read from {name}/"
                                       f"{files.key(start // files.unit)}: {exc}", where=where) from exc


def _lost_chunk(ds: ZarrDataset, parts) -> str | None:
    """When a block fails validation: a chunk that reads as nothing but the fill value was
    lost inside its shard (the writer's fill values are invalid data); say which."""
    for name, data, start in parts:
        if data is None:
            continue
        files = ds.chunk_files[name]
        fill = np.float64(files.fill_value)
        if not (np.isnan(fill) or fill in (-1, 2**32 - 1)):
            continue  # fill 0 (stores written before): zeros are valid data
        chunk = files.chunk
        stop = start + len(data)
        for c in range(start // chunk, -(-stop // chunk)):  # the chunks the block read (part of)
            part = data[max(c * chunk, start) - start : min((c + 1) * chunk, stop) - start]
            if len(part) and (np.all(np.isnan(part)) if np.isnan(fill) else np.all(part == fill)):
                return (f"array '{name}': chunk {c} (entries {c * chunk}-{(c + 1) * chunk - 1}) is missing from "
                        f"{name}/{files.key(c * chunk // files.unit)} (it reads as the fill value "
                        f"{files.fill_value}); the store is damaged")
    return None
