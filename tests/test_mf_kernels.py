"""Factorization kernels against an independent NumPy implementation of the update rule
(one thread, fixed seed), the lazy seeded row starts, the row order, scoring, and
Hogwild! with more threads than cores against a serial run."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from streamhog.factorization import kernels as K
from streamhog.training.early_stopping import holdout_mask

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix(x: int) -> int:
    """SplitMix64's finalizer with Python integers (an independent rewrite of kernels._mix)."""
    x &= MASK
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def start_row(seed: int, which: int, row: int, rank: int, scale: float) -> np.ndarray:
    """The documented seeded start of a factor row: uniform on (-a, a), a = scale sqrt(3)."""
    key = mix(mix(seed * GOLDEN + which + 1) + row * GOLDEN)
    m = np.array([mix(key + (k + 1) * GOLDEN) >> 40 for k in range(rank)], np.float64)
    return ((2 * m + 1 - 2**24) / 2**24 * scale * np.sqrt(3.0)).astype(np.float32)


def numpy_train(users, items, ratings, weights, rows, P, Q, bu, bi, Pa, Qa, bua, bia, opt, mu, lr, lr_b, l2, l2b, beta,
                beta_b, scale, seed):
    """Biased MF, squared loss, one observation at a time, written from the docstring's
    formulas: factors in float32 arithmetic (as stored), error and biases in float64."""
    loss = wsum = 0.0
    for r in rows:
        u, i = int(users[r]), int(items[r])
        for X, which, j in ((P, 0, u), (Q, 1, i)):
            if not X[j].any():
                X[j] = start_row(seed, which, j, X.shape[1], scale)
        p, q = P[u].copy(), Q[i].copy()
        pred = mu + float(bu[u]) + float(bi[i]) + float(np.dot(p.astype(np.float64), q.astype(np.float64)))
        s = 1.0 if weights is None else float(weights[r])
        e = float(ratings[r]) - pred
        loss += s * e * e
        wsum += s
        numpy_step(P, Q, bu, bi, Pa, Qa, bua, bia, opt, u, i, -s * e, lr, lr_b, l2, l2b, beta, beta_b)
    return loss, wsum


def numpy_step(P, Q, bu, bi, Pa, Qa, bua, bia, opt, u, i, g, lr, lr_b, l2, l2b, beta, beta_b):
    """One observation's update of b_u, b_i, p_u, q_i, g the loss's derivative in the prediction."""
    f32 = np.float32
    p, q = P[u].copy(), Q[i].copy()
    for b, acc, j in ((bu, bua, u), (bi, bia, i)):
        gb = g + l2b * float(b[j])
        if opt == "sgd":
            b[j] = float(b[j]) - lr_b * gb
        else:
            acc[j] = float(acc[j]) + gb * gb
            b[j] = float(b[j]) - lr_b * gb / np.sqrt(beta_b + float(acc[j]))
    gp = f32(g) * q + f32(l2) * p
    gq = f32(g) * p + f32(l2) * q
    if opt == "sgd":
        P[u] = p - f32(lr) * gp
        Q[i] = q - f32(lr) * gq
    elif opt == "rowwise-adagrad":  # one sum per row: its mean squared gradient, float64
        rank = len(p)
        Pa[u, 0] = float(Pa[u, 0]) + float(np.sum(gp.astype(np.float64) ** 2)) / rank
        Qa[i, 0] = float(Qa[i, 0]) + float(np.sum(gq.astype(np.float64) ** 2)) / rank
        P[u] = p - f32(lr / np.sqrt(beta + float(Pa[u, 0]))) * gp
        Q[i] = q - f32(lr / np.sqrt(beta + float(Qa[i, 0]))) * gq
    else:
        Pa[u] = Pa[u] + gp * gp
        Qa[i] = Qa[i] + gq * gq
        P[u] = p - f32(lr) * gp / np.sqrt(f32(beta) + Pa[u])
        Q[i] = q - f32(lr) * gq / np.sqrt(f32(beta) + Qa[i])


def ro(a):
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


def problem(rng, n=400, n_users=23, n_items=17, weights=False, id_type=np.uint32):
    users = ro(rng.integers(0, n_users, n).astype(id_type))
    items = ro(rng.integers(0, n_items, n).astype(id_type))
    ratings = ro(rng.integers(1, 6, n).astype(np.float32))
    w = ro(rng.uniform(0.5, 2.0, n).astype(np.float32)) if weights else None
    return users, items, ratings, w


def arrays(n_users, n_items, rank, opt):
    P, Q = np.zeros((n_users, rank), np.float32), np.zeros((n_items, rank), np.float32)
    bu, bi = np.zeros(n_users, np.float32), np.zeros(n_items, np.float32)
    if opt == "adagrad":
        state = (np.zeros_like(P), np.zeros_like(Q), np.zeros_like(bu), np.zeros_like(bi))
    elif opt == "rowwise-adagrad":  # one sum per factor row: (n, 1), as MFModel.kernel_arrays passes them
        state = (np.zeros((n_users, 1), np.float32), np.zeros((n_items, 1), np.float32), np.zeros_like(bu),
                 np.zeros_like(bi))
    else:
        state = (np.zeros((0, rank), np.float32), np.zeros((0, rank), np.float32), np.zeros(0, np.float32),
                 np.zeros(0, np.float32))
    return [P, Q, bu, bi, *state]


@pytest.mark.parametrize("opt", ["sgd", "adagrad", "rowwise-adagrad"])
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("id_type", [np.uint32, np.uint64])
def test_kernel_matches_numpy_reference(rng, opt, weights, id_type):
    users, items, ratings, w = problem(rng, weights=weights, id_type=id_type)
    rank, mu, lr, l2, l2b, beta, scale, seed = 7, 3.1, (0.02 if opt == "sgd" else 0.1), 0.03, 0.01, 0.5, 0.1, 42
    lr_b, beta_b = lr * 0.7, beta * 2
    kernel_arrays = arrays(23, 17, rank, opt)
    ref = [a.copy() for a in kernel_arrays]
    if opt == "sgd":  # the reference keeps its own (unused) state
        ref[4:] = [np.zeros((23, rank), np.float32), np.zeros((17, rank), np.float32),
                   np.zeros(23, np.float32), np.zeros(17, np.float32)]
    empty = ro(np.zeros(0, np.float32))
    for epoch in range(3):
        rows = ro(np.random.default_rng(epoch).permutation(len(ratings)).astype(np.int64))
        got = K.TRAIN_KERNELS[K.OPTIMIZER_IDS[opt]](users, items, ratings, w if weights else empty, weights, rows,
                                                    *kernel_arrays, mu, lr, lr_b, l2, l2b, beta, beta_b, scale,
                                                    np.uint64(seed))
        want = numpy_train(users, items, ratings, w, rows, *ref, opt, mu, lr, lr_b, l2, l2b, beta, beta_b, scale, seed)
        assert got[2] == 0 and got[3] == 0
        np.testing.assert_allclose(got[:2], want, rtol=1e-5)
    # Factors agree within float32 rounding (the kernel's dot product sums in another order).
    names = ["P", "Q", "bu", "bi", "Pa", "Qa", "bua", "bia"]
    for name, a, b in zip(names[:4] + (names[4:] if opt != "sgd" else []), kernel_arrays, ref):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6, err_msg=name)
    if opt == "rowwise-adagrad":  # every touched row has its sum, the others none
        assert np.array_equal(kernel_arrays[4][:, 0] > 0, np.isin(np.arange(23), users))
    assert np.count_nonzero(kernel_arrays[0].any(axis=1)) == len(np.unique(users))  # touched rows only


def test_lazy_start_is_seeded_and_only_for_untouched_rows():
    users = ro(np.array([3, 3], np.uint32))
    items = ro(np.array([5, 2], np.uint32))
    ratings = ro(np.array([4.0, 2.0], np.float32))
    rows = ro(np.array([0], np.int64))
    empty = ro(np.zeros(0, np.float32))
    P, Q, bu, bi, *state = arrays(10, 8, 6, "sgd")
    # lr 0: nothing moves, so the rows hold exactly their starts.
    K.train_block_sgd(users, items, ratings, empty, False, rows, P, Q, bu, bi, *state, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                      0.0, 0.25, np.uint64(9))
    np.testing.assert_array_equal(P[3], start_row(9, 0, 3, 6, 0.25))
    np.testing.assert_array_equal(Q[5], start_row(9, 1, 5, 6, 0.25))
    assert not P[:3].any() and not P[4:].any() and not Q[2].any()
    assert np.all(P[3] != 0) and abs(P[3]).max() < 0.25 * np.sqrt(3)
    P[3] = 0.5  # a started row (not all zeros) is never started again
    K.train_block_sgd(users, items, ratings, empty, False, ro(np.array([1], np.int64)), P, Q, bu, bi, *state, 3.0,
                      0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.25, np.uint64(9))
    assert np.all(P[3] == 0.5)
    np.testing.assert_array_equal(Q[2], start_row(9, 1, 2, 6, 0.25))


def test_start_values_are_spread_with_the_given_scale():
    v = np.concatenate([start_row(1, 0, r, 64, 0.1) for r in range(200)])
    assert abs(v.std() - 0.1) < 0.005 and abs(v.mean()) < 0.005
    assert len(np.unique(v)) > 0.95 * len(v)


def test_an_id_beyond_the_matrices_stops_the_block_before_touching_it():
    users = ro(np.array([1, 12, 2], np.uint64))
    items = ro(np.array([1, 1, 1], np.uint64))
    ratings = ro(np.array([4.0, 2.0, 3.0], np.float32))
    P, Q, bu, bi, *state = arrays(10, 8, 4, "adagrad")
    out = K.train_block_adagrad(users, items, ratings, ro(np.zeros(0, np.float32)), False,
                                ro(np.arange(3, dtype=np.int64)), P, Q, bu, bi, *state, 3.0, 0.1, 0.1, 0.0, 0.0, 1.0, 1.0,
                                0.1, np.uint64(0))
    assert out[3] == 1.0 and out[1] == 1.0  # one row trained, then stopped
    assert P[1].any() and not P[2].any()


@pytest.mark.parametrize("opt", ["adagrad", "rowwise-adagrad"])
def test_state_of_another_shape_is_refused_before_any_write(opt):
    """Each rule's state shape is checked: adagrad's per coordinate, rowwise-adagrad's one
    per row; the other's is refused (flag 1.0) with nothing written."""
    users, items, ratings = ro(np.array([1, 2], np.uint32)), ro(np.array([1, 1], np.uint32)), ro(np.ones(2, np.float32))
    other = "rowwise-adagrad" if opt == "adagrad" else "adagrad"
    P, Q, bu, bi, *state = arrays(10, 8, 4, other)
    out = K.TRAIN_KERNELS[K.OPTIMIZER_IDS[opt]](users, items, ratings, ro(np.zeros(0, np.float32)), False,
                                                ro(np.arange(2, dtype=np.int64)), P, Q, bu, bi, *state, 3.0, 0.1, 0.1,
                                                0.0, 0.0, 1.0, 1.0, 0.1, np.uint64(0))
    assert out == (0.0, 0.0, 0.0, 1.0)
    assert not P.any() and not Q.any() and not bu.any()


@pytest.mark.parametrize("holdout", [0.0, 0.25])
def test_shuffled_rows_is_a_seeded_permutation_with_the_holdout_rule(holdout):
    n, row_start = 1000, 123_456
    held, rows = np.empty(n, bool), np.empty(n, np.int64)
    kept = K.shuffled_rows(np.uint64(5), np.uint64(2), np.uint64(7), holdout, row_start, held, rows)
    np.testing.assert_array_equal(held, holdout_mask(row_start, n, holdout, 5))
    assert kept == n - held.sum()
    np.testing.assert_array_equal(np.sort(rows[:kept]), np.flatnonzero(~held))
    again = np.empty(n, np.int64)
    K.shuffled_rows(np.uint64(5), np.uint64(2), np.uint64(7), holdout, row_start, held, again)
    np.testing.assert_array_equal(again[:kept], rows[:kept])
    other = np.empty(n, np.int64)
    K.shuffled_rows(np.uint64(5), np.uint64(3), np.uint64(7), holdout, row_start, held, other)  # next epoch
    assert not np.array_equal(other[:kept], rows[:kept])


def test_predict_block_treats_unseen_ids_as_zero_and_clips(rng):
    P, Q = ro(rng.normal(size=(5, 3)).astype(np.float32)), ro(rng.normal(size=(4, 3)).astype(np.float32))
    bu, bi = ro(rng.normal(size=5).astype(np.float32)), ro(rng.normal(size=4).astype(np.float32))
    users = ro(np.array([0, 4, 9, 1, 7], np.uint32))
    items = ro(np.array([3, 1, 2, 8, 9], np.uint32))
    out = np.empty(5)
    K.predict_block(users, items, P, Q, bu, bi, 3.5, -np.inf, np.inf, out)
    want = [3.5 + bu[0] + bi[3] + P[0] @ Q[3], 3.5 + bu[4] + bi[1] + P[4] @ Q[1], 3.5 + bi[2], 3.5 + bu[1], 3.5]
    np.testing.assert_allclose(out, want, rtol=1e-6)
    K.predict_block(users, items, P, Q, bu, bi, 3.5, 3.0, 4.0, out)
    np.testing.assert_allclose(out, np.clip(want, 3.0, 4.0), rtol=1e-6)


def test_error_sums_against_numpy(rng):
    pred, r = ro(rng.normal(3, 1, 50)), ro(rng.normal(3, 1, 50).astype(np.float32))
    w, sel = ro(rng.uniform(0, 2, 50).astype(np.float32)), ro(rng.random(50) < 0.5)
    se, ae, ws = K.error_sums(pred, r, w, True, sel, True)
    e = (r - pred)[sel]
    np.testing.assert_allclose([se, ae, ws], [(w[sel] * e * e).sum(), (w[sel] * abs(e)).sum(), w[sel].sum()])


@pytest.mark.parametrize("opt", ["sgd", "adagrad", "rowwise-adagrad"])
def test_sixteen_hogwild_threads_match_a_serial_run_in_quality(opt):
    """16 threads on this machine's cores (more threads than cores), lock-free on shared
    factors, against one thread over the same blocks: the training error
    agrees within a few percent after 15 epochs, and the factors learn the same low-rank truth."""
    rng = np.random.default_rng(3)
    n_users, n_items, rank, n = 300, 200, 4, 60_000
    U, V = rng.normal(size=(n_users, rank)) / 2, rng.normal(size=(n_items, rank)) / 2
    users = rng.integers(0, n_users, n).astype(np.uint32)
    items = rng.integers(0, n_items, n).astype(np.uint32)
    ratings = (3 + (U[users] * V[items]).sum(1) + rng.normal(0, 0.1, n)).astype(np.float32)
    blocks = [tuple(ro(a[k::32]) for a in (users, items, ratings)) for k in range(32)]
    lr = 0.03 if opt == "sgd" else 0.1
    empty = ro(np.zeros(0, np.float32))

    def run(threads):
        state = arrays(n_users, n_items, rank, opt)
        kernel = K.TRAIN_KERNELS[K.OPTIMIZER_IDS[opt]]
        for epoch in range(15):
            todo = list(range(32))
            lock = threading.Lock()
            losses = []

            def work():
                while True:
                    with lock:
                        if not todo:
                            return
                        b = todo.pop()
                    u, i, r = blocks[b]
                    rows = ro(np.random.default_rng([epoch, b]).permutation(len(r)).astype(np.int64))
                    out = kernel(u, i, r, empty, False, rows, *state, 3.0, lr, lr, 0.001, 0.001, 1.0, 1.0, 0.1,
                                 np.uint64(1))
                    with lock:
                        losses.append(out[:2])

            ts = [threading.Thread(target=work) for _ in range(threads)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
        loss = np.sum(losses, axis=0)
        pred = np.empty(n)
        ro_state = [ro(a) for a in state[:4]]
        K.predict_block(ro(users), ro(items), *ro_state, 3.0, -np.inf, np.inf, pred)
        return loss[0] / loss[1], np.sqrt(np.mean((pred - ratings) ** 2))

    (serial_mse, serial_rmse), (hog_mse, hog_rmse) = run(1), run(16)
    assert serial_rmse < 0.12  # it learns the low-rank truth (noise 0.1; the mean alone: about 1)
    assert hog_rmse < 0.12
    assert abs(hog_rmse - serial_rmse) / serial_rmse < 0.05
    assert abs(hog_mse - serial_mse) / serial_mse < 0.05
