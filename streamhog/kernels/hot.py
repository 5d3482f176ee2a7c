"""Hot coordinates: the few features most rows hold, kept per thread (issue 14).

On Zipf-like data (text, click logs) the 256 most frequent features hold about half the
non-zeros, so every Hogwild! thread writes the same few cache lines on every row and the
cores spend their time passing those lines around: 16 threads ran 1.7x one thread. The
cure is the intercept's (kernels/linear.py): each thread works on a local copy of the hot
coordinates (weight and optimizer state) and publishes its change, atomically, now and
then — every ``sync_rows`` rows for all of them, and at once for those whose unpublished
change reaches ``sync_change`` (large early steps must not be applied T times over).

To keep the kernel's inner loops free of a lookup, a block's rows are rearranged first
(:func:`split_hot_rows`, in the consumer thread): each row's hot entries come first, their
feature ids replaced by slots 0..H-1, then its cold entries; ``hot_count`` says how many
hot entries each row starts with. A feature's slot is one load from a dense table (2 bytes
a feature) up to 2^25 features, else a probe of a small open-addressing hash table
(:func:`hot_table`, a few KiB that stay in L1).
"""
from __future__ import annotations

import numpy as np
from numba import njit, types

from .types import RO_F32, RO_I16, RO_I32, RO_I64, RO_U32, RW_F32, RW_I32, RW_U32

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_EMPTY = -1


def hot_table(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """An open-addressing table of ``ids`` (slot i holds ids[i]): (keys int64, slots int32,
    shift), at most a quarter full so that a miss ends after one or two probes."""
    bits = max(4, int(np.ceil(np.log2(4 * max(len(ids), 1)))))
    size = 1 << bits
    keys = np.full(size, _EMPTY, np.int64)
    slots = np.full(size, -1, np.int32)
    shift = 64 - bits
    for s, j in enumerate(np.asarray(ids, np.int64).tolist()):
        h = ((j * 0x9E3779B97F4A7C15) & (2**64 - 1)) >> shift
        while keys[h] != _EMPTY:
            h = (h + 1) & (size - 1)
        keys[h], slots[h] = j, s
    return keys, slots, shift


@njit(inline="always", cache=True)
def _slot_of(keys, slots, shift, mask, j):
    h = np.int64((np.uint64(j) * _GOLDEN) >> np.uint64(shift))
    while True:
        k = keys[h]
        if k == j:
            return slots[h]
        if k == _EMPTY:
            return -1
        h = (h + 1) & mask


_SPLIT_SIGNATURE = types.int64(RO_I64, RO_U32, RO_F32, types.boolean, RO_I16, RO_I64, RO_I32, types.int64, RW_U32,
                                RW_F32, RW_I32)


@njit(_SPLIT_SIGNATURE, nogil=True, cache=True)
def split_hot_rows(indptr, indices, values, has_values, table, keys, slots, shift, out_indices, out_values,
                   hot_count):
    """Rearrange every row: its hot entries first (their ids replaced by their slots), then
    its cold entries, in order; ``hot_count[r]`` = the row's hot entries. A feature's slot is
    ``table[j]`` (-1: cold) when ``table`` is not empty, else found in the hash table
    (``keys``, ``slots``, ``shift``). Returns the number of hot entries, or -1 when the
    arrays do not fit the block.

    Hot and cold entries alternate unpredictably, so the loops store without branching:
    the first writes every entry at the hot cursor and moves it past hot ones only (the
    cursor never passes the entry being read); the second does the same for cold entries
    from where the hot ones end (the last stores, past the row, are skipped)."""
    n_rows = indptr.shape[0] - 1
    nnz = indices.shape[0]
    dense = table.shape[0] > 0
    if (out_indices.shape[0] != nnz or hot_count.shape[0] != n_rows or (has_values and (
            values.shape[0] != nnz or out_values.shape[0] != nnz)) or keys.shape[0] != slots.shape[0]):
        return -1
    mask = keys.shape[0] - 1
    total = 0
    for r in range(n_rows):
        lo, hi = indptr[r], indptr[r + 1]
        h = lo
        for p in range(lo, hi):
            j = np.int64(indices[p])
            if dense:
                sl = np.int64(table[j]) if j < table.shape[0] else -1
            else:
                sl = np.int64(_slot_of(keys, slots, shift, mask, j))
            out_indices[h] = np.uint32(sl & 0xFFFFFFFF)  # a cold entry's junk is overwritten below
            if has_values:
                out_values[h] = values[p]
            h += sl >= 0
        c = h
        for p in range(lo, hi):
            j = np.int64(indices[p])
            if dense:
                cold = j >= table.shape[0] or table[j] < 0
            else:
                cold = _slot_of(keys, slots, shift, mask, j) < 0
            if c < hi:
                out_indices[c] = np.uint32(j)
                if has_values:
                    out_values[c] = values[p]
            c += cold
        hot_count[r] = h - lo
        total += h - lo
    return total


#: Feature spaces up to this size get a dense slot table (2 bytes a feature: 64 MiB at
#: most, a fraction of the weights' 4 bytes a feature): one load per entry instead of a
#: hash probe (474 against 71M lookups/s measured). Larger ones (hashed 2^30 spaces) probe.
DENSE_TABLE_MAX = 1 << 25


class HotSet:
    """The hot coordinates of a run: ``ids`` (slot i is feature ids[i]) and their tables."""

    def __init__(self, ids: np.ndarray, n_features: int | None = None):
        self.ids = np.asarray(ids, np.int64)
        self.keys, self.slots, self.shift = hot_table(self.ids)
        self.table = np.zeros(0, np.int16)
        if n_features is not None and n_features <= DENSE_TABLE_MAX and len(self.ids) <= np.iinfo(np.int16).max:
            self.table = np.full(n_features, -1, np.int16)
            self.table[self.ids] = np.arange(len(self.ids), dtype=np.int16)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_counts(cls, ids: np.ndarray, counts: np.ndarray, rows: int, limit: int,
                    min_share: float = 0.0, n_features: int | None = None) -> "HotSet":
        """The ``limit`` most frequent of ``ids`` (with their ``counts`` over ``rows`` sampled
        rows) that at least ``min_share`` of the rows hold; ties broken by id (reproducible)."""
        order = np.lexsort((ids, -counts))[:limit]
        keep = order[counts[order] >= max(1.0, min_share * rows)]
        return cls(np.sort(ids[keep]), n_features)

    def split(self, indptr, indices, values, buffers=None):
        """(indices, values, hot_count) of a block rearranged for the kernel (see the module).
        ``buffers``: a dict this thread reuses for the outputs (fresh arrays of a block's size
        cost page faults: writing into new memory ran the split at a third of its speed)."""
        has_values = values is not None
        nnz, n_rows = len(indices), len(indptr) - 1
        if buffers is None:
            buffers = {}
        if buffers.get("nnz", -1) < nnz or buffers.get("rows", -1) < n_rows:
            buffers.update(nnz=max(nnz, buffers.get("nnz", 0)), rows=max(n_rows, buffers.get("rows", 0)))
            buffers.update(indices=np.empty(buffers["nnz"], np.uint32), values=np.empty(buffers["nnz"], np.float32),
                           hot_count=np.empty(buffers["rows"], np.int32))
        out_indices, hot_count = buffers["indices"][:nnz], buffers["hot_count"][:n_rows]
        out_values = buffers["values"][:nnz] if has_values else buffers["values"][:0]
        n = split_hot_rows(indptr, indices, values if has_values else out_values, has_values, self.table,
                           self.keys, self.slots, self.shift, out_indices, out_values, hot_count)
        if n < 0:
            raise ValueError("split_hot_rows: arrays that do not fit the block")
        return out_indices, (out_values if has_values else None), hot_count
