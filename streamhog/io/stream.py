"""Bounded, multi-threaded streaming of dataset blocks to training threads.

Reader threads read blocks (Parquet row groups, Zarr row blocks) and hand them to
consumer threads through a bounded buffer. pyarrow's ``read_row_group`` and zarr's
sync API release the GIL, so reading overlaps with the (nogil) training kernels.

Memory bound
------------
A reader may claim a new block only while fewer than ``capacity`` blocks are
*claimed but not yet yielded* (being read, or read and waiting). Yielded batches
are the consumers' to hold, so at any moment the stream keeps at most::

    (capacity + number of consumers holding a batch) x block size

in memory, whatever the dataset size. This holds in ``ordered`` mode too: the
reorder buffer is part of the same ``capacity`` (a slow block stalls further
claims instead of letting readers run ahead without limit).

Threads and readers
-------------------
Every reader thread opens its own ``BlockReader`` via ``dataset.open_reader()``
(sharing one pyarrow ``ParquetFile`` between threads deadlocked) and closes it
itself when it exits, so a reader is never closed while another thread reads
from it. All coordination uses one ``threading.Condition`` over plain state.

Errors
------
The first exception in a reader thread stops every reader (after its current
read, which cannot be interrupted) and is raised by ``__next__`` in every
consumer: a :class:`~streamhog.errors.StreamhogError` (e.g. ``DataFormatError``)
as it is, anything else wrapped in :class:`ReaderError` naming the dataset and
block. The error is raised as soon as it is seen, even if other batches are
ready: training stops anyway, so there is no point in feeding it more.
"""
from __future__ import annotations

import heapq
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .batch import SparseBatch
from .dataset import BlockReader, Dataset  # noqa: F401 (the protocols the stream reads through)
from ..errors import ConfigError, ReaderError, StreamhogError

__all__ = [
    "BlockReader",
    "Dataset",
    "StreamStats",
    "BatchStream",
    "block_order",
    "iter_epoch",
]

_log = logging.getLogger(__name__)



def block_order(n_blocks: int, *, epoch: int, seed: int, shuffle: bool = True) -> np.ndarray:
    """The order in which to read blocks in ``epoch``: int64 permutation of ``range(n_blocks)``.

    Seeded by ``(seed, epoch)`` so a run is reproducible and each epoch differs.
    """
    n_blocks = int(n_blocks)
    if n_blocks < 0:
        raise ConfigError(f"n_blocks must be >= 0, got {n_blocks}")
    if not shuffle:
        return np.arange(n_blocks, dtype=np.int64)
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n_blocks).astype(np.int64, copy=False)


@dataclass(frozen=True)
class StreamStats:
    """A snapshot of a stream's counters."""

    blocks_read: int = 0
    batches_yielded: int = 0
    #: Highest number of claimed-but-not-yielded blocks ever observed (<= capacity).
    max_in_flight: int = 0


class _Shared:
    """State shared by a stream and its reader threads.

    Reader threads reference this, never the BatchStream, so an abandoned stream can
    be garbage-collected and its finalizer can stop the readers.
    """

    def __init__(self, path: str, order: np.ndarray, capacity: int, ordered: bool, n_readers: int):
        self.cond = threading.Condition()
        self.path = path
        self.order = order
        self.n = len(order)
        self.capacity = capacity
        self.ordered = ordered
        self.next_claim = 0  # next position of `order` a reader will claim
        self.next_yield = 0  # ordered mode: the position to yield next
        self.in_flight = 0  # claimed but not yet yielded
        self.ready: dict[int, SparseBatch] = {}  # position -> batch read, not yet yielded
        self.ready_heap: list[int] = []  # unordered mode: ready positions, lowest first
        self.error: BaseException | None = None
        self.stopped = False
        self.readers_alive = n_readers
        self.blocks_read = 0
        self.batches_yielded = 0
        self.max_in_flight = 0

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            # Drop read-but-unyielded batches now: nobody will take them.
            self.ready.clear()
            self.ready_heap.clear()
            self.cond.notify_all()

    def fail(self, exc: BaseException) -> None:
        with self.cond:
            if self.error is None:  # the first error is the one reported
                self.error = exc
            self.ready.clear()
            self.ready_heap.clear()
            self.cond.notify_all()

    def _claim(self) -> int | None:
        """Wait for room under the bound, then claim the next position (None: no more work)."""
        with self.cond:
            while True:
                if self.stopped or self.error is not None or self.next_claim >= self.n:
                    return None
                if self.in_flight < self.capacity:
                    break
                self.cond.wait()
            pos = self.next_claim
            self.next_claim += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return pos

    def run_reader(self, dataset: Dataset) -> None:
        block = None
        reader = None
        try:
            reader = dataset.open_reader()
            while (pos := self._claim()) is not None:
                block = int(self.order[pos])
                batch = reader.read(block)  # outside the lock: this is the slow, GIL-free part
                with self.cond:
                    if self.stopped or self.error is not None:
                        return
                    self.ready[pos] = batch
                    if not self.ordered:
                        heapq.heappush(self.ready_heap, pos)
                    self.blocks_read += 1
                    self.cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the consumer
            self.fail(exc if isinstance(exc, StreamhogError) else ReaderError(self.path, block, exc))
        finally:
            # Close in this thread: never while another thread might still be using it.
            if reader is not None:
                try:
                    reader.close()
                except Exception:  # noqa: BLE001 - data is delivered; don't mask the real outcome
                    _log.warning("closing a reader of %s failed", self.path, exc_info=True)
            with self.cond:
                self.readers_alive -= 1
                self.cond.notify_all()


_DONE = object()  # sentinel: no more batches (exhausted or closed)


class BatchStream:
    """Yields the blocks of ``dataset`` in ``order`` as :class:`SparseBatch` objects.

    ``readers`` threads read ahead, holding at most ``capacity`` blocks claimed but
    not yet yielded. ``ordered=True`` yields exactly in ``order`` (reproducible
    single-thread training); ``ordered=False`` yields whatever is ready first
    (lowest position first). ``__next__`` / :meth:`next_batch` may be called from
    several consumer threads at once; each block goes to exactly one of them.

    Use as a context manager, or call :meth:`close`, to stop the readers early.
    Dropping the last reference to an unfinished stream also stops its readers.
    """

    def __init__(
        self,
        dataset: Dataset,
        order,
        *,
        readers: int = 2,
        capacity: int = 4,
        ordered: bool = False,
        join_timeout: float = 10.0,
    ):
        if readers < 1:
            raise ConfigError(f"readers must be >= 1, got {readers}")
        if capacity < 1:
            raise ConfigError(f"capacity must be >= 1, got {capacity}")
        order = np.asarray(order, dtype=np.int64).reshape(-1)
        n_blocks = int(dataset.n_blocks)
        if len(order) and (order.min() < 0 or order.max() >= n_blocks):
            raise ConfigError(f"{dataset.path}: order refers to blocks outside [0, {n_blocks})")
        self.dataset = dataset
        self.order = order
        self.capacity = int(capacity)
        self.ordered = bool(ordered)
        self.join_timeout = float(join_timeout)
        # More threads than blocks would only open readers that have nothing to do.
        n_threads = min(int(readers), len(order))
        self._shared = _Shared(str(dataset.path), order, self.capacity, self.ordered, n_threads)
        self._threads = [
            threading.Thread(
                target=self._shared.run_reader, args=(dataset,), name=f"streamhog-reader-{i}", daemon=True
            )
            for i in range(n_threads)
        ]
        # Threads hold only _shared, so this runs when an unfinished stream is dropped.
        self._finalizer = weakref.finalize(self, _Shared.stop, self._shared)
        for t in self._threads:
            t.start()

    # -- consuming ---------------------------------------------------------------

    def _take(self, timeout: float | None):
        """The next batch, ``_DONE``, or raises the reader error / TimeoutError."""
        s = self._shared
        deadline = None if timeout is None else time.monotonic() + timeout
        exhausted = False
        with s.cond:
            while True:
                if s.error is not None:
                    err = s.error
                    break
                if s.stopped:
                    return _DONE  # closed: close() does the joining
                if s.batches_yielded >= s.n:
                    exhausted = True
                    break
                if s.ordered:
                    pos = s.next_yield if s.next_yield in s.ready else None
                else:
                    pos = s.ready_heap[0] if s.ready_heap else None
                if pos is not None:
                    if s.ordered:
                        s.next_yield += 1
                    else:
                        heapq.heappop(s.ready_heap)
                    batch = s.ready.pop(pos)
                    s.in_flight -= 1
                    s.batches_yielded += 1
                    s.cond.notify_all()  # room for a reader to claim the next block
                    return batch
                if s.readers_alive == 0:
                    # Cannot happen unless a reader died without recording why; don't wait forever.
                    err = StreamhogError(f"{s.path}: reader threads exited with blocks undelivered")
                    s.error = err
                    break
                if deadline is None:
                    s.cond.wait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(f"{s.path}: no batch within {timeout} s")
                    s.cond.wait(remaining)
        # Outside the lock: make sure every reader has stopped (and closed its
        # BlockReader) before reporting the end or the error. At the end they have
        # nothing left to claim, so this is quick.
        self._join()
        if exhausted:
            return _DONE
        raise err

    def next_batch(self, timeout: float | None = None) -> SparseBatch | None:
        """The next batch, or ``None`` once every block was delivered (or the stream closed).

        Raises a reader's error (see module docstring), or ``TimeoutError`` when no
        batch is ready within ``timeout`` seconds.
        """
        batch = self._take(timeout)
        return None if batch is _DONE else batch

    def __iter__(self) -> Iterator[SparseBatch]:
        return self

    def __next__(self) -> SparseBatch:
        batch = self.next_batch()
        if batch is None:
            raise StopIteration
        return batch

    # -- lifetime ----------------------------------------------------------------

    def _join(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (self.join_timeout if timeout is None else timeout)
        me = threading.current_thread()
        for t in self._threads:
            if t is not me:
                t.join(max(0.0, deadline - time.monotonic()))

    def close(self, timeout: float | None = None) -> None:
        """Stop the readers and wait (up to ``timeout``, default ``join_timeout``) for them.

        A reader in the middle of a read finishes that read first; it closes its
        ``BlockReader`` itself as it exits. Consumers blocked in ``__next__`` see
        the end of the stream. Safe to call more than once.
        """
        self._shared.stop()
        self._finalizer.detach()
        self._join(timeout)

    def __enter__(self) -> "BatchStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def stats(self) -> StreamStats:
        s = self._shared
        with s.cond:
            return StreamStats(s.blocks_read, s.batches_yielded, s.max_in_flight)

    @property
    def alive_readers(self) -> int:
        """How many reader threads are still running."""
        return sum(t.is_alive() for t in self._threads)

    def __len__(self) -> int:
        """Number of blocks this stream delivers in all."""
        return len(self.order)


class KeptBatches:
    """Batches held in memory, handed to consumer threads one at a time through the interface
    consumers take from a :class:`BatchStream` (``next_batch``, ``close``, a context manager):
    the rows scored after every epoch, read from the files once (model/inference.py and
    factorization/score.py, ``RepeatedScorer``)."""

    def __init__(self, batches):
        self._batches = iter(batches)
        self._lock = threading.Lock()

    def next_batch(self):
        with self._lock:
            return next(self._batches, None)

    def close(self) -> None:
        with self._lock:
            self._batches = iter(())

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BatchKeeper:
    """Collects batches (``keeper(batch)``, from any thread) while their arrays — those
    ``arrays_of(batch)`` names — take at most ``cap_bytes`` in all; past the cap it lets go of
    every one and keeps nothing more. ``kept()``: the batches in block order, or None when
    they did not fit."""

    def __init__(self, cap_bytes: int, arrays_of):
        self.cap_bytes, self.arrays_of = cap_bytes, arrays_of
        self.fits = cap_bytes > 0
        self._batches: list = []
        self._size = 0
        self._lock = threading.Lock()

    def __call__(self, batch) -> None:
        nbytes = sum(a.nbytes for a in self.arrays_of(batch) if a is not None)
        with self._lock:
            if not self.fits:
                return
            self._size += nbytes
            if self._size > self.cap_bytes:
                self.fits = False
                self._batches.clear()
            else:
                self._batches.append(batch)

    def kept(self) -> list | None:
        return sorted(self._batches, key=lambda b: b.block) if self.fits else None


def iter_epoch(
    dataset: Dataset,
    *,
    epoch: int = 0,
    seed: int = 0,
    shuffle: bool = True,
    readers: int = 2,
    capacity: int = 4,
    ordered: bool = False,
) -> BatchStream:
    """A :class:`BatchStream` over every block of ``dataset`` in epoch ``epoch``'s order."""
    order = block_order(dataset.n_blocks, epoch=epoch, seed=seed, shuffle=shuffle)
    return BatchStream(dataset, order, readers=readers, capacity=capacity, ordered=ordered)
