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
(kernels/optimizers.py) from g_k x_ij, intercept k from g_k. Regularization, step sizes
and the lock / lock-free conventions are those of the binary kernel (kernels/sgd.py).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types

from .optimizers import FTRL, NORMALIZED, SGD, observe_scale, update_coordinate, update_intercept
from .validate import BAD_INDPTR, INDEX_OUT_OF_RANGE, OK, _ro_f32, _ro_i64, _ro_u32
from .prefetch import prefetch, prefetch_rows_ahead
from .sgd import CONSTANT, INVSCALING, _ro, _rw  # noqa: F401  (INVSCALING: re-exported for callers)
from .spinlock import spin_acquire, spin_release

#: A margins-kernel error: arrays whose shapes disagree (weights not a multiple of K, ``out``
#: not (n_rows, K), fewer than K intercepts, values and indices of different lengths).
BAD_SHAPE = 3

_FLOATS_PER_LINE = 16  # float32 entries per 64-byte cache line


def bstate_length(n_classes: int) -> int:
    """Length of the kernels' ``bstate``: K intercepts, K of each state, N and T (a binary
    model is K = 1: optimizers.B_VALUE ... NORM_T)."""
    return 3 * n_classes + 2


SOFTMAX_TRAIN_SIGNATURE = types.UniTuple(types.float64, 5)(
    _ro(types.int64), _ro(types.uint32), _ro(types.float32), types.boolean,   # indptr, indices, values, has_values
    _ro(types.float32), _ro(types.float32), types.boolean,                    # labels, weights, has_weights
    _ro(types.int64),                                                         # rows: visiting order
    _rw(types.float32), _rw(types.float32), _rw(types.float32),               # w, acc, aux: flat (n_features * K)
    _rw(types.float64), _rw(types.int32), types.boolean,                      # bstate, lock, use_lock
    types.int64, types.int64,                                                 # optimizer, schedule
    types.float64, types.float64, types.int64,                                # lr, power_t, t0
    types.float64, types.float64, types.float64, types.boolean,               # l1, l2, beta, fit_intercept
    types.int64,                                                              # n_classes
)


@njit(inline="always", cache=True)
def _prefetch_run(a, base, n_classes):
    """Hint the cache lines holding a[base : base + K] (one per line; usually one or two)."""
    prefetch(a, base)
    for line in range(base // _FLOATS_PER_LINE + 1, (base + n_classes - 1) // _FLOATS_PER_LINE + 1):
        prefetch(a, line * _FLOATS_PER_LINE)


@njit(SOFTMAX_TRAIN_SIGNATURE, nogil=True, cache=True)
def softmax_train_rows(indptr, indices, values, has_values, labels, sample_weights, has_weights, rows,
                       w, acc, aux, bstate, lock, use_lock, opt, schedule, lr, power_t, t0,
                       l1, l2, beta, fit_intercept, n_classes):
    """Train the softmax model on ``rows`` of the block, in that order (see the module
    docstring for the layouts). Returns (sum of s * loss before each update, sum of s,
    number of rows whose margins were not all finite: divergence, 1.0 if a feature index
    >= n_features stopped the block, 1.0 if a label that is not an integer in [0, K) did).

    A bad index or label stops the block before its row is touched (not even the
    normalized rule's scales): the rows before it are trained, the counts say why it
    stopped. A row with a non-finite margin is skipped (the normalized rule has observed
    its scales, as in the binary kernel). A malformed call (n_classes < 1, state arrays of
    the wrong length, ``rows`` or ``indptr`` pointing outside the block, short ``values``,
    ``labels`` or weights) is refused before anything is written, as (0, 0, 0, 1, 0).
    Whatever the data, nothing is read or written out of bounds."""
    loss_sum = 0.0
    weight_sum = 0.0
    n_bad = 0.0
    n = rows.shape[0]
    n_w = w.shape[0]
    n_cls = n_classes
    if n_cls < 1 or n_w % n_cls != 0 or bstate.shape[0] != 3 * n_cls + 2 or lock.shape[0] < 1:
        return 0.0, 0.0, 0.0, 1.0, 0.0
    n_features = n_w // n_cls
    stateful = opt != SGD
    with_aux = opt == NORMALIZED or opt == FTRL  # adagrad keeps no aux
    if (stateful and acc.shape[0] != n_w) or (with_aux and aux.shape[0] != n_w):
        return 0.0, 0.0, 0.0, 1.0, 0.0
    # The rows, their offsets and the per-row arrays are checked once up front (cheap next
    # to the K updates per nonzero), so the loop below, its prefetches included, can trust them.
    n_rows = indptr.shape[0] - 1
    nnz = indices.shape[0]
    if (has_values and values.shape[0] != nnz) or labels.shape[0] < n_rows or \
            (has_weights and sample_weights.shape[0] < n_rows):
        return 0.0, 0.0, 0.0, 1.0, 0.0
    for r in range(n):
        i = rows[r]
        if i < 0 or i >= n_rows or indptr[i] < 0 or indptr[i + 1] < indptr[i] or indptr[i + 1] > nnz:
            return 0.0, 0.0, 0.0, 1.0, 0.0
    # Every example updates all K intercepts (and N, T): lock-free, the block works on a
    # local copy and adds its change once at the end, as the binary kernel does; the lock
    # baseline works on the shared values themselves, under the lock.
    start = bstate.copy()
    local = bstate.copy()
    st = bstate if use_lock else local
    i_n = 3 * n_cls  # N, then T
    z = np.empty(n_cls)
    g = np.empty(n_cls)
    n_out = 0.0
    n_label = 0.0
    for k in range(n):
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
            n_label = 1.0
            break
        y = np.int64(yf)
        for p in range(lo, hi):
            if indices[p] >= n_features:
                n_out = 1.0
                break
        if n_out != 0.0:
            break
        s = np.float64(sample_weights[i]) if has_weights else 1.0
        if schedule == CONSTANT:
            eta = lr
        else:
            eta = lr / (1.0 + np.float64(t0 + k)) ** power_t
        if use_lock:
            spin_acquire(lock)
        for c in range(n_cls):
            z[c] = st[c]
        nx = 0.0
        for p in range(lo, hi):
            base = np.int64(indices[p]) * n_cls
            x = np.float64(values[p]) if has_values else 1.0
            if opt == NORMALIZED:
                # As the binary kernel: feature j's scale is observed (and its weights
                # rescaled) before the margin, on each of its K entries, since each entry's
                # update reads its own; N counts the feature once (the k = 0 entry's ratio).
                nx += observe_scale(opt, w, aux, base, x)
                for c in range(1, n_cls):
                    observe_scale(opt, w, aux, base + c, x)
            for c in range(n_cls):
                z[c] += w[base + c] * x
        zmax = z[0]
        finite = True
        for c in range(n_cls):
            if not np.isfinite(z[c]):
                finite = False
            zmax = max(zmax, z[c])
        if not finite:
            n_bad += 1.0
            if use_lock:
                spin_release(lock)
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
        if g_any or (opt != FTRL and l2 != 0.0):
            for p in range(lo, hi):
                base = np.int64(indices[p]) * n_cls
                x = np.float64(values[p]) if has_values else 1.0
                for c in range(n_cls):
                    update_coordinate(opt, w, acc, aux, base + c, g[c] * x, eta, mult, l1, l2, beta)
            if fit_intercept:
                for c in range(n_cls):
                    if g[c] != 0.0:
                        st[c], st[n_cls + c], st[2 * n_cls + c] = update_intercept(
                            opt, st[c], st[n_cls + c], st[2 * n_cls + c], g[c], eta, mult, beta)
        if use_lock:
            spin_release(lock)
    if not use_lock:
        for q in range(bstate.shape[0]):
            bstate[q] += local[q] - start[q]
    return loss_sum, weight_sum, n_bad, n_out, n_label


_ro_f64 = _ro(types.float64)
_f64_2d = types.Array(types.float64, 2, "C")


@njit(
    types.UniTuple(types.int64, 3)(_ro_i64, _ro_u32, _ro_f32, types.boolean, _ro_f32, types.int64, _ro_f64, _f64_2d),
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
