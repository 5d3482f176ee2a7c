"""Softmax (multinomial logistic) regression over a CSR block: K classes, Hogwild!.

The model is an (n_features, K) float32 C-order matrix, passed flat (``w.reshape(-1)``,
zero-copy): entry (j, k) is at ``j * K + k``, so the K weights of a feature sit together
and one row of data gathers one short run per nonzero. The optimizer state ``acc``/``aux``
has the same layout (empty arrays where the rule keeps none: both for sgd, ``aux`` for
adagrad). ``bstate`` (float64, 3K + 2) holds the
intercepts, their optimizer state and the normalized rule's N and T:

    [b_0 .. b_{K-1}, b_acc_0 .. b_acc_{K-1}, b_aux_0 .. b_aux_{K-1}, N, T]

For row i with class y (a label in {0, ..., K-1}) and importance weight s:

    z_k = b_k + sum_j w_jk x_ij,   p = softmax(z),   loss = -log p_y,
    g_k = s (p_k - [k == y]),

and every entry (j, k) of the row is updated by the optimizer's per-coordinate rule
(kernels/optimizers.py) from g_k x_ij, intercept k from g_k. The normalized rule keeps one
scale per feature (each of its K scale entries holds it) and one h_k per class; its
importance-invariant steps G_k integrate the K margins' gradient flow together
(kernels/invariant.py). Regularization, step sizes and the lock / lock-free conventions (the
intercepts published every ``sync_rows`` rows) are those of the linear kernel
(kernels/linear.py).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types

from .atomics import gate_wait, publish, read_shared, spin_acquire, spin_release
from .linear import BAD_CALL, BAD_LABEL, CONSTANT, OUT_OF_RANGE, TRAIN_SIGNATURE
from .invariant import softmax_invariant_gradient
from .optimizers import (FTRL, NORMALIZED, SGD, inverse_scale, normalized_rate, normalized_weight, update_coordinate,
                         update_intercept, widen_scale)
from .prefetch import prefetch, prefetch_rows_ahead
from .types import RO_F32, RO_F64, RO_I64, RO_U32, RW_F64_2D
from .validate import BAD_INDPTR, INDEX_OUT_OF_RANGE, OK

#: A margins-kernel error: arrays whose shapes disagree (weights not a multiple of K, ``out``
#: not (n_rows, K), fewer than K intercepts, values and indices of different lengths).
BAD_SHAPE = 3

_FLOATS_PER_LINE = 16  # float32 entries per 64-byte cache line


def bstate_length(n_classes: int) -> int:
    """Length of the kernels' ``bstate``: K intercepts, K of each state, N and T (a binary
    model is K = 1: optimizers.B_VALUE ... NORM_T)."""
    return 3 * n_classes + 2


@njit(inline="always", cache=True)
def _prefetch_run(a, base, n_classes):
    """Hint the cache lines holding a[base : base + K] (one per line; usually one or two)."""
    prefetch(a, base)
    for line in range(base // _FLOATS_PER_LINE + 1, (base + n_classes - 1) // _FLOATS_PER_LINE + 1):
        prefetch(a, line * _FLOATS_PER_LINE)


@njit(inline="always", cache=True)
def _normalized_row(indices, lo, hi, w, acc, st, xs, rates, h, gu, rb, work, g, z, y, s, mult, l2, beta,
                    fit_intercept, n_cls):
    """The normalized rule's update of one row (kernels/optimizers.py, revision 2): each
    entry's rate (from its accumulator before the row) and each class's h, the
    importance-invariant steps G_k (kernels/invariant.py), then the weights with their
    accumulators, and the intercepts. ``g`` holds s (p - onehot(y)); ``xs`` the row's x / s,
    x / s^2."""
    for c in range(n_cls):
        gu[c] = g[c] / s
        h[c] = 0.0
        rb[c] = 0.0
    # Rates from the accumulators before this row; the accumulators grow in the weights' pass.
    for p in range(lo, hi):
        base = np.int64(indices[p]) * n_cls
        xn = xs[0, p - lo]
        off = (p - lo) * n_cls
        for c in range(n_cls):
            r = normalized_rate(acc[base + c], beta)
            rates[off + c] = r
            h[c] += r * xn * xn
    if fit_intercept:
        for c in range(n_cls):
            rb[c] = normalized_rate(st[n_cls + c], beta)
            st[n_cls + c] += s * gu[c] * gu[c]
    for c in range(n_cls):
        h[c] = mult * (h[c] + rb[c])
    steps = g  # overwritten: the per-class steps mult G_k
    softmax_invariant_gradient(z, y, s, h, n_cls, gu, steps, work)
    for c in range(n_cls):
        steps[c] *= mult
    shrink = mult * l2 * s
    for p in range(lo, hi):
        base = np.int64(indices[p]) * n_cls
        xn = xs[0, p - lo]
        q = xs[1, p - lo]
        off = (p - lo) * n_cls
        for c in range(n_cls):
            gxn = gu[c] * xn
            acc[base + c] = acc[base + c] + s * gxn * gxn
            w[base + c] = normalized_weight(w[base + c], steps[c], rates[off + c], q, shrink)
    if fit_intercept:
        for c in range(n_cls):
            st[c] -= steps[c] * rb[c]


@njit(TRAIN_SIGNATURE, nogil=True, cache=True)
def softmax_train(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows, hot_count,
                  w, acc, aux, bstate, hot, cells, n_classes, opt, loss_id, schedule, lr, power_t, t0,
                  l1, l2, beta, fit_intercept, use_lock, sync_rows, sync_change):
    """Train the softmax model on ``rows`` of the block, in that order (see the module
    docstring for the layouts; the arguments and results are the linear kernel's,
    ``loss_id`` unused; no hot coordinates: ``hot_count`` must be empty). A bad index (flag OUT_OF_RANGE) or label (BAD_LABEL: not an
    integer in [0, K)) stops the block before its row is touched (not even the normalized
    rule's scales): the rows before it are trained. A row with a non-finite margin is
    skipped (the normalized rule has observed its scales, as in the linear kernel). A
    malformed call (n_classes < 1, state arrays of the wrong length, ``rows`` or ``indptr``
    pointing outside the block, short ``values``, ``labels`` or weights) is refused before
    anything is written: flag BAD_CALL. Whatever the data, nothing is read or written out
    of bounds."""
    loss_sum = 0.0
    weight_sum = 0.0
    n_bad = 0
    n = rows.shape[0]
    n_w = w.shape[0]
    n_cls = n_classes
    if (n_cls < 1 or n_w % n_cls != 0 or bstate.shape[0] != 3 * n_cls + 2 or cells.shape[0] < 1
            or hot_count.shape[0] > 0):
        return 0.0, 0.0, 0, BAD_CALL
    n_features = n_w // n_cls
    stateful = opt != SGD
    with_aux = opt == NORMALIZED or opt == FTRL  # adagrad keeps no aux
    if (stateful and acc.shape[0] != n_w) or (with_aux and aux.shape[0] != n_w):
        return 0.0, 0.0, 0, BAD_CALL
    # The rows, their offsets and the per-row arrays are checked once up front (cheap next
    # to the K updates per nonzero), so the loop below, its prefetches included, can trust them.
    n_rows = indptr.shape[0] - 1
    nnz = indices.shape[0]
    if (has_values and values.shape[0] != nnz) or labels.shape[0] < n_rows or \
            (has_weights and sample_weights.shape[0] < n_rows):
        return 0.0, 0.0, 0, BAD_CALL
    longest = 0
    for r in range(n):
        i = rows[r]
        if i < 0 or i >= n_rows or indptr[i] < 0 or indptr[i + 1] < indptr[i] or indptr[i + 1] > nnz:
            return 0.0, 0.0, 0, BAD_CALL
        longest = max(longest, indptr[i + 1] - indptr[i])
    # normalized: per position in the row x / s and x / s^2, per entry its rate; per class h,
    # the unweighted gradient, the intercept's rate and the invariant step's scratch
    if opt != NORMALIZED:
        longest = 0
    xs = np.empty((2, longest))
    rates = np.empty(longest * n_cls)
    h = np.empty(n_cls)
    gu = np.empty(n_cls)
    rb = np.empty(n_cls)
    work = np.empty(4 * n_cls)
    # Every example updates all K intercepts (and N, T): lock-free, the block works on a
    # local copy and publishes its change every sync_rows rows or sync_change of change, as
    # the linear kernel does;
    # the lock baseline works on the shared values themselves, under the lock.
    local = np.empty(bstate.shape[0])
    base = np.empty(bstate.shape[0])
    read_shared(bstate, local, base)
    gate_wait(cells)
    st = bstate if use_lock else local
    period = max(sync_rows, 1)
    countdown = period
    i_n = 3 * n_cls  # N, then T
    z = np.empty(n_cls)
    g = np.empty(n_cls)
    flags = 0
    for k in range(n):
        if not use_lock:
            countdown -= 1
            moved = 0.0
            for c in range(n_cls):
                moved = max(moved, abs(local[c] - base[c]))
            if countdown <= 0 or moved >= sync_change:
                publish(bstate, local, base)
                countdown = period
        # Memory latency bounds this loop: prefetch the next row's weight runs (and state)
        # and the data of rows further ahead (see prefetch.py). Hints only.
        if k + 1 < n:
            nxt = rows[k + 1]
            for p in range(indptr[nxt], indptr[nxt + 1]):
                j = np.int64(indices[p])
                if j < n_features:
                    _prefetch_run(w, j * n_cls, n_cls)
                    if stateful:
                        _prefetch_run(acc, j * n_cls, n_cls)
                        if with_aux:
                            _prefetch_run(aux, j * n_cls, n_cls)
            prefetch_rows_ahead(indptr, indices, values, has_values, rows, k, n)
        i = rows[k]
        lo = indptr[i]
        hi = indptr[i + 1]
        yf = np.float64(labels[i])
        if not (yf >= 0.0 and yf < n_cls and yf == math.floor(yf)):  # NaN fails every compare
            flags |= BAD_LABEL
            break
        y = np.int64(yf)
        for p in range(lo, hi):
            if indices[p] >= n_features:
                flags |= OUT_OF_RANGE
                break
        if flags != 0:
            break
        s = np.float64(sample_weights[i]) if has_weights else 1.0
        if schedule == CONSTANT:
            eta = lr
        else:
            eta = lr / (1.0 + np.float64(t0 + k)) ** power_t
        if use_lock:
            spin_acquire(cells)
        for c in range(n_cls):
            z[c] = st[c]
        nx = 0.0
        for p in range(lo, hi):
            base_j = np.int64(indices[p]) * n_cls
            x = np.float64(values[p]) if has_values else 1.0
            if opt == NORMALIZED:
                # As the linear kernel: feature j's scale is observed (and its K weights
                # rescaled) before the margin; N counts the feature once.
                ax, sj = abs(x), float(aux[base_j])
                if ax > sj:
                    widen_scale(w, acc, aux, base_j, n_cls, sj, ax)
                    sj = ax
                inv_s = inverse_scale(sj)
                xn = x * inv_s
                xs[0, p - lo] = xn
                xs[1, p - lo] = xn * inv_s
                nx += xn * xn
            for c in range(n_cls):
                z[c] += w[base_j + c] * x
        zmax = z[0]
        finite = True
        for c in range(n_cls):
            if not np.isfinite(z[c]):
                finite = False
            zmax = max(zmax, z[c])
        if not finite:
            n_bad += 1
            if use_lock:
                spin_release(cells)
            continue
        # Shifted by the largest margin: every exp is <= 1 and their sum >= 1, so
        # loss = log sum exp(z) - z_y = zmax + log(sum) - z_y needs no clipping.
        total = 0.0
        for c in range(n_cls):
            g[c] = math.exp(z[c] - zmax)
            total += g[c]
        loss = zmax + math.log(total) - z[y]
        loss_sum += s * loss
        weight_sum += s
        g_any = False
        for c in range(n_cls):
            g[c] = s * (g[c] / total) - (s if c == y else 0.0)
            g_any = g_any or g[c] != 0.0
        mult = eta
        if opt == NORMALIZED:
            st[i_n] += s * (nx + (1.0 if fit_intercept else 0.0))
            st[i_n + 1] += s
            if st[i_n] > 0.0:
                mult = eta * math.sqrt(st[i_n + 1] / st[i_n])
        if opt == NORMALIZED:
            if (g_any or l2 != 0.0) and s > 0.0:
                _normalized_row(indices, lo, hi, w, acc, st, xs, rates, h, gu, rb, work, g, z, y, s, mult, l2, beta,
                                fit_intercept, n_cls)
        elif g_any or (opt != FTRL and l2 != 0.0):
            for p in range(lo, hi):
                base_j = np.int64(indices[p]) * n_cls
                x = np.float64(values[p]) if has_values else 1.0
                for c in range(n_cls):
                    update_coordinate(opt, w, acc, aux, base_j + c, g[c] * x, eta, mult, l1, l2, beta)
            if fit_intercept:
                for c in range(n_cls):
                    if g[c] != 0.0:
                        st[c], st[n_cls + c], st[2 * n_cls + c] = update_intercept(
                            opt, st[c], st[n_cls + c], st[2 * n_cls + c], g[c], eta, mult, beta)
        if use_lock:
            spin_release(cells)
    if not use_lock:
        publish(bstate, local, base)
    return loss_sum, weight_sum, n_bad, flags


@njit(
    types.UniTuple(types.int64, 3)(RO_I64, RO_U32, RO_F32, types.boolean, RO_F32, types.int64, RO_F64, RW_F64_2D),
    nogil=True,
    cache=True,
)
def softmax_margins(indptr, indices, values, has_values, w_flat, n_classes, intercepts, out):
    """Write ``out[r, k] = sum_j x_rj w[j * K + k] + intercepts[k]`` for every row.

    ``intercepts``: the first K entries are used, so a softmax ``bstate`` serves as is.
    ``values`` is ignored unless ``has_values``. Sums are float64. Returns ``(OK, -1, -1)``,
    or ``(code, row, position)`` of the first problem (predict.BAD_INDPTR,
    predict.INDEX_OUT_OF_RANGE, or BAD_SHAPE with row = position = -1); rows from that
    one on are left unwritten.
    """
    n_cls = n_classes
    n_rows = out.shape[0]
    nnz = indices.shape[0]
    if n_cls < 1 or w_flat.shape[0] % n_cls != 0 or out.shape[1] != n_cls or intercepts.shape[0] < n_cls \
            or (has_values and values.shape[0] != nnz):
        return BAD_SHAPE, -1, -1
    n_features = w_flat.shape[0] // n_cls
    if indptr.shape[0] != n_rows + 1:
        return BAD_INDPTR, -1, -1
    z = np.empty(n_cls)  # a row is written only once it is complete
    for r in range(n_rows):
        lo = indptr[r]
        hi = indptr[r + 1]
        if lo < 0 or hi < lo or hi > nnz:
            return BAD_INDPTR, r, -1
        z[:] = 0.0
        for p in range(lo, hi):
            j = np.int64(indices[p])
            if j >= n_features:
                return INDEX_OUT_OF_RANGE, r, p
            base = j * n_cls
            x = np.float64(values[p]) if has_values else 1.0
            for c in range(n_cls):
                z[c] += x * np.float64(w_flat[base + c])
        for c in range(n_cls):
            out[r, c] = z[c] + intercepts[c]
    return OK, -1, -1


def softmax_probabilities(margins: np.ndarray) -> np.ndarray:
    """Class probabilities from margins (..., K): exp(z - max z), normalized (stable)."""
    z = np.asarray(margins, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
