"""The full-batch objective of a linear model over a CSR block: loss and gradient, nogil.

Distributed L-BFGS (streamhog/cluster/lbfgs.py, Sandblaster-style) sums, over every
worker's partition, the loss and the gradient of

    sum_i s_i loss(z_i, y_i),    z_i = b + sum_j w_j x_ij

at a fixed point (w, b). This kernel adds one block's rows to those sums: the gradient is
accumulated sparsely into a dense float64 array ``grad`` of n_features + 1 entries (the
intercept last), touching only the coordinates the rows hold (a thread's own array; the
caller sums threads and workers). The loss units are kernels/losses.py's, the same the
SGD kernels use, so both optimise the same loss. The penalty (l2/2)|w|^2 and the 1/n are
the caller's: they need the whole w, not a block.
"""
from __future__ import annotations

import numpy as np
from numba import njit, types

from .losses import loss_and_dloss, target
from .types import RO_F32, RO_F64, RO_I64, RO_U32, RW_F64

#: Bits of the kernel's ``flags`` result (the training kernels' values).
OUT_OF_RANGE = 1  # a feature index >= n_features stopped the block
NONFINITE = 8     # a margin was not finite (the point is unusable)

OBJECTIVE_SIGNATURE = types.Tuple((types.float64, types.float64, types.int64))(
    RO_I64, RO_U32, RO_F32, types.boolean,      # indptr, indices, values, has_values
    RO_F32, RO_F32, types.boolean,              # labels, sample weights, has_weights
    RO_I64,                                     # rows to include
    RO_F64, types.float64, types.int64,         # w, intercept b, loss id
    RW_F64,                                     # grad (n_features + 1; intercept last)
)


@njit(OBJECTIVE_SIGNATURE, nogil=True, cache=True)
def block_loss_grad(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows, w, b,
                    loss_id, grad):
    """Add sum_i s_i loss_i of ``rows`` to the result and s_i dloss_i x_i to ``grad``;
    returns (loss sum, weight sum, flags). Stops at an index >= len(w), never writing it."""
    n_w = w.shape[0]
    if grad.shape[0] != n_w + 1:
        return 0.0, 0.0, OUT_OF_RANGE
    loss_sum = 0.0
    weight_sum = 0.0
    for k in range(rows.shape[0]):
        i = rows[k]
        lo = indptr[i]
        hi = indptr[i + 1]
        z = b
        for p in range(lo, hi):
            j = indices[p]
            if j >= n_w:
                return loss_sum, weight_sum, OUT_OF_RANGE
            z += w[j] * (np.float64(values[p]) if has_values else 1.0)
        if not np.isfinite(z):
            return loss_sum, weight_sum, NONFINITE
        s = np.float64(sample_weights[i]) if has_weights else 1.0
        loss, dloss = loss_and_dloss(loss_id, z, target(loss_id, np.float64(labels[i])))
        loss_sum += s * loss
        weight_sum += s
        g = s * dloss
        if g != 0.0:
            for p in range(lo, hi):
                grad[indices[p]] += g * (np.float64(values[p]) if has_values else 1.0)
            grad[n_w] += g
    return loss_sum, weight_sum, 0
