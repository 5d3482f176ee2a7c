"""A memory-mappable cache of decoded blocks: later epochs skip decoding (VW's ``-c``, done better).

Decoding Parquet/Zarr bounds a streaming trainer. Decoded blocks are also written, as raw
little-endian arrays, to ``<dir>/block-<k>.bin`` by a background thread; later reads of a
cached block memory-map that file: no decoding, no copy, and the pages are file-backed
(page cache), so they do not count against the process's anonymous memory. Blocks not
cached yet are decoded from the dataset as usual. The writer never slows training: when
its small queue is full (the disk is slower than training) a block is simply left for a
later epoch to cache. Files are written under a temporary name and renamed, so a crash
never leaves a partial block. The cache is optional: given a ``reserve`` (an object whose
``shortfall(extra)`` says when the disk lacks room — training/safety.SpaceWatch), it stops
caching (for good) before a block would eat into the room the run needs, and a failed
write (a full disk) only ends the caching: training goes on.

Layout of a block file (all sections 8-byte aligned): a 64-byte header (magic
``SHCACHE1``, then int64 n_rows, nnz, has_values, has_weights, row_start, block), then
indptr int64[n_rows + 1], indices uint32[nnz], values float32[nnz] (if any), labels
float32[n_rows], weights float32[n_rows] (if any).
"""
from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path

import numpy as np

from .batch import SparseBatch
from ..errors import DataFormatError, DiskSpaceError

MAGIC = b"SHCACHE1"
_HEADER = 64
#: Test hook (benchmarks/soak.py): seconds to sleep inside a cache file's write window, so
#: that a kill -9 can land there. Never set in normal use.
_TEST_DELAY_ENV = "STREAMHOG_TEST_CACHE_DELAY"


def _pad(n_bytes: int) -> int:
    return (n_bytes + 7) & ~7


class BlockCache:
    """The cache directory of one dataset; safe to fill from several threads (one file per block)."""

    def __init__(self, directory, dataset, queue_size: int = 2, reserve=None):
        self.dir = Path(directory)
        self.dataset = dataset
        self.reserve = reserve
        self.dir.mkdir(parents=True, exist_ok=True)
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.error: BaseException | None = None
        self._writer: threading.Thread | None = None
        self._closed = False
        self._lock = threading.Lock()

    def offer(self, batch: SparseBatch) -> None:
        """Cache ``batch`` in the background if the writer has room; never blocks."""
        if self.error is not None or self.has(batch.block):
            return
        with self._lock:
            # One writer, started by the first offer: consumers offering their first blocks at
            # once must not each start one (close() would join only the last, and could hang).
            if self._closed:
                return
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="streamhog-cache-writer", daemon=True)
                self._writer.start()
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            pass  # left for a later epoch

    def _write_loop(self) -> None:
        while (batch := self._queue.get()) is not None:
            try:
                self.put(batch)
            except BaseException as exc:  # noqa: BLE001 - a full disk must not stop training
                self.error = exc

    def close(self) -> None:
        """Finish the queued writes and stop the writer thread; safe to call twice."""
        with self._lock:
            self._closed = True
            writer, self._writer = self._writer, None
        if writer is not None:
            self._queue.put(None)  # after every offered block: the writer ends once they are written
            writer.join()

    def path(self, block: int) -> Path:
        return self.dir / f"block-{block:08d}.bin"

    def has(self, block: int) -> bool:
        return self.path(block).exists()

    def complete(self) -> bool:
        return all(self.has(k) for k in range(self.dataset.n_blocks))

    def put(self, batch: SparseBatch) -> None:
        """Write one decoded (and validated) block, atomically; refused (DiskSpaceError) when
        the reserve says the disk lacks room for it."""
        final = self.path(batch.block)
        if final.exists():
            return
        arrays = [np.ascontiguousarray(a) for a in (batch.indptr, batch.indices, batch.values, batch.labels,
                                                    batch.weights) if a is not None]
        if self.reserve is not None and self.reserve.shortfall(extra=sum(_pad(a.nbytes) for a in arrays)):
            raise DiskSpaceError(f"{self.dir}: no room left for the block cache; later epochs decode instead")
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{batch.block}")
        header = np.zeros(_HEADER // 8, np.int64)
        header[1:7] = (batch.n_rows, batch.nnz, batch.values is not None, batch.weights is not None,
                       batch.row_start, batch.block)
        try:
            with open(tmp, "wb") as f:
                f.write(MAGIC + header.tobytes()[8:])
                for data in arrays:
                    f.write(memoryview(data).cast("B"))
                    f.write(b"\0" * (_pad(data.nbytes) - data.nbytes))
            if os.environ.get(_TEST_DELAY_ENV):
                time.sleep(float(os.environ[_TEST_DELAY_ENV]))
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk: nothing half-written stays behind
            raise

    def as_dataset(self) -> "CachedDataset":
        return CachedDataset(self)


class CachedDataset:
    """The dataset read through its cache: cached blocks memory-mapped, the others decoded.
    Everything but the blocks' bytes is the underlying dataset's."""

    def __init__(self, cache: BlockCache):
        base = cache.dataset
        self.cache = cache
        self.path = base.path
        self.format = base.format
        for name in ("n_rows", "n_features", "has_values", "has_weights", "hash_bits", "block_rows",
                     "block_row_start"):
            setattr(self, name, getattr(base, name))

    @property
    def n_blocks(self) -> int:
        return self.cache.dataset.n_blocks

    def open_reader(self) -> "CachedBlockReader":
        return CachedBlockReader(self.cache)

    def describe_block(self, block: int) -> str:
        return self.cache.dataset.describe_block(block)

    def iter_labels(self):
        return self.cache.dataset.iter_labels()

    def info(self) -> dict:
        return self.cache.dataset.info()


class CachedBlockReader:
    def __init__(self, cache: BlockCache):
        self.cache = cache
        self._base = None  # the dataset's own reader, opened when a block is not cached

    def read(self, block: int) -> SparseBatch:
        path = self.cache.path(block)
        if not path.exists():
            if self._base is None:
                self._base = self.cache.dataset.open_reader()
            return self._base.read(block)
        buf = np.memmap(path, dtype=np.uint8, mode="r")  # views keep the mapping alive
        if buf.nbytes < _HEADER or bytes(buf[:8]) != MAGIC:
            raise DataFormatError(path, "not a streamhog block-cache file", where=f"block {block}")
        n_rows, nnz, has_values, has_weights, row_start, stored_block = (int(x) for x in buf[8:56].view(np.int64))
        sections = [("indptr", np.int64, n_rows + 1), ("indices", np.uint32, nnz)]
        sections += [("values", np.float32, nnz)] if has_values else []
        sections += [("labels", np.float32, n_rows)]
        sections += [("weights", np.float32, n_rows)] if has_weights else []
        expected = _HEADER + sum(_pad(np.dtype(t).itemsize * n) for _, t, n in sections)
        if stored_block != block or buf.nbytes != expected:
            raise DataFormatError(path, f"block-cache file is damaged (size {buf.nbytes}, expected {expected})",
                                  where=f"block {block}")
        out, pos = {}, _HEADER
        for name, dtype, n in sections:
            size = np.dtype(dtype).itemsize * n
            out[name] = buf[pos:pos + size].view(dtype)
            pos += _pad(size)
        return SparseBatch(out["indptr"], out["indices"], out.get("values"), out["labels"], out.get("weights"),
                           source=f"{path} (cached {self.cache.dataset.path} block {block})",
                           row_start=row_start, block=block)

    def close(self) -> None:
        if self._base is not None:
            self._base.close()
