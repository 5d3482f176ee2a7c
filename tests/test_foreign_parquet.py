"""Parquet written by the rest of the stack (formats/columns.py): DuckDB, Polars, pandas and pyarrow
files with list<int32|int64|uint32> ids (0- or 1-based), list<float64> values, other column names
and no streamhog metadata train through streamhog.train and the CLI exactly as streamhog's own
files do; bad rows are refused naming the file, row group and row, or fixed with fix_rows."""
from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_svmlight_file

import streamhog
from streamhog.io.batch import concat_batches
from streamhog.cli import main
from streamhog.datasets import a9a
from streamhog.errors import DataFormatError
from streamhog.io.formats import open_dataset

KW = dict(epochs=2, threads=1, seed=1, quiet=True)
ROWS = 16_384  # streamhog's row group: the same blocks, so training is bit-identical


@pytest.fixture(scope="module")
def a9a_arrow():
    X, y = load_svmlight_file(a9a("train"), n_features=123)
    ids = pa.ListArray.from_arrays(pa.array(X.indptr.astype(np.int32)), pa.array(X.indices.astype(np.int32)))
    return X.tocsr(), y, pa.table({"y": y.astype(np.int32), "ids": ids})


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """a9a converted by streamhog, and the model trained on it."""
    d = tmp_path_factory.mktemp("ref")
    streamhog.convert(a9a("train"), d / "a9a.parquet")
    return streamhog.train(d / "a9a.parquet", d / "model", **KW)


def same_model(a, b):
    return np.array_equal(np.asarray(a.weights), np.asarray(b.weights)) and a.intercept == b.intercept


def read_all(ds):
    r = ds.open_reader()
    out = concat_batches([r.read(k) for k in range(ds.n_blocks)])
    r.close()
    return out


def test_duckdb_one_based_int32_ids(a9a_arrow, reference, tmp_path):
    _, _, src = a9a_arrow
    con = duckdb.connect()
    con.register("src", src)
    con.execute("SET threads=1")  # one writer: rows in order, row groups of exactly ROWS rows
    path = tmp_path / "duck.parquet"
    con.execute(f"COPY (SELECT y AS target, list_transform(ids, lambda x: x + 1) AS feats FROM src) "
                f"TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE {ROWS})")
    assert pq.read_schema(path).field("feats").type == pa.list_(pa.field("element", pa.int32()))
    ds = open_dataset(path, label_column="target", indices_column="feats", index_base=1)
    assert ds.n_features == 123 and "the largest feature id + 1" in ds.notes[0]
    model = streamhog.train(ds, tmp_path / "m", **KW)
    assert same_model(reference, model)


def test_polars_large_list_int64_with_float64_values(a9a_arrow, reference, tmp_path):
    X, y, _ = a9a_arrow
    rows = [X.indices[X.indptr[i]:X.indptr[i + 1]].astype(np.int64).tolist() for i in range(X.shape[0])]
    df = pl.DataFrame({"label": y.astype(np.float64), "indices": rows,
                       "values": [[1.0] * len(r) for r in rows]},
                      schema={"label": pl.Float64, "indices": pl.List(pl.Int64), "values": pl.List(pl.Float64)})
    path = tmp_path / "polars.parquet"
    df.write_parquet(path, row_group_size=ROWS)
    assert pa.types.is_large_list(pq.read_schema(path).field("indices").type)
    model = streamhog.train(path, tmp_path / "m", n_features=123, **KW)  # default names: no option needed
    assert same_model(reference, model)


def test_pandas_and_read_table_round_trip(a9a_arrow, reference, tmp_path):
    """pandas' uint32 arrays; and a streamhog file read with pq.read_table and written back
    without its metadata (the issue's example) still trains the same."""
    X, y, _ = a9a_arrow
    frame = pd.DataFrame({"label": y, "indices": [X.indices[X.indptr[i]:X.indptr[i + 1]].astype(np.uint32)
                                                  for i in range(X.shape[0])]})
    frame.to_parquet(tmp_path / "pandas.parquet", row_group_size=ROWS)
    assert same_model(reference, streamhog.train(tmp_path / "pandas.parquet", tmp_path / "m1", **KW))
    table = pq.read_table(reference.meta["data"]["path"])
    pq.write_table(table.replace_schema_metadata(None), tmp_path / "rewritten.parquet", row_group_size=ROWS)
    assert b"format_version" not in (pq.read_metadata(tmp_path / "rewritten.parquet").metadata or {})
    assert same_model(reference, streamhog.train(tmp_path / "rewritten.parquet", tmp_path / "m2", **KW))


def test_cli_train_evaluate_predict_convert_with_column_options(a9a_arrow, reference, tmp_path, capsys):
    _, y, src = a9a_arrow
    path = tmp_path / "d.parquet"
    pq.write_table(src, path, row_group_size=ROWS)
    flags = ["--label-column", "y", "--indices-column", "ids"]
    assert main(["train", str(path), "--model", str(tmp_path / "m"), "--epochs", "2", "--threads", "1", "--seed",
                 "1", "--quiet", *flags]) == 0
    assert same_model(reference, streamhog.Model.open(tmp_path / "m"))
    assert main(["evaluate", str(path), "--model", str(tmp_path / "m"), "--json", *flags]) == 0
    out, err = capsys.readouterr()
    metrics = json.loads(out)
    assert metrics == reference.evaluate(reference.meta["data"]["path"])
    assert "no n_features in the file metadata: 123" in err
    assert main(["predict", str(path), "--model", str(tmp_path / "m"), "--out", str(tmp_path / "p.parquet"),
                 "--n-features", "123", *flags]) == 0
    p = pq.read_table(tmp_path / "p.parquet")
    np.testing.assert_array_equal(p.column("label").to_numpy(), y.astype(np.float32))
    np.testing.assert_allclose(p.column("prediction").to_numpy(), reference.predict(reference.meta["data"]["path"]),
                               rtol=1e-6)
    capsys.readouterr()
    assert main(["info", str(path), "--json", *flags]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_features"] == 123 and info["labels"] == {"-1": 24720, "1": 7841} and info["format_version"] is None
    # convert into streamhog's own (packed, fast) format
    assert main(["convert", str(path), str(tmp_path / "own.parquet"), "--quiet", *flags]) == 0
    own = open_dataset(tmp_path / "own.parquet")
    assert own.layout == "packed" and own.n_features == 123 and not own.notes


def test_unsorted_and_duplicate_ids_are_refused_or_fixed(tmp_path):
    ids = [[0, 1], [5, 2, 9], [3, 3, 4], [7]]
    vals = [[1.0, 2.0], [0.5, 0.25, 1.0], [1.0, 2.0, 3.0], [4.0]]
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"label": [1, 0, 1, 0], "indices": ids, "values": vals}), path, row_group_size=2)
    with pytest.raises(DataFormatError, match=r"rows\.parquet: row group 0: row 1: indices not ascending: 2 after 5 "
                                              r"\(or --fix-rows / fix_rows=True"):
        read_all(open_dataset(path))
    with pytest.raises(DataFormatError, match=r"row group 1: row 0: duplicate index 3"):
        r = open_dataset(path).open_reader()
        r.read(1)
    back = read_all(open_dataset(path, fix_rows=True))
    assert back.indptr.tolist() == [0, 2, 5, 7, 8]
    assert back.indices.tolist() == [0, 1, 2, 5, 9, 3, 4, 7]
    assert back.values.tolist() == [1.0, 2.0, 0.25, 0.5, 1.0, 3.0, 3.0, 4.0]  # the 3s summed: 1 + 2


@pytest.mark.parametrize("ids,kind,opts,match", [
    ([[0, -4]], pa.int64(), {}, "row 0: 'indices' id -4 is negative"),
    ([[1], [2**32]], pa.int64(), {}, r"row 1: 'indices' id 4294967296 is beyond uint32"),
    ([[1], [0, 2]], pa.int32(), {"index_base": 1}, "row 1: 'indices' id 0 is not allowed with index base 1"),
    ([[1.5]], pa.float64(), {}, r"column 'indices' has type list<.*double>; feature ids must be a list of integers"),
])
def test_bad_ids_name_the_row(tmp_path, ids, kind, opts, match):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"label": [1.0] * len(ids), "indices": pa.array(ids, pa.list_(kind))}), path)
    with pytest.raises(DataFormatError, match=match) as err:
        read_all(open_dataset(path, n_features=10, **opts))
    assert str(path) in str(err.value)


def test_ids_up_to_uint32_and_the_n_features_option(tmp_path):
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"label": [1.0, 0.0], "indices": pa.array([[0, 2**32 - 1], [5]], pa.list_(pa.int64()))}),
                   path)
    assert open_dataset(path).n_features == 2**32
    ds = open_dataset(path, n_features=100)
    assert ds.n_features == 100 and not ds.notes
    with pytest.raises(DataFormatError, match="row 0: feature index 4294967295 >= n_features 100"):
        read_all(ds)


@pytest.mark.parametrize("opts,match", [
    ({"label_column": "click"}, r"missing label column 'click' \(columns: label, indices\); name it with --label-column"),
    ({"values_column": "vals"}, "missing values column 'vals'"),
    ({"weight_column": "w"}, "missing weight column 'w'"),
])
def test_named_columns_must_exist(tmp_path, opts, match):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"label": [1.0], "indices": [[1]]}), path)
    with pytest.raises(DataFormatError, match=match):
        open_dataset(path, **opts)


def test_cli_reports_bad_rows_in_one_line(tmp_path, capsys):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"click": [1, 0], "f": [[3, 1], [2]]}), path)
    code = main(["train", str(path), "--model", str(tmp_path / "m"), "--label-column", "click", "--indices-column",
                 "f", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert f"{path}: row group 0: row 0: indices not ascending: 1 after 3" in err
    assert main(["train", str(path), "--model", str(tmp_path / "m2"), "--label-column", "click", "--indices-column",
                 "f", "--fix-rows", "--quiet", "--epochs", "1"]) == 0
    assert streamhog.Model.open(tmp_path / "m2").n_features == 4
