"""A run's hot coordinates: which they are, and where their values live while it trains.

With many threads on Zipf-like data the most frequent features' cache lines bounce between
the cores (kernels/hot.py). A run with ``hot_features`` > 0 picks them from a sample of its
first rows (the same rows, so the same set, every time the run starts or resumes) and
keeps their weights and optimizer state in a small shared float64 array — the kernels'
``hot`` — that threads copy and publish like the intercept. The model's files hold them
only at checkpoints, at scoring and at the end (:meth:`HotCoordinates.store`), and take
them back after a restore (:meth:`load`).
"""
from __future__ import annotations

import threading

import numpy as np

from ..io.hashing import hash_batch
from ..kernels.hot import HotSet
from ..losses import get_loss

#: Rows sampled (from the first blocks) to find the hot features.
SAMPLE_ROWS = 200_000
#: The automatic choice (``hot_features="auto"``): with at least AUTO_MIN_THREADS threads
#: (below, the lines bounce between few cores and the local copies cost more than they
#: save: benchmarks/scaling.md), at most AUTO_LIMIT features, each held by at least
#: AUTO_MIN_SHARE of the rows (written by 16 threads at ~250K rows/s each, a feature in 1 row
#: of 1,000 already keeps its cache line moving between cores).
AUTO_MIN_THREADS = 4
AUTO_LIMIT = 1024
AUTO_MIN_SHARE = 1e-3
#: The optimizers whose per-coordinate state adds up across threads (normalized keeps a
#: running maximum, FTRL derives w from its state: not yet).
OPTIMIZERS = ("sgd", "adagrad")


def hot_limit(config) -> tuple[int, float]:
    """(most hot features, least share of rows each must hold) for a resolved config: 0 when
    the run keeps none."""
    if get_loss(config.loss).head != "vector":
        return 0, 0.0  # softmax: K weights per feature, not yet
    if config.hot_features == "auto":
        on = config.threads >= AUTO_MIN_THREADS and config.optimizer in OPTIMIZERS and config.sync != "lock"
        return (AUTO_LIMIT, AUTO_MIN_SHARE) if on else (0, 0.0)
    return int(config.hot_features), 0.0


def sample_counts(dataset, hash_bits: int | None, rows: int = SAMPLE_ROWS) -> tuple[np.ndarray, np.ndarray, int]:
    """(ids, counts, rows sampled) over the first blocks of ``dataset``, ids hashed as training hashes them."""
    reader = dataset.open_reader()
    parts, seen = [], 0
    try:
        for block in range(dataset.n_blocks):
            batch = reader.read(block)
            # A row holds an id once (hashed ids may collide within a row: counted twice, no matter).
            parts.append(batch.indices if hash_bits is None else hash_batch(batch, hash_bits, merge=False).indices)
            seen += batch.n_rows
            if seen >= rows:
                break
    finally:
        reader.close()
    ids, counts = np.unique(np.concatenate(parts) if parts else np.zeros(0, np.uint32), return_counts=True)
    return ids.astype(np.int64), counts, seen


class HotCoordinates:
    """The hot set of a run and the shared array of its values ([w, acc, aux] of H slots)."""

    def __init__(self, hot_set: HotSet):
        self.set = hot_set
        self.values = np.zeros(3 * len(hot_set))
        self._buffers = threading.local()  # each consumer thread reuses its own split buffers

    @classmethod
    def choose(cls, dataset, config) -> "HotCoordinates | None":
        """The run's hot coordinates (see :func:`hot_limit`), or None."""
        limit, share = hot_limit(config)
        if not limit:
            return None
        ids, counts, rows = sample_counts(dataset, config.hash_bits)
        dataset_width = 2 ** config.hash_bits if config.hash_bits is not None else int(dataset.n_features)
        hot = HotSet.from_counts(ids, counts, max(rows, 1), limit, min_share=share, n_features=dataset_width)
        return cls(hot) if len(hot) else None

    def __len__(self) -> int:
        return len(self.set)

    def load(self, w: np.ndarray, acc: np.ndarray) -> None:
        """Take the hot coordinates' values from the model's (flat) arrays."""
        h = len(self.set)
        self.values[:h] = w[self.set.ids]
        self.values[h:2 * h] = acc[self.set.ids] if len(acc) else 0.0
        self.values[2 * h:] = 0.0

    def store(self, w: np.ndarray, acc: np.ndarray) -> None:
        """Write the hot coordinates' values into the model's arrays (between blocks only)."""
        h = len(self.set)
        w[self.set.ids] = self.values[:h]
        if len(acc):
            acc[self.set.ids] = self.values[h:2 * h]

    def split(self, batch, indices):
        """The block's (indices, values, hot_count), rows rearranged for the kernel, in this
        thread's buffers (valid until its next split)."""
        if not hasattr(self._buffers, "d"):
            self._buffers.d = {}
        return self.set.split(batch.indptr, indices, batch.values, self._buffers.d)
