"""Per-example stochastic gradient training of a linear model over a CSR block, writing
shared weights without locks (Hogwild!): logistic regression, linear SVM, least squares.

Every hyper-parameter is an explicit argument (scikit-learn's ``_sgd_fast`` style); the
learning rate comes with the block (gensim style): the caller passes the schedule and the
global step ``t0`` of the block's first row. ``kernels/block.py`` is the one adapter that
calls this kernel and the softmax one (same arguments, same results).

For row i with margin z = b + sum_j w_j x_ij, target y and importance weight s, the loss
gradient is g = s * dloss(z, y), and every coordinate j of the row is updated by the
optimizer's per-coordinate rule from g x_ij (kernels/optimizers.py: sgd, adagrad, ftrl);
the intercept likewise, from g. The normalized rule (the default) needs two per-row
quantities first: the scales' x / s and h, the margin's change per unit step (its rates
come from the accumulators before the example, so both are summed in the margin's pass),
from which kernels/invariant.py gives the importance-invariant step G; then each weight
moves by its rate times G and its accumulator grows, in a second pass.

Regularization is applied to the touched coordinates only (the Hogwild! paper's sparse
form). For sgd, adagrad and normalized, ``l2`` is per example: over an epoch coordinate j
is shrunk once per example that holds it, so the objective minimized is

    (1/n) sum_i s_i loss(z_i, y_i)  +  (l2 / 2) sum_j (n_j / n) w_j^2

(n_j: the number of examples in which feature j appears; normalized: w_j s_j, the weight in
normalized units, in place of w_j, and n_j weighted by importance; the update costs O(nnz),
not O(n_features)). For ftrl, ``l1`` and ``l2`` are FTRL-Proximal's, on the summed loss.

Step size: eta_t = lr (constant; the per-epoch decay lr * decay^epoch is folded into lr by
the caller) or eta_t = lr / (1 + t)^power_t (inverse scaling, t = examples seen before).

Threads call this concurrently on different blocks and the same arrays; reads and writes
of a coordinate may interleave (Hogwild!). Every example also updates the intercept (and
the normalized rule's N, T): ``bstate``, shared by all threads. Written per example, its
cache line would bounce between the cores on every row; so a block works on a local copy
and publishes its change (atomics.publish: its delta is added, the others' are read back)
every ``sync_rows`` rows, or as soon as its unpublished change of the intercept reaches
``sync_change``. A thread's view of the intercept then misses at most the others'
unpublished rows and change; the caller keeps ``threads x sync_rows`` and ``threads x
sync_change`` constant (kernels/block.py), so that staleness does not grow with the thread
count. The change bound matters early on, when adaptive steps are large: with rows alone,
T threads each moved the intercept to its optimum from the same stale start, T times too
far. (Publishing once per block did that for whole blocks: 16 threads broke the model.)
With ``use_lock`` each example's read-update runs under a spin lock on the shared values
instead: the locking baseline.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types

from .atomics import gate_wait, publish, publish_hot, publish_hot_slot, read_shared, spin_acquire, spin_release
from .invariant import invariant_gradient
from .losses import loss_and_dloss, target
from .optimizers import (ADAGRAD, B_ACC, B_AUX, B_VALUE, FTRL, NORM_N, NORM_T, NORMALIZED, SGD, inverse_scale,
                         normalized_rate, normalized_weight, update_coordinate, update_intercept, widen_scale)
from .prefetch import prefetch, prefetch_rows_ahead
from .types import RO_F32, RO_I32, RO_I64, RO_U32, RW_F32, RW_F32_ANY, RW_F64, RW_I32

CONSTANT = 0
INVSCALING = 1

#: Bits of a kernel's ``flags`` result.
OUT_OF_RANGE = 1  # a feature index >= n_features stopped the block
BAD_LABEL = 2     # a label the head cannot take stopped the block (softmax: not a class id)
BAD_CALL = 4      # arrays whose shapes disagree: nothing was written

#: The signature of both training kernels (this one and softmax.py's): the block, the
#: model's arrays, then the explicit scalars. Returns (sum of s * loss before each update,
#: sum of s, rows whose margin was not finite, flags).
TRAIN_SIGNATURE = types.Tuple((types.float64, types.float64, types.int64, types.int64))(
    RO_I64, RO_U32, RO_F32, types.boolean,         # indptr, indices, values, has_values
    RO_F32, RO_F32, types.boolean,                 # labels, sample weights, has_weights
    RO_I64, RO_I32,                                # rows: visiting order; hot_count per row (empty: none)
    RW_F32, RW_F32, RW_F32,                        # w, acc, aux (flat; softmax: n_features * K)
    RW_F64, RW_F64, RW_I32,                        # bstate, hot (3H: w, acc, aux of the hot slots), cells
    types.int64, types.int64, types.int64,         # n_classes, optimizer, loss
    types.int64,                                   # schedule
    types.float64, types.float64, types.int64,     # lr, power_t, t0
    types.float64, types.float64, types.float64,   # l1, l2, beta
    types.boolean, types.boolean,                  # fit_intercept, use_lock
    types.int64, types.float64,                    # sync_rows, sync_change
)
#: The same with w, acc, aux strided: the fields of one record array (model/directory.py's
#: record layout: a coordinate's w, acc and scale share one cache line). The normalized kernel
#: is compiled for both; numba picks the C signature for separate contiguous arrays.
TRAIN_SIGNATURE_STRIDED = TRAIN_SIGNATURE.return_type(
    *TRAIN_SIGNATURE.args[:9], RW_F32_ANY, RW_F32_ANY, RW_F32_ANY, *TRAIN_SIGNATURE.args[12:])


@njit(inline="always", cache=True)
def _train_rows(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows, hot_count,
                w, acc, aux, bstate, hot, cells, n_classes, loss_id, schedule, lr, power_t, t0,
                l1, l2, beta, fit_intercept, use_lock, sync_rows, sync_change, opt):
    """Train on ``rows`` of the block, in that order. ``acc``/``aux`` are the optimizer's
    per-coordinate state (empty for sgd); ``bstate`` the intercept's value and state and the
    normalized rule's N and T (optimizers.B_VALUE...NORM_T); ``cells`` the lock of
    ``--sync lock`` (and a test gate: atomics.gate_wait). With ``hot_count`` (sgd, adagrad
    and normalized; kernels/hot.py), each row ``i`` starts with ``hot_count[i]`` entries whose
    ids are slots of the hot coordinates, whose shared values are ``hot`` ([w, acc, aux] of H
    slots; normalized: [w s, acc s^2, s], see training/hot.py); the thread works on local
    copies of them, published as the intercept is. An index >= len(w) (a slot >= H) is never
    written or read, whatever was validated upstream: the rows before it are trained and the
    block stops there (under ``normalized``, the row's features before it have had their
    scales widened already)."""
    loss_sum = 0.0
    weight_sum = 0.0
    n_bad = 0
    n = rows.shape[0]
    n_w = w.shape[0]
    stateful = opt != SGD
    with_aux = opt == NORMALIZED or opt == FTRL
    with_hot = hot_count.shape[0] > 0
    n_hot = hot.shape[0] // 3
    if (n_classes != 1 or bstate.shape[0] != 5 or cells.shape[0] < 1
            or (stateful and acc.shape[0] != n_w) or (with_aux and aux.shape[0] != n_w)
            or (with_hot and (hot_count.shape[0] != indptr.shape[0] - 1 or hot.shape[0] != 3 * n_hot
                              or use_lock or opt == FTRL))):
        return 0.0, 0.0, 0, BAD_CALL  # never index arrays that do not match the weights
    local = np.empty(5)
    base = np.empty(5)
    read_shared(bstate, local, base)
    # The hot slots' local copies: w, acc, aux of slot s at s, H + s, 2H + s.
    hot_local = np.empty(hot.shape[0])
    hot_base = np.empty(hot.shape[0])
    read_shared(hot, hot_local, hot_base)
    lw = hot_local[:n_hot]
    lacc = hot_local[n_hot:2 * n_hot]
    laux = hot_local[2 * n_hot:]
    dirty = np.zeros(n_hot, np.bool_)
    dirty_list = np.empty(n_hot, np.int64)
    n_dirty = 0
    hot_moved = 0.0
    # normalized: per position in the row its rate (scratch[0]), the factor of the step in
    # the weight's units (scratch[1]: x / s^2; a hot slot's v = w s: x / s) and x / s (scratch[2])
    # Records (w, acc, aux: fields of one array, one cache line per coordinate): one prefetch.
    separate = w.strides[0] == 4
    longest = 0
    if opt == NORMALIZED:
        for k in range(n):
            longest = max(longest, indptr[rows[k] + 1] - indptr[rows[k]])
    scratch = np.empty((3, longest))
    gate_wait(cells)
    period = max(sync_rows, 1)
    countdown = period
    flags = 0
    for k in range(n):
        if not use_lock:
            countdown -= 1
            if countdown <= 0 or abs(local[B_VALUE] - base[B_VALUE]) >= sync_change:
                publish(bstate, local, base)
            if countdown <= 0:
                publish_hot(hot, hot_local, hot_base, n_hot)  # all slots: the others' changes come back too
                for d in range(n_dirty):
                    dirty[dirty_list[d]] = False
                n_dirty = 0
                hot_moved = 0.0
                countdown = period
            elif hot_moved >= sync_change:  # large steps (early on): publish what moved, at once
                for d in range(n_dirty):
                    sl = dirty_list[d]
                    publish_hot_slot(hot, hot_local, hot_base, sl, n_hot)
                    dirty[sl] = False
                n_dirty = 0
                hot_moved = 0.0
        i = rows[k]
        lo = indptr[i]
        hi = indptr[i + 1]
        mid = lo + hot_count[i] if with_hot else lo
        # Memory latency, not arithmetic, bounds this loop: prefetch the next row's weights
        # (and state) and the data of rows further ahead (see prefetch.py). Hints only.
        if k + 1 < n:
            nxt = rows[k + 1]
            for p in range(indptr[nxt] + (hot_count[nxt] if with_hot else 0), indptr[nxt + 1]):
                prefetch(w, indices[p])
                if stateful and separate:
                    prefetch(acc, indices[p])
                    if with_aux:
                        prefetch(aux, indices[p])
            prefetch_rows_ahead(indptr, indices, values, has_values, rows, k, n)
        y = target(loss_id, np.float64(labels[i]))
        s = np.float64(sample_weights[i]) if has_weights else 1.0
        if schedule == CONSTANT:
            eta = lr
        else:
            eta = lr / (1.0 + np.float64(t0 + k)) ** power_t
        if use_lock:
            spin_acquire(cells)
            read_shared(bstate, local, base)
        z = local[B_VALUE]
        nx = 0.0
        h = 0.0
        for p in range(lo, mid):
            sl = indices[p]
            if sl >= n_hot:
                flags |= OUT_OF_RANGE
                break
            x = np.float64(values[p]) if has_values else 1.0
            if opt == NORMALIZED:  # the local copy holds v = w s: widening keeps it, and acc s^2
                ax = abs(x)
                if ax > laux[sl]:
                    laux[sl] = ax
                inv_s = inverse_scale(laux[sl])
                xn = x * inv_s
                r = normalized_rate(lacc[sl] * inv_s * inv_s, beta)
                scratch[0, p - lo] = r
                scratch[1, p - lo] = xn
                scratch[2, p - lo] = xn
                nx += xn * xn
                h += r * xn * xn
                z += lw[sl] * xn
            else:
                z += lw[sl] * x
        for p in range(mid, hi):
            j = indices[p]
            if j >= n_w:
                flags |= OUT_OF_RANGE
                break
            x = np.float64(values[p]) if has_values else 1.0
            if opt == NORMALIZED:  # the feature's scale (widened, rarely), then x / s and x / s^2
                ax, sj = abs(x), float(aux[j])
                if ax > sj:
                    widen_scale(w, acc, aux, j, 1, sj, ax)
                    sj = ax
                inv_s = inverse_scale(sj)
                xn = x * inv_s
                r = normalized_rate(float(acc[j]), beta)
                scratch[0, p - lo] = r
                scratch[1, p - lo] = xn * inv_s
                scratch[2, p - lo] = xn
                nx += xn * xn
                h += r * xn * xn
            z += w[j] * x
        if flags != 0:
            if use_lock:
                spin_release(cells)
            break
        if not np.isfinite(z):
            n_bad += 1
            if use_lock:
                spin_release(cells)
            continue
        loss, dloss = loss_and_dloss(loss_id, z, y)
        loss_sum += s * loss
        weight_sum += s
        g = s * dloss
        if opt == NORMALIZED:
            local[NORM_N] += s * (nx + (1.0 if fit_intercept else 0.0))
            local[NORM_T] += s
            mult = eta * math.sqrt(local[NORM_T] / local[NORM_N]) if local[NORM_N] > 0.0 else eta
            if (dloss != 0.0 or l2 != 0.0) and s > 0.0:
                # Rates from the accumulators before this row (pass 1 summed h with them):
                # the step G, then each weight and its accumulator in one pass.
                rb = 0.0
                if fit_intercept:
                    rb = normalized_rate(local[B_ACC], beta)
                    local[B_ACC] += s * dloss * dloss
                step = mult * invariant_gradient(loss_id, z, y, dloss, s, mult * (h + rb))
                shrink = mult * l2 * s
                for p in range(lo, mid):
                    sl = indices[p]
                    x = np.float64(values[p]) if has_values else 1.0
                    lacc[sl] += s * (dloss * x) * (dloss * x)
                    lw[sl] = normalized_weight(lw[sl], step, scratch[0, p - lo], scratch[1, p - lo], shrink)
                    hot_moved = max(hot_moved, abs(lw[sl] - hot_base[sl]))
                    if not dirty[sl]:
                        dirty[sl] = True
                        dirty_list[n_dirty] = sl
                        n_dirty += 1
                for p in range(mid, hi):
                    j = indices[p]
                    gxn = dloss * scratch[2, p - lo]
                    acc[j] = acc[j] + s * gxn * gxn
                    w[j] = normalized_weight(w[j], step, scratch[0, p - lo], scratch[1, p - lo], shrink)
                local[B_VALUE] -= step * rb
        elif g != 0.0 or (opt != FTRL and l2 != 0.0):
            for p in range(lo, mid):
                sl = indices[p]
                x = np.float64(values[p]) if has_values else 1.0
                update_coordinate(opt, lw, lacc, laux, sl, g * x, eta, eta, l1, l2, beta)
                hot_moved = max(hot_moved, abs(lw[sl] - hot_base[sl]))
                if not dirty[sl]:
                    dirty[sl] = True
                    dirty_list[n_dirty] = sl
                    n_dirty += 1
            for p in range(mid, hi):
                j = indices[p]
                x = np.float64(values[p]) if has_values else 1.0
                update_coordinate(opt, w, acc, aux, j, g * x, eta, eta, l1, l2, beta)
            if fit_intercept and g != 0.0:
                local[B_VALUE], local[B_ACC], local[B_AUX] = update_intercept(
                    opt, local[B_VALUE], local[B_ACC], local[B_AUX], g, eta, eta, beta)
        if use_lock:
            for q in range(5):
                bstate[q] = local[q]
            spin_release(cells)
    if not use_lock:
        publish(bstate, local, base)
        publish_hot(hot, hot_local, hot_base, n_hot)
    return loss_sum, weight_sum, n_bad, flags


@njit(TRAIN_SIGNATURE, nogil=True, cache=True)
def linear_train_sgd(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows, hot_count, w, acc, aux,
                     bstate, hot, cells, n_classes, optimizer, loss_id, schedule, lr, power_t, t0, l1, l2, beta,
                     fit_intercept, use_lock, sync_rows, sync_change):
    if optimizer != SGD:
        return 0.0, 0.0, 0, BAD_CALL
    return _train_rows(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows, hot_count, w,
                       acc, aux, bstate, hot, cells, n_classes, loss_id, schedule, lr, power_t, t0, l1, l2, beta,
                       fit_intercept, use_lock, sync_rows, sync_change, SGD)


@njit(TRAIN_SIGNATURE, nogil=True, cache=True)
def linear_train_adagrad(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows, hot_count, w, acc, aux,
                         bstate, hot, cells, n_classes, optimizer, loss_id, schedule, lr, power_t, t0, l1, l2, beta,
                         fit_intercept, use_lock, sync_rows, sync_change):
    if optimizer != ADAGRAD:
        return 0.0, 0.0, 0, BAD_CALL
    return _train_rows(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows, hot_count, w,
                       acc, aux, bstate, hot, cells, n_classes, loss_id, schedule, lr, power_t, t0, l1, l2, beta,
                       fit_intercept, use_lock, sync_rows, sync_change, ADAGRAD)


@njit([TRAIN_SIGNATURE, TRAIN_SIGNATURE_STRIDED], nogil=True, cache=True)
def linear_train_normalized(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows, hot_count, w, acc, aux,
                            bstate, hot, cells, n_classes, optimizer, loss_id, schedule, lr, power_t, t0, l1, l2, beta,
                            fit_intercept, use_lock, sync_rows, sync_change):
    if optimizer != NORMALIZED:
        return 0.0, 0.0, 0, BAD_CALL
    return _train_rows(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows, hot_count, w,
                       acc, aux, bstate, hot, cells, n_classes, loss_id, schedule, lr, power_t, t0, l1, l2, beta,
                       fit_intercept, use_lock, sync_rows, sync_change, NORMALIZED)


@njit(TRAIN_SIGNATURE, nogil=True, cache=True)
def linear_train_ftrl(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows, hot_count, w, acc, aux,
                      bstate, hot, cells, n_classes, optimizer, loss_id, schedule, lr, power_t, t0, l1, l2, beta,
                      fit_intercept, use_lock, sync_rows, sync_change):
    if optimizer != FTRL:
        return 0.0, 0.0, 0, BAD_CALL
    return _train_rows(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows, hot_count, w,
                       acc, aux, bstate, hot, cells, n_classes, loss_id, schedule, lr, power_t, t0, l1, l2, beta,
                       fit_intercept, use_lock, sync_rows, sync_change, FTRL)


#: One compiled kernel per optimizer: the optimizer is a constant inside each, so the
#: compiler drops the other rules' branches from the per-nonzero loops.
LINEAR_KERNELS = {SGD: linear_train_sgd, ADAGRAD: linear_train_adagrad, NORMALIZED: linear_train_normalized,
                  FTRL: linear_train_ftrl}
