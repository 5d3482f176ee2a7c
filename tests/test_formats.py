"""Parquet and Zarr writers/readers: round trips checked with pyarrow / zarr directly, the
values-column rules, and read-time validation errors that name the file and row group."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr

from streamhog.io.batch import concat_batches
from streamhog.errors import DataFormatError, OutputExistsError
from streamhog._fs.atomic import atomic_output
from streamhog.io.formats import create_writer, open_dataset

from conftest import random_batch

FORMATS = ["parquet", "zarr"]
#: Every writer: the formats, and Parquet in both layouts (packed is the default).
WRITERS = pytest.mark.parametrize("fmt,opts", [("parquet", {}), ("parquet", {"layout": "list"}), ("zarr", {})],
                                  ids=["parquet-packed", "parquet-list", "zarr"])


def write(fmt, path, batches, n_features=None, **kw):
    w = create_writer(fmt, path, **kw)
    for b in batches:
        w.write(b)
    w.close(n_features)
    return w


def read_raw(fmt, path):
    """The dataset as (indptr, indices, values|None, labels, weights|None), read without streamhog."""
    if fmt == "parquet":
        t = pq.read_table(path)
        if pa.types.is_binary(t.schema.field("indices").type):  # packed: one bytes cell per row
            def cells(name, dtype):
                rows = [np.frombuffer(c, dtype) for c in t.column(name).to_pylist()]
                return np.concatenate([np.zeros(0, dtype)] + rows), [len(r) for r in rows]
        else:
            def cells(name, dtype):
                rows = t.column(name).to_pylist()
                return np.concatenate([np.zeros(0, dtype)] + [np.asarray(r, dtype) for r in rows]), [len(r) for r in rows]
        indices, lengths = cells("indices", "<u4")
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        values = None
        if "values" in t.column_names:
            values, value_lengths = cells("values", "<f4")
            assert value_lengths == lengths
        weights = np.asarray(t.column("weight")) if "weight" in t.column_names else None
        meta = {k.decode(): v.decode() for k, v in pq.read_metadata(path).metadata.items()}
        return indptr, indices, values, np.asarray(t.column("label")), weights, int(meta["n_features"])
    g = zarr.open_group(str(path), mode="r")
    names = {n for n, _ in g.arrays()}
    return (g["indptr"][:], g["indices"][:], g["values"][:] if "values" in names else None, g["labels"][:],
            g["weights"][:] if "weights" in names else None, g.attrs["n_features"])


def read_all(ds):
    r = ds.open_reader()
    batches = [r.read(k) for k in range(ds.n_blocks)]
    r.close()
    return concat_batches(batches)


@WRITERS
@pytest.mark.parametrize("binary,weights", [(False, False), (True, False), (False, True)])
def test_round_trip_independent_readers(tmp_path, rng, fmt, opts, binary, weights):
    batches = [random_batch(rng, n, 50, binary=binary, weights=weights) for n in (7, 1, 30, 0, 12)]
    whole = concat_batches([b for b in batches if b.n_rows])
    path = tmp_path / f"d.{fmt}"
    write(fmt, path, batches, n_features=50, rows_per_group=8, has_weights=weights, **opts)
    indptr, indices, values, labels, w, nf = read_raw(fmt, path)
    assert nf == 50
    np.testing.assert_array_equal(indptr, whole.indptr)
    np.testing.assert_array_equal(indices, whole.indices)
    np.testing.assert_array_equal(labels, whole.labels)
    if binary:
        assert values is None  # auto mode leaves the all-ones column out
    else:
        np.testing.assert_array_equal(values, whole.values)
    if weights:
        np.testing.assert_array_equal(w, whole.weights)
    else:
        assert w is None
    ds = open_dataset(path)
    assert (ds.n_rows, ds.n_features, ds.n_blocks) == (50, 50, 7)  # 50 rows in groups of 8
    assert list(ds.block_rows) == [8] * 6 + [2]
    back = read_all(ds)
    np.testing.assert_array_equal(back.indptr, whole.indptr)
    np.testing.assert_array_equal(back.indices, whole.indices)
    np.testing.assert_array_equal(back.values_or_ones(), whole.values_or_ones())
    assert back.indices.dtype == np.uint32 and back.indptr.dtype == np.int64 and back.labels.dtype == np.float32


@WRITERS
def test_binary_prefix_then_real_values_adds_the_column(tmp_path, rng, fmt, opts):
    first = random_batch(rng, 20, 30, binary=True)
    second = random_batch(rng, 5, 30)
    path = tmp_path / f"d.{fmt}"
    w = write(fmt, path, [first, second], rows_per_group=8, **opts)
    assert w.with_values
    _, _, values, *_ = read_raw(fmt, path)
    expected = np.concatenate([np.ones(first.nnz, np.float32), second.values])
    np.testing.assert_array_equal(values, expected)


@WRITERS
def test_values_keep_and_drop(tmp_path, rng, fmt, opts):
    b = random_batch(rng, 10, 20, binary=True)
    write(fmt, tmp_path / f"k.{fmt}", [b], values="keep", **opts)
    assert read_raw(fmt, tmp_path / f"k.{fmt}")[2] is not None
    with pytest.raises(ValueError, match="cannot be dropped"):
        write(fmt, tmp_path / f"x.{fmt}", [random_batch(rng, 10, 20)], values="drop")


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_dataset(tmp_path, fmt):
    path = tmp_path / f"e.{fmt}"
    write(fmt, path, [], n_features=7)
    ds = open_dataset(path)
    assert (ds.n_rows, ds.n_features, ds.n_blocks) == (0, 7, 0)


def test_parquet_directory_dataset(tmp_path, rng):
    d = tmp_path / "parts"
    d.mkdir()
    a, b = random_batch(rng, 10, 40), random_batch(rng, 6, 40)
    write("parquet", d / "part-0.parquet", [a], n_features=30 if a.indices.max() < 30 else None, rows_per_group=4)
    write("parquet", d / "part-1.parquet", [b], n_features=40, rows_per_group=4)
    (d / "_SUCCESS").write_text("")
    (d / ".part-2.parquet.tmp").write_text("junk")
    ds = open_dataset(d)
    assert ds.n_features == 40 and ds.n_rows == 16 and ds.n_blocks == 3 + 2
    back = read_all(ds)
    whole = concat_batches([a, b])
    np.testing.assert_array_equal(back.indices, whole.indices)
    assert list(ds.block_row_start) == [0, 4, 8, 10, 14]


# --- read-time validation ---------------------------------------------------------------------

def _parquet(path, table, n_features=10, version="1"):
    meta = {"n_features": str(n_features), "format_version": version}
    pq.write_table(table.replace_schema_metadata(meta), path, row_group_size=2)


def _good_table():
    return pa.table({
        "label": pa.array([1, -1, 1], pa.float32()),
        "indices": pa.array([[0, 3], [1], [2, 9]], pa.list_(pa.uint32())),
        "values": pa.array([[1.0, 2.0], [0.5], [1.0, 1.0]], pa.list_(pa.float32())),
    })


def _read_everything(path):
    ds = open_dataset(path)
    read_all(ds)


def test_parquet_good_table_reads(tmp_path):
    _parquet(tmp_path / "ok.parquet", _good_table())
    ds = open_dataset(tmp_path / "ok.parquet")
    assert ds.nnz is None  # not written by streamhog: nnz unknown until read
    assert read_all(ds).nnz == 5


@pytest.mark.parametrize("mutate,match,where", [
    (lambda t: t.drop_columns(["indices"]), "missing column 'indices'", None),
    (lambda t: t.set_column(1, "indices", pa.array([[0, 3], [1], [2, 9]], pa.list_(pa.float64()))),
     r"column 'indices' has type list<.*double>; feature ids must be a list of integers", None),
    (lambda t: t.set_column(2, "values", pa.array([[1.0, 2.0], [0.5], [1.0]], pa.list_(pa.float32()))),
     "row 0: 'indices' has 2 entries but 'values' has 1", "row group 1"),
    (lambda t: t.set_column(1, "indices", pa.array([[0, 3], [1], [2, 10]], pa.list_(pa.uint32()))),
     "feature index 10 >= n_features 10", "row group 1"),
    (lambda t: t.set_column(1, "indices", pa.array([[3, 0], [1], [2, 9]], pa.list_(pa.uint32()))),
     "indices not ascending: 0 after 3", "row group 0"),
    (lambda t: t.set_column(1, "indices", pa.array([[0, 3], None, [2, 9]], pa.list_(pa.uint32()))),
     "column 'indices' holds 1 null rows", "row group 0"),
    (lambda t: t.set_column(0, "label", pa.array([1, float("nan"), 1], pa.float32())),
     "row 1: label nan is not finite", "row group 0"),
    (lambda t: t.set_column(2, "values", pa.array([[1.0, 2.0], [0.5], [1.0, float("inf")]], pa.list_(pa.float32()))),
     "value inf of feature 9 is not finite", "row group 1"),
])
def test_parquet_validation_names_file_and_row_group(tmp_path, mutate, match, where):
    path = tmp_path / "bad.parquet"
    _parquet(path, mutate(_good_table()))
    with pytest.raises(DataFormatError, match=match) as err:
        _read_everything(path)
    assert str(path) in str(err.value)
    if where:
        assert where in str(err.value)


def test_parquet_metadata_errors(tmp_path):
    p = tmp_path / "nometa.parquet"
    pq.write_table(_good_table(), p)  # another tool's file: read, n_features from a pass over the ids
    ds = open_dataset(p)
    assert ds.n_features == 10 and "the largest feature id + 1" in ds.notes[0]
    p = tmp_path / "future.parquet"
    _parquet(p, _good_table(), version="99")
    with pytest.raises(DataFormatError, match="format_version '99' is not supported"):
        open_dataset(p)
    p = tmp_path / "text.parquet"
    p.write_text("not parquet")
    with pytest.raises(DataFormatError, match="not a readable Parquet file"):
        open_dataset(p)


def _cells(rows, dtype):
    """A packed column made with pyarrow and numpy alone: each row's entries as one bytes cell."""
    return pa.array([None if r is None else np.asarray(r, dtype).tobytes() for r in rows], pa.binary())


def _good_packed_table():
    return pa.table({
        "label": pa.array([1, -1, 1], pa.float32()),
        "indices": _cells([[0, 3], [1], [2, 9]], "<u4"),
        "values": _cells([[1.0, 2.0], [0.5], [1.0, 1.0]], "<f4"),
    })


def test_packed_table_written_by_pyarrow_reads(tmp_path):
    """The packed layout as docs/formats.md specifies it, written without streamhog."""
    _parquet(tmp_path / "ok.parquet", _good_packed_table(), version="2")
    ds = open_dataset(tmp_path / "ok.parquet")
    assert ds.layout == "packed" and ds.info()["layout"] == "packed"
    back = read_all(ds)
    np.testing.assert_array_equal(back.indptr, [0, 2, 3, 5])
    np.testing.assert_array_equal(back.indices, [0, 3, 1, 2, 9])
    np.testing.assert_array_equal(back.values, [1.0, 2.0, 0.5, 1.0, 1.0])


@pytest.mark.parametrize("mutate,match,where", [
    (lambda t: t.set_column(1, "indices", pa.array([b"\0\0\0\0\3\0", b"\1\0\0\0", b""], pa.binary())),
     "row 0: 'indices' holds 6 bytes, not a whole number of 4-byte entries", "row group 0"),
    (lambda t: t.set_column(2, "values", _cells([[1.0, 2.0], [0.5], [1.0]], "<f4")),
     "row 0: 'indices' has 2 entries but 'values' has 1", "row group 1"),
    (lambda t: t.set_column(2, "values", pa.array([[1.0, 2.0], [0.5], [1.0, 1.0]], pa.list_(pa.float32()))),
     r"column 'values' has type list<.*float>, expected binary \(packed little-endian float32\), like 'indices'",
     None),
    (lambda t: t.set_column(1, "indices", _cells([[0, 3], [1], [2, 10]], "<u4")),
     "feature index 10 >= n_features 10", "row group 1"),
    (lambda t: t.set_column(1, "indices", _cells([[3, 0], [1], [2, 9]], "<u4")),
     "indices not ascending: 0 after 3", "row group 0"),
    (lambda t: t.set_column(1, "indices", _cells([[0, 3], None, [2, 9]], "<u4")),
     "column 'indices' holds 1 null rows", "row group 0"),
    (lambda t: t.set_column(2, "values", _cells([[1.0, 2.0], [0.5], [1.0, float("nan")]], "<f4")),
     "value nan of feature 9 is not finite", "row group 1"),
])
def test_packed_validation_names_file_and_row_group(tmp_path, mutate, match, where):
    path = tmp_path / "bad.parquet"
    _parquet(path, mutate(_good_packed_table()), version="2")
    with pytest.raises(DataFormatError, match=match) as err:
        _read_everything(path)
    assert str(path) in str(err.value)
    if where:
        assert where in str(err.value)


def test_parquet_layouts_store_the_same_data(tmp_path, rng):
    """packed (the default) and list hold the same rows; each file says its layout in its
    column types and carries the lowest format_version that describes it."""
    batches = [random_batch(rng, n, 300, weights=True) for n in (50, 33)]
    write("parquet", tmp_path / "p.parquet", batches, rows_per_group=16, has_weights=True)
    write("parquet", tmp_path / "l.parquet", batches, rows_per_group=16, has_weights=True, layout="list")
    types = {name: pq.read_schema(tmp_path / f"{name}.parquet").field("indices").type for name in "pl"}
    assert types["p"] == pa.binary() and types["l"] == pa.list_(pa.field("element", pa.uint32(), nullable=False))
    versions = {name: pq.read_metadata(tmp_path / f"{name}.parquet").metadata[b"format_version"] for name in "pl"}
    assert versions == {"p": b"2", "l": b"1"}
    raw_p, raw_l = read_raw("parquet", tmp_path / "p.parquet"), read_raw("parquet", tmp_path / "l.parquet")
    for a, b in zip(raw_p, raw_l):
        np.testing.assert_array_equal(a, b)
    back_p, back_l = read_all(open_dataset(tmp_path / "p.parquet")), read_all(open_dataset(tmp_path / "l.parquet"))
    for name in ("indptr", "indices", "values", "labels", "weights"):
        np.testing.assert_array_equal(getattr(back_p, name), getattr(back_l, name))
    assert back_p.indices.dtype == np.uint32 and back_p.values.dtype == np.float32
    with pytest.raises(ValueError, match="layout must be one of"):
        create_writer("parquet", tmp_path / "x.parquet", layout="rows")


def test_parquet_directory_of_both_layouts(tmp_path, rng):
    d = tmp_path / "parts"
    d.mkdir()
    a, b = random_batch(rng, 12, 40), random_batch(rng, 7, 40)
    write("parquet", d / "a.parquet", [a], n_features=40, rows_per_group=5)
    write("parquet", d / "b.parquet", [b], n_features=40, rows_per_group=5, layout="list")
    ds = open_dataset(d)
    assert ds.layout == "mixed"
    np.testing.assert_array_equal(read_all(ds).indices, concat_batches([a, b]).indices)


def test_parquet_corrupt_row_group_names_it(tmp_path, rng):
    path = tmp_path / "c.parquet"
    write("parquet", path, [random_batch(rng, 40, 100)], rows_per_group=10)
    md = pq.read_metadata(path)
    rg = md.row_group(2).column(1)
    data = bytearray(path.read_bytes())
    start = rg.data_page_offset
    data[start:start + 64] = b"\xff" * 64  # garble the page header of row group 2
    path.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match="row group 2") as err:
        _read_everything(path)
    assert str(path) in str(err.value)


def _zarr(path, mutate=None, n_features=10):
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    arrays = {"indptr": np.array([0, 2, 3, 5], np.int64), "indices": np.array([0, 3, 1, 2, 9], np.uint32),
              "values": np.array([1, 2, 0.5, 1, 1], np.float32), "labels": np.array([1, -1, 1], np.float32)}
    attrs = {"n_features": n_features, "format_version": 1}
    if mutate:
        mutate(arrays, attrs)
    for name, a in arrays.items():
        g.create_array(name, data=a, chunks=(2,))
    g.attrs.update(attrs)


def _set(name, value):
    def mutate(arrays, attrs):
        arrays[name] = value
    return mutate


@pytest.mark.parametrize("mutate,match,where", [
    (lambda a, at: a.pop("indices"), "missing array 'indices'", None),
    (_set("indices", np.array([0, 3, 1, 2, 9], np.int64)), "array 'indices' is int64.*expected 1-D uint32", None),
    (_set("values", np.ones(4, np.float32)), "'values' has 4 entries but 'indices' has 5", None),
    (_set("indptr", np.array([0, 2, 3], np.int64)), "'indptr' has 3 entries, expected n_rows \\+ 1 = 4", None),
    (_set("indices", np.array([0, 3, 1, 2, 10], np.uint32)), "feature index 10 >= n_features 10", "block 1 (rows 2-2)"),
    (_set("indptr", np.array([0, 3, 2, 5], np.int64)), "row offsets are inconsistent", "block 0"),
    (lambda a, at: at.pop("n_features"), "attribute 'n_features' must be a non-negative integer", None),
    (lambda a, at: at.update(format_version=3), "format_version 3 is not supported", None),
])
def test_zarr_validation(tmp_path, mutate, match, where):
    path = tmp_path / "bad.zarr"
    _zarr(path, mutate)
    with pytest.raises(DataFormatError, match=match) as err:
        _read_everything(path)
    assert str(path) in str(err.value)
    if where:
        assert where in str(err.value)


def test_zarr_hand_written_store_reads(tmp_path):
    _zarr(tmp_path / "ok.zarr")
    b = read_all(open_dataset(tmp_path / "ok.zarr"))
    assert b.nnz == 5 and list(b.labels) == [1, -1, 1]


def test_zarr_layout_fetches_a_block_in_few_chunks(tmp_path, rng):
    path = tmp_path / "l.zarr"
    batches = [random_batch(rng, 3000, 5000, max_nnz=60) for _ in range(4)]
    write("zarr", path, batches, rows_per_group=2048)
    g = zarr.open_group(str(path), mode="r")
    assert g["labels"].chunks == (2048,) and g["indptr"].chunks == (2048,)
    nnz_per_block = g.attrs["nnz"] / (g.attrs["n_rows"] / 2048)
    chunk = g["indices"].chunks[0]
    assert nnz_per_block / 16 <= chunk <= nnz_per_block / 4  # ~1/8 of a block
    assert g["indices"].shards[0] == min(64 * chunk, 1 << 23)


# --- atomic output -----------------------------------------------------------------------------

def test_atomic_output_removes_partial_and_keeps_existing(tmp_path):
    dst = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError):
        with atomic_output(dst) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    dst.write_text("precious")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        with atomic_output(dst) as tmp:
            pass
    assert dst.read_text() == "precious"
    with atomic_output(dst, overwrite=True) as tmp:
        tmp.write_text("new")
    assert dst.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["out.parquet"]
