"""Margins ``x·w + b`` of CSR rows (numba, nogil): the scoring kernel behind predict / evaluate.

Inputs may be read-only (Arrow and Zarr buffers, a weights memmap opened ``mode="r"``), so the
signature is eager and declares them read-only. The kernel runs without the GIL: several
threads score batches in parallel against one shared weight vector.

Safety: a feature index ``>= len(weights)`` would read outside the weight vector. Readers
validate every index against the *dataset's* n_features, and callers refuse datasets wider
than the model before scoring; the kernel checks each index anyway (one predictable compare
per nonzero, negligible next to the random gather from the weights) so that a hand-made
batch can never make it read out of bounds.
"""
from __future__ import annotations

import numpy as np
from numba import njit, types

from .validate import BAD_INDPTR, INDEX_OUT_OF_RANGE, OK, _ro_f32, _ro_i64, _ro_u32  # noqa: F401  (codes re-exported)
_f64 = types.Array(types.float64, 1, "C")


_SIGNATURE = types.UniTuple(types.int64, 3)(_ro_i64, _ro_u32, _ro_f32, types.boolean, _ro_f32, types.float64, _f64)
#: The same for strided weights: the "w" field of a record file (model/directory.py's format 2).
_SIGNATURE_STRIDED = _SIGNATURE.return_type(*_SIGNATURE.args[:4], types.Array(types.float32, 1, "A", readonly=True),
                                            *_SIGNATURE.args[5:])


@njit(inline="always", cache=True)
def _margins(indptr, indices, values, has_values, weights_vector, intercept, out):
    """Write ``out[r] = sum_k values[k] * weights_vector[indices[k]] + intercept`` for every row.

    ``values`` is ignored unless ``has_values`` (binary features: every value is 1.0).
    Sums are float64 (a float32 x float32 product is exact in float64).
    Returns ``(OK, -1, -1)``, or ``(code, row, position)`` of the first problem; rows from
    that one on are left unwritten.
    """
    n_rows = out.shape[0]
    nnz = indices.shape[0]
    n_weights = weights_vector.shape[0]
    if indptr.shape[0] != n_rows + 1:
        return BAD_INDPTR, -1, -1
    for r in range(n_rows):
        lo = indptr[r]
        hi = indptr[r + 1]
        if lo < 0 or hi < lo or hi > nnz:  # checked before the row is touched
            return BAD_INDPTR, r, -1
        s = 0.0
        if has_values:
            for k in range(lo, hi):
                j = np.int64(indices[k])
                if j >= n_weights:
                    return INDEX_OUT_OF_RANGE, r, k
                s += np.float64(values[k]) * np.float64(weights_vector[j])
        else:
            for k in range(lo, hi):
                j = np.int64(indices[k])
                if j >= n_weights:
                    return INDEX_OUT_OF_RANGE, r, k
                s += np.float64(weights_vector[j])
        out[r] = s + intercept
    return OK, -1, -1


# Two dispatchers, not one with two signatures: a writable contiguous vector converts to
# either read-only type equally well, which numba refuses as ambiguous.
@njit(_SIGNATURE, nogil=True, cache=True)
def csr_margins(indptr, indices, values, has_values, weights_vector, intercept, out):
    """``_margins`` for contiguous weights."""
    return _margins(indptr, indices, values, has_values, weights_vector, intercept, out)


@njit(_SIGNATURE_STRIDED, nogil=True, cache=True)
def csr_margins_strided(indptr, indices, values, has_values, weights_vector, intercept, out):
    """``_margins`` for strided weights (a record file's "w" field)."""
    return _margins(indptr, indices, values, has_values, weights_vector, intercept, out)


_EMPTY_F32 = np.zeros(0, dtype=np.float32)


def weight_vector(weights) -> np.ndarray:
    """The model's weights as a plain float32 ndarray (no copy of a memmap): contiguous, or
    the strided "w" field of a record file (csr_margins takes both)."""
    w = np.asarray(weights)  # a memmap subclass -> plain ndarray view: what numba types
    if w.dtype != np.float32 or w.ndim != 1:
        raise TypeError(f"weights must be a 1-D float32 array, got {w.dtype} of shape {w.shape}")
    return w  # never copied: a model-sized copy per call would be a trap


def batch_margins(batch, weights, intercept: float, out: np.ndarray | None = None) -> np.ndarray:
    """Margins ``x·w + b`` (float64, one per row) of a :class:`~streamhog.io.batch.SparseBatch`.

    ``weights`` is the model's float32 weight vector (a memmap is fine, read-only too).
    ``out``, when given, is a float64 C-contiguous array of ``batch.n_rows`` to write into.
    Raises ValueError for a batch whose indices reach past the weight vector or whose
    row offsets are inconsistent.
    """
    w = weight_vector(weights)
    n_rows = batch.n_rows
    if out is None:
        out = np.empty(n_rows, dtype=np.float64)
    elif out.dtype != np.float64 or out.shape != (n_rows,) or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"out must be a writable contiguous float64 array of shape ({n_rows},)")
    # No copies when the arrays already have these dtypes and are contiguous (the readers' case).
    indptr = np.ascontiguousarray(batch.indptr, dtype=np.int64)
    indices = np.ascontiguousarray(batch.indices, dtype=np.uint32)
    has_values = batch.values is not None
    if has_values:
        values = np.ascontiguousarray(batch.values, dtype=np.float32)
        if values.shape != indices.shape:
            raise ValueError(f"{batch.source or 'batch'}: {len(values)} values for {len(indices)} indices")
    else:
        values = _EMPTY_F32
    kernel = csr_margins if w.flags.c_contiguous else csr_margins_strided
    code, row, pos = kernel(indptr, indices, values, has_values, w, float(intercept), out)
    if code == INDEX_OUT_OF_RANGE:
        raise ValueError(f"{batch.source or 'batch'}: row {row}: feature index {int(indices[pos])} >= "
                         f"model n_features {len(w)}")
    if code == BAD_INDPTR:
        raise ValueError(f"{batch.source or 'batch'}: row offsets are inconsistent (indptr must have "
                         "n_rows + 1 entries, never decrease, and end at most at nnz)")
    return out
