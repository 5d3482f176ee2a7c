"""Many threads, one model (issue 14): every block also updates the intercept (and the
normalized rule's N, T), which threads keep locally and publish every few rows
(kernels/linear.py). Blocks forced to overlap must move it as a serial run does, and more
threads than cores (oversubscribed: blocks overlap in time) must train the model one
thread trains."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import streamhog
from streamhog.io.batch import SparseBatch
from streamhog.datasets.synthetic import SyntheticSpec, synthetic_batches
from streamhog.io.formats import create_writer
from streamhog.kernels.block import ModelArrays, UpdateRule, sync_change_for, sync_rows_for, train_block
from streamhog.kernels.linear import CONSTANT
from streamhog.kernels.losses import LOSS_IDS
from streamhog.kernels.optimizers import NORM_T, OPTIMIZER_IDS
from streamhog.model.directory import OPTIMIZER_STATE

T = 8  # blocks in flight: four times this machine's cores
ROWS = 3000


def _blocks(rng, n_classes, d=40):
    """T blocks of sparse rows whose labels ignore the features: only the intercepts can learn
    them (90% positives; softmax: classes 0, 1, 2 with 70%, 20%, 10%)."""
    blocks = []
    for _ in range(T):
        counts = rng.integers(1, 6, ROWS)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        indices = np.concatenate([np.sort(rng.choice(d, c, replace=False)) for c in counts]).astype(np.uint32)
        values = rng.normal(size=len(indices)).astype(np.float32)
        if n_classes == 1:
            labels = np.where(rng.random(ROWS) < 0.9, 1.0, -1.0).astype(np.float32)
        else:
            labels = rng.choice(3, ROWS, p=[0.7, 0.2, 0.1]).astype(np.float32)
        blocks.append(SparseBatch(indptr, indices, values, labels))
    return blocks


def _train(blocks, opt, n_classes, *, threaded, sync_rows, sync_change, d=40):
    arrays = ModelArrays.zeros(d, len(OPTIMIZER_STATE[opt]), n_classes)
    # The lock cell, then a gate (kernels/atomics.gate_wait): each thread reads the shared
    # state, then waits until all T have read it, so the T blocks start from the same
    # intercept, as T blocks in flight on T cores do.
    arrays = ModelArrays(arrays.w, arrays.acc, arrays.aux, arrays.bstate, n_classes,
                         cells=np.array([0, 0, T if threaded else 0], np.int32))
    rule = UpdateRule(OPTIMIZER_IDS[opt], LOSS_IDS["logistic"], CONSTANT, l2=1e-4, beta=1.0, sync_rows=sync_rows,
                      sync_change=sync_change)
    lr = {"sgd": 0.01, "adagrad": 0.1, "normalized": 0.3}[opt]
    if not threaded:
        for k, b in enumerate(blocks):
            train_block(b, np.arange(ROWS), arrays, rule, lr=lr, t0=k * ROWS)
        return arrays.bstate
    threads = [threading.Thread(target=train_block, args=(b, np.arange(ROWS), arrays, rule),
                                kwargs=dict(lr=lr, t0=k * ROWS)) for k, b in enumerate(blocks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    return arrays.bstate


def _centered(b):
    """Softmax intercepts matter only up to a common shift (adaptive rules move their sum)."""
    return b - b.mean() if len(b) > 1 else b


@pytest.mark.parametrize("n_classes", [1, 3])
@pytest.mark.parametrize("opt", ["sgd", "adagrad", "normalized"])
def test_overlapping_blocks_move_the_intercept_as_a_serial_run(opt, n_classes):
    blocks = _blocks(np.random.default_rng(7), n_classes)
    k = n_classes
    serial = _train(blocks, opt, k, threaded=False, sync_rows=sync_rows_for(1), sync_change=sync_change_for(1))
    hogwild = _train(blocks, opt, k, threaded=True, sync_rows=sync_rows_for(T), sync_change=sync_change_for(T))
    # The serial intercept is the base rate's log-odds (binary: log 9 = 2.2), up to SGD noise.
    if k == 1:
        assert serial[0] == pytest.approx(np.log(9.0), abs=0.35)
    tol = 0.1 + 0.1 * np.abs(serial[:k]).max()
    np.testing.assert_allclose(_centered(hogwild[:k]), _centered(serial[:k]), atol=tol)
    if opt == "normalized":  # T, the summed importance weight: every thread's rows, none lost
        assert hogwild[NORM_T if k == 1 else 3 * k + 1] == T * ROWS
    # The control: publishing once per block (as before issue 14) lets each of the T blocks
    # add the whole move it computed from the same start: the intercept overshoots.
    once = _train(blocks, opt, k, threaded=True, sync_rows=ROWS, sync_change=np.inf)
    assert np.abs(_centered(once[:k]) - _centered(serial[:k])).max() > 3 * tol


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """The benchmark's synthetic data, smaller (Zipf ids, unit-norm rows, true intercept -0.5),
    in the default 16K-row row groups: 25 blocks."""
    d = tmp_path_factory.mktemp("synthetic")
    spec = SyntheticSpec(n_rows=420_000, n_features=50_000, nnz_per_row=30, seed=3)
    for name, (start, stop) in {"train": (0, 400_000), "test": (400_000, 420_000)}.items():
        w = create_writer("parquet", d / f"{name}.parquet", rows_per_group=16_384)
        for b in synthetic_batches(spec, rows_per_block=10_000, start_row=start, stop_row=stop):
            w.write(b)
        w.close(spec.n_features)
    return d


@pytest.mark.parametrize("opt", ["sgd", "adagrad", "normalized"])
def test_sixteen_threads_on_two_cores_train_the_one_thread_model(synthetic, tmp_path, opt):
    """16 threads on 2 cores: with 8 readers and room for 32 blocks, 16 blocks are in flight at
    once and the scheduler slices them, so they overlap for their whole length (with
    publication once per block: test logloss 0.6495 against 0.6164 for AdaGrad)."""
    results = {}
    for threads in (1, 16):
        many = dict(readers=8, capacity=32) if threads > 1 else {}
        model = streamhog.train(synthetic / "train.parquet", tmp_path / f"m{threads}", epochs=1, holdout=0.0,
                                optimizer=opt, threads=threads, quiet=True, **many)
        test = model.evaluate(synthetic / "test.parquet")["logloss"]
        results[threads] = (model.meta["history"][-1]["train_loss"], test)
    (train1, test1), (train16, test16) = results[1], results[16]
    assert abs(train16 - train1) <= 0.01 * train1, results
    assert abs(test16 - test1) <= 0.01 * test1, results
