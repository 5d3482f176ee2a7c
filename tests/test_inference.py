"""Scoring: margins against scipy, streamed metrics against scikit-learn, predictions in dataset
order (in memory and to Parquet), and refusals: wider datasets, corrupt data, existing outputs."""
from __future__ import annotations

import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.special import expit
from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, mean_squared_error, roc_auc_score

from streamhog.io.batch import SparseBatch, concat_batches, take_rows
from streamhog.errors import DataFormatError, OutputExistsError, StreamhogError
from streamhog.io.formats import create_writer, open_dataset
from streamhog.errors import IncompatibleDataError
from streamhog.model.inference import RepeatedScorer, evaluate, predict, predict_to_parquet
from streamhog.kernels.predict import batch_margins
from streamhog.model.metrics import AUC_BINS, MetricAccumulator, margin_bin
from streamhog.model.directory import Model
from streamhog.training.early_stopping import holdout_mask

from conftest import random_batch

N_FEATURES = 40


def streamhog_threads():
    return [t for t in threading.enumerate() if t.name.startswith("streamhog-") and t.is_alive()]


@pytest.fixture(autouse=True)
def no_leaked_threads():
    yield
    end = time.monotonic() + 5.0
    while streamhog_threads() and time.monotonic() < end:
        time.sleep(0.01)
    assert not streamhog_threads()


def make_model(path, rng, *, loss="logistic", n_features=N_FEATURES, intercept=0.3) -> Model:
    model = Model.create(path, n_features=n_features, loss=loss)
    model.weights[:] = rng.normal(size=n_features).astype(np.float32)
    model.meta["intercept"] = intercept
    model.save_meta()
    model.flush()
    return model


def make_data(rng, n_rows, *, binary=False, weights=False, labels="pm1", n_features=N_FEATURES) -> SparseBatch:
    b = random_batch(rng, n_rows, n_features, binary=binary, weights=weights)
    if labels == "01":
        b = SparseBatch(b.indptr, b.indices, b.values, (b.labels > 0).astype(np.float32), b.weights)
    elif labels == "real":
        b = SparseBatch(b.indptr, b.indices, b.values, rng.normal(size=n_rows).astype(np.float32), b.weights)
    return b


def write(fmt, path, batch, *, n_features=N_FEATURES, rows_per_group=16):
    w = create_writer(fmt, path, rows_per_group=rows_per_group, has_weights=batch.weights is not None)
    w.write(batch)
    w.close(n_features)
    return path


def reference_margins(model_path, batch, n_features=N_FEATURES):
    """X @ w + b with scipy, from the weights file and model.json as written on disk."""
    w = np.load(model_path / "weights.npy").astype(np.float64)
    intercept = Model.open(model_path).intercept
    return batch.to_scipy(n_features).astype(np.float64) @ w + intercept


# --- the kernel -----------------------------------------------------------------------------

@pytest.mark.parametrize("binary", [False, True])
def test_margins_equal_scipy_with_read_only_weights(tmp_path, rng, binary):
    make_model(tmp_path / "m", rng)
    batch = make_data(rng, 50, binary=binary)
    model = Model.open(tmp_path / "m")  # mode "r": a read-only memmap
    assert not model.weights.flags.writeable
    got = model.decision_function(batch)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, reference_margins(tmp_path / "m", batch), rtol=1e-12, atol=1e-12)
    # Arrow-like read-only inputs are accepted too.
    ro = [a.copy() for a in (batch.indptr, batch.indices, batch.values_or_ones())]
    for a in ro:
        a.flags.writeable = False
    ro_batch = SparseBatch(ro[0], ro[1], None if binary else ro[2], batch.labels)
    np.testing.assert_array_equal(batch_margins(ro_batch, model.weights, model.intercept), got)


def test_kernel_never_reads_past_the_weights(rng):
    batch = SparseBatch(np.array([0, 1, 3], np.int64), np.array([2, 1, 10], np.uint32), None,
                        np.ones(2, np.float32), source="hand-made")
    with pytest.raises(ValueError, match="row 1: feature index 10 >= model n_features 10"):
        batch_margins(batch, np.ones(10, np.float32), 0.0)
    bad_indptr = SparseBatch(np.array([0, 5, 3], np.int64), np.array([2, 1, 3], np.uint32), None,
                             np.ones(2, np.float32))
    with pytest.raises(ValueError, match="row offsets are inconsistent"):
        batch_margins(bad_indptr, np.ones(10, np.float32), 0.0)
    with pytest.raises(TypeError, match="float32"):
        batch_margins(batch, np.ones(20, np.float64), 0.0)


# --- metrics ------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["parquet", "zarr"])
@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_evaluate_classification_matches_sklearn(tmp_path, rng, fmt, weights, threads):
    model = make_model(tmp_path / "m", rng)
    batch = make_data(rng, 400, weights=weights)
    data = write(fmt, tmp_path / f"d.{fmt}", batch, rows_per_group=37)
    got = evaluate(model, data, threads=threads)
    m = reference_margins(tmp_path / "m", batch)
    y, sw = batch.labels, batch.weights
    assert set(got) == {"logloss", "auc", "accuracy", "n_examples"}
    assert got["n_examples"] == 400
    assert got["logloss"] == pytest.approx(log_loss(y, expit(m), sample_weight=sw), rel=1e-9)
    assert got["accuracy"] == pytest.approx(accuracy_score(y > 0, m > 0, sample_weight=sw), rel=1e-9)
    assert got["auc"] == pytest.approx(roc_auc_score(y, m, sample_weight=sw), abs=1e-4)


def test_take_rows_equals_scipy_row_selection(rng):
    for binary, weights in ((False, True), (True, False)):
        batch = make_data(rng, 300, binary=binary, weights=weights)
        keep = rng.random(300) < 0.3
        got = take_rows(batch, keep)
        assert (got.to_scipy(N_FEATURES) != batch.to_scipy(N_FEATURES)[keep]).nnz == 0
        assert np.array_equal(got.labels, batch.labels[keep]) and got.indptr[0] == 0
        assert (got.weights is None) == (not weights) and (not weights or np.array_equal(got.weights, batch.weights[keep]))
    assert take_rows(batch, np.zeros(300, bool)).n_rows == 0


@pytest.mark.parametrize("fmt", ["parquet", "zarr"])
def test_scoring_a_holdout_after_each_epoch_from_memory(tmp_path, rng, fmt):
    """A training run's RepeatedScorer reads the held rows once and then scores them from
    memory (beyond its cap: from the files each time): the figures of evaluate(), and those
    are scikit-learn's on the held rows, with more threads than cores."""
    batch = make_data(rng, 900, weights=True)
    data = write(fmt, tmp_path / f"d.{fmt}", batch, rows_per_group=37)
    held = holdout_mask(0, 900, 0.2, 5)

    def rows(b):
        return holdout_mask(b.row_start, b.n_rows, 0.2, 5)

    models = [make_model(tmp_path / f"m{k}", rng) for k in range(2)]
    for model in models:
        m, y, sw = reference_margins(model.path, batch)[held], batch.labels[held], batch.weights[held]
        want = evaluate(model, data, threads=1, rows=rows)
        assert want["n_examples"] == held.sum() > 100
        assert want["logloss"] == pytest.approx(log_loss(y, expit(m), sample_weight=sw), rel=1e-9)
        assert want["auc"] == pytest.approx(roc_auc_score(y, m, sample_weight=sw), abs=1e-4)
    for threads in (1, 8):
        for cap, in_memory in ((1 << 20, True), (1_000, False)):
            score = RepeatedScorer(data, threads=threads, rows=rows, cap_bytes=cap)
            for model in models + models:  # the second round: from memory, when kept
                want = evaluate(model, data, threads=1, rows=rows)
                got = score(model)
                assert score.in_memory == in_memory
                assert got["n_examples"] == want["n_examples"]
                for k in ("logloss", "auc", "accuracy"):
                    assert got[k] == pytest.approx(want[k], rel=1e-12), k
    whole = RepeatedScorer(data, threads=3)  # validation data: every row
    for model in models + models:
        got, want = whole(model), evaluate(model, data, threads=1)
        assert whole.in_memory and all(got[k] == pytest.approx(want[k], rel=1e-12) for k in want)


def test_a_holdout_that_weighs_nothing_is_scored_from_memory_as_from_the_files(tmp_path, rng):
    """evaluate() refuses data whose every weight is 0, but not a run's holdout rows (a small
    set's holdout may be a few zero-weight rows): nor does the scorer that keeps them."""
    b = make_data(rng, 60, weights=True)
    b = SparseBatch(b.indptr, b.indices, b.values, b.labels, np.zeros(60, np.float32))
    data = write("parquet", tmp_path / "d.parquet", b)
    model = make_model(tmp_path / "m", rng)

    def rows(batch):
        return holdout_mask(batch.row_start, batch.n_rows, 0.2, 0)

    want = evaluate(model, data, rows=rows)
    score = RepeatedScorer(data, rows=rows)
    for _ in range(2):
        got = score(model)
        assert got["n_examples"] == want["n_examples"] and np.isnan(got["logloss"]) == np.isnan(want["logloss"])
    assert score.in_memory
    with pytest.raises(DataFormatError, match="every importance weight is 0"):
        evaluate(model, data)


@pytest.mark.parametrize("loss", ["hinge", "logistic"])
def test_evaluate_zero_one_labels_and_hinge(tmp_path, rng, loss):
    model = make_model(tmp_path / "m", rng, loss=loss)
    batch = make_data(rng, 200, labels="01", binary=True)
    got = evaluate(model, write("parquet", tmp_path / "d.parquet", batch), threads=2)
    m = reference_margins(tmp_path / "m", batch)
    assert got["logloss"] == pytest.approx(log_loss(batch.labels, expit(m)), rel=1e-9)
    assert got["accuracy"] == pytest.approx(accuracy_score(batch.labels > 0, m > 0))
    assert got["auc"] == pytest.approx(roc_auc_score(batch.labels, m), abs=1e-4)


@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_evaluate_regression_matches_sklearn(tmp_path, rng, weights, threads):
    model = make_model(tmp_path / "m", rng, loss="squared")
    batch = make_data(rng, 300, weights=weights, labels="real")
    got = evaluate(model, write("zarr", tmp_path / "d.zarr", batch, rows_per_group=50), threads=threads)
    m = reference_margins(tmp_path / "m", batch)
    assert set(got) == {"rmse", "mae", "n_examples"}
    assert got["n_examples"] == 300
    assert got["rmse"] == pytest.approx(np.sqrt(mean_squared_error(batch.labels, m, sample_weight=batch.weights)),
                                        rel=1e-9)
    assert got["mae"] == pytest.approx(mean_absolute_error(batch.labels, m, sample_weight=batch.weights), rel=1e-9)


def test_auc_histogram_agrees_with_sklearn(rng):
    n = 20_000
    m = rng.normal(size=n) * 3
    y = np.where(rng.random(n) < expit(m), 1.0, -1.0).astype(np.float32)
    w = rng.uniform(0.1, 3, n).astype(np.float32)
    acc = MetricAccumulator("logistic")
    acc.update(m, y, w)
    exact = roc_auc_score(y, m, sample_weight=w)
    assert abs(acc.result()["auc"] - exact) <= max(acc.auc_max_error(), 1e-12) < 1e-4


def test_auc_is_exact_when_margins_fall_in_distinct_bins(rng):
    # Integers 1..500 (and their negatives) differ by far more than a bin's 2^-11 relative width;
    # repeated values are true ties, counted half by both.
    m = rng.integers(-500, 501, 3000).astype(np.float64)
    y = rng.choice([-1.0, 1.0], 3000).astype(np.float32)
    w = rng.uniform(0.5, 2, 3000).astype(np.float32)
    for sw in (None, w):
        acc = MetricAccumulator("hinge")
        acc.update(m, y, sw)
        assert acc.result()["auc"] == pytest.approx(roc_auc_score(y, m, sample_weight=sw), abs=1e-13)


def test_margin_bins_preserve_order():
    vals = np.array([-np.inf, -3e38, -1.0, -1e-3, -1e-40, 0.0, 1e-40, 1e-3, 1.0, 1.0005, 3e38, np.inf])
    bins = [margin_bin(v) for v in vals]
    assert bins == sorted(bins) and len(set(bins)) == len(bins)
    assert 0 <= min(bins) and max(bins) < AUC_BINS
    assert margin_bin(-0.0) == margin_bin(0.0)
    assert margin_bin(1.0) == margin_bin(1.0 + 2**-12)  # within one bin's resolution


def test_logloss_is_exact_for_extreme_margins():
    acc = MetricAccumulator("logistic")
    acc.update(np.array([1000.0, -1000.0, 0.0]), np.array([1, 1, -1], np.float32))
    r = acc.result()
    assert r["logloss"] == pytest.approx((0.0 + 1000.0 + np.log(2)) / 3, rel=1e-15)
    assert r["accuracy"] == pytest.approx(2 / 3)  # margin 0 predicts negative


def test_merge_equals_one_pass_and_empty_is_nan(rng):
    m, y = rng.normal(size=1000), rng.choice([-1.0, 1.0], 1000).astype(np.float32)
    w = rng.uniform(0.5, 2, 1000).astype(np.float32)
    for loss in ("logistic", "squared"):
        whole, a, b = MetricAccumulator(loss), MetricAccumulator(loss), MetricAccumulator(loss)
        whole.update(m, y, w)
        a.update(m[:300], y[:300], w[:300])
        b.update(m[300:], y[300:], w[300:])
        merged, expected = a.merge(b).result(), whole.result()
        assert merged.keys() == expected.keys()
        for k in expected:
            assert merged[k] == pytest.approx(expected[k], rel=1e-12)
        empty = MetricAccumulator(loss).result()
        assert empty["n_examples"] == 0 and all(np.isnan(v) for k, v in empty.items() if k != "n_examples")


# --- predictions --------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["parquet", "zarr"])
@pytest.mark.parametrize("loss", ["logistic", "squared"])
def test_predict_is_in_dataset_order(tmp_path, rng, fmt, loss):
    model = make_model(tmp_path / "m", rng, loss=loss)
    batch = make_data(rng, 203, weights=True)
    data = write(fmt, tmp_path / f"d.{fmt}", batch, rows_per_group=10)
    assert open_dataset(data).n_blocks == 21
    m = reference_margins(tmp_path / "m", batch)
    expected = expit(m) if loss == "logistic" else m
    got = predict(model, data, threads=2)
    assert got.shape == (203,)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(model.predict(open_dataset(data), threads=1), got)


def test_predict_parquet_directory_dataset_order(tmp_path, rng):
    model = make_model(tmp_path / "m", rng, loss="hinge")
    parts = [make_data(rng, n) for n in (25, 7, 31)]
    (tmp_path / "d").mkdir()
    for i, p in enumerate(parts):
        write("parquet", tmp_path / "d" / f"part-{i}.parquet", p, rows_per_group=6)
    got = predict(model, tmp_path / "d", threads=2)
    np.testing.assert_allclose(got, reference_margins(tmp_path / "m", concat_batches(parts)), rtol=1e-12)


@pytest.mark.parametrize("loss", ["logistic", "hinge"])
def test_predict_to_parquet_equals_predict(tmp_path, rng, loss):
    model = make_model(tmp_path / "m", rng, loss=loss)
    batch = make_data(rng, 150)
    data = write("zarr", tmp_path / "d.zarr", batch, rows_per_group=16)
    out = tmp_path / "pred.parquet"
    assert predict_to_parquet(model, data, out, threads=2) == 150
    table = pq.read_table(out)
    assert table.schema.field("prediction").type == pa.float32() and table.schema.field("label").type == pa.float32()
    np.testing.assert_array_equal(table.column("prediction").to_numpy(), predict(model, data).astype(np.float32))
    np.testing.assert_array_equal(table.column("label").to_numpy(), batch.labels)
    with pytest.raises(OutputExistsError):
        predict_to_parquet(model, data, out)
    assert predict_to_parquet(model, data, out, overwrite=True, threads=1) == 150
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr", "m", "pred.parquet"]  # no temporaries


def test_predict_to_parquet_empty_dataset(tmp_path, rng):
    model = make_model(tmp_path / "m", rng)
    w = create_writer("parquet", tmp_path / "e.parquet")
    w.close(N_FEATURES)
    assert predict_to_parquet(model, tmp_path / "e.parquet", tmp_path / "p.parquet") == 0
    assert pq.read_table(tmp_path / "p.parquet").num_rows == 0
    with pytest.raises(StreamhogError, match="e.parquet: the dataset has no rows; no metric is defined"):
        evaluate(model, tmp_path / "e.parquet")  # issue 16: was NaN metrics


# --- refusals -----------------------------------------------------------------------------

def test_dataset_wider_than_model_is_refused_before_scoring(tmp_path, rng):
    model = make_model(tmp_path / "m", rng, n_features=20)
    data = write("parquet", tmp_path / "d.parquet", make_data(rng, 30, n_features=25), n_features=25)
    for call in (lambda: evaluate(model, data), lambda: predict(model, data),
                 lambda: predict_to_parquet(model, data, tmp_path / "p.parquet")):
        with pytest.raises(IncompatibleDataError, match=r"n_features 25 .*n_features 20"):
            call()
    assert not (tmp_path / "p.parquet").exists()
    # Fewer features than the model is fine.
    narrow = write("parquet", tmp_path / "n.parquet", make_data(rng, 30, n_features=15), n_features=15)
    assert evaluate(model, narrow, threads=2)["n_examples"] == 30


def _corrupt_parquet(path, n_rows=40):
    """Valid row groups of 4 rows, then one holding feature index 12 >= n_features 10."""
    indices = [[r % 10] for r in range(n_rows)]
    indices[30] = [3, 12]
    table = pa.table({"label": pa.array(np.where(np.arange(n_rows) % 2, 1.0, -1.0), pa.float32()),
                      "indices": pa.array(indices, pa.list_(pa.uint32()))})
    pq.write_table(table.replace_schema_metadata({"n_features": "10", "format_version": "1"}), path,
                   row_group_size=4)
    return path


@pytest.mark.parametrize("threads", [1, 2])
def test_corrupt_dataset_raises_and_stops_every_thread(tmp_path, rng, threads):
    model = make_model(tmp_path / "m", rng, n_features=10)
    data = _corrupt_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataFormatError, match="feature index 12 >= n_features 10") as err:
        evaluate(model, data, threads=threads)
    assert "row group 7" in str(err.value)
    with pytest.raises(DataFormatError, match="feature index 12"):
        predict(model, data, threads=threads)
    with pytest.raises(DataFormatError, match="feature index 12"):
        predict_to_parquet(model, data, tmp_path / "p.parquet", threads=threads)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.parquet", "m"]  # nothing half-written
    # no_leaked_threads checks that readers and consumers have all stopped


class _LyingDataset:
    """Claims 10 features but block 5 holds index 15: the kernel's own bound check must catch it."""

    path = "lying.parquet"
    n_features = 10
    n_blocks = 12
    n_rows = 12
    block_row_start = np.arange(12)

    def open_reader(self):
        return self

    def iter_labels(self):  # scoring checks the labels first (issue 16)
        yield np.ones(self.n_rows, np.float32)

    def read(self, block):
        return SparseBatch(np.array([0, 1], np.int64), np.array([15 if block == 5 else block % 10], np.uint32),
                           None, np.ones(1, np.float32), source=f"lying block {block}", row_start=block, block=block)

    def close(self):
        pass


@pytest.mark.parametrize("threads", [1, 2])
def test_consumer_failure_stops_everything(tmp_path, rng, threads):
    model = make_model(tmp_path / "m", rng, n_features=10)
    for call in (lambda: evaluate(model, _LyingDataset(), threads=threads),
                 lambda: predict(model, _LyingDataset(), threads=threads),
                 lambda: predict_to_parquet(model, _LyingDataset(), tmp_path / "p.parquet", threads=threads)):
        with pytest.raises(ValueError, match="lying block 5: row 0: feature index 15 >= model n_features 10"):
            call()
    assert not (tmp_path / "p.parquet").exists()
