"""Read-time checks of a CSR block, in one pass (numba, nogil).

Bad data must never reach a training kernel: an index >= n_features would write outside
the weight vector. One fused pass keeps the check far cheaper than decoding the block.
"""
from __future__ import annotations

import numpy as np
from numba import njit, types

OK = 0
BAD_INDPTR = 1        # indptr not starting at 0, decreasing, or ending beyond nnz
INDEX_OUT_OF_RANGE = 2
NOT_ASCENDING = 3     # duplicate or descending index within a row
VALUE_NOT_FINITE = 4
LABEL_NOT_FINITE = 5
WEIGHT_NOT_FINITE = 6
WEIGHT_NEGATIVE = 7   # an importance weight scales a gradient: a negative one climbs the loss

_ro_i64 = types.Array(types.int64, 1, "C", readonly=True)
_ro_u32 = types.Array(types.uint32, 1, "C", readonly=True)
_ro_f32 = types.Array(types.float32, 1, "C", readonly=True)
_ro_f32_any = types.Array(types.float32, 1, "A", readonly=True)


@njit(
    types.UniTuple(types.int64, 3)(_ro_i64, _ro_u32, _ro_f32_any, types.boolean, _ro_f32, _ro_f32_any, types.boolean, types.int64),
    nogil=True,
    cache=True,
)
def check_csr_block(indptr, indices, values, has_values, labels, weights, has_weights, n_features):
    """Return (code, row, position) of the first problem in the block, or (OK, -1, -1).

    ``values`` / ``weights`` are ignored unless ``has_values`` / ``has_weights``.
    """
    n_rows = labels.shape[0]
    nnz = indices.shape[0]
    if indptr.shape[0] != n_rows + 1 or indptr[0] != 0 or indptr[n_rows] != nnz:
        return BAD_INDPTR, -1, -1
    for r in range(n_rows):
        lab = labels[r]
        if not np.isfinite(lab):
            return LABEL_NOT_FINITE, r, -1
        if has_weights:
            w = weights[r]
            if not np.isfinite(w):
                return WEIGHT_NOT_FINITE, r, -1
            if w < 0:
                return WEIGHT_NEGATIVE, r, -1
        lo = indptr[r]
        hi = indptr[r + 1]
        if hi < lo or hi > nnz:  # checked before the row is touched: no read out of bounds
            return BAD_INDPTR, r, -1
        prev = -1
        for k in range(lo, hi):
            j = np.int64(indices[k])
            if j >= n_features:
                return INDEX_OUT_OF_RANGE, r, k
            if j <= prev:
                return NOT_ASCENDING, r, k
            prev = j
            if has_values and not np.isfinite(values[k]):
                return VALUE_NOT_FINITE, r, k
    return OK, -1, -1


_EMPTY_F32 = np.zeros(0, dtype=np.float32)


def describe_csr_problem(indptr, indices, values, labels, weights, n_features) -> str | None:
    """Run :func:`check_csr_block` and turn its answer into a sentence (None when the block is fine)."""
    return csr_problem(indptr, indices, values, labels, weights, n_features)[1]


def csr_problem(indptr, indices, values, labels, weights, n_features) -> tuple[int, str | None]:
    """:func:`describe_csr_problem` with the problem's code (OK, NOT_ASCENDING, ...) beside it."""
    code, row, pos = check_csr_block(
        indptr,
        indices,
        values if values is not None else _EMPTY_F32,
        values is not None,
        labels,
        weights if weights is not None else _EMPTY_F32,
        weights is not None,
        n_features,
    )
    return code, None if code == OK else _sentence(code, row, pos, indices, values, labels, weights, n_features)


def _sentence(code, row, pos, indices, values, labels, weights, n_features) -> str:
    if code == BAD_INDPTR:
        return "row offsets are inconsistent (indptr must start at 0, never decrease, and end at nnz)"
    if code == INDEX_OUT_OF_RANGE:
        return f"row {row}: feature index {int(indices[pos])} >= n_features {n_features}"
    if code == NOT_ASCENDING:
        prev, cur = int(indices[pos - 1]), int(indices[pos])
        what = "duplicate index" if cur == prev else "indices not ascending:"
        return f"row {row}: {what} {cur}" + ("" if cur == prev else f" after {prev}")
    if code == VALUE_NOT_FINITE:
        return f"row {row}: value {values[pos]} of feature {int(indices[pos])} is not finite"
    if code == LABEL_NOT_FINITE:
        return f"row {row}: label {labels[row]} is not finite"
    if code == WEIGHT_NEGATIVE:
        return f"row {row}: weight {weights[row]} is negative (importance weights must be >= 0)"
    return f"row {row}: weight {weights[row]} is not finite"
