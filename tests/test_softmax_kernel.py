"""The softmax (multiclass) kernels: training against an independent NumPy reference for every
optimizer, schedule and data kind; the margins kernel; refusal of bad indices, labels and
malformed blocks; Hogwild! threads; a fit of scikit-learn's digits."""
from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np
import pytest

from streamhog.kernels.optimizers import OPTIMIZER_IDS
from streamhog.kernels.predict import BAD_INDPTR, INDEX_OUT_OF_RANGE, OK
from streamhog.kernels.linear import BAD_CALL, BAD_LABEL, CONSTANT, INVSCALING, OUT_OF_RANGE
from streamhog.kernels.softmax import BAD_SHAPE, bstate_length, softmax_margins, softmax_probabilities, softmax_train

from conftest import random_batch
from invariant_ref import softmax_flow_gradient

E = np.zeros(0, np.float32)
NO_HOT = np.zeros(0, np.int32)
NO_HOT_F64 = np.zeros(0)
OPTIMIZERS = ["sgd", "adagrad", "normalized", "ftrl"]
HYPER = dict(lr=0.1, power_t=0.5, l1=0.5, l2=0.01, beta=1.0)  # l1: ftrl only


# --- the reference -------------------------------------------------------------------------------

def numpy_softmax(batch, rows, n_features, K, opt, schedule, lr, power_t, t0, l1, l2, beta, fit_intercept=True):
    """Softmax regression trained one example at a time with the per-coordinate rules as
    optimizers.py's docstring states them, written independently with NumPy: float64
    arithmetic, the (n_features, K) weights and state stored as float32 after each example."""
    X = batch.to_scipy(n_features).tocsr()
    W = np.zeros((n_features, K))
    A = np.zeros((n_features, K))  # accum / ftrl n
    S = np.zeros((n_features, K))  # scale / ftrl z
    b, b_acc, b_aux = np.zeros(K), np.zeros(K), np.zeros(K)
    N = T = 0.0
    loss_sum = weight_sum = 0.0
    f32 = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731
    for k, i in enumerate(rows):
        x = X.getrow(i)
        idx, val = x.indices, x.data.astype(np.float64)
        y = int(batch.labels[i])
        s = 1.0 if batch.weights is None else float(batch.weights[i])
        eta = lr if schedule == CONSTANT else lr / (1.0 + t0 + k) ** power_t
        Wi = W[idx]
        if opt == "normalized":  # scales first: a grown scale s -> |x| rescales w by s / |x|, acc by its square
            ax = np.abs(val)[:, None]
            grow = (ax > S[idx]) & (S[idx] > 0)
            ratio = np.where(grow, S[idx] / np.where(grow, ax, 1.0), 1.0)
            Wi = f32(Wi * ratio)
            A[idx] = f32(A[idx] * ratio ** 2)
            S[idx] = np.maximum(S[idx], ax)
        z = b + val @ Wi
        lse = z.max() + np.log(np.exp(z - z.max()).sum())
        loss_sum += s * (lse - z[y])
        weight_sum += s
        g = s * np.exp(z - lse)
        g[y] -= s
        GX = np.outer(val, g)
        if opt == "sgd":
            Wi = Wi * (1 - eta * l2) - eta * GX
            b = b - eta * g
        elif opt == "adagrad":
            G = GX + l2 * Wi
            Ai = A[idx] + G * G
            Di, bd = beta + Ai, beta + b_acc + g * g  # beta: the initial accumulator
            Wi = Wi - eta * G / np.sqrt(np.where(Di > 0, Di, 1.0)) * (Di > 0)
            A[idx] = f32(Ai)
            b_acc = b_acc + g * g
            b = b - eta * g / np.sqrt(np.where(bd > 0, bd, 1.0)) * (bd > 0)
        elif opt == "normalized":
            Si = S[idx][:, :1]
            xn = np.where(Si > 0, val[:, None] / np.where(Si > 0, Si, 1.0), 0.0)  # (nnz, 1)
            N += s * (np.sum(xn ** 2) + (1.0 if fit_intercept else 0.0))
            T += s
            mult = eta * np.sqrt(T / N)
            gu = g / s  # per unit weight
            if (np.any(gu != 0) or l2 != 0) and s > 0:
                # the rates from the accumulators before the example; then they grow
                Ai = A[idx]
                R = np.where(beta + Ai > 0, 1 / np.sqrt(np.maximum(beta + Ai, 1e-300)), 0.0)
                A[idx] = f32(Ai + s * (xn * gu[None, :]) ** 2)
                rb = np.where(beta + b_acc > 0, 1 / np.sqrt(np.maximum(beta + b_acc, 1e-300)), 0.0) \
                    if fit_intercept else np.zeros(K)
                b_acc = b_acc + s * gu * gu if fit_intercept else b_acc
                h = mult * (np.sum(R * xn ** 2, axis=0) + rb)
                step = mult * softmax_flow_gradient(z, y, s, h)
                q = np.where(Si > 0, xn / np.where(Si > 0, Si, 1.0), 0.0)
                Wi = (Wi - step[None, :] * R * q) * np.maximum(0.0, 1 - mult * l2 * s * R)
                b = b - step * rb
        else:  # ftrl: alpha = eta
            def ftrl(zz, n, l1, l2):
                return np.where(np.abs(zz) <= l1, 0.0, -(zz - np.sign(zz) * l1) / ((beta + np.sqrt(n)) / eta + l2))

            n_new = A[idx] + GX * GX
            zz = S[idx] + GX - (np.sqrt(n_new) - np.sqrt(A[idx])) / eta * Wi
            Wi = ftrl(zz, n_new, l1, l2)
            A[idx], S[idx] = f32(n_new), f32(zz)
            bn = b_acc + g * g
            b_aux = b_aux + g - (np.sqrt(bn) - np.sqrt(b_acc)) / eta * b
            b_acc = bn
            b = ftrl(b_aux, b_acc, 0.0, 0.0)
        W[idx] = f32(Wi)
    bstate = np.concatenate([b, b_acc, b_aux, [N, T]])
    return W, A, S, bstate, loss_sum, weight_sum


# --- helpers --------------------------------------------------------------------------------------

def class_batch(rng, n_rows, n_features, K, **kw):
    batch = random_batch(rng, n_rows, n_features, **kw)
    labels = rng.integers(0, K, n_rows).astype(np.float32)
    return batch.__class__(batch.indptr, batch.indices, batch.values, labels, batch.weights)


class State:
    """A softmax model's flat arrays, as the trainer will hold them."""

    def __init__(self, n_features, K, opt):
        self.K, self.opt = K, opt
        self.w = np.zeros((n_features, K), np.float32)
        self.acc = np.zeros((n_features if opt != "sgd" else 0, K), np.float32)
        self.aux = np.zeros((n_features if opt in ("normalized", "ftrl") else 0, K), np.float32)
        self.bstate = np.zeros(bstate_length(K))
        self.lock = np.zeros(1, np.int32)

    def train(self, batch, rows, schedule=CONSTANT, t0=0, use_lock=False, fit_intercept=True, readonly=False,
              lr=HYPER["lr"], power_t=HYPER["power_t"], l1=HYPER["l1"], l2=HYPER["l2"], beta=HYPER["beta"]):
        has_values, has_weights = batch.values is not None, batch.weights is not None
        ins = [batch.indptr, batch.indices, batch.values if has_values else E, batch.labels,
               batch.weights if has_weights else E, np.asarray(rows, np.int64)]
        if readonly:
            ins = [a.copy() for a in ins]
            for a in ins:
                a.flags.writeable = False
        indptr, indices, values, labels, weights, rows = ins
        loss, weight, n_bad, flags = softmax_train(
            indptr, indices, values, has_values, labels, weights, has_weights, rows, NO_HOT, self.w.reshape(-1),
            self.acc.reshape(-1), self.aux.reshape(-1), self.bstate, NO_HOT_F64, self.lock, self.K,
            OPTIMIZER_IDS[self.opt], 0, schedule, lr, power_t, t0, l1, l2, beta, fit_intercept, use_lock, 1 << 30,
            np.inf)
        # (loss, weight, non-finite rows, index refused, label refused), as floats
        return (loss, weight, float(n_bad), float(bool(flags & OUT_OF_RANGE)), float(bool(flags & BAD_LABEL)))

    def arrays(self):
        return [a.copy() for a in (self.w, self.acc, self.aux, self.bstate)]

    def margins(self, batch):
        out = np.empty((batch.n_rows, self.K))
        has_values = batch.values is not None
        code = softmax_margins(batch.indptr, batch.indices, batch.values if has_values else E, has_values,
                               self.w.reshape(-1), self.K, self.bstate, out)
        assert code == (OK, -1, -1)
        return out


def mean_logloss(margins, labels):
    p = softmax_probabilities(margins)
    return float(-np.mean(np.log(np.maximum(p[np.arange(len(labels)), labels.astype(int)], 1e-300))))


# --- training against the reference ---------------------------------------------------------------

@pytest.mark.parametrize("opt", OPTIMIZERS)
@pytest.mark.parametrize("schedule", [CONSTANT, INVSCALING])
@pytest.mark.parametrize("binary,weights", [(False, False), (True, False), (False, True)])
def test_kernel_matches_numpy_reference(rng, opt, schedule, binary, weights):
    K, d = 4, 30
    batch = class_batch(rng, 200, d, K, binary=binary, weights=weights, max_nnz=6)
    rows = rng.permutation(batch.n_rows)
    t0 = 7
    W, A, S, bstate, loss_sum, weight_sum = numpy_softmax(batch, rows, d, K, opt, schedule, t0=t0, **HYPER)
    m = State(d, K, opt)
    # Two calls, as two blocks: the second starts from the first's intercepts, N and T.
    out1 = m.train(batch, rows[:120], schedule, t0=t0)
    out2 = m.train(batch, rows[120:], schedule, t0=t0 + 120)
    np.testing.assert_allclose(m.w, W, rtol=1e-5, atol=1e-7)
    if opt != "sgd":
        np.testing.assert_allclose(m.acc, A, rtol=1e-5, atol=1e-9)
    if opt in ("normalized", "ftrl"):
        # ftrl's z sums terms that cancel: float32 storage leaves absolute errors at its scale.
        np.testing.assert_allclose(m.aux, S, rtol=1e-5, atol=1e-6 * np.abs(S).max())
    np.testing.assert_allclose(m.bstate, bstate, rtol=1e-5, atol=1e-8)
    assert out1[0] + out2[0] == pytest.approx(loss_sum, rel=1e-6)
    assert out1[1] + out2[1] == pytest.approx(weight_sum, rel=1e-6)
    assert out1[2:] == out2[2:] == (0.0, 0.0, 0.0)
    assert np.count_nonzero(m.w) > 0
    if opt == "ftrl":
        assert np.count_nonzero(m.w) < m.w.size  # l1 zeroes some weights


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_many_classes_span_cache_lines(rng, opt):
    """K = 20: a feature's run of weights is 80 bytes (the prefetch covers two lines)."""
    K, d = 20, 25
    batch = class_batch(rng, 150, d, K, max_nnz=7)
    rows = rng.permutation(batch.n_rows)
    W, A, S, bstate, loss_sum, _ = numpy_softmax(batch, rows, d, K, opt, INVSCALING, t0=0, **HYPER)
    m = State(d, K, opt)
    out = m.train(batch, rows, INVSCALING)
    np.testing.assert_allclose(m.w, W, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(m.bstate, bstate, rtol=1e-5, atol=1e-8)
    assert out[0] == pytest.approx(loss_sum, rel=1e-6)


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_lock_and_readonly_inputs_give_the_same_model(rng, opt):
    """One thread: the spin-lock path (shared intercepts updated in place) and read-only
    inputs (Arrow / Zarr buffers) train exactly the model of the lock-free path."""
    K, d = 3, 30
    batch = class_batch(rng, 150, d, K, weights=True)
    rows = rng.permutation(batch.n_rows)
    runs = []
    for kw in (dict(), dict(use_lock=True), dict(readonly=True)):
        m = State(d, K, opt)
        out = m.train(batch, rows[:70], **kw) + m.train(batch, rows[70:], t0=70, **kw)
        runs.append((m.arrays(), out))
        assert m.lock[0] == 0
    for arrays, out in runs[1:]:
        for a, ref in zip(arrays[:3], runs[0][0][:3]):
            np.testing.assert_array_equal(a, ref)
        # Lock-free, a block adds its change to the start (start + (end - start)): last-bit
        # differences from updating in place.
        np.testing.assert_allclose(arrays[3], runs[0][0][3], rtol=1e-13, atol=1e-15)
        assert out == runs[0][1]


def test_without_intercept_the_intercepts_stay(rng):
    K, d = 3, 20
    batch = class_batch(rng, 100, d, K)
    for opt in OPTIMIZERS:
        m = State(d, K, opt)
        m.bstate[:K] = [0.5, -0.25, 0.0]
        m.train(batch, np.arange(100), fit_intercept=False)
        assert list(m.bstate[:K]) == [0.5, -0.25, 0.0]
        assert np.all(np.isfinite(m.w)) and np.count_nonzero(m.w) > 0


# --- refusals -------------------------------------------------------------------------------------

@pytest.mark.parametrize("opt", OPTIMIZERS)
@pytest.mark.parametrize("bad", ["index", "index_last", 2.5, -1.0, 4.0, float("nan")])
@pytest.mark.parametrize("use_lock", [False, True])
def test_bad_index_or_label_stops_before_its_row(rng, opt, bad, use_lock):
    """The rows before the bad one are trained; the bad row writes nothing (not even the
    normalized rule's scales); the block stops there and says why."""
    K, d = 4, 30
    batch = class_batch(rng, 60, d, K, max_nnz=6)
    rows = rng.permutation(batch.n_rows)
    # The first row from position 25 on that has nonzeros (for "index": one to spoil).
    pos = next(p for p in range(25, 60) if batch.indptr[rows[p] + 1] > batch.indptr[rows[p]])
    victim = rows[pos]
    indices, labels = batch.indices.copy(), batch.labels.copy()
    if str(bad).startswith("index"):
        # The first or the last of the row's nonzeros: one past the last feature.
        indices[batch.indptr[victim + 1] - 1 if bad == "index_last" else batch.indptr[victim]] = d
    else:
        labels[victim] = bad  # K = 4 is the first label out of range
    spoiled = batch.__class__(batch.indptr, indices, batch.values, labels, batch.weights)
    ref = State(d, K, opt)
    ref_out = ref.train(batch, rows[:pos])
    m = State(d, K, opt)
    out = m.train(spoiled, rows, use_lock=use_lock)
    for a, b in zip(m.arrays(), ref.arrays()):
        np.testing.assert_array_equal(a, b)
    assert out[:3] == ref_out[:3]
    assert out[3:] == ((1.0, 0.0) if str(bad).startswith("index") else (0.0, 1.0))
    assert m.lock[0] == 0


@pytest.mark.parametrize("case", ["row_past_end", "negative_row", "indptr_decreasing", "indptr_past_nnz",
                                  "short_values", "short_labels", "short_state", "bstate_length", "w_not_k_multiple"])
def test_malformed_blocks_are_refused_before_anything_is_written(rng, case):
    K, d = 3, 20
    batch = class_batch(rng, 40, d, K)
    m = State(d, K, "adagrad")
    indptr, indices, values, labels = batch.indptr.copy(), batch.indices, batch.values, batch.labels
    rows = np.arange(40, dtype=np.int64)
    w, acc, aux, bstate = m.w.reshape(-1), m.acc.reshape(-1), m.aux.reshape(-1), m.bstate
    if case == "row_past_end":
        rows[30] = 40
    elif case == "negative_row":
        rows[30] = -1
    elif case == "indptr_decreasing":
        indptr[31] = indptr[30] - 1
    elif case == "indptr_past_nnz":
        indptr[-1] = len(indices) + 1
    elif case == "short_values":
        values = values[:-1]
    elif case == "short_labels":
        labels = labels[:-1]
    elif case == "short_state":
        acc = acc[:-1]
    elif case == "bstate_length":
        bstate = np.zeros(bstate_length(K) + 1)
    elif case == "w_not_k_multiple":
        w, acc, aux = w[:-1], acc[:-1], aux[:-1]
    out = softmax_train(indptr, indices, values, True, labels, E, False, rows, NO_HOT, w, acc, aux, bstate, NO_HOT_F64,
                        m.lock, K, OPTIMIZER_IDS["adagrad"], 0, CONSTANT, 0.1, 0.5, 0, 0.0, 0.0, 1.0, True, False, 1024, 0.05)
    assert out == (0.0, 0.0, 0, BAD_CALL)
    assert not m.w.any() and not m.acc.any() and not bstate.any()


def test_divergent_rows_are_counted_and_skipped(rng):
    K, d = 3, 10
    batch = class_batch(rng, 30, d, K, max_nnz=4)
    m = State(d, K, "sgd")
    m.w[:] = np.inf
    m.w[0] = 0.0  # rows holding only feature 0 stay finite
    rows = np.arange(30)
    finite_rows = [r for r in rows if set(batch.indices[batch.indptr[r]:batch.indptr[r + 1]]) <= {0}]
    out = m.train(batch, rows, l2=0.0)
    assert out[2] == 30 - len(finite_rows) and out[3:] == (0.0, 0.0)
    assert out[1] == len(finite_rows)


# --- margins --------------------------------------------------------------------------------------

@pytest.mark.parametrize("binary", [False, True])
def test_margins_match_numpy_on_a_readonly_memmap(rng, tmp_path, binary):
    K, d = 5, 40
    batch = class_batch(rng, 100, d, K, binary=binary)
    W = rng.normal(size=(d, K)).astype(np.float32)
    np.save(tmp_path / "w.npy", W)
    w_flat = np.asarray(np.load(tmp_path / "w.npy", mmap_mode="r")).reshape(-1)  # read-only, no copy
    assert not w_flat.flags.writeable
    intercepts = rng.normal(size=K)
    intercepts.flags.writeable = False
    ins = [a.copy() for a in (batch.indptr, batch.indices, batch.values if not binary else E)]
    for a in ins:
        a.flags.writeable = False
    out = np.full((100, K), np.nan)
    assert softmax_margins(ins[0], ins[1], ins[2], not binary, w_flat, K, intercepts, out) == (OK, -1, -1)
    ref = batch.to_scipy(d).astype(np.float64) @ W.astype(np.float64) + intercepts
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    # A softmax bstate serves as the intercepts (its first K entries).
    bstate = np.concatenate([intercepts, rng.normal(size=2 * K + 2)])
    out2 = np.empty((100, K))
    softmax_margins(ins[0], ins[1], ins[2], not binary, w_flat, K, bstate, out2)
    np.testing.assert_array_equal(out2, out)


def test_margins_refuse_bad_input_without_reading_out_of_bounds(rng):
    K, d = 3, 10
    batch = class_batch(rng, 20, d, K, max_nnz=4)
    w = np.ones(d * K, np.float32)
    b = np.zeros(K)
    r = next(r for r in range(20) if batch.indptr[r + 1] > batch.indptr[r])
    indices = batch.indices.copy()
    indices[batch.indptr[r]] = d
    out = np.zeros((20, K))
    assert softmax_margins(batch.indptr, indices, batch.values, True, w, K, b, out) == \
        (INDEX_OUT_OF_RANGE, r, batch.indptr[r])
    assert not out[r:].any()
    bad = batch.indptr.copy()
    bad[5] = bad[6] + 1
    assert softmax_margins(bad, batch.indices, batch.values, True, w, K, b, out)[0] == BAD_INDPTR
    assert softmax_margins(batch.indptr[:-1], batch.indices, batch.values, True, w, K, b, out)[0] == BAD_INDPTR
    for args in [(w[:-1], K, b, out), (w, K, b[:-1], out), (w, K, b, np.zeros((20, K + 1))), (w, 0, b, out)]:
        assert softmax_margins(batch.indptr, batch.indices, batch.values, True, *args) == (BAD_SHAPE, -1, -1)
    assert softmax_margins(batch.indptr, batch.indices, batch.values[:-1], True, w, K, b, out)[0] == BAD_SHAPE


def test_probabilities_are_stable():
    from scipy.special import softmax

    z = np.array([[1000.0, -1000.0, 0.0], [1.0, 2.0, 3.0], [-800.0, -800.0, -800.0]])
    p = softmax_probabilities(z)
    np.testing.assert_allclose(p, softmax(z, axis=1), rtol=1e-12)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(softmax_probabilities(z[1]), softmax(z[1]))


# --- Hogwild! -------------------------------------------------------------------------------------

def learnable_problem(rng, n_rows, n_features, K, nnz=20):
    """Rows of ``nnz`` random features with N(0, 1)/sqrt(nnz) values, classes drawn from a
    softmax model with N(0, 2) weights: learnable well above chance, not separable."""
    indptr = np.arange(0, n_rows * nnz + 1, nnz, dtype=np.int64)
    indices = rng.integers(0, n_features, (n_rows, nnz))
    while True:  # strictly ascending within a row: redraw repeats until there are none
        indices.sort(axis=1)
        repeat = np.zeros(indices.shape, bool)
        repeat[:, 1:] = indices[:, 1:] == indices[:, :-1]
        if not repeat.any():
            break
        indices[repeat] = rng.integers(0, n_features, int(repeat.sum()))
    values = (rng.normal(size=(n_rows, nnz)) / np.sqrt(nnz)).astype(np.float32)
    W = rng.normal(0.0, 2.0, (n_features, K))
    z = np.einsum("rn,rnk->rk", values.astype(np.float64), W[indices])
    p = softmax_probabilities(z)
    labels = (p.cumsum(axis=1) < rng.random((n_rows, 1))).sum(axis=1).astype(np.float32)
    from streamhog.io.batch import SparseBatch

    return SparseBatch(indptr, indices.reshape(-1).astype(np.uint32), values.reshape(-1), labels)


def test_two_hogwild_threads_reach_the_one_thread_loss():
    from streamhog.io.batch import slice_rows

    rng = np.random.default_rng(7)
    K, d, block = 5, 2000, 5000
    data = learnable_problem(rng, 80_000, d, K)
    train, test = slice_rows(data, 0, 60_000), slice_rows(data, 60_000, 80_000)
    blocks = [slice_rows(train, a, a + block) for a in range(0, 60_000, block)]
    losses = {}
    for threads in (1, 2):
        m = State(d, K, "adagrad")
        order = np.random.default_rng(1)
        for _ in range(3):
            perm = [order.permutation(block) for _ in blocks]
            if threads == 1:
                for bl, p in zip(blocks, perm):
                    m.train(bl, p, lr=0.3, l1=0.0, l2=0.0)
            else:
                def work(part):
                    for bl, p in part:
                        m.train(bl, p, lr=0.3, l1=0.0, l2=0.0)

                pairs = list(zip(blocks, perm))
                ts = [threading.Thread(target=work, args=(pairs[t::2],)) for t in range(2)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
        assert m.bstate[-1] == 0.0 and np.all(np.isfinite(m.w))
        losses[threads] = mean_logloss(m.margins(test), test.labels)
    assert losses[1] < 0.8 * np.log(K), losses  # it learned something
    assert abs(losses[2] - losses[1]) < 0.01, losses


# --- a sanity fit: scikit-learn's digits ----------------------------------------------------------

def _make_digits():
    spec = importlib.util.spec_from_file_location("make_digits", Path(__file__).parents[1] / "tools" / "make_digits.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_svmlight_file

    from streamhog.io.batch import SparseBatch

    out = tmp_path_factory.mktemp("digits")
    assert _make_digits().main([str(out)]) == 0
    splits = {}
    for name in ("train", "test"):
        X, y = load_svmlight_file(str(out / f"digits.{name}"), n_features=64, zero_based=False)
        X = X.tocsr()
        X.sort_indices()
        splits[name] = SparseBatch(X.indptr.astype(np.int64), X.indices.astype(np.uint32),
                                   X.data.astype(np.float32), y.astype(np.float32))
    return splits


def test_digits_files(digits):
    train, test = digits["train"], digits["test"]
    assert (train.n_rows, test.n_rows) == (1400, 397)
    assert set(np.unique(train.labels)) == set(range(10))
    assert train.values.min() > 0 and train.values.max() == 1.0  # zero pixels omitted, / 16
    from sklearn.datasets import load_digits

    d = load_digits()
    order = np.random.default_rng(0).permutation(1797)
    np.testing.assert_array_equal(test.labels, d.target[order][1400:])
    np.testing.assert_allclose(train.to_scipy(64).toarray(), d.data[order][:1400] / 16, rtol=1e-6)


@pytest.mark.parametrize("opt,schedule,lr,epochs", [
    ("sgd", INVSCALING, 1.0, 10),      # the binary models' defaults (config.OPTIMIZER_DEFAULTS) ...
    ("adagrad", CONSTANT, 0.5, 5),
    ("normalized", CONSTANT, 0.5, 10),
    ("ftrl", CONSTANT, 0.5, 5),
    ("sgd", CONSTANT, 0.1, 5),         # ... and sgd's best constant rate here
])
def test_digits_are_learned(digits, opt, schedule, lr, epochs):
    """Each setting, measured over 10 shuffling seeds with l2 = 1e-6, reached >= 0.952 test
    accuracy on this split (an exact softmax regression, sklearn C=1e6: 0.975; C=10: 0.980)."""
    train, test = digits["train"], digits["test"]
    m = State(64, 10, opt)
    order = np.random.default_rng(0)
    for e in range(epochs):
        out = m.train(train, order.permutation(train.n_rows), schedule, t0=e * train.n_rows, lr=lr,
                      power_t=0.5, l1=0.0, l2=1e-6, beta=1.0)
        assert out[2:] == (0.0, 0.0, 0.0)
    margins = m.margins(test)
    accuracy = float(np.mean(margins.argmax(axis=1) == test.labels))
    assert accuracy >= 0.95, accuracy
    assert mean_logloss(margins, test.labels) < 0.25
