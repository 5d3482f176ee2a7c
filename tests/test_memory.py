"""Data in memory (formats/memory.py): scipy.sparse, dense NumPy and Arrow tables train, evaluate
and predict through the same kernels as files, blocks are views of the matrix, and bad input
gets one-line errors naming the argument, the row and the column."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp
from scipy.special import expit
from sklearn.datasets import load_svmlight_file
from sklearn.metrics import log_loss, roc_auc_score

import streamhog
from streamhog.io.batch import concat_batches
from streamhog.datasets import a9a
from streamhog.errors import DataFormatError, DataTypeError, ConfigError, StreamhogError
from streamhog.io.formats import open_dataset
from streamhog.io.formats.memory import InMemoryData


@pytest.fixture(scope="module")
def a9a_data():
    X, y = load_svmlight_file(a9a("train"), n_features=123)  # float64 data, int32 or int64 ids
    Xt, yt = load_svmlight_file(a9a("test"), n_features=123)
    return X.tocsr(), y, Xt.tocsr(), yt


@pytest.fixture(scope="module")
def a9a_parquet(tmp_path_factory):
    path = tmp_path_factory.mktemp("a9a") / "a9a.parquet"
    streamhog.convert(a9a("train"), path)
    return path


def read_all(ds):
    r = ds.open_reader()
    out = concat_batches([r.read(k) for k in range(ds.n_blocks)])
    r.close()
    return out


def same_model(a, b):
    return np.array_equal(np.asarray(a.weights), np.asarray(b.weights)) and a.intercept == b.intercept


KW = dict(epochs=2, threads=1, seed=3, quiet=True)


def test_csr_trains_exactly_as_the_converted_file(a9a_data, a9a_parquet, tmp_path):
    """Same rows, same 16,384-row blocks, same seed: bit-identical to training on the Parquet file."""
    X, y, _, _ = a9a_data
    from_file = streamhog.train(a9a_parquet, tmp_path / "f", **KW)
    from_memory = streamhog.train(streamhog.InMemoryData(X, y), tmp_path / "m", **KW)
    assert same_model(from_file, from_memory)
    assert not (tmp_path / "m" / "cache").exists()  # no copy of the data written anywhere
    assert from_memory.meta["data"]["format"] == "memory"


@pytest.mark.parametrize("kind", ["csc", "dense", "arrow-list", "arrow-packed", "coo-int64"])
def test_every_kind_of_data_gives_the_same_model(a9a_data, tmp_path, kind):
    X, y, _, _ = a9a_data
    reference = streamhog.train(InMemoryData(X, y), tmp_path / "ref", **KW)
    if kind == "csc":
        data = InMemoryData(X.tocsc(), y)
        assert "converted to CSR once (a copy)" in data.notes[0]
    elif kind == "dense":
        data = InMemoryData(X.toarray(), y)
    elif kind == "coo-int64":
        coo = X.tocoo()
        data = InMemoryData(sp.coo_matrix((coo.data, (coo.row.astype(np.int64), coo.col.astype(np.int64))),
                                          shape=X.shape), y)
    else:
        ids = pa.ListArray.from_arrays(pa.array(X.indptr.astype(np.int32)), pa.array(X.indices.astype(np.int64)))
        table = pa.table({"y": y.astype(np.float64), "ids": ids})
        if kind == "arrow-packed":  # streamhog's own columns, as read back with pq.read_table
            cells = [X.indices[X.indptr[i]:X.indptr[i + 1]].astype("<u4").tobytes() for i in range(X.shape[0])]
            table = pa.table({"label": y.astype(np.float32), "indices": pa.array(cells, pa.binary())})
            data = streamhog.open_dataset(table)
        else:
            data = streamhog.open_dataset(table.to_batches()[0] if len(table.to_batches()) == 1 else table,
                                          label_column="y", indices_column="ids")
    model = streamhog.train(data, tmp_path / kind, **KW)
    assert same_model(reference, model)


def test_csr_blocks_are_views(a9a_data):
    X, y, _, _ = a9a_data
    X32 = sp.csr_matrix((X.data.astype(np.float32) * 2, X.indices.astype(np.int32), X.indptr), shape=X.shape)
    ds = InMemoryData(X32, y, rows_per_block=1000)
    assert ds.n_blocks == 33 and ds.has_values
    b = ds.open_reader().read(5)
    assert np.shares_memory(b.indices, X32.indices) and np.shares_memory(b.values, X32.data)
    assert b.indptr[0] == 0 and b.row_start == 5000 and b.labels.dtype == np.float32
    back = read_all(ds)
    np.testing.assert_array_equal(back.indices, X32.indices)
    np.testing.assert_array_equal(back.indptr, X32.indptr)
    assert not ds.cache_blocks


def test_non_canonical_csr_is_summed_like_scipy(rng):
    """Repeated and unsorted column indices in a row mean a sum in scipy: read the same way."""
    rows, cols = rng.integers(0, 50, 3000), rng.integers(0, 40, 3000)
    vals = rng.normal(size=3000).astype(np.float32).astype(np.float64)  # streamhog's values are float32
    X = sp.csr_matrix((vals, (rows, cols)), shape=(50, 40))  # scipy sums the duplicates here (in float64)
    raw = sp.csr_matrix((vals, np.asarray(cols), np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=50))])),
                        shape=(50, 40))
    order = np.argsort(rows, kind="stable")
    raw = sp.csr_matrix((vals[order], cols[order], raw.indptr), shape=(50, 40))
    assert not raw.has_canonical_format
    back = read_all(InMemoryData(raw, np.ones(50), rows_per_block=7))
    np.testing.assert_allclose(back.to_scipy(40).toarray(), X.toarray(), rtol=1e-6, atol=1e-7)


def test_predict_and_evaluate_in_memory_match_numpy_and_sklearn(a9a_data, tmp_path):
    X, y, Xt, yt = a9a_data
    model = streamhog.train(InMemoryData(X, y), tmp_path / "m", epochs=1, threads=2, quiet=True)
    expected = expit(Xt @ np.asarray(model.weights, np.float64) + model.intercept)
    # 16 threads over blocks of 500 rows, on a 2-core machine: every row scored once, in order.
    p = model.predict(InMemoryData(Xt, rows_per_block=500), threads=16)
    np.testing.assert_allclose(p, expected, rtol=1e-6)
    np.testing.assert_allclose(model.predict(Xt.toarray()), expected, rtol=1e-6)  # no labels needed to predict
    metrics = model.evaluate(streamhog.open_dataset(Xt, labels=yt))
    assert metrics["n_examples"] == len(yt)
    assert metrics["logloss"] == pytest.approx(log_loss(yt > 0, expected), rel=1e-6)
    assert metrics["auc"] == pytest.approx(roc_auc_score(yt, expected), abs=2e-4)


def test_weights_scale_examples(tmp_path, rng):
    X = sp.random(400, 30, density=0.2, random_state=1, format="csr")
    y = (rng.random(400) > 0.5).astype(float)
    w = rng.integers(1, 3, 400).astype(float)
    # weight 2 == the row twice (one epoch, sgd, constant lr, one thread: order aside, the same objective)
    ds = InMemoryData(X, y, sample_weight=w)
    assert ds.has_weights and read_all(ds).weights.tolist() == w.astype(np.float32).tolist()
    model = streamhog.train(ds, tmp_path / "m", epochs=1, threads=1, quiet=True)
    m = model.evaluate(InMemoryData(X, y, w))
    p = model.predict(X)
    assert m["logloss"] == pytest.approx(log_loss(y, p, sample_weight=w), rel=1e-6)


def test_unlabeled_data_scores_but_does_not_train(tmp_path):
    X = np.eye(4)
    with pytest.raises(DataFormatError, match=r"<ndarray 4x4>: the data has no labels: pass them"):
        streamhog.train(X, tmp_path / "m")
    assert not (tmp_path / "m").exists()
    model = streamhog.train(InMemoryData(X, [0, 1, 0, 1]), tmp_path / "m", epochs=1, quiet=True)
    with pytest.raises(DataFormatError, match="has no labels"):
        model.evaluate(X)
    assert model.predict(X).shape == (4,)
    from streamhog.model.inference import predict_to_parquet
    import pyarrow.parquet as pq

    assert predict_to_parquet(model, X, tmp_path / "p.parquet") == 4
    written = pq.read_table(tmp_path / "p.parquet")
    assert np.isnan(written.column("label").to_numpy()).all()  # no labels: NaN, not a made-up 0
    np.testing.assert_allclose(written.column("prediction").to_numpy(), model.predict(X), rtol=1e-6)


@pytest.mark.parametrize("make,error,match", [
    (lambda: InMemoryData(np.arange(5.0), [1]), DataFormatError,
     r"expected a 2-D array \(n_rows, n_features\), got shape \(5,\); reshape\(1, -1\)"),
    (lambda: InMemoryData(np.ones((3, 2)), [1, 0]), DataFormatError, "labels have 2 entries but the data has 3 rows"),
    (lambda: InMemoryData(np.array([[0.0, 1.0], [np.nan, 0.0]]), [1, 0]), DataFormatError,
     r"row 1, column 0: value nan is not finite"),
    (lambda: InMemoryData(np.array([[0.0, 1e300]]), [1]), DataFormatError,
     r"row 0, column 1: value 1e\+300 is beyond float32's range"),
    (lambda: InMemoryData(sp.csr_matrix(np.array([[0.0, 1.0], [0.0, np.inf]])), [1, 0]), DataFormatError,
     r"row 1, column 1: value inf is not finite"),
    (lambda: InMemoryData(np.ones((2, 2)), [1.0, np.nan]), DataFormatError, r"row 1: label nan is not finite"),
    (lambda: InMemoryData(np.ones((2, 2)), ["a", "b"]), DataTypeError, r"labels must be numbers, got dtype <U1"),
    (lambda: InMemoryData(np.ones((2, 2)), [1, 0], sample_weight=[1.0]), DataFormatError,
     "sample weights have 1 entries but the data has 2 rows"),
    (lambda: InMemoryData(np.array([["a", "b"]]), [1]), DataTypeError, "must hold real numbers, got dtype <U1"),
    (lambda: InMemoryData({"a": 1}, [1]), DataTypeError, r"cannot train on or score a builtins.dict"),
    (lambda: InMemoryData(np.ones((2, 2)), [1, 0], rows_per_block=0), ConfigError, "rows_per_block must be"),
    (lambda: InMemoryData(np.ones((2, 3)), [1, 0], n_features=2), DataFormatError, "n_features 2 is below"),
    (lambda: open_dataset(np.ones((2, 2)), labels=[1, 0], index_base=2), ConfigError, "index_base must be 0 or 1"),
    (lambda: InMemoryData(pa.table({"label": [1.0], "ids": [[1]]}), [1]), DataFormatError,
     "missing column 'indices' of feature ids"),
    (lambda: InMemoryData(pa.table({"label": [1.0], "indices": [[1]]}), [1]), DataFormatError,
     "labels given twice: the column 'label' and y"),
    (lambda: open_dataset(pa.table({"y": [1.0], "indices": [[-1]]}), label_column="y"), DataFormatError,
     "row 0: 'indices' id -1 is negative"),
])
def test_bad_input_is_a_one_line_error(make, error, match):
    with pytest.raises(error, match=match) as err:
        make()
    assert isinstance(err.value, StreamhogError) and "\n" not in str(err.value)


def test_bad_rows_found_when_read_name_the_data_row(tmp_path):
    ids = pa.array([[0, 1]] * 10 + [[3, 2]], pa.list_(pa.int32()))
    ds = open_dataset(pa.table({"label": np.ones(11), "indices": ids}), rows_per_block=4)
    with pytest.raises(DataFormatError, match=r"<Table 11x2>: row 10: indices not ascending: 2 after 3 \(fix_rows"):
        read_all(ds)
    fixed = read_all(open_dataset(pa.table({"label": np.ones(11), "indices": ids}), rows_per_block=4, fix_rows=True))
    assert fixed.indices[-2:].tolist() == [2, 3]


def test_polars_and_pandas_frames(tmp_path):
    import pandas as pd
    import polars as pl

    frame = pl.DataFrame({"click": [1, 0, 1], "feats": [[0, 2], [1], [3]]})
    ds = open_dataset(frame, label_column="click", indices_column="feats")
    assert (ds.n_rows, ds.n_features, ds.has_labels) == (3, 4, True)
    assert read_all(ds).indices.tolist() == [0, 2, 1, 3]
    with pytest.raises(DataFormatError, match=r"a pandas.DataFrame of numeric feature columns is dense data: "
                                              r"pass .to_numpy\(\)"):
        open_dataset(pd.DataFrame({"a": [1.0, 0.0], "b": [0.0, 2.0]}), labels=[1, 0])


def test_open_dataset_passes_open_datasets_through(a9a_parquet):
    ds = open_dataset(a9a_parquet)
    assert open_dataset(ds) is ds
    with pytest.raises(ConfigError, match="apply when data is opened"):
        open_dataset(ds, labels=[1])
    with pytest.raises(ConfigError, match="labels= and weights= are for data in memory"):
        open_dataset(a9a_parquet, labels=[1])
