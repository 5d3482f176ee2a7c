"""nogil numba kernels of implicit feedback: interactions as positives against sampled negatives.

Each row (u, i, weight s) of the data is a positive: user u interacted with item i. The
model is kernels.py's, read as a logit: z(u, i) = μ + b_u + b_i + p_u·q_i, the preference
σ(z). A row trains its positive and ``negatives`` sampled items j, each with the logistic
loss on the touched rows only (as word2vec's negative sampling, and libmf's one-class
logistic MF):

    s softplus(-z(u, i))  +  Σ_j s softplus(z(u, j))  +  the L2 terms of kernels.py,

one observation after the other (the positive first), each with kernels.step_pair's update
(g = s (σ(z) - y), y = 1 for the positive, 0 for a negative) and its optimizer. μ is fixed
at -log(negatives), the logit of one positive among negatives + 1 observations.

Negatives: items drawn uniformly from ``pool`` (the distinct items of the training data,
ascending) by a hash of (seed, epoch, block, row, t): no state, the same draws in a resumed
run. Uniform, as BPR (Rendle et al. 2009) draws them: drawn in proportion to their
interactions instead, popular items met as many negatives as positives and the model lost
what popularity says (MovieLens top-10 precision 0.017 against 0.12 for the most rated
items). A draw of the positive's own item is skipped, not redrawn.

Scoring (``implicit_sums``) draws the negatives the same way with a key fixed for the data,
so that an epoch's figures compare with the last one's: the logistic loss per observation,
and the sampled AUC (the share of (positive, negative) pairs where the positive scores
higher; ties count half).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types

from ..kernels.losses import logistic_loss
from ..kernels.prefetch import prefetch
from .kernels import (_GOLDEN, ADAGRAD, FAST, ROWWISE, SGD, WHICH_ITEM, WHICH_USER, _dot, _mix, _prefetch_next,
                      _prefetch_row, _start_row, pair_products, row_ids, shapes_match, step_pair)

_ro = lambda dt, nd=1: types.Array(dt, nd, "C", readonly=True)  # noqa: E731
_rw = lambda dt, nd=1: types.Array(dt, nd, "C")  # noqa: E731
_f32, _f64, _i64, _u64 = types.float32, types.float64, types.int64, types.uint64
#: Mixed into the negatives' key: a stream apart from the row order's (kernels.shuffled_rows).
_NEGATIVES_STREAM = np.uint64(0x6A09E667F3BCC909)
#: The epoch of scoring's key: no training epoch uses it.
SCORING_EPOCH = 2**63


@njit([_u64(_u64, _u64, _u64)], cache=True, error_model="numpy")
def negatives_key(seed, epoch, block):
    """The key of a block's negative draws in an epoch."""
    return _mix(_mix(seed * _GOLDEN + epoch + _NEGATIVES_STREAM) + block * _GOLDEN)


@njit(inline="always", cache=True, error_model="numpy")
def negative_index(key, r, t, n):
    """Which of the ``n`` pool items is row r's negative number t (t >= 1)."""
    return np.int64(_mix(_mix(key + np.uint64(r) * _GOLDEN) + np.uint64(t) * _GOLDEN) % np.uint64(n))


@njit(inline="always", cache=True, error_model="numpy")
def _prefetch_item(opt, Q, Qa, j):
    """Hint item j's factor row (and its AdaGrad state): the draws land anywhere in Q."""
    if 0 <= j < Q.shape[0]:
        _prefetch_row(Q[j])
        if opt == ADAGRAD:
            _prefetch_row(Qa[j])
        elif opt == ROWWISE:
            prefetch(Qa[j], 0)


@njit(inline="always", cache=True, error_model="numpy")
def _train_implicit(users, items, weights, has_weights, rows, P, Q, bu, bi, Pa, Qa, bua, bia, opt, mu, lr, lr_bias,
                    l2, l2_bias, beta, beta_bias, init_scale, seed, pool, negatives, key):
    """Train ``rows`` of the block in that order, each row's positive and then its negatives.
    Returns (sum of s times the logistic loss before each update, sum of s over the
    observations, observations whose logit was not finite, 1.0 if an id beyond the model
    stopped the block, else 0.0): kernels._train's contract."""
    if not shapes_match(opt, P, Q, bu, bi, Pa, Qa, bua, bia):
        return 0.0, 0.0, 0.0, 1.0
    n_users, n_items = P.shape[0], Q.shape[0]
    rank = np.float64(P.shape[1])
    n_pool = pool.shape[0]
    loss = 0.0
    wsum = 0.0
    n_bad = 0.0
    n = rows.shape[0]
    for k in range(n):
        _prefetch_next(opt, users, items, rows, k, n, n_users, n_items, P, Q, Pa, Qa)
        r, u, i, inside = row_ids(users, items, rows, k, n_users, n_items)
        if not inside:
            return loss, wsum, n_bad, 1.0
        p = P[u]
        _start_row(p, seed, WHICH_USER, u, init_scale)
        s = np.float64(weights[r]) if has_weights else 1.0
        n_obs = negatives + 1 if n_pool else 1
        j_next = pool[negative_index(key, r, 1, n_pool)] if n_obs > 1 else i
        for t in range(n_obs):
            j = i
            if t > 0:
                j = j_next
                if t + 1 < n_obs:  # hint the next draw's rows while this one trains (1.3x here)
                    j_next = pool[negative_index(key, r, t + 1, n_pool)]
                    _prefetch_item(opt, Q, Qa, j_next)
                if j == i:
                    continue
                if j >= n_items or j < 0:
                    return loss, wsum, n_bad, 1.0
            q = Q[j]
            _start_row(q, seed, WHICH_ITEM, j, init_scale)
            dot, pp, qq = pair_products(opt, p, q)
            z = mu + np.float64(bu[u]) + np.float64(bi[j]) + np.float64(dot)
            if not np.isfinite(z):
                n_bad += 1.0
                continue
            # One exponential gives both σ(z) and the loss (kernels/losses.py's logistic_loss and
            # logistic_dloss would take one each: this loop is the hot path).
            e = math.exp(-abs(z))
            sig = 1.0 / (1.0 + e) if z >= 0.0 else e / (1.0 + e)
            if t == 0:
                loss += s * (max(-z, 0.0) + math.log1p(e))  # softplus(-z)
                g = s * (sig - 1.0)
            else:
                loss += s * (max(z, 0.0) + math.log1p(e))  # softplus(z)
                g = s * sig
            wsum += s
            step_pair(opt, u, j, p, q, bu, bi, Pa, Qa, bua, bia, g, dot, pp, qq, rank, lr, lr_bias, l2, l2_bias,
                      beta, beta_bias)
    return loss, wsum, n_bad, 0.0


def _signature(id_type):
    return types.UniTuple(_f64, 4)(
        _ro(id_type), _ro(id_type), _ro(_f32), types.boolean, _ro(_i64),  # users, items, weights, has_w, rows
        _rw(_f32, 2), _rw(_f32, 2), _rw(_f32), _rw(_f32),                 # P, Q, bu, bi
        _rw(_f32, 2), _rw(_f32, 2), _rw(_f32), _rw(_f32),                 # their AdaGrad sums
        _f64, _f64, _f64, _f64, _f64, _f64, _f64, _f64, _u64,             # mu, lr, lr_bias, l2, l2_bias, beta, beta_bias, init_scale, seed
        _ro(_i64), _i64, _u64,                                            # pool, negatives, key
    )


_SIGNATURES = [_signature(types.uint32), _signature(types.uint64)]
# No reference counting: the kernel allocates nothing (kernels.py says why it matters).


@njit(_SIGNATURES, nogil=True, cache=True, error_model="numpy", fastmath=FAST, _nrt=False)
def train_implicit_sgd(users, items, weights, has_weights, rows, P, Q, bu, bi, Pa, Qa, bua, bia, mu, lr, lr_bias, l2,
                       l2_bias, beta, beta_bias, init_scale, seed, pool, negatives, key):
    return _train_implicit(users, items, weights, has_weights, rows, P, Q, bu, bi, Pa, Qa, bua, bia, SGD, mu, lr,
                           lr_bias, l2, l2_bias, beta, beta_bias, init_scale, seed, pool, negatives, key)


@njit(_SIGNATURES, nogil=True, cache=True, error_model="numpy", fastmath=FAST, _nrt=False)
def train_implicit_adagrad(users, items, weights, has_weights, rows, P, Q, bu, bi, Pa, Qa, bua, bia, mu, lr, lr_bias,
                           l2, l2_bias, beta, beta_bias, init_scale, seed, pool, negatives, key):
    return _train_implicit(users, items, weights, has_weights, rows, P, Q, bu, bi, Pa, Qa, bua, bia, ADAGRAD, mu, lr,
                           lr_bias, l2, l2_bias, beta, beta_bias, init_scale, seed, pool, negatives, key)


@njit(_SIGNATURES, nogil=True, cache=True, error_model="numpy", fastmath=FAST, _nrt=False)
def train_implicit_rowwise(users, items, weights, has_weights, rows, P, Q, bu, bi, Pa, Qa, bua, bia, mu, lr, lr_bias,
                           l2, l2_bias, beta, beta_bias, init_scale, seed, pool, negatives, key):
    return _train_implicit(users, items, weights, has_weights, rows, P, Q, bu, bi, Pa, Qa, bua, bia, ROWWISE, mu, lr,
                           lr_bias, l2, l2_bias, beta, beta_bias, init_scale, seed, pool, negatives, key)


IMPLICIT_KERNELS = {SGD: train_implicit_sgd, ADAGRAD: train_implicit_adagrad, ROWWISE: train_implicit_rowwise}


@njit(inline="always", cache=True, error_model="numpy")
def _logit(u, i, P, Q, bu, bi, mu):
    """z(u, i) as scoring sees it: an id beyond the model has bias and factors 0."""
    z = mu
    if 0 <= u < P.shape[0]:
        z += bu[u]
    if 0 <= i < Q.shape[0]:
        z += bi[i]
    if 0 <= u < P.shape[0] and 0 <= i < Q.shape[0]:
        z += np.float64(_dot(P[u], Q[i]))
    return z


def _sums_signature(id_type):
    return types.UniTuple(_f64, 4)(_ro(id_type), _ro(id_type), _ro(_f32), types.boolean, _ro(_f32, 2), _ro(_f32, 2),
                                   _ro(_f32), _ro(_f32), _f64, _ro(_i64), _i64, _u64)


@njit([_sums_signature(types.uint32), _sums_signature(types.uint64)], nogil=True, cache=True, fastmath=FAST,
      error_model="numpy")
def implicit_sums(users, items, weights, has_weights, P, Q, bu, bi, mu, pool, negatives, key):
    """Over every row of a block as a positive, with its ``negatives`` draws from ``pool``:
    (sum of s times the logistic loss, sum of s over the observations, sum of s over
    the (positive, negative) pairs the positive outscores (ties half), sum of s over the
    pairs)."""
    loss = 0.0
    wsum = 0.0
    wins = 0.0
    pairs = 0.0
    n = users.shape[0]
    for r in range(n):
        u = np.int64(users[r])
        i = np.int64(items[r])
        s = np.float64(weights[r]) if has_weights else 1.0
        zp = _logit(u, i, P, Q, bu, bi, mu)
        loss += s * logistic_loss(zp, 1.0)
        wsum += s
        for t in range(1, negatives + 1 if pool.shape[0] else 1):
            j = pool[negative_index(key, r, t, pool.shape[0])]
            if j == i:
                continue
            zn = _logit(u, j, P, Q, bu, bi, mu)
            loss += s * logistic_loss(zn, -1.0)
            wsum += s
            pairs += s
            wins += s if zp > zn else (0.5 * s if zp == zn else 0.0)
    return loss, wsum, wins, pairs
