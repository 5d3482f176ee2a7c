"""nogil numba kernels of biased matrix factorization: train a block, score a block.

Model: r̂(u, i) = μ + b_u + b_i + p_u·q_i, with p_u row u of the user factors P (n_users x K)
and q_i row i of the item factors Q (n_items x K). For one observation (u, i, r, weight s)
the error is e = r - r̂ and the loss minimized is

    s e² / 2  +  l2 (|p_u|² + |q_i|²) / 2  +  l2_bias (b_u² + b_i²) / 2

on the touched rows only (the Hogwild! sparse form, as Surprise's SVD regularizes), so
over an epoch a row is shrunk once per observation that holds it. The gradients, all
taken at the values before the update (p_u's step uses the old q_i and vice versa):

    g_bu = -s e + l2_bias b_u      g_pu = -s e q_i + l2 p_u
    g_bi = -s e + l2_bias b_i      g_qi = -s e p_u + l2 q_i

and every coordinate follows the rule ``opt`` (streamhog/kernels/optimizers.py's, per
coordinate): sgd x -= lr g; adagrad a += g², x -= lr g / sqrt(beta + a), with a in the
state arrays of the same shape (beta: the initial accumulator, added at update time so
that untouched state stays 0, i.e. sparse on disk). rowwise-adagrad keeps one sum per
factor row (as FBGEMM's and TorchRec's embedding tables do): a += |g_row|² / K, every
coordinate of the row stepping by lr / sqrt(beta + a); the sum has adagrad's scale (a
coordinate's mean), so the same hyper-parameters apply. Its state is K times smaller (a
model of 10^8 users x 64 carries 0.4 GB of it, not 25.6 GB), and a step needs no second
pass over the row: |g q + l2 p|² = g²|q|² + 2 g l2 p·q + l2²|p|² comes from the dot
product's pass, so it costs about sgd's memory traffic. Biases (one coordinate each)
follow per-value adagrad under both adaptive rules; under every rule they have their own
lr and beta (``lr_bias``, ``beta_bias``): the caller derives both pairs from one set of
hyper-parameters given for standardized ratings (config.kernel_hyper). μ is fixed (the training mean, given
by the caller): every observation would write it otherwise, a cache line all threads
fight over, and b_u, b_i absorb any offset anyway.

Lazy initialisation: factor files start as zeros (sparse files: untouched rows cost
nothing). A row that is all zeros when an observation touches it gets its seeded start
there and then: ``init_value(seed, which, id, k)``, uniform with standard deviation
``init_scale``, a pure function of (seed, which matrix, id, k). So a resumed run draws
exactly what an uninterrupted one did, and a row never touched stays zero, which is what
scoring means by "never seen": its factor term is 0, leaving the biases it has. No drawn
value is 0 (see init_value), so a started row is never all zeros, except by an update
landing every coordinate on exactly 0.0 (for K >= 2 practically impossible; then it is
drawn again, a deterministic perturbation).

Hogwild!: threads run this on different blocks against the same arrays without locks;
two threads may update the same row at once (a lost or mixed update, as in the paper);
both may start a fresh row, with the same values. Arithmetic: the K loops are float32
with the reassociation, contraction and reciprocal flags of fastmath (not nnan/ninf: a
NaN must still be seen), so LLVM vectorizes them; the dot product's summation order is
then LLVM's, which differs from a sequential sum by float32 rounding only. Scalars (the
error, biases) are float64, stored float32.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types

from ..kernels.prefetch import prefetch

SGD = 0
ADAGRAD = 1
ROWWISE = 2
OPTIMIZER_IDS = {"sgd": SGD, "adagrad": ADAGRAD, "rowwise-adagrad": ROWWISE}
WHICH_USER = 0
WHICH_ITEM = 1

#: fastmath without nnan/ninf: divergence detection needs NaN and inf to stay what they are.
FAST = {"reassoc", "contract", "arcp", "nsz", "afn"}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_SQRT3 = math.sqrt(3.0)

_ro = lambda dt, nd=1: types.Array(dt, nd, "C", readonly=True)  # noqa: E731
_rw = lambda dt, nd=1: types.Array(dt, nd, "C")  # noqa: E731
_f32, _f64, _i64 = types.float32, types.float64, types.int64


@njit(inline="always", cache=True, error_model="numpy")
def _mix(x):
    """SplitMix64's finalizer (Steele et al. 2014), as streamhog.training.early_stopping uses it."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


@njit(inline="always", cache=True, error_model="numpy")
def row_key(seed, which, row):
    """The hash every coordinate of one factor row is drawn from."""
    x = _mix(np.uint64(seed) * _GOLDEN + np.uint64(which) + np.uint64(1))
    return _mix(x + np.uint64(row) * _GOLDEN)


@njit(inline="always", cache=True, error_model="numpy")
def init_value(key, k, scale):
    """Coordinate k of a row's start: uniform on (-a, a), a = scale sqrt(3) (standard
    deviation ``scale``). (2m + 1 - 2^24) / 2^24 with m the top 24 bits of the hash is odd
    over even, never 0: no started row is all zeros."""
    m = _mix(key + np.uint64(k + 1) * _GOLDEN) >> np.uint64(40)
    u = (np.float64(m) * 2.0 + 1.0 - 16777216.0) / 16777216.0
    return np.float32(scale * _SQRT3 * u)


@njit(inline="always", cache=True, error_model="numpy")
def _start_row(x, seed, which, row, scale):
    """Give row ``x`` its seeded start when it is all zeros (never touched); a started row
    costs one compare (its first coordinate is almost never 0)."""
    for k in range(x.shape[0]):
        if x[k] != 0.0:
            return
    key = row_key(seed, which, row)
    for k in range(x.shape[0]):
        x[k] = init_value(key, k, scale)


@njit(inline="always", cache=True, error_model="numpy")
def _prefetch_row(x):
    for k in range(0, x.shape[0], 16):  # one hint per 64-byte line
        prefetch(x, k)


@njit(inline="always", cache=True, error_model="numpy")
def _prefetch_next(opt, users, items, rows, k, n, n_users, n_items, P, Q, Pa, Qa):
    """Hint the rows the next observation reads (and their AdaGrad sums): the kernel is bound
    by fetching them from memory, not by its arithmetic."""
    if k + 1 < n:
        r = rows[k + 1]
        u = np.int64(users[r])
        i = np.int64(items[r])
        if 0 <= u < n_users and 0 <= i < n_items:
            _prefetch_row(P[u])
            _prefetch_row(Q[i])
            if opt == ADAGRAD:
                _prefetch_row(Pa[u])
                _prefetch_row(Qa[i])
            elif opt == ROWWISE:
                prefetch(Pa[u], 0)
                prefetch(Qa[i], 0)


@njit(inline="always", cache=True, fastmath=FAST, error_model="numpy")
def _dot(p, q):
    s = np.float32(0.0)
    for k in range(p.shape[0]):
        s += p[k] * q[k]
    return s


@njit(inline="always", cache=True, fastmath=FAST, error_model="numpy")
def _dot_norms(p, q):
    """(p·q, |p|², |q|²) in one pass (rowwise-adagrad's step needs the norms)."""
    d = np.float32(0.0)
    pp = np.float32(0.0)
    qq = np.float32(0.0)
    for k in range(p.shape[0]):
        d += p[k] * q[k]
        pp += p[k] * p[k]
        qq += q[k] * q[k]
    return d, pp, qq


@njit(inline="always", cache=True, error_model="numpy")
def _bias_step(opt, b, acc, j, g, lr, beta):
    """One coordinate of the bias vector ``b`` (rule ``opt``, gradient g, float64)."""
    if opt == SGD:
        b[j] = b[j] - lr * g
    else:
        a = acc[j] + g * g
        acc[j] = a
        b[j] = b[j] - lr * g / math.sqrt(beta + a)


@njit(inline="always", cache=True, fastmath=FAST, error_model="numpy")
def _coordinate_steps(p, q, pa, qa, g, lr, l2, beta):
    """adagrad: both rows' steps, a rate per coordinate, from the values before either moved
    (float32, vectorized)."""
    g32 = np.float32(g)
    lr32 = np.float32(lr)
    l232 = np.float32(l2)
    b32 = np.float32(beta)
    for k in range(p.shape[0]):
        pk = p[k]
        qk = q[k]
        gp = g32 * qk + l232 * pk
        gq = g32 * pk + l232 * qk
        ap = pa[k] + gp * gp
        aq = qa[k] + gq * gq
        pa[k] = ap
        qa[k] = aq
        p[k] = pk - lr32 * gp / np.sqrt(b32 + ap)
        q[k] = qk - lr32 * gq / np.sqrt(b32 + aq)


@njit(inline="always", cache=True, fastmath=FAST, error_model="numpy")
def _row_steps(p, q, g, rate_p, rate_q, l2):
    """sgd (both rates lr) and rowwise-adagrad: both rows' steps, each row at its one rate,
    from the values before either moved."""
    g32 = np.float32(g)
    l232 = np.float32(l2)
    rp = np.float32(rate_p)
    rq = np.float32(rate_q)
    for k in range(p.shape[0]):
        pk = p[k]
        qk = q[k]
        p[k] = pk - rp * (g32 * qk + l232 * pk)
        q[k] = qk - rq * (g32 * pk + l232 * qk)


@njit(inline="always", cache=True, error_model="numpy")
def _row_rate(acc, row, sq_norm, rank, lr, beta):
    """rowwise-adagrad: add the row's mean squared gradient to its sum; its step's rate. The
    norm comes from an expansion whose float32 terms may cancel to slightly below 0."""
    a = np.float64(acc[row, 0]) + max(sq_norm, 0.0) / rank
    acc[row, 0] = a
    return lr / math.sqrt(beta + a)


@njit(inline="always", cache=True, error_model="numpy")
def shapes_match(opt, P, Q, bu, bi, Pa, Qa, bua, bia):
    """Whether the biases and the optimizer's state arrays fit the factor matrices."""
    n_users, n_items = P.shape[0], Q.shape[0]
    if bu.shape[0] != n_users or bi.shape[0] != n_items or P.shape[1] != Q.shape[1]:
        return False
    if opt != SGD and (bua.shape[0] != n_users or bia.shape[0] != n_items):
        return False
    if opt == ADAGRAD and (Pa.shape != P.shape or Qa.shape != Q.shape):
        return False
    if opt == ROWWISE and (Pa.shape[0] != n_users or Qa.shape[0] != n_items or Pa.shape[1] != 1
                           or Qa.shape[1] != 1):  # one sum per row: (n, 1)
        return False
    return True


@njit(inline="always", cache=True, error_model="numpy")
def pair_products(opt, p, q):
    """(p·q, |p|², |q|²): rowwise-adagrad's step needs the norms, the others (p·q, 0, 0)."""
    if opt == ROWWISE:
        return _dot_norms(p, q)
    return _dot(p, q), np.float32(0.0), np.float32(0.0)


@njit(inline="always", cache=True, error_model="numpy")
def step_pair(opt, u, i, p, q, bu, bi, Pa, Qa, bua, bia, g, dot, pp, qq, rank, lr, lr_bias, l2, l2_bias, beta,
              beta_bias):
    """One observation's update of (b_u, b_i, p_u, q_i) under rule ``opt``, g the loss's
    derivative in the prediction (float64); dot, pp, qq: pair_products before the update."""
    _bias_step(opt, bu, bua, u, g + l2_bias * bu[u], lr_bias, beta_bias)
    _bias_step(opt, bi, bia, i, g + l2_bias * bi[i], lr_bias, beta_bias)
    if opt == SGD:
        _row_steps(p, q, g, lr, lr, l2)
    elif opt == ROWWISE:
        # |g q + l2 p|² and |g p + l2 q|², from the norms and the dot product
        cross = 2.0 * g * l2 * np.float64(dot)
        npp, nqq = np.float64(pp), np.float64(qq)
        rate_p = _row_rate(Pa, u, g * g * nqq + cross + l2 * l2 * npp, rank, lr, beta)
        rate_q = _row_rate(Qa, i, g * g * npp + cross + l2 * l2 * nqq, rank, lr, beta)
        _row_steps(p, q, g, rate_p, rate_q, l2)
    else:
        _coordinate_steps(p, q, Pa[u], Qa[i], g, lr, l2, beta)


@njit(inline="always", cache=True, error_model="numpy")
def row_ids(users, items, rows, k, n_users, n_items):
    """(r, u, i, inside) of the k-th row to train; inside: both ids within the model (else
    the block stops there, neither id read nor written)."""
    r = rows[k]
    u = np.int64(users[r])
    i = np.int64(items[r])
    return r, u, i, 0 <= u < n_users and 0 <= i < n_items


@njit(inline="always", cache=True, error_model="numpy")
def _train(users, items, ratings, weights, has_weights, rows, P, Q, bu, bi, Pa, Qa, bua, bia,
           opt, mu, lr, lr_bias, l2, l2_bias, beta, beta_bias, init_scale, seed):
    """Train ``rows`` of the block in that order. Returns (sum of s e² before each update,
    sum of s, rows whose prediction was not finite (divergence), 1.0 if an id beyond the
    model (or state arrays that do not match it) stopped the block, else 0.0). Such an id
    is never read or written: the rows before it are trained and the block stops there."""
    if not shapes_match(opt, P, Q, bu, bi, Pa, Qa, bua, bia):
        return 0.0, 0.0, 0.0, 1.0
    n_users, n_items = P.shape[0], Q.shape[0]
    rank = np.float64(P.shape[1])
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
        q = Q[i]
        _start_row(p, seed, WHICH_USER, u, init_scale)
        _start_row(q, seed, WHICH_ITEM, i, init_scale)
        dot, pp, qq = pair_products(opt, p, q)
        pred = mu + np.float64(bu[u]) + np.float64(bi[i]) + np.float64(dot)
        if not np.isfinite(pred):
            n_bad += 1.0
            continue
        s = np.float64(weights[r]) if has_weights else 1.0
        e = np.float64(ratings[r]) - pred
        loss += s * e * e
        wsum += s
        step_pair(opt, u, i, p, q, bu, bi, Pa, Qa, bua, bia, -s * e, dot, pp, qq, rank, lr, lr_bias, l2, l2_bias,
                  beta, beta_bias)
    return loss, wsum, n_bad, 0.0


def _train_signature(id_type):
    return types.UniTuple(_f64, 4)(
        _ro(id_type), _ro(id_type), _ro(_f32), _ro(_f32), types.boolean, _ro(_i64),  # users, items, ratings, weights, has_w, rows
        _rw(_f32, 2), _rw(_f32, 2), _rw(_f32), _rw(_f32),                            # P, Q, bu, bi
        _rw(_f32, 2), _rw(_f32, 2), _rw(_f32), _rw(_f32),                            # their AdaGrad sums
        _f64, _f64, _f64, _f64, _f64, _f64, _f64, _f64, types.uint64,   # mu, lr, lr_bias, l2, l2_bias, beta, beta_bias, init_scale, seed
    )


_TRAIN_SIGNATURES = [_train_signature(types.uint32), _train_signature(types.uint64)]
# The training kernels allocate nothing, so they are compiled without numba's reference
# counting (_nrt=False): otherwise each rating's row views P[u], Q[i] (and their AdaGrad
# sums) cost an atomic increment and decrement of their array's count, a cache line every
# thread writes. Kernel alone, one thread: 118 -> 94 ms an epoch on the 1M-rating synthetic
# set (rank 32), 11.1 -> 9.4 ms on MovieLens (rank 100) (benchmarks/mf_contention.md).


@njit(_TRAIN_SIGNATURES, nogil=True, cache=True, error_model="numpy", fastmath=FAST, _nrt=False)
def train_block_sgd(users, items, ratings, weights, has_weights, rows, P, Q, bu, bi, Pa, Qa, bua, bia,
                    mu, lr, lr_bias, l2, l2_bias, beta, beta_bias, init_scale, seed):
    return _train(users, items, ratings, weights, has_weights, rows, P, Q, bu, bi, Pa, Qa, bua, bia,
                  SGD, mu, lr, lr_bias, l2, l2_bias, beta, beta_bias, init_scale, seed)


@njit(_TRAIN_SIGNATURES, nogil=True, cache=True, error_model="numpy", fastmath=FAST, _nrt=False)
def train_block_adagrad(users, items, ratings, weights, has_weights, rows, P, Q, bu, bi, Pa, Qa, bua, bia,
                        mu, lr, lr_bias, l2, l2_bias, beta, beta_bias, init_scale, seed):
    return _train(users, items, ratings, weights, has_weights, rows, P, Q, bu, bi, Pa, Qa, bua, bia,
                  ADAGRAD, mu, lr, lr_bias, l2, l2_bias, beta, beta_bias, init_scale, seed)


@njit(_TRAIN_SIGNATURES, nogil=True, cache=True, error_model="numpy", fastmath=FAST, _nrt=False)
def train_block_rowwise(users, items, ratings, weights, has_weights, rows, P, Q, bu, bi, Pa, Qa, bua, bia,
                        mu, lr, lr_bias, l2, l2_bias, beta, beta_bias, init_scale, seed):
    return _train(users, items, ratings, weights, has_weights, rows, P, Q, bu, bi, Pa, Qa, bua, bia,
                  ROWWISE, mu, lr, lr_bias, l2, l2_bias, beta, beta_bias, init_scale, seed)


TRAIN_KERNELS = {SGD: train_block_sgd, ADAGRAD: train_block_adagrad, ROWWISE: train_block_rowwise}


def _predict_signature(id_type):
    return types.void(_ro(id_type), _ro(id_type), _ro(_f32, 2), _ro(_f32, 2), _ro(_f32), _ro(_f32),
                      _f64, _f64, _f64, _rw(_f64))


@njit([_predict_signature(types.uint32), _predict_signature(types.uint64)], nogil=True, cache=True,
      fastmath=FAST, error_model="numpy")
def predict_block(users, items, P, Q, bu, bi, mu, lo, hi, out):
    """out[r] = μ + b_u + b_i + p_u·q_i, clipped to [lo, hi] (pass -inf, inf for none). An id
    beyond the model was never seen in training: its bias and factors count as 0 (so two
    unseen ids give μ), exactly as a row never touched holds zeros."""
    n_users, n_items = P.shape[0], Q.shape[0]
    for r in range(out.shape[0]):
        u = np.int64(users[r])
        i = np.int64(items[r])
        pred = mu
        if 0 <= u < n_users:
            pred += bu[u]
        if 0 <= i < n_items:
            pred += bi[i]
        if 0 <= u < n_users and 0 <= i < n_items:
            pred += np.float64(_dot(P[u], Q[i]))
        out[r] = min(max(pred, lo), hi)


@njit([types.UniTuple(_f64, 3)(_ro(_f64), _ro(_f32), _ro(_f32), types.boolean, _ro(types.boolean),
                               types.boolean)], nogil=True, cache=True, error_model="numpy")
def error_sums(pred, ratings, weights, has_weights, select, has_select):
    """(sum s e², sum s |e|, sum s) over the rows where ``select`` (all when not has_select)."""
    se = 0.0
    ae = 0.0
    ws = 0.0
    for r in range(pred.shape[0]):
        if has_select and not select[r]:
            continue
        s = np.float64(weights[r]) if has_weights else 1.0
        e = np.float64(ratings[r]) - pred[r]
        se += s * e * e
        ae += s * abs(e)
        ws += s
    return se, ae, ws


@njit(inline="always", cache=True, error_model="numpy")
def is_held(r, offset, holdout):
    """Whether row r of a block (offset: holdout_offset's) is held out."""
    if holdout <= 0.0:
        return False
    return np.float64(_mix(np.uint64(r) + offset) >> np.uint64(11)) * (2.0 ** -53) < holdout


@njit(inline="always", cache=True, error_model="numpy")
def holdout_offset(seed, row_start):
    return (seed + np.uint64(1)) * _GOLDEN + np.uint64(row_start)


@njit(inline="always", cache=True, error_model="numpy")
def shuffle_in_place(out, state):
    """Fisher-Yates on a SplitMix64 stream from ``state``."""
    for r in range(out.shape[0] - 1, 0, -1):
        state += _GOLDEN
        j = np.int64(_mix(state) % np.uint64(r + 1))
        t = out[r]
        out[r] = out[j]
        out[j] = t


@njit([_i64(types.uint64, types.uint64, types.uint64, types.float64, types.int64, _rw(types.boolean), _rw(_i64))],
      nogil=True, cache=True, error_model="numpy")
def shuffled_rows(seed, epoch, block_key, holdout, row_start, held, out):
    """The rows of a block to train, in their order for this epoch; returns how many.

    ``held`` gets the holdout mask of rows row_start.. (streamhog.training.early_stopping's rule, exactly);
    ``out[:n]`` the rows not held out, in a seeded order (Fisher-Yates on a SplitMix64
    stream keyed by (seed, epoch, block)): a pure function of those, without the GIL."""
    n = out.shape[0]
    offset = holdout_offset(seed, row_start)
    for r in range(n):
        held[r] = is_held(r, offset, holdout)
        out[r] = r
    shuffle_in_place(out, _mix(_mix(seed * _GOLDEN + epoch) + block_key * _GOLDEN))
    kept = 0
    for r in range(n):
        if not held[out[r]]:
            out[kept] = out[r]
            kept += 1
    return kept
