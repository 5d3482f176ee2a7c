"""Sets of coordinates for sparse model changes (streamhog/cluster): marking the
coordinates a block touches, and the union of two sorted index arrays, in linear time and
without the GIL (np.unique and np.union1d sort: seconds per round for a million coordinates).
"""
from __future__ import annotations

import numpy as np
from numba import njit, types

from .types import RO_I64, RO_U32, RW_I64, RW_U8


@njit(types.void(RO_U32, types.int64, RW_U8), nogil=True, cache=True)
def mark(indices, n_outputs, mask):
    """mask[j * K + k] = 1 for every id j of ``indices`` and k < K (an id past the mask is
    skipped: the training kernel has refused its block already). Threads may mark at once:
    every write stores the same 1."""
    n = mask.shape[0]
    for p in range(indices.shape[0]):
        base = indices[p] * n_outputs
        for k in range(n_outputs):
            if base + k < n:
                mask[base + k] = 1


@njit(types.Tuple((RW_I64, RW_I64, RW_I64))(RO_I64, RO_I64), nogil=True, cache=True)
def union_positions(a, b):
    """The union of two ascending arrays of distinct values, and where each of ``a`` and ``b``
    lands in it."""
    out = np.empty(a.shape[0] + b.shape[0], np.int64)
    pa = np.empty(a.shape[0], np.int64)
    pb = np.empty(b.shape[0], np.int64)
    i = j = n = 0
    while i < a.shape[0] or j < b.shape[0]:
        if j >= b.shape[0] or (i < a.shape[0] and a[i] < b[j]):
            out[n] = a[i]
            pa[i] = n
            i += 1
        elif i >= a.shape[0] or b[j] < a[i]:
            out[n] = b[j]
            pb[j] = n
            j += 1
        else:
            out[n] = a[i]
            pa[i] = n
            pb[j] = n
            i += 1
            j += 1
        n += 1
    return out[:n], pa, pb


