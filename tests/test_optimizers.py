"""Per-coordinate optimizers (sgd, adagrad, normalized, ftrl): the kernel against an
independent NumPy implementation of the formulas, exact resume with each, FTRL's sparsity."""
from __future__ import annotations

import math

import numpy as np
import pytest

import streamhog
from streamhog.model.info import model_info
from streamhog.errors import TrainingInterrupted
from streamhog.kernels.losses import LOSS_IDS
from streamhog.kernels.optimizers import OPTIMIZER_IDS
from streamhog.kernels.block import ModelArrays, UpdateRule, train_block
from streamhog.kernels.linear import CONSTANT, INVSCALING
from streamhog.model.directory import OPTIMIZER_STATE, Model

from conftest import random_batch
from invariant_ref import margin_flow_gradient

E = np.zeros(0, np.float32)


def numpy_train(batch, rows, n_features, opt, loss, schedule, lr, power_t, t0, l1, l2, beta):
    """The update rules of kernels/optimizers.py written out with NumPy, one example at a time
    (normalized: its importance-invariant step from SciPy's integration of the gradient flow).

    State is kept in float64 and rounded to float32 after each example, as the kernel
    stores it. Returns (w, acc, aux, [b, b_acc, b_aux, N, T])."""
    f32 = lambda a: np.asarray(a, np.float32).astype(np.float64)  # noqa: E731
    w, acc, aux = np.zeros(n_features), np.zeros(n_features), np.zeros(n_features)
    b = b_acc = b_aux = N = T = 0.0
    X = batch.to_scipy(n_features).tocsr()
    for k, i in enumerate(rows):
        idx = X.indices[X.indptr[i]:X.indptr[i + 1]]
        x = X.data[X.indptr[i]:X.indptr[i + 1]].astype(np.float64)
        y = float(batch.labels[i])
        if loss != "squared":
            y = 1.0 if y > 0 else -1.0
        s = 1.0 if batch.weights is None else float(batch.weights[i])
        eta = lr if schedule == CONSTANT else lr / (1.0 + t0 + k) ** power_t
        if opt == "normalized":  # a grown scale s -> |x| keeps v = w s, and acc in units of (g x / s)^2
            ratio = np.where((np.abs(x) > aux[idx]) & (aux[idx] > 0), aux[idx] / np.abs(x), 1.0)
            w[idx], acc[idx] = f32(w[idx] * ratio), f32(acc[idx] * ratio ** 2)
            aux[idx] = np.maximum(aux[idx], np.abs(x))
        z = b + float(w[idx] @ x)
        if loss == "logistic":
            d = -y / (1.0 + math.exp(y * z))
        elif loss == "hinge":
            d = -y if y * z < 1 else 0.0
        else:
            d = z - y
        g = s * d
        gx = g * x
        if opt == "sgd":
            w[idx] = w[idx] * (1 - eta * l2) - eta * gx
            b -= eta * g
        elif opt == "adagrad":
            gr = gx + l2 * w[idx]
            acc[idx] += gr ** 2
            den = beta + acc[idx]  # beta: the initial accumulator
            w[idx] -= np.where(den > 0, eta * gr / np.sqrt(np.where(den > 0, den, 1)), 0)
            if g:
                b_acc += g * g
                b -= eta * g / math.sqrt(beta + b_acc)
        elif opt == "normalized":
            xn = np.where(aux[idx] > 0, x / np.where(aux[idx] > 0, aux[idx], 1.0), 0.0)
            N += s * (float(np.sum(xn ** 2)) + 1.0)
            T += s
            mult = eta * math.sqrt(T / N)
            if (d != 0 or l2 != 0) and s > 0:
                # the rates from the accumulators before the example; then they grow
                r = np.where(beta + acc[idx] > 0, 1 / np.sqrt(np.maximum(beta + acc[idx], 1e-300)), 0.0)
                acc[idx] = f32(acc[idx] + s * (d * xn) ** 2)
                rb = 1 / math.sqrt(beta + b_acc) if beta + b_acc > 0 else 0.0
                b_acc += s * d * d
                h = mult * (float(np.sum(r * xn ** 2)) + rb)
                step = mult * margin_flow_gradient(loss, z, y, s, h)
                q = np.where(aux[idx] > 0, xn / np.where(aux[idx] > 0, aux[idx], 1.0), 0.0)
                w[idx] = (w[idx] - step * r * q) * np.maximum(0.0, 1 - mult * l2 * s * r)
                b -= step * rb
        else:  # ftrl
            if g:
                n_new = acc[idx] + gx ** 2
                sigma = (np.sqrt(n_new) - np.sqrt(acc[idx])) / eta
                aux[idx] += gx - sigma * w[idx]
                acc[idx] = n_new
                zz = aux[idx]
                w[idx] = np.where(np.abs(zz) <= l1, 0.0,
                                  -(zz - np.sign(zz) * l1) / ((beta + np.sqrt(n_new)) / eta + l2))
                bn = b_acc + g * g
                sigma = (math.sqrt(bn) - math.sqrt(b_acc)) / eta
                b_aux += g - sigma * b
                b_acc = bn
                b = -b_aux / ((beta + math.sqrt(bn)) / eta)
        w, acc, aux = f32(w), f32(acc), f32(aux)
    return w, acc, aux, [b, b_acc, b_aux, N, T]


@pytest.mark.parametrize("opt", ["sgd", "adagrad", "normalized", "ftrl"])
@pytest.mark.parametrize("loss", ["logistic", "hinge", "squared"])
@pytest.mark.parametrize("schedule", [CONSTANT, INVSCALING])
@pytest.mark.parametrize("binary,weights", [(False, False), (True, False), (False, True)])
def test_kernel_matches_numpy_reference(rng, opt, loss, schedule, binary, weights):
    batch = random_batch(rng, 150, 30, binary=binary, weights=weights, max_nnz=6)
    if not binary and opt != "sgd":  # features of very different scales: what adaptive rules are for
        batch = batch.__class__(batch.indptr, batch.indices,
                                (batch.values * np.float32(10.0) ** (batch.indices % 3)).astype(np.float32),
                                batch.labels, batch.weights)
    if loss == "squared":
        batch = batch.__class__(batch.indptr, batch.indices, batch.values, rng.normal(size=150).astype(np.float32),
                                batch.weights)
    rows = rng.permutation(150).astype(np.int64)
    lr, power_t, t0, l1, l2, beta = 0.05, 0.5, 3, (0.3 if opt == "ftrl" else 0.0), 0.01, 1.0
    n_state = len(OPTIMIZER_STATE[opt])
    w = np.zeros(30, np.float32)
    acc = np.zeros(30 if n_state > 0 else 0, np.float32)
    aux = np.zeros(30 if n_state > 1 else 0, np.float32)
    bstate = np.zeros(5)
    out = train_block(batch, rows, ModelArrays(w, acc, aux, bstate),
                      UpdateRule(OPTIMIZER_IDS[opt], LOSS_IDS[loss], schedule, power_t=power_t, l1=l1, l2=l2, beta=beta),
                      lr=lr, t0=t0)
    ref_w, ref_acc, ref_aux, ref_b = numpy_train(batch, rows, 30, opt, loss, schedule, lr, power_t, t0, l1, l2, beta)
    np.testing.assert_allclose(w, ref_w, rtol=2e-5, atol=1e-6)
    if n_state > 0:
        np.testing.assert_allclose(acc, ref_acc, rtol=2e-5, atol=1e-6)
    if n_state > 1:
        np.testing.assert_allclose(aux, ref_aux, rtol=2e-5, atol=1e-5)
    np.testing.assert_allclose(bstate, ref_b, rtol=1e-6, atol=1e-9)
    assert out.flags == 0 and out.n_nonfinite == 0


def _logistic_move_truth(m0: float, hs: float) -> float:
    """d > 0 with d + e^m0 expm1(d) = hs, by bisection in float64 on the cancellation-free
    form (an independent check of kernels/invariant.py's solve)."""
    e0 = math.exp(m0)
    lo, hi = 0.0, hs / (1.0 + e0)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid + e0 * math.expm1(mid) > hs:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("m0", [-25.0, -18.5, -8.0, -1.0, 0.0, 2.0, 12.0, 18.5, 20.0, 29.0])
@pytest.mark.parametrize("hs", [2e-6, 1e-3, 0.3, 1.5, 6.0, 40.0])
def test_logistic_invariant_step_is_exact_also_for_small_moves_on_large_margins(m0, hs):
    """The logistic importance-invariant step moves the margin by the solution of the flow's
    closed form to ~1e-13, also when that move is tiny next to the margin (m0 = 20, a move of
    1e-14: solving for the margin itself, m0's digits swamped the move's and gave 0)."""
    from streamhog.kernels.invariant import invariant_gradient
    from streamhog.kernels.losses import LOGISTIC, loss_and_dloss

    h, s, y = hs / 2.0, 2.0, 1.0
    _, d = loss_and_dloss(LOGISTIC, m0, y)
    g = invariant_gradient(LOGISTIC, m0, y, d, s, h)
    want = -_logistic_move_truth(m0, hs) / h
    assert g == pytest.approx(want, rel=1e-12, abs=0.0)
    assert abs(g) <= abs(s * d) * (1 + 1e-12)  # never more than the plain step


@pytest.mark.parametrize("opt", ["adagrad", "normalized", "ftrl"])
def test_lock_baseline_equals_lock_free_on_one_thread(rng, opt):
    batch = random_batch(rng, 300, 40, max_nnz=8)
    rows = rng.permutation(300).astype(np.int64)
    results = []
    for use_lock in (False, True):
        w, acc, aux, bstate = (np.zeros(40, np.float32), np.zeros(40, np.float32), np.zeros(40, np.float32),
                               np.zeros(5))
        train_block(batch, rows, ModelArrays(w, acc, aux, bstate),
                    UpdateRule(OPTIMIZER_IDS[opt], 0, CONSTANT, l1=0.1, l2=1e-3, use_lock=use_lock), lr=0.1, t0=0)
        results.append((w, acc, aux, bstate))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_normalized_is_invariant_to_feature_scale(rng):
    """Scaling a feature by c scales its learned weight by 1/c and leaves predictions alone."""
    batch = random_batch(rng, 400, 20, max_nnz=6)
    scale = np.float32(10.0) ** (np.arange(20) % 5 - 2).astype(np.float32)  # 0.01 .. 100
    scaled = batch.__class__(batch.indptr, batch.indices, (batch.values * scale[batch.indices]).astype(np.float32),
                             batch.labels)
    rows = rng.permutation(400).astype(np.int64)
    ws = []
    for b in (batch, scaled):
        w, acc, aux, bstate = np.zeros(20, np.float32), np.zeros(20, np.float32), np.zeros(20, np.float32), np.zeros(5)
        train_block(b, rows, ModelArrays(w, acc, aux, bstate), UpdateRule(OPTIMIZER_IDS["normalized"], 0, CONSTANT),
                    lr=0.5, t0=0)
        ws.append(w.astype(np.float64))
    np.testing.assert_allclose(ws[1] * scale, ws[0], rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("opt", ["adagrad", "normalized", "ftrl"])
def test_resume_is_bit_exact_with_every_optimizer(a9a_train_test, tmp_path, opt):
    train, _ = a9a_train_test
    kw = dict(optimizer=opt, threads=1, epochs=2, quiet=True, seed=3, l1=0.5 if opt == "ftrl" else 0.0)
    whole = streamhog.train(train, tmp_path / "whole", **kw)
    with pytest.raises(TrainingInterrupted):
        streamhog.train(train, tmp_path / "parts", stop_after_blocks=5, **kw)  # mid-epoch 1 (8 blocks an epoch)
    with pytest.raises(TrainingInterrupted):
        streamhog.train(train, tmp_path / "parts", resume=True, stop_after_blocks=6, **kw)  # across the boundary
    parts = streamhog.train(train, tmp_path / "parts", resume=True, **kw)
    assert [f.name for f in whole.files()] == [f.name for f in parts.files()]
    for f in whole.files():  # normalized: one record file holds the weights and the state
        assert np.array_equal(np.load(f), np.load(parts.path / f.name)), f.name
    assert whole.meta["bstate"] == parts.meta["bstate"]
    assert [h["train_loss"] for h in whole.meta["history"]] == [h["train_loss"] for h in parts.meta["history"]]


def test_ftrl_sparsity_grows_with_l1(a9a_train_test, tmp_path):
    train, test = a9a_train_test
    nonzero, losses = [], []
    for l1 in (0.0, 3.0, 30.0, 100.0):
        model = streamhog.train(train, tmp_path / f"l1-{l1}", optimizer="ftrl", l1=l1, epochs=1, threads=1, quiet=True)
        nonzero.append(int(np.count_nonzero(model.weights)))
        losses.append(model.evaluate(test)["logloss"])
    assert nonzero == sorted(nonzero, reverse=True) and nonzero[-1] < nonzero[0]
    # The target: some l1 keeps at most half of the 123 weights at test logloss <= 0.340.
    assert any(n <= 61 and loss <= 0.340 for n, loss in zip(nonzero, losses)), (nonzero, losses)
    info = model_info(tmp_path / "l1-100.0")
    assert info["nonzero_weights"] == nonzero[-1]


@pytest.mark.parametrize("opt", ["sgd", "adagrad", "normalized", "ftrl"])
def test_every_optimizer_learns_a9a_in_one_pass(a9a_train_test, tmp_path, opt):
    train, test = a9a_train_test
    model = streamhog.train(train, tmp_path / "m", optimizer=opt, epochs=1, quiet=True)
    assert model.optimizer == opt
    # normalized: the state lives in the weights' records (format 2); the others: one file each
    assert sorted(p.name for p in model.path.glob("*.npy")) == sorted(
        ["weights.npy"] + ([] if opt == "normalized" else [f"{n}.npy" for n in OPTIMIZER_STATE[opt]]))
    assert model.evaluate(test)["logloss"] <= 0.345
    reopened = Model.open(model.path)
    assert list(reopened.optimizer_state) == list(OPTIMIZER_STATE[opt])


def test_snapshots_and_rollback_carry_the_optimizer_state(a9a_train_test, tmp_path):
    train, _ = a9a_train_test
    m = streamhog.train(train, tmp_path / "m", optimizer="ftrl", epochs=2, keep_snapshots=1, threads=1,
                        early_stopping=0, quiet=True)  # the model in place is the last epoch's
    snap = next((tmp_path / "m" / "snapshots").iterdir())
    for name in ("weights", "ftrl_n", "ftrl_z"):
        assert np.array_equal(np.load(snap / f"{name}.npy"), np.load(m.path / f"{name}.npy")), name


def test_warm_start_carries_or_derives_the_state(a9a_train_test, tmp_path):
    train, test = a9a_train_test
    src = streamhog.train(train, tmp_path / "src", optimizer="adagrad", epochs=2, threads=1, quiet=True)
    same = streamhog.train(train, tmp_path / "same", optimizer="adagrad", warm_start=src.path, epochs=1, lr=1e-9,
                           threads=1, quiet=True)
    np.testing.assert_allclose(same.weights, src.weights, atol=1e-6)  # a tiny lr: barely moved
    assert np.all(np.asarray(same.optimizer_state["accum"]) >= np.asarray(src.optimizer_state["accum"]))  # carried, then grown
    # FTRL from another optimizer: z is derived so that FTRL's closed form gives back the weights.
    ftrl = streamhog.train(train, tmp_path / "ftrl", optimizer="ftrl", warm_start=src.path, epochs=1, lr=1e-9,
                           threads=1, quiet=True)
    np.testing.assert_allclose(ftrl.weights, src.weights, rtol=1e-3, atol=1e-6)
    assert ftrl.evaluate(test)["logloss"] == pytest.approx(src.evaluate(test)["logloss"], rel=1e-3)
