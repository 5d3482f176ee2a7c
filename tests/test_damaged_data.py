"""Damaged or wrong data is an error naming the file and the place, never a silent wrong
answer (issue 16, items 1, 2, 7, 8 and the small wrongs): Zarr stores with lost chunk or
shard files, truncated shards, bad indptr ends; negative importance weights; labels that
the model's loss cannot take at scoring time; 0-row datasets; an impossible n_features.

Each case also runs through the command line where the issue saw it pass with exit status 0:
there it must be one line, ``streamhog CMD: error: ...``, exit status 1.
"""
from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr

from streamhog.io.batch import SparseBatch
from streamhog.cli import main
from streamhog.errors import DataFormatError
from streamhog.io.formats import create_writer, open_dataset
from streamhog.model.inference import evaluate, predict, predict_to_parquet
from streamhog.model.labels import LabelError
from streamhog.model.directory import Model

from conftest import random_batch

N_FEATURES = 50


def write(fmt, path, batch, *, rows_per_group=100, n_features=N_FEATURES):
    w = create_writer(fmt, path, rows_per_group=rows_per_group, has_weights=batch.weights is not None)
    w.write(batch)
    w.close(n_features)
    return path


def read_everything(path):
    ds = open_dataset(path)
    reader = ds.open_reader()
    try:
        return [reader.read(k) for k in range(ds.n_blocks)]
    finally:
        reader.close()


def cli(capsys, *argv):
    """Exit status and stderr of the command line, which must be one line on failure."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    if code:
        assert len(err.splitlines()) == 1, err
    return code, err


@pytest.fixture
def store(tmp_path, rng):
    """A Zarr store of 2,000 rows in 20 blocks: 3 shards of labels/indptr (8 blocks a shard), one
    of indices/values (64 chunks of 4,096 entries a shard)."""
    batch = random_batch(rng, 2000, N_FEATURES, max_nnz=30)
    return write("zarr", tmp_path / "d.zarr", batch), batch


@pytest.fixture
def big_store(tmp_path, rng):
    """12,000 rows of ~25 entries: two shards of indices/values too."""
    batch = random_batch(rng, 12_000, N_FEATURES, max_nnz=50)
    assert batch.nnz > 64 * 4096
    return write("zarr", tmp_path / "big.zarr", batch, rows_per_group=1000), batch


def make_model(path, rng, *, loss="logistic", n_classes=None):
    model = Model.create(path, n_features=N_FEATURES, loss=loss, n_classes=n_classes)
    model.weights[:] = rng.normal(size=model.weights.shape).astype(np.float32)
    model.save_meta()
    model.flush()
    return model


# --- item 1: a lost chunk or shard file ------------------------------------------------------

@pytest.mark.parametrize("name", ["labels", "values", "indices", "indptr"])
def test_zarr_missing_shard_file_is_an_error_naming_array_and_file(big_store, name):
    path, _ = big_store
    files = sorted((path / name / "c").iterdir(), key=lambda p: int(p.name))
    assert len(files) >= 2
    files[1].unlink()
    with pytest.raises(DataFormatError, match=rf"array '{name}': shard file {name}/c/1 \(entries \d+-\d+\) is "
                                              "missing; the store is damaged") as err:
        read_everything(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("command", ["info", "train", "evaluate", "convert"])
def test_zarr_missing_chunk_fails_every_command(store, tmp_path, rng, capsys, command):
    """The issue: info, train, evaluate and convert all exited 0 on zeros read for the lost chunk."""
    path, _ = store
    make_model(tmp_path / "m", rng)
    (path / "labels" / "c" / "1").unlink()
    argv = {"info": ["info", path], "train": ["train", path, "--model", tmp_path / "m2", "--quiet"],
            "evaluate": ["evaluate", path, "--model", tmp_path / "m"],
            "convert": ["convert", path, tmp_path / "o.parquet", "--quiet"]}[command]
    code, err = cli(capsys, *argv)
    assert code == 1
    assert f"streamhog {command}: error: {path}: array 'labels': shard file labels/c/1" in err
    assert not (tmp_path / "o.parquet").exists()


def test_zarr_store_of_another_writer_missing_a_chunk_of_zeros_is_refused_with_a_hint(tmp_path):
    """zarr's defaults (fill value 0, chunks of zeros not stored) cannot tell a chunk of 0
    labels from a lost one: refused, saying what to do."""
    g = zarr.open_group(str(tmp_path / "o.zarr"), mode="w", zarr_format=3)
    g.create_array("indptr", data=np.arange(7, dtype=np.int64), chunks=(2,))
    g.create_array("indices", data=np.arange(6, dtype=np.uint32), chunks=(2,))
    g.create_array("labels", data=np.array([1, 1, 0, 0, 1, 0], np.float32), chunks=(2,))
    g.attrs.update(n_features=10, format_version=1)
    assert not (tmp_path / "o.zarr" / "labels" / "c" / "1").exists()
    with pytest.raises(DataFormatError, match=r"array 'labels': chunk file labels/c/1 \(entries 2-3\) is missing.*"
                                              "another tool may have left out a file of zeros: convert the source"):
        open_dataset(tmp_path / "o.zarr")


def test_zarr_file_lost_after_open_names_the_block(store):
    path, _ = store
    ds = open_dataset(path)
    reader = ds.open_reader()
    reader.read(0)
    (path / "values" / "c" / "0").unlink()
    with pytest.raises(DataFormatError, match=r"block 1 \(rows 100-199\): array 'values': shard file values/c/0"):
        reader.read(1)


@pytest.mark.parametrize("name,entries", [("labels", slice(200, 300)), ("indices", slice(4096, 8192)),
                                          ("indptr", slice(300, 400)), ("values", slice(0, 4096))])
def test_zarr_chunk_lost_inside_a_shard_is_named(store, name, entries):
    """A chunk missing from a shard's index reads as the fill value, which the writer chose invalid."""
    path, _ = store
    arr = zarr.open_array(str(path / name), mode="r+", config={"write_empty_chunks": False})
    assert entries.start % arr.chunks[0] == 0 and entries.stop - entries.start == arr.chunks[0]
    arr[entries] = arr.fill_value  # zarr now drops that chunk from the shard, as damage would
    chunk = entries.start // arr.chunks[0]
    with pytest.raises(DataFormatError, match=rf"array '{name}': chunk {chunk} \(entries {entries.start}-"
                                              rf"{entries.stop - 1}\) is missing from {name}/c/0"):
        read_everything(path)


def test_zarr_truncated_shard_names_array_and_block(store, capsys):
    path, _ = store
    shard = path / "indices" / "c" / "0"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(DataFormatError, match=r"block 0 \(rows 0-99\): array 'indices' cannot be read from "
                                              r"indices/c/0: .*checksum"):
        read_everything(path)
    labels = path / "labels" / "c" / "0"
    labels.write_bytes(labels.read_bytes()[:-10])
    code, err = cli(capsys, "info", path)  # reads the labels only: was a bare ValueError traceback
    assert code == 1 and "array 'labels' cannot be read from labels/c/0" in err


# --- item 2: indptr ends and monotonicity ------------------------------------------------------

@pytest.mark.parametrize("position,value,match", [
    (0, 5, r"array 'indptr' runs from 5 to \d+; it must start at 0 and end at nnz"),
    (-1, -3, r"array 'indptr' runs from 0 to \d+; it must start at 0 and end at nnz = \d+"),
])
def test_zarr_indptr_ends_are_checked_at_open(store, capsys, tmp_path, position, value, match):
    path, _ = store
    arr = zarr.open_array(str(path / "indptr"), mode="r+")
    i = position % arr.shape[0]
    arr[i] = int(arr[i]) + value
    with pytest.raises(DataFormatError, match=match):
        open_dataset(path)
    code, err = cli(capsys, "train", path, "--model", tmp_path / "m", "--quiet")
    assert code == 1 and "'indptr' runs from" in err and not (tmp_path / "m").exists()


@pytest.mark.parametrize("position,step,match", [
    (150, -1, r"block 1 \(rows 100-199\): row offsets are inconsistent"),  # below the entry before it
    # above the next one, at the entry two blocks share: block 0's row 99 runs into block 1's entries
    (100, +1, r"block 0 \(rows 0-99\): row 99: indices not ascending"),
])
def test_zarr_indptr_decreasing_is_an_error(store, position, step, match):
    path, _ = store
    arr = zarr.open_array(str(path / "indptr"), mode="r+")
    arr[position] = int(arr[position + step]) + step
    with pytest.raises(DataFormatError, match=match):
        read_everything(path)


def test_zarr_store_round_trips_after_the_changes(store):
    path, batch = store
    got = read_everything(path)
    np.testing.assert_array_equal(np.concatenate([b.labels for b in got]), batch.labels)
    np.testing.assert_array_equal(np.concatenate([b.indices for b in got]), batch.indices)
    g = zarr.open_group(str(path), mode="r")
    assert np.isnan(g["labels"].fill_value) and g["indptr"].fill_value == -1


def test_zarr_store_with_all_zero_labels_reads(tmp_path, rng):
    """A chunk equal to zero is data, not a lost chunk: the writer stores every chunk."""
    b = random_batch(rng, 900, N_FEATURES)
    b = SparseBatch(b.indptr, b.indices, b.values, np.zeros(900, np.float32))
    path = write("zarr", tmp_path / "z.zarr", b)
    assert sum(x.n_rows for x in read_everything(path)) == 900


# --- item 7: negative importance weights -------------------------------------------------------

@pytest.mark.parametrize("fmt", ["parquet", "zarr"])
def test_negative_weight_is_refused_at_read_time(tmp_path, rng, capsys, fmt):
    b = random_batch(rng, 300, N_FEATURES, weights=True)
    b.weights[157] = -2.0
    path = write(fmt, tmp_path / f"w.{fmt}", b)
    where = "row group 1" if fmt == "parquet" else "block 1"
    with pytest.raises(DataFormatError, match=rf"{where}.*row 57: weight -2.0 is negative"):
        read_everything(path)
    make_model(tmp_path / "m", rng)
    for argv in (["train", path, "--model", tmp_path / "m2", "--quiet"], ["evaluate", path, "--model", tmp_path / "m"]):
        code, err = cli(capsys, *argv)
        assert code == 1 and "weight -2.0 is negative (importance weights must be >= 0)" in err


def test_zero_weights_are_data_but_all_zero_is_no_metric(tmp_path, rng, capsys):
    model = make_model(tmp_path / "m", rng)
    b = random_batch(rng, 300, N_FEATURES, weights=True)
    b.weights[:150] = 0.0
    half = evaluate(model, write("parquet", tmp_path / "h.parquet", b))
    rest = SparseBatch(b.indptr[150:] - b.indptr[150], b.indices[b.indptr[150]:], b.values[b.indptr[150]:],
                       b.labels[150:], b.weights[150:])
    assert half["logloss"] == pytest.approx(evaluate(model, write("parquet", tmp_path / "r.parquet", rest))["logloss"])
    b.weights[:] = 0.0
    path = write("parquet", tmp_path / "z.parquet", b)
    with pytest.raises(DataFormatError, match="every importance weight is 0: no metric is defined"):
        evaluate(model, path)
    code, err = cli(capsys, "evaluate", path, "--model", tmp_path / "m")
    assert code == 1 and "every importance weight is 0" in err  # was a TypeError traceback


# --- item 8: scoring checks the labels as training does ------------------------------------------

@pytest.mark.parametrize("bad", [-4.0, 0.5, 2.0])
def test_scoring_refuses_labels_the_loss_cannot_take(tmp_path, rng, capsys, bad):
    model = make_model(tmp_path / "m", rng)
    b = random_batch(rng, 300, N_FEATURES)
    b.labels[123] = bad
    path = write("parquet", tmp_path / "d.parquet", b)
    for call in (lambda: evaluate(model, path), lambda: predict(model, path),
                 lambda: predict_to_parquet(model, path, tmp_path / "p.parquet")):
        with pytest.raises(LabelError, match=rf"label {bad:g} does not fit the logistic loss"):
            call()
    for argv in (["evaluate", path, "--model", tmp_path / "m"],
                 ["predict", path, "--model", tmp_path / "m", "--out", tmp_path / "p.parquet"]):
        code, err = cli(capsys, *argv)
        assert code == 1 and f"label {bad:g} does not fit the logistic loss" in err
    assert not (tmp_path / "p.parquet").exists()
    # The same data trains nowhere either: one rule (streamhog/labels.py).
    code, err = cli(capsys, "train", path, "--model", tmp_path / "t", "--quiet")
    assert code == 1 and f"label {bad:g} does not fit the logistic loss" in err


def test_scoring_accepts_one_class_and_any_label_for_squared(tmp_path, rng):
    b = random_batch(rng, 200, N_FEATURES)
    b.labels[:] = 1.0  # a test set may hold one class only
    assert evaluate(make_model(tmp_path / "m", rng), write("parquet", tmp_path / "d.parquet", b))["n_examples"] == 200
    b.labels[:] = rng.normal(size=200).astype(np.float32) * 7
    squared = make_model(tmp_path / "s", rng, loss="squared")
    assert evaluate(squared, write("parquet", tmp_path / "r.parquet", b))["n_examples"] == 200


def test_softmax_scoring_refuses_a_class_the_model_lacks(tmp_path, rng):
    model = make_model(tmp_path / "m", rng, loss="softmax", n_classes=3)
    b = random_batch(rng, 200, N_FEATURES)
    b.labels[:] = rng.integers(0, 3, 200)
    path = write("parquet", tmp_path / "ok.parquet", b)
    assert evaluate(model, path)["n_examples"] == 200
    b.labels[7] = 3
    with pytest.raises(LabelError, match="label 3 is not one of the model's 3 classes"):
        evaluate(model, write("parquet", tmp_path / "bad.parquet", b))
    b.labels[7] = 1.5
    with pytest.raises(LabelError, match="label 1.5 is not a class id"):
        predict(model, write("parquet", tmp_path / "frac.parquet", b))


@pytest.mark.parametrize("fmt", ["parquet", "zarr"])
def test_evaluate_of_no_rows_is_an_error(tmp_path, rng, capsys, fmt):
    make_model(tmp_path / "m", rng)
    w = create_writer(fmt, tmp_path / f"e.{fmt}")
    w.close(N_FEATURES)
    code, err = cli(capsys, "evaluate", tmp_path / f"e.{fmt}", "--model", tmp_path / "m")
    assert code == 1 and err.endswith(f"e.{fmt}: the dataset has no rows; no metric is defined")


def test_train_on_no_rows_is_one_line(tmp_path, capsys):
    w = create_writer("parquet", tmp_path / "e.parquet")
    w.close(N_FEATURES)
    code, err = cli(capsys, "train", tmp_path / "e.parquet", "--model", tmp_path / "m", "--quiet")
    assert code == 1 and err.endswith("e.parquet: the dataset has no rows; there is nothing to train on")
    assert not (tmp_path / "m").exists()  # refused before the model directory was made


# --- small wrongs ----------------------------------------------------------------------------

def test_n_features_above_the_format_limit_names_the_file(tmp_path, rng, capsys):
    b = random_batch(rng, 50, N_FEATURES)
    path = write("parquet", tmp_path / "d.parquet", b)
    table = pq.read_table(path)
    meta = {k: v for k, v in pq.read_metadata(path).metadata.items() if not k.startswith(b"ARROW:")}
    meta[b"n_features"] = str(2**40).encode()
    pq.write_table(table.replace_schema_metadata(meta), tmp_path / "big.parquet")
    with pytest.raises(DataFormatError, match="big.parquet: key-value metadata 'n_features' is 1,099,511,627,776, "
                                              "above the format's limit of 2"):
        open_dataset(tmp_path / "big.parquet")
    code, err = cli(capsys, "train", tmp_path / "big.parquet", "--model", tmp_path / "m", "--quiet")
    assert code == 1 and "--n-features" not in err and "big.parquet" in err  # the user gave no such flag
    zpath = write("zarr", tmp_path / "z.zarr", b)
    g = zarr.open_group(str(zpath), mode="r+")
    g.attrs["n_features"] = 2**33
    with pytest.raises(DataFormatError, match="'n_features' must be a non-negative integer of at most 2"):
        open_dataset(zpath)


def test_info_of_a_missing_path_says_so(tmp_path, capsys):
    code, err = cli(capsys, "info", tmp_path / "nonexistent")
    assert code == 1 and err == f"streamhog info: error: {tmp_path / 'nonexistent'}: no such file or directory"


def test_parquet_reader_unchanged_for_good_weights(tmp_path, rng):
    b = random_batch(rng, 120, N_FEATURES, weights=True)
    b.weights[3] = 0.0
    got = read_everything(write("parquet", tmp_path / "d.parquet", b))
    np.testing.assert_array_equal(np.concatenate([x.weights for x in got]), b.weights)
    assert pa.types.is_float32(pq.read_schema(tmp_path / "d.parquet").field("weight").type)


def test_shutil_copy_of_a_store_keeps_it_whole(store, tmp_path):
    """Copying a store file by file (what users do) keeps every chunk file: it still reads."""
    path, batch = store
    shutil.copytree(path, tmp_path / "copy.zarr")
    got = read_everything(tmp_path / "copy.zarr")
    assert sum(b.n_rows for b in got) == batch.n_rows
