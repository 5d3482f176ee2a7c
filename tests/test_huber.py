"""The Huber loss (issue 20's proof that a loss is two entries: its function in
kernels/losses.py, its line in the registry): against NumPy, and robust where least squares
is not."""
from __future__ import annotations

import numpy as np
import pytest

import streamhog
from streamhog.cli import main as cli_main
from streamhog.io.batch import SparseBatch
from streamhog.io.formats import create_writer
from streamhog.kernels.block import ModelArrays, UpdateRule, train_block
from streamhog.kernels.linear import CONSTANT
from streamhog.kernels.losses import LOSS_IDS
from streamhog.kernels.optimizers import SGD

from conftest import random_batch


def numpy_huber_sgd(batch, rows, n_features, lr, l2):
    """Plain SGD on the Huber loss (delta 1), one example at a time, written with NumPy."""
    X = batch.to_scipy(n_features).toarray().astype(np.float64)
    w, b, loss_sum = np.zeros(n_features), 0.0, 0.0
    for i in rows:
        x, y = X[i], float(batch.labels[i])
        r = x @ w + b - y
        loss_sum += 0.5 * r * r if abs(r) <= 1 else abs(r) - 0.5
        g = np.clip(r, -1.0, 1.0)
        nz = x != 0
        w[nz] = (w[nz] * (1 - lr * l2) - lr * g * x[nz]).astype(np.float32)
        b -= lr * g
    return w, b, loss_sum


def test_kernel_matches_numpy(rng):
    batch = random_batch(rng, 300, 25, max_nnz=6)
    labels = (3.0 * rng.standard_cauchy(300)).astype(np.float32)  # heavy tails: both branches taken
    batch = SparseBatch(batch.indptr, batch.indices, batch.values, labels)
    rows = rng.permutation(300)
    w, bstate = np.zeros(25, np.float32), np.zeros(5)
    E = np.zeros(0, np.float32)
    out = train_block(batch, rows, ModelArrays(w, E, E, bstate), UpdateRule(SGD, LOSS_IDS["huber"], CONSTANT, l2=1e-3),
                      lr=0.05, t0=0)
    ref_w, ref_b, ref_loss = numpy_huber_sgd(batch, rows, 25, 0.05, 1e-3)
    np.testing.assert_allclose(w, ref_w, rtol=1e-5, atol=1e-6)
    assert bstate[0] == pytest.approx(ref_b, rel=1e-6)
    assert out.loss_sum == pytest.approx(ref_loss, rel=1e-6)


def test_huber_shrugs_off_outliers_that_pull_least_squares(tmp_path, rng):
    n, d = 6000, 10
    X = rng.normal(size=(n, d)).astype(np.float32)
    w_true = rng.normal(size=d)
    y = X @ w_true + 0.1 * rng.normal(size=n)
    y[rng.random(n) < 0.05] += 1000.0  # 5% gross outliers, all on one side
    w = create_writer("parquet", tmp_path / "r.parquet", rows_per_group=1000)
    w.write(SparseBatch(np.arange(0, n * d + 1, d, dtype=np.int64), np.tile(np.arange(d, dtype=np.uint32), n),
                        X.ravel(), y.astype(np.float32)))
    w.close(d)
    kw = dict(epochs=10, holdout=0.0, threads=1, quiet=True, optimizer="sgd", lr=0.02, lr_schedule="constant",
              l2=0.0)
    huber = streamhog.train(tmp_path / "r.parquet", tmp_path / "h", loss="huber", **kw)
    squared = streamhog.train(tmp_path / "r.parquet", tmp_path / "s", loss="squared", **kw)
    err = {name: float(np.abs(np.asarray(m.weights) - w_true).max()) for name, m in
           (("huber", huber), ("squared", squared))}
    assert err["huber"] < 0.1 < err["squared"], err
    metrics = huber.evaluate(tmp_path / "r.parquet")
    assert set(metrics) == {"rmse", "mae", "n_examples"}
    assert cli_main(["train", str(tmp_path / "r.parquet"), "--model", str(tmp_path / "cli"), "--loss", "huber",
                     "--epochs", "2", "--quiet"]) == 0
    assert streamhog.Model.open(tmp_path / "cli").loss == "huber"
