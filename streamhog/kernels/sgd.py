"""Per-example stochastic gradient training of a linear model over a CSR block, writing
shared weights without locks (Hogwild!).

Every hyper-parameter is an explicit argument (scikit-learn's ``_sgd_fast`` style); the
learning rate comes with the block (gensim style): the caller passes the schedule and the
global step ``t0`` of the block's first row.

For row i with margin z = b + sum_j w_j x_ij, target y and importance weight s, the loss
gradient is g = s * dloss(z, y), and every coordinate j of the row is updated by the
optimizer's per-coordinate rule from g x_ij (kernels/optimizers.py: sgd, adagrad,
normalized, ftrl); the intercept likewise, from g.

Regularization is applied to the touched coordinates only (the Hogwild! paper's sparse
form). For sgd, adagrad and normalized, ``l2`` is per example: over an epoch coordinate j
is shrunk once per example that holds it, so the objective minimized is

    (1/n) sum_i s_i loss(z_i, y_i)  +  (l2 / 2) sum_j (n_j / n) w_j^2

(n_j: the number of examples in which feature j appears; the update costs O(nnz), not
O(n_features)). For ftrl, ``l1`` and ``l2`` are FTRL-Proximal's, on the summed loss.

Step size: eta_t = lr (constant; the per-epoch decay lr * decay^epoch is folded into lr by
the caller) or eta_t = lr / (1 + t)^power_t (inverse scaling, t = examples seen before).

Threads call this concurrently on different blocks and the same arrays; reads and writes
of a coordinate may interleave (Hogwild!). With ``use_lock`` each example's read-update
runs under a spin lock instead: the locking baseline.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types

from .losses import SQUARED, loss_and_dloss
from .optimizers import (ADAGRAD, B_ACC, B_AUX, B_VALUE, FTRL, NORM_N, NORM_T, NORMALIZED, SGD, observe_scale,
                         update_coordinate, update_intercept)
from .prefetch import prefetch, prefetch_rows_ahead
from .spinlock import spin_acquire, spin_release

CONSTANT = 0
INVSCALING = 1

_ro = lambda dt: types.Array(dt, 1, "C", readonly=True)  # noqa: E731
_rw = lambda dt: types.Array(dt, 1, "C")  # noqa: E731

# One compiled kernel per optimizer (below): the optimizer is a constant inside each, so
# the compiler drops the other rules' branches from the per-nonzero loops.
TRAIN_SIGNATURE = types.UniTuple(types.float64, 4)(
    _ro(types.int64), _ro(types.uint32), _ro(types.float32), types.boolean,   # indptr, indices, values, has_values
    _ro(types.float32), _ro(types.float32), types.boolean,                    # labels, weights, has_weights
    _ro(types.int64),                                                         # rows: visiting order
    _rw(types.float32), _rw(types.float32), _rw(types.float32),               # w, acc, aux
    _rw(types.float64), _rw(types.int32), types.boolean,                      # bstate, lock, use_lock
    types.int64, types.int64,                                                 # loss, schedule
    types.float64, types.float64, types.int64,                                # lr, power_t, t0
    types.float64, types.float64, types.float64, types.boolean,               # l1, l2, beta, fit_intercept
)


def train_rows(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows,
               w, acc, aux, bstate, lock, use_lock, opt, loss_id, schedule, lr, power_t, t0,
               l1, l2, beta, fit_intercept):
    """Train on ``rows`` of the block, in that order, with optimizer ``opt`` (see
    ``_train_rows``); runs without the GIL."""
    return _KERNELS[opt](indptr, indices, values, has_values, labels, sample_weights, has_weights, rows,
                         w, acc, aux, bstate, lock, use_lock, loss_id, schedule, lr, power_t, t0,
                         l1, l2, beta, fit_intercept)


@njit(inline="always", cache=True)
def _train_rows(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows,
                w, acc, aux, bstate, lock, use_lock, opt, loss_id, schedule, lr, power_t, t0,
                l1, l2, beta, fit_intercept):
    """Train on ``rows`` of the block, in that order. ``acc``/``aux`` are the optimizer's
    per-coordinate state (empty for sgd); ``bstate`` the intercept's value and state and the
    normalized rule's N and T (optimizers.B_VALUE...NORM_T). Returns (sum of s * loss before
    each update, sum of s, number of rows whose margin was not finite: divergence, 1.0 if an
    index >= len(w) stopped the block (or the state arrays do not match w), else 0.0). Such
    an index is never written or read, whatever was validated upstream: the rows before it
    are trained and the block stops there (under ``normalized``, the row's features before
    it have had their scales widened already)."""
    loss_sum = 0.0
    weight_sum = 0.0
    n_bad = 0.0
    n = rows.shape[0]
    n_w = w.shape[0]
    stateful = opt != SGD
    with_aux = opt == NORMALIZED or opt == FTRL
    if (stateful and acc.shape[0] != n_w) or (with_aux and aux.shape[0] != n_w):
        return 0.0, 0.0, 0.0, 1.0  # state arrays that do not match the weights: refuse, never index them
    # Every example updates the intercept (and N, T): shared, their cache line would bounce
    # between the threads on each example. Lock-free, a block works on local copies and adds
    # its change once at the end (Hogwild!-style staleness of one block); the lock baseline
    # keeps the paper's per-update semantics on the shared values.
    start = bstate.copy()
    b, b_acc, b_aux = start[B_VALUE], start[B_ACC], start[B_AUX]
    norm_n, norm_t = start[NORM_N], start[NORM_T]
    out_of_range = False
    for k in range(n):
        # Memory latency, not arithmetic, bounds this loop: prefetch the next row's weights
        # (and state) and the data of rows further ahead (see prefetch.py). Hints only.
        if k + 1 < n:
            nxt = rows[k + 1]
            for p in range(indptr[nxt], indptr[nxt + 1]):
                prefetch(w, indices[p])
                if stateful:
                    prefetch(acc, indices[p])
                    if with_aux:
                        prefetch(aux, indices[p])
            prefetch_rows_ahead(indptr, indices, values, has_values, rows, k, n)
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
            b, b_acc, b_aux = bstate[B_VALUE], bstate[B_ACC], bstate[B_AUX]
            norm_n, norm_t = bstate[NORM_N], bstate[NORM_T]
        z = b
        nx = 0.0
        for p in range(lo, hi):
            j = indices[p]
            if j >= n_w:
                out_of_range = True
                break
            x = np.float64(values[p]) if has_values else 1.0
            nx += observe_scale(opt, w, aux, j, x)
            z += w[j] * x
        if out_of_range:
            if use_lock:
                spin_release(lock)
            break
        if not np.isfinite(z):
            n_bad += 1.0
            if use_lock:
                spin_release(lock)
            continue
        loss, dloss = loss_and_dloss(loss_id, z, y)
        loss_sum += s * loss
        weight_sum += s
        g = s * dloss
        mult = eta
        if opt == NORMALIZED:
            norm_n += s * (nx + (1.0 if fit_intercept else 0.0))
            norm_t += s
            if norm_n > 0.0:
                mult = eta * math.sqrt(norm_t / norm_n)
        if g != 0.0 or (opt != FTRL and l2 != 0.0):
            for p in range(lo, hi):
                j = indices[p]
                x = np.float64(values[p]) if has_values else 1.0
                update_coordinate(opt, w, acc, aux, j, g * x, eta, mult, l1, l2, beta)
            if fit_intercept and g != 0.0:
                b, b_acc, b_aux = update_intercept(opt, b, b_acc, b_aux, g, eta, mult, beta)
        if use_lock:
            bstate[B_VALUE], bstate[B_ACC], bstate[B_AUX] = b, b_acc, b_aux
            bstate[NORM_N], bstate[NORM_T] = norm_n, norm_t
            spin_release(lock)
    if not use_lock:
        bstate[B_VALUE] += b - start[B_VALUE]
        bstate[B_ACC] += b_acc - start[B_ACC]
        bstate[B_AUX] += b_aux - start[B_AUX]
        bstate[NORM_N] += norm_n - start[NORM_N]
        bstate[NORM_T] += norm_t - start[NORM_T]
    return loss_sum, weight_sum, n_bad, 1.0 if out_of_range else 0.0


@njit(TRAIN_SIGNATURE, nogil=True, cache=True)
def train_rows_sgd(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows, w, acc, aux,
                   bstate, lock, use_lock, loss_id, schedule, lr, power_t, t0, l1, l2, beta, fit_intercept):
    return _train_rows(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows, w, acc, aux,
                       bstate, lock, use_lock, SGD, loss_id, schedule, lr, power_t, t0, l1, l2, beta, fit_intercept)


@njit(TRAIN_SIGNATURE, nogil=True, cache=True)
def train_rows_adagrad(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows, w, acc, aux,
                       bstate, lock, use_lock, loss_id, schedule, lr, power_t, t0, l1, l2, beta, fit_intercept):
    return _train_rows(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows, w, acc, aux,
                       bstate, lock, use_lock, ADAGRAD, loss_id, schedule, lr, power_t, t0, l1, l2, beta,
                       fit_intercept)


@njit(TRAIN_SIGNATURE, nogil=True, cache=True)
def train_rows_normalized(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows, w, acc,
                          aux, bstate, lock, use_lock, loss_id, schedule, lr, power_t, t0, l1, l2, beta,
                          fit_intercept):
    return _train_rows(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows, w, acc, aux,
                       bstate, lock, use_lock, NORMALIZED, loss_id, schedule, lr, power_t, t0, l1, l2, beta,
                       fit_intercept)


@njit(TRAIN_SIGNATURE, nogil=True, cache=True)
def train_rows_ftrl(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows, w, acc, aux,
                    bstate, lock, use_lock, loss_id, schedule, lr, power_t, t0, l1, l2, beta, fit_intercept):
    return _train_rows(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows, w, acc, aux,
                       bstate, lock, use_lock, FTRL, loss_id, schedule, lr, power_t, t0, l1, l2, beta, fit_intercept)


_KERNELS = {SGD: train_rows_sgd, ADAGRAD: train_rows_adagrad, NORMALIZED: train_rows_normalized, FTRL: train_rows_ftrl}
