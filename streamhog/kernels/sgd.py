"""Per-example SGD over a CSR block, writing a shared weight vector without locks (Hogwild!).

Every hyper-parameter is an explicit argument (scikit-learn's ``_sgd_fast`` style); the
learning rate comes with the block (gensim style): the caller passes the schedule and the
global step ``t0`` of the block's first row.

Update for row i with margin z = b + sum_j w_j x_ij, target y, importance weight s:

    g    = s * dloss(z, y)
    w_j <- w_j - eta_t * (g * x_ij + l2 * w_j)      for the j in row i only
    b   <- b - eta_t * g                               (the intercept is not regularized)

L2 is applied to the touched coordinates only (the Hogwild! paper's sparse form): over an
epoch coordinate j is shrunk once per example that holds it, so the objective minimized is

    (1/n) sum_i s_i loss(z_i, y_i)  +  (l2 / 2) sum_j (n_j / n) w_j^2

where n_j is the number of examples in which feature j appears. Frequent features are
regularized more, rare ones less, and the update costs O(nnz) instead of O(n_features).

Step size: eta_t = lr (constant; the per-epoch decay lr * decay^epoch is folded into lr by
the caller) or eta_t = lr / (1 + t)^power_t (inverse scaling, t = examples seen before).

Threads call this concurrently on different blocks and the same ``w``; reads and writes
of a coordinate may interleave (Hogwild!). With ``use_lock`` each example's read-update
runs under a spin lock instead: the locking baseline.
"""
from __future__ import annotations

import numpy as np
from numba import njit, types

from .losses import SQUARED, loss_and_dloss
from .prefetch import prefetch
from .spinlock import spin_acquire, spin_release

CONSTANT = 0
INVSCALING = 1

_ro = lambda dt: types.Array(dt, 1, "C", readonly=True)  # noqa: E731
_rw = lambda dt: types.Array(dt, 1, "C")  # noqa: E731

SGD_SIGNATURE = types.UniTuple(types.float64, 4)(
    _ro(types.int64), _ro(types.uint32), _ro(types.float32), types.boolean,   # indptr, indices, values, has_values
    _ro(types.float32), _ro(types.float32), types.boolean,                    # labels, weights, has_weights
    _ro(types.int64),                                                         # rows: visiting order
    _rw(types.float32), _rw(types.float64), _rw(types.int32), types.boolean,  # w, intercept, lock, use_lock
    types.int64, types.int64, types.float64, types.float64, types.int64,      # loss, schedule, lr, power_t, t0
    types.float64, types.boolean,                                             # l2, fit_intercept
)


@njit(SGD_SIGNATURE, nogil=True, cache=True)
def sgd_train_rows(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows,
                   w, intercept, lock, use_lock, loss_id, schedule, lr, power_t, t0, l2, fit_intercept):
    """Train on ``rows`` of the block, in that order. Returns (sum of s * loss before each
    update, sum of s, number of rows whose margin was not finite: divergence, number of
    indices >= len(w): the block is refused before its row is updated, so hostile data
    never writes outside the weight vector, whatever was validated upstream)."""
    loss_sum = 0.0
    weight_sum = 0.0
    n_bad = 0.0
    n = rows.shape[0]
    n_w = w.shape[0]
    # Every example updates the intercept: shared, its cache line would bounce between the
    # threads on each example. Lock-free, a block works on a local copy and adds its change
    # once at the end (Hogwild!-style staleness of one block); the lock baseline keeps the
    # paper's per-update semantics on the shared value.
    b_start = intercept[0]
    b = b_start
    for k in range(n):
        # Memory latency, not arithmetic, bounds this loop: prefetch the next row's weights
        # and the data of rows further ahead (see prefetch.py). Hints only: no effect on results.
        if k + 1 < n:
            nxt = rows[k + 1]
            for p in range(indptr[nxt], indptr[nxt + 1]):
                prefetch(w, indices[p])
            if k + 4 < n:
                ahead = indptr[rows[k + 4]]
                for off in range(0, 48, 16):
                    prefetch(indices, ahead + off)
                    if has_values:
                        prefetch(values, ahead + off)
                if k + 8 < n:
                    prefetch(indptr, rows[k + 8])
        i = rows[k]
        lo = indptr[i]
        hi = indptr[i + 1]
        y = np.float64(labels[i])
        if loss_id != SQUARED:
            y = 1.0 if y > 0.0 else -1.0  # {0, 1} and {-1, +1} labels alike
        s = np.float64(sample_weights[i]) if has_weights else 1.0
        if schedule == CONSTANT:
            eta = lr
        else:
            eta = lr / (1.0 + np.float64(t0 + k)) ** power_t
        if use_lock:
            spin_acquire(lock)
        if use_lock:
            b = intercept[0]
        z = b
        out_of_range = False
        if has_values:
            for p in range(lo, hi):
                j = indices[p]
                if j >= n_w:
                    out_of_range = True
                    break
                z += w[j] * np.float64(values[p])
        else:
            for p in range(lo, hi):
                j = indices[p]
                if j >= n_w:
                    out_of_range = True
                    break
                z += w[j]
        if out_of_range:
            if use_lock:
                spin_release(lock)
            else:
                intercept[0] += b - b_start
            return loss_sum, weight_sum, n_bad, 1.0
        if not np.isfinite(z):
            n_bad += 1.0
            if use_lock:
                spin_release(lock)
            continue
        loss, dloss = loss_and_dloss(loss_id, z, y)
        loss_sum += s * loss
        weight_sum += s
        g = s * dloss
        if g != 0.0 or l2 != 0.0:
            shrink = 1.0 - eta * l2
            step = eta * g
            if has_values:
                for p in range(lo, hi):
                    j = indices[p]
                    w[j] = w[j] * shrink - step * np.float64(values[p])
            else:
                for p in range(lo, hi):
                    j = indices[p]
                    w[j] = w[j] * shrink - step
            if fit_intercept:
                b -= step
                if use_lock:
                    intercept[0] = b
        if use_lock:
            spin_release(lock)
    if not use_lock:
        intercept[0] += b - b_start
    return loss_sum, weight_sum, n_bad, 0.0
