"""A run's hot coordinates: which they are, and where their values live while it trains.

With many threads on Zipf-like data the most frequent features' cache lines bounce between
the cores (kernels/hot.py). A run with ``hot_features`` > 0 picks them from a sample of its
first rows (the same rows, so the same set, every time the run starts or resumes) and
keeps their weights and optimizer state in a small shared float64 array — the kernels'
``hot`` — that threads copy and publish like the intercept. The model's files hold them
only at checkpoints, at scoring and at the end (:meth:`HotCoordinates.store`), and take
them back after a restore (:meth:`load`).

Publishing adds each thread's change of a weight and of its accumulator to the shared value
(kernels/atomics.publish_entry). Under the normalized rule that would be wrong as it stands:
a weight w_j is in units of its feature's scale s_j (a running max of |x_j|), and when one
thread widens s_j its copy rescales w_j by s_old / s_new (and acc_j by the square), while
another thread, still at s_old, adds a change in the old units; a delta of a scale makes no
sense either (two threads each widening s -> s' must give s', not 2 s' - s). So the hot array
holds, for the normalized rule, quantities that widening does not change: v_j = w_j s_j (the
weight in normalized units: widening keeps it, which is what rescaling w means), a_j =
acc_j s_j^2 (the raw sum of s (g x_j)^2: widening keeps it too) and s_j itself. v and a are
sums of the threads' changes whatever scale each thread saw, and s is published with an
atomic max (kernels/atomics.publish_max_entry): two threads widening the same feature agree
on the larger scale, and each reads back v / s and a / s^2 at that scale — exactly what a
serial run would hold had it seen both rows. The kernel works on the local copies in these
units (z += v x / s; the rate from a / s^2), the files keep w, acc and s.
"""
from __future__ import annotations

import threading

import numpy as np

from ..io.hashing import hash_batch
from ..io.threads import cpu_count
from ..kernels.hot import HotSet
from ..losses import get_loss

#: Rows sampled (from the first blocks) to find the hot features.
SAMPLE_ROWS = 200_000
#: The automatic choice (``hot_features="auto"``): with at least AUTO_MIN_THREADS threads
#: running at once — threads beyond the cores add none (below, the lines bounce between few
#: cores and the local copies cost more than they save: benchmarks/scaling.md; 4 threads on
#: 2 cores ran the default's kernel at 47M nnz/s with them and 69M without, `python
#: benchmarks/scaling.py --rows 300000 --zipf 1.1 --extra-threads 4`), at most AUTO_LIMIT
#: features, each held by at least AUTO_MIN_SHARE of the rows (written by 16 threads at
#: ~250K rows/s each, a feature in 1 row of 1,000 already keeps its cache line moving between
#: cores).
AUTO_MIN_THREADS = 4
AUTO_LIMIT = 1024
AUTO_MIN_SHARE = 1e-3
#: The optimizers whose per-coordinate state the threads can publish (normalized: its scales
#: as a maximum, see the module docstring; FTRL derives w from its state: not yet).
OPTIMIZERS = ("sgd", "adagrad", "normalized")


def hot_limit(config) -> tuple[int, float]:
    """(most hot features, least share of rows each must hold) for a resolved config: 0 when
    the run keeps none."""
    if get_loss(config.loss).head != "vector":
        return 0, 0.0  # softmax: K weights per feature, not yet
    if config.hot_features == "auto":
        running = min(config.threads, cpu_count())  # oversubscribed threads take turns on the cores
        on = running >= AUTO_MIN_THREADS and config.optimizer in OPTIMIZERS and config.sync != "lock"
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

    def __init__(self, hot_set: HotSet, optimizer: str):
        self.set = hot_set
        self.values = np.zeros(3 * len(hot_set))
        self.normalized = optimizer == "normalized"  # v = w s, a = acc s^2, s (module docstring)
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
        return cls(hot, config.optimizer) if len(hot) else None

    def __len__(self) -> int:
        return len(self.set)

    def load(self, w: np.ndarray, acc: np.ndarray, aux: np.ndarray) -> None:
        """Take the hot coordinates' values from the model's (flat) arrays."""
        h, ids = len(self.set), self.set.ids
        self.values[:h] = w[ids]
        self.values[h:2 * h] = acc[ids] if len(acc) else 0.0
        self.values[2 * h:] = 0.0
        if self.normalized:
            s = aux[ids].astype(np.float64)
            self.values[:h] *= s
            self.values[h:2 * h] *= s * s
            self.values[2 * h:] = s

    def store(self, w: np.ndarray, acc: np.ndarray, aux: np.ndarray) -> None:
        """Write the hot coordinates' values into the model's arrays (between blocks only)."""
        h, ids = len(self.set), self.set.ids
        v, a = self.values[:h], self.values[h:2 * h]
        if self.normalized:
            s = self.values[2 * h:]
            inv = np.divide(1.0, s, out=np.zeros(h), where=s > 0)  # a feature never seen non-zero: w = 0
            v, a = v * inv, a * inv * inv
            aux[ids] = s
        w[ids] = v
        if len(acc):
            acc[ids] = a

    def split(self, batch, indices):
        """The block's (indices, values, hot_count), rows rearranged for the kernel, in this
        thread's buffers (valid until its next split)."""
        if not hasattr(self._buffers, "d"):
            self._buffers.d = {}
        return self.set.split(batch.indptr, indices, batch.values, self._buffers.d)
