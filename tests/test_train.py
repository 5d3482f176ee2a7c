"""The Hogwild! engine: kernels against a NumPy reference, determinism, thread and lock
variants on a9a, label and divergence checks, the CLI end to end."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import streamhog
from streamhog.cli import main
from streamhog.datasets import a9a
from streamhog.kernels.losses import LOSS_IDS
from streamhog.kernels.block import ModelArrays, UpdateRule, train_block
from streamhog.kernels.linear import CONSTANT, INVSCALING
from streamhog.kernels.optimizers import SGD
from streamhog.model.directory import Model
from streamhog.errors import TrainingError

from conftest import random_batch
from test_optimizers import numpy_train

E = np.zeros(0, np.float32)


@pytest.mark.parametrize("loss", ["logistic", "hinge", "squared"])
@pytest.mark.parametrize("schedule", [CONSTANT, INVSCALING])
@pytest.mark.parametrize("binary,weights", [(False, False), (True, False), (False, True)])
def test_kernel_matches_numpy_reference(rng, loss, schedule, binary, weights):
    batch = random_batch(rng, 200, 30, binary=binary, weights=weights, max_nnz=6)
    if loss == "squared":
        batch = batch.__class__(batch.indptr, batch.indices, batch.values, rng.normal(size=200).astype(np.float32),
                                batch.weights)
    rows = rng.permutation(batch.n_rows)
    w = np.zeros(30, np.float32)
    b = np.zeros(5)
    lr, power_t, t0, l2 = 0.1, 0.5, 7, 0.01
    # The NumPy reference of every optimizer (tests/test_optimizers.py), here plain SGD.
    ref_w, _, _, (ref_b, *_) = numpy_train(batch, rows, 30, "sgd", loss, schedule, lr, power_t, t0, 0.0, l2, 1.0)
    out = train_block(batch, rows, ModelArrays(w, E.copy(), E.copy(), b),
                      UpdateRule(SGD, LOSS_IDS[loss], schedule, power_t=power_t, l2=l2), lr=lr, t0=t0)
    np.testing.assert_allclose(w, ref_w, rtol=1e-5, atol=1e-6)
    assert b[0] == pytest.approx(ref_b, rel=1e-6, abs=1e-9)
    assert out.weight_sum == pytest.approx(batch.weights.sum() if weights else 200, rel=1e-6)
    assert out.flags == 0


def test_kernel_refuses_an_index_beyond_the_weights(rng):
    batch = random_batch(rng, 50, 30, max_nnz=6)
    w = np.zeros(20, np.float32)  # smaller than the data's 30 features
    out = train_block(batch, np.arange(50), ModelArrays(w, E.copy(), E.copy(), np.zeros(5)),
                      UpdateRule(SGD, 0, CONSTANT), lr=0.1, t0=0)
    assert out.out_of_range


@pytest.fixture(scope="module")
def a9a_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("a9a")
    streamhog.convert(a9a("train"), d / "train.parquet")
    streamhog.convert(a9a("test"), d / "test.parquet", n_features=123)
    streamhog.convert(d / "train.parquet", d / "train.zarr", rows_per_group=8192)
    return d


def test_one_thread_with_a_seed_is_deterministic(a9a_data, tmp_path):
    kw = dict(epochs=2, threads=1, readers=2, seed=3, quiet=True)
    streamhog.train(a9a_data / "train.parquet", tmp_path / "m1", **kw)
    streamhog.train(a9a_data / "train.parquet", tmp_path / "m2", **kw)
    assert (tmp_path / "m1" / "weights.npy").read_bytes() == (tmp_path / "m2" / "weights.npy").read_bytes()
    m1, m2 = Model.open(tmp_path / "m1"), Model.open(tmp_path / "m2")
    assert m1.intercept == m2.intercept and m1.meta["history"] == m2.meta["history"] or \
        [h["train_loss"] for h in m1.meta["history"]] == [h["train_loss"] for h in m2.meta["history"]]
    streamhog.train(a9a_data / "train.parquet", tmp_path / "m3", **{**kw, "seed": 4})
    assert (tmp_path / "m3" / "weights.npy").read_bytes() != (tmp_path / "m1" / "weights.npy").read_bytes()


@pytest.mark.parametrize("data", ["train.parquet", "train.zarr"])
def test_two_hogwild_threads_reach_the_targets(a9a_data, tmp_path, data):
    """Done-when of issue 3: --threads 2 --epochs 5 reaches logloss <= 0.330, AUC >= 0.899."""
    model = streamhog.train(a9a_data / data, tmp_path / "m", threads=2, epochs=5, quiet=True)
    metrics = model.evaluate(a9a_data / "test.parquet")
    assert metrics["logloss"] <= 0.330 and metrics["auc"] >= 0.899, metrics
    assert metrics["n_examples"] == 16281


def test_threads_and_lock_reach_the_single_thread_loss(a9a_data, tmp_path):
    losses = {}
    for name, kw in {"one": dict(threads=1), "hogwild": dict(threads=2), "lock": dict(threads=2, sync="lock")}.items():
        model = streamhog.train(a9a_data / "train.parquet", tmp_path / name, epochs=3, quiet=True, **kw)
        losses[name] = model.evaluate(a9a_data / "test.parquet")["logloss"]
    assert abs(losses["hogwild"] - losses["one"]) < 0.003, losses
    assert abs(losses["lock"] - losses["one"]) < 0.003, losses


def test_evaluate_agrees_with_numpy_from_weights_npy(a9a_data, tmp_path):
    from sklearn.metrics import accuracy_score, log_loss

    model = streamhog.train(a9a_data / "train.parquet", tmp_path / "m", epochs=1, quiet=True)
    test = streamhog.open_dataset(a9a_data / "test.parquet")
    reader = test.open_reader()
    from streamhog.io.batch import concat_batches

    t = concat_batches([reader.read(k) for k in range(test.n_blocks)])
    w = np.load(tmp_path / "m" / "weights.npy")["w"]  # the default's records: weight, state
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    z = t.to_scipy(123) @ w.astype(np.float64) + meta["intercept"]
    y = (t.labels > 0).astype(int)
    metrics = model.evaluate(a9a_data / "test.parquet")
    assert metrics["logloss"] == pytest.approx(log_loss(y, 1 / (1 + np.exp(-z))), rel=1e-6)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y, z > 0))
    np.testing.assert_allclose(model.predict(a9a_data / "test.parquet"), 1 / (1 + np.exp(-z)), rtol=1e-6)


def _write(path, labels, n_features=5, values=None):
    from streamhog.io.batch import SparseBatch
    from streamhog.io.formats import create_writer

    n = len(labels)
    indptr = np.arange(n + 1, dtype=np.int64)
    indices = (np.arange(n) % n_features).astype(np.uint32)
    vals = np.asarray(values if values is not None else np.ones(n), np.float32)
    w = create_writer("parquet", path, rows_per_group=64)
    w.write(SparseBatch(indptr, indices, vals, np.asarray(labels, np.float32)))
    w.close(n_features)


def test_labels_that_do_not_fit_the_loss_are_refused_before_training(tmp_path):
    _write(tmp_path / "d.parquet", [0, 1, 2, 1])
    with pytest.raises(TrainingError, match=r"label 2 does not fit the logistic loss.*\{-1, \+1\} or \{0, 1\}"):
        streamhog.train(tmp_path / "d.parquet", tmp_path / "m", quiet=True)
    assert not (tmp_path / "m").exists()
    _write(tmp_path / "e.parquet", [-1, 0, 1])
    with pytest.raises(TrainingError, match="label 0 does not fit the hinge loss"):
        streamhog.train(tmp_path / "e.parquet", tmp_path / "m", loss="hinge", quiet=True)


def test_squared_loss_accepts_real_labels_and_fits_least_squares(tmp_path, rng):
    from streamhog.io.batch import SparseBatch
    from streamhog.io.formats import create_writer

    n, d = 4000, 20
    X = rng.normal(size=(n, d)).astype(np.float32)
    w_true = rng.normal(size=d)
    y = (X @ w_true + 0.5 + 0.1 * rng.normal(size=n)).astype(np.float32)
    w = create_writer("parquet", tmp_path / "r.parquet", rows_per_group=500)
    w.write(SparseBatch(np.arange(0, n * d + 1, d, dtype=np.int64), np.tile(np.arange(d, dtype=np.uint32), n),
                        X.ravel(), y))
    w.close(d)
    model = streamhog.train(tmp_path / "r.parquet", tmp_path / "m", loss="squared", epochs=10, threads=1, quiet=True)
    np.testing.assert_allclose(np.asarray(model.weights), w_true, atol=0.02)
    assert model.intercept == pytest.approx(0.5, abs=0.02)
    m = model.evaluate(tmp_path / "r.parquet")
    assert set(m) == {"rmse", "mae", "n_examples"} and m["rmse"] < 0.12


def test_divergence_stops_with_epoch_and_hint(tmp_path):
    _write(tmp_path / "d.parquet", np.linspace(-1e3, 1e3, 500), values=np.full(500, 1e3))
    with pytest.raises(TrainingError, match=r"diverged in epoch 1, .*d.parquet row group \d: .*lower --lr \(now 10\)"):
        streamhog.train(tmp_path / "d.parquet", tmp_path / "m", loss="squared", optimizer="sgd", lr=10.0, lr_schedule="constant",
                        l2=0.0, quiet=True, threads=1)
    assert json.loads((tmp_path / "m" / "model.json").read_text())["training"]["status"] == "diverged"
    with pytest.raises(TrainingError, match="diverged and its weights are not usable"):
        streamhog.train(tmp_path / "d.parquet", tmp_path / "m", resume=True, quiet=True)


def test_model_dir_protection_and_feature_checks(a9a_data, tmp_path, capsys):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "notes.txt").write_text("mine")
    assert main(["train", str(a9a_data / "train.parquet"), "--model", str(model_dir), "--quiet"]) == 1
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert (model_dir / "notes.txt").read_text() == "mine"
    assert main(["train", str(a9a_data / "train.parquet"), "--model", str(tmp_path / "n"), "--n-features", "100"]) == 1
    assert "the data has 123 features but --n-features is 100" in capsys.readouterr().err
    small = streamhog.train(a9a_data / "test.parquet", tmp_path / "small", epochs=1, quiet=True, n_features=123)
    _write(tmp_path / "wide.parquet", [1, -1], n_features=200)
    with pytest.raises(Exception, match="200.*123|123.*200"):
        small.evaluate(tmp_path / "wide.parquet")


def test_huge_model_is_sparse_on_disk(tmp_path):
    _write(tmp_path / "d.parquet", [1, -1, 1, -1] * 50)
    model = streamhog.train(tmp_path / "d.parquet", tmp_path / "m", n_features=2**31, epochs=1, quiet=True)
    st = (tmp_path / "m" / "weights.npy").stat()
    assert st.st_size > 2**33  # 8 GiB of float32 ...
    assert st.st_blocks * 512 < 2**22  # ... of which almost nothing is allocated
    assert np.count_nonzero(np.asarray(model.weights[:5])) == 5
    from streamhog.model.info import model_info

    info = model_info(tmp_path / "m")  # scans data extents only: never reads the 8 GiB
    assert info["nonzero_weights"] == 5 and info["weights_allocated_bytes"] < 2**22


def test_cli_end_to_end(a9a_data, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "streamhog", *map(str, args)], capture_output=True, text=True)

    r = run("train", a9a_data / "train.parquet", "--model", tmp_path / "m", "--epochs", "2", "--threads", "2",
            "--valid", a9a_data / "test.parquet")
    assert r.returncode == 0, r.stderr
    assert "epoch 2/2: train loss" in r.stderr and "valid logloss" in r.stderr
    r = run("evaluate", "--model", tmp_path / "m", a9a_data / "test.parquet", "--json")
    assert r.returncode == 0, r.stderr
    metrics = json.loads(r.stdout)  # exactly one JSON object on stdout
    assert set(metrics) == {"logloss", "auc", "accuracy", "n_examples"}
    r = run("predict", "--model", tmp_path / "m", a9a_data / "test.parquet", "--out", tmp_path / "p.parquet")
    assert r.returncode == 0, r.stderr
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "p.parquet").num_rows == 16281
    r = run("info", tmp_path / "m", "--json")
    info = json.loads(r.stdout)
    assert info["n_features"] == 123 and info["epochs_trained"] == 2 and 0 < info["nonzero_weights"] <= 123
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    # --valid is watched for early stopping: the model kept is the epoch with the best valid loss.
    kept = meta["training"]["best_epoch"]
    assert meta["history"][kept - 1]["valid"]["logloss"] == min(h["valid"]["logloss"] for h in meta["history"])
    assert meta["history"][kept - 1]["valid"]["logloss"] == pytest.approx(metrics["logloss"])
    r = run("evaluate", "--model", tmp_path / "nope", a9a_data / "test.parquet")
    assert r.returncode == 1 and "not a streamhog model" in r.stderr
