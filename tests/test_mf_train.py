"""Factorization training end to end: quality on MovieLens against a NumPy biases baseline,
exact resume, early stopping, scoring of unseen ids, threads, sparse factor files, bad
options and divergence."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from streamhog.training.checkpoint import read_checkpoint
from streamhog.factorization import (InteractionDataset, MFModel, evaluate, model_files, predict, predict_to_parquet,
                                     train_mf, write_interactions)
from streamhog.factorization.score import RepeatedScorer
from streamhog.factorization.trainer import MFDivergenceError, MFTrainingError
from streamhog.training.early_stopping import holdout_mask
from streamhog.errors import TrainingInterrupted
from streamhog._fs.sparse_files import allocated_bytes

from mf_data import stopped_and_resumed, write_low_rank_split, write_movielens_split


@pytest.fixture(scope="module")
def movielens(tmp_path_factory):
    """The issue's split of ml-latest-small: rng(0).permutation, the first fifth is test."""
    return write_movielens_split(tmp_path_factory.mktemp("ml"))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return write_low_rank_split(tmp_path_factory.mktemp("syn"), 400, 300, 4, 30_000, 3_000,
                                seed=7, rows_per_group=2_000)


def biases_baseline(train, test, lam) -> float:
    """Global mean + damped user and item biases, alternated (NumPy), the test RMSE."""
    (u, i, r), (ut, it, rt) = train, test
    u, i, ut, it = (a.astype(np.int64) for a in (u, i, ut, it))
    r, rt = r.astype(np.float64), rt.astype(np.float64)
    nu, ni = max(u.max(), ut.max()) + 1, max(i.max(), it.max()) + 1
    mu, bu, bi = r.mean(), np.zeros(nu), np.zeros(ni)
    for _ in range(10):
        bi = np.bincount(i, r - mu - bu[u], ni) / (np.bincount(i, None, ni) + lam)
        bu = np.bincount(u, r - mu - bi[i], nu) / (np.bincount(u, None, nu) + lam)
    return float(np.sqrt(np.mean((np.clip(mu + bu[ut] + bi[it], 0.5, 5) - rt) ** 2)))


def test_movielens_defaults_beat_the_best_biases_baseline(movielens, tmp_path):
    d, train, test = movielens
    model = train_mf(d / "train.parquet", tmp_path / "m", threads=2)
    got = evaluate(model, d / "test.parquet")
    baseline = min(biases_baseline(train, test, lam) for lam in (1, 3, 5, 10, 25))  # its best, chosen on test
    assert got["n_examples"] == len(test[2])
    assert got["rmse"] < baseline - 0.005, (got, baseline)
    assert got["rmse"] < 0.87  # Surprise's SVD with its defaults: 0.874-0.875 (benchmarks/factorization.md)
    (ut, it, rt) = test
    pred = predict(model, d / "test.parquet")
    np.testing.assert_allclose(np.sqrt(np.mean((pred - rt) ** 2)), got["rmse"], rtol=1e-9)
    np.testing.assert_allclose(np.mean(np.abs(pred - rt)), got["mae"], rtol=1e-9)
    np.testing.assert_array_equal(model.predict(ut, it), pred)
    assert pred.min() >= 0.5 and pred.max() <= 5.0  # clipped to the training ratings' range


def test_the_model_directory_holds_npy_files_and_json(synthetic, tmp_path):
    model = train_mf(synthetic / "train.parquet", tmp_path / "m", rank=6, epochs=2, threads=1)
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["kind"] == "mf" and meta["rank"] == 6 and meta["training"]["status"] == "complete"
    P = np.load(tmp_path / "m" / "user_factors.npy", mmap_mode="r")
    assert P.shape == (meta["n_users"], 6) and P.dtype == np.float32
    assert sorted(p.name for p in model.files()) == sorted(p.name for p in (tmp_path / "m").glob("*.npy"))
    assert [p.name for p in model_files(tmp_path / "m", "sgd")] == ["user_factors.npy", "item_factors.npy",
                                                                  "user_bias.npy", "item_bias.npy"]
    ds = InteractionDataset(synthetic / "train.parquet")
    # mu is the mean of the trained (not held-out) rows; info counts the rows they touched
    r = np.concatenate([r for _, r, _ in ds.iter_ratings()])
    held = holdout_mask(0, len(r), 0.1, 0)
    assert math.isclose(model.mu, float(r[~held].astype(np.float64).mean()), rel_tol=1e-12)
    reader = ds.open_reader()
    users = np.concatenate([reader.read(b).users for b in range(ds.n_blocks)])
    reader.close()
    info = model.info()
    assert info["users_seen"] == len(np.unique(users[~held])) and info["rank"] == 6
    assert info["epochs_trained"] == 2 and info["training"]["status"] == "complete"


@pytest.mark.parametrize("optimizer, state_shape", [("adagrad", "factors"), ("rowwise-adagrad", "rows"), ("sgd", None)])
def test_each_optimizer_keeps_its_state_files(synthetic, tmp_path, optimizer, state_shape):
    """adagrad keeps a sum per factor coordinate, rowwise-adagrad one per factor row (the
    files a model of 10^8 users carries shrink by the rank), sgd none; every model opens
    again; a rowwise model says format_version 2 (a streamhog that knows only 1 refuses it),
    and one that claims version 1 is refused here."""
    model = train_mf(synthetic / "train.parquet", tmp_path / "m", rank=6, epochs=2, threads=1, optimizer=optimizer)
    names = sorted(p.name for p in (tmp_path / "m").glob("*.npy"))
    accum = [n for n in names if n.endswith("_accum.npy")]
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    n_users, n_items = meta["n_users"], meta["n_items"]
    if state_shape is None:
        assert accum == []
    else:
        shapes = {n: np.load(tmp_path / "m" / n, mmap_mode="r").shape for n in accum}
        factors = (n_users,) if state_shape == "rows" else (n_users, 6)
        assert shapes["user_factors_accum.npy"] == factors and shapes["user_bias_accum.npy"] == (n_users,)
        assert shapes["item_factors_accum.npy"] == (n_items,) + factors[1:]
        trained = np.load(tmp_path / "m" / "user_factors.npy", mmap_mode="r").any(axis=1)
        acc = np.load(tmp_path / "m" / "user_factors_accum.npy", mmap_mode="r")
        assert np.array_equal(acc.reshape(n_users, -1).any(axis=1), trained)  # a sum where a row trained
    assert meta["format_version"] == (2 if optimizer == "rowwise-adagrad" else 1)
    assert MFModel.open(tmp_path / "m").optimizer == optimizer == model.optimizer
    if optimizer == "rowwise-adagrad":
        meta["format_version"] = 1
        (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
        with pytest.raises(Exception, match="optimizer 'rowwise-adagrad' in a format_version 1 model"):
            MFModel.open(tmp_path / "m")


def test_unseen_ids_get_the_biases_they_have(synthetic, tmp_path):
    model = train_mf(synthetic / "train.parquet", tmp_path / "m", rank=4, epochs=2, threads=1, clip=False)
    bu, bi = model.arrays["user_bias"], model.arrays["item_bias"]
    big = 10**9
    pred = model.predict([big, 3, big], [5, big, big + 1])
    np.testing.assert_allclose(pred, [model.mu + bi[5], model.mu + bu[3], model.mu], rtol=1e-6)
    # a test file with ids beyond the training data scores without error
    write_interactions(tmp_path / "new.parquet", np.array([big, 3]), np.array([5, big]), np.array([3.0, 4.0], np.float32))
    assert evaluate(model, tmp_path / "new.parquet")["n_examples"] == 2


def test_predict_to_parquet_in_input_order(synthetic, tmp_path):
    model = train_mf(synthetic / "train.parquet", tmp_path / "m", rank=4, epochs=1, threads=1)
    n = predict_to_parquet(model, synthetic / "test.parquet", tmp_path / "p.parquet", threads=2)
    t = pq.read_table(tmp_path / "p.parquet")
    assert n == t.num_rows == 3_000
    np.testing.assert_allclose(t.column("prediction").to_numpy(), predict(model, synthetic / "test.parquet"),
                               rtol=1e-6)
    assert t.column_names == ["user", "item", "prediction", "rating"]


@pytest.mark.parametrize("optimizer, early_stopping", [("adagrad", 0), ("sgd", 0), ("rowwise-adagrad", 0),
                                                      ("rowwise-adagrad", 1)])
@pytest.mark.parametrize("stops", [[3], [5, 7], [15], [16, 14], [62, 5]])
def test_resume_after_clean_stops_is_bit_identical(synthetic, tmp_path, optimizer, early_stopping, stops):
    """One thread, fixed seed: stopped after some blocks (mid-epoch, an epoch end), resumed,
    the arrays, mu and the per-epoch figures equal an uninterrupted run's exactly, early
    stopping's best-epoch copies and restore included."""
    opts = dict(rank=5, epochs=5, threads=1, optimizer=optimizer, early_stopping=early_stopping)
    if early_stopping:  # overfits after 4 epochs: stops after the 5th and restores the 4th
        opts.update(rank=32, epochs=8, lr=0.3, l2=0.0, l2_bias=0.0)
    ref, run = stopped_and_resumed(synthetic / "train.parquet", tmp_path, stops, **opts)
    assert run.meta["training"] == ref.meta["training"]
    assert ref.meta["training"]["stopped_early"] == bool(early_stopping)
    for name in ref.arrays:
        np.testing.assert_array_equal(ref.arrays[name], run.arrays[name], err_msg=name)
    assert run.mu == ref.mu and len(run.history) == len(ref.history)
    for a, b in zip(ref.history, run.history):
        assert a["train_rmse"] == b["train_rmse"] and a["holdout"] == {**b["holdout"]}


def test_early_stopping_restores_the_best_epoch(synthetic, tmp_path):
    # A large step and no regularization overfit after a few epochs.
    model = train_mf(synthetic / "train.parquet", tmp_path / "m", rank=32, epochs=30, lr=0.3, l2=0.0, l2_bias=0.0,
                     threads=1, early_stopping=2)
    training = model.meta["training"]
    scores = [h["holdout"]["rmse"] for h in model.history]
    best = int(np.argmin(scores))
    assert training["stopped_early"] and training["best_epoch"] == best + 1 < len(scores) <= 30
    assert len(scores) == best + 3  # two epochs without improvement
    ds = InteractionDataset(synthetic / "train.parquet")
    held = evaluate(model, ds, rows=lambda b: holdout_mask(b.row_start, b.n_rows, 0.1, 0))
    assert held["rmse"] == pytest.approx(scores[best], rel=1e-12)  # the model in place is the best epoch's
    assert not (tmp_path / "m" / "best-epoch").exists()
    # resuming a run that stopped early does nothing
    again = train_mf(synthetic / "train.parquet", tmp_path / "m", resume=True, epochs=30)
    assert len(again.history) == len(scores)


def test_valid_data_is_watched_when_given(synthetic, tmp_path):
    model = train_mf(synthetic / "train.parquet", tmp_path / "m", rank=4, epochs=3, threads=1,
                     valid=synthetic / "test.parquet")
    assert model.meta["hyper_parameters"]["holdout"] == 0.0
    assert all("valid" in h and "holdout" not in h for h in model.history)
    assert model.history[-1]["examples"] == 30_000  # every row trains


@pytest.mark.parametrize("schedule", ["hogwild", "strata"])
def test_eight_threads_reach_the_quality_of_one(synthetic, tmp_path, schedule):
    one = evaluate(train_mf(synthetic / "train.parquet", tmp_path / "a", rank=8, threads=1, readers=1),
                   synthetic / "test.parquet")
    eight = evaluate(train_mf(synthetic / "train.parquet", tmp_path / "b", rank=8, threads=8, readers=2,
                              schedule=schedule), synthetic / "test.parquet")
    assert eight["rmse"] == pytest.approx(one["rmse"], rel=0.03)
    assert one["rmse"] < 0.4  # noise 0.2 on a rank-4 signal of variance about 1.3: it learns the truth


def test_hyper_parameters_are_given_for_standardized_ratings(synthetic, tmp_path):
    """Ratings 2r + 1 train to predictions 2p + 1 (one thread, same seed): the defaults do
    not depend on the rating scale."""
    ds = InteractionDataset(synthetic / "train.parquet")
    reader = ds.open_reader()
    parts = [reader.read(b) for b in range(ds.n_blocks)]
    reader.close()
    u, i, r = (np.concatenate([getattr(p, k) for p in parts]) for k in ("users", "items", "ratings"))
    write_interactions(tmp_path / "scaled.parquet", u, i, 2 * r + 1, rows_per_group=2_000)
    opts = dict(rank=4, epochs=3, threads=1, clip=False)
    a = train_mf(synthetic / "train.parquet", tmp_path / "a", **opts)
    b = train_mf(tmp_path / "scaled.parquet", tmp_path / "b", **opts)
    pa_, pb = predict(a, synthetic / "test.parquet"), predict(b, synthetic / "test.parquet")
    np.testing.assert_allclose(pb, 2 * pa_ + 1, rtol=2e-4, atol=2e-4)


def test_a_model_far_larger_than_ram_touches_only_what_the_stream_uses(tmp_path):
    n_users = 2**31  # 2^31 x 16 float32: a 128 GiB user factor file, and as much AdaGrad state
    rng = np.random.default_rng(0)
    users = rng.choice(n_users - 1, 500, replace=False)
    u = users[rng.integers(0, 500, 20_000)]
    i = rng.integers(0, 100, 20_000)
    write_interactions(tmp_path / "r.parquet", u, i, rng.integers(1, 6, 20_000).astype(np.float32))
    model = train_mf(tmp_path / "r.parquet", tmp_path / "m", rank=16, epochs=1, threads=2, n_users=n_users)
    P = tmp_path / "m" / "user_factors.npy"
    assert os.path.getsize(P) > 2**37
    assert allocated_bytes(P) < 500 * 4096 * 2  # at most a page or two per touched row
    assert int(np.count_nonzero(model.arrays["user_factors"][np.sort(users)].any(axis=1))) == 500


def test_options_and_data_that_do_not_fit_are_refused(synthetic, tmp_path):
    with pytest.raises(ValueError, match="--rank must be"):
        train_mf(synthetic / "train.parquet", tmp_path / "m", rank=0)
    with pytest.raises(ValueError, match="--optimizer must be one of adagrad, rowwise-adagrad, sgd"):
        train_mf(synthetic / "train.parquet", tmp_path / "m", optimizer="ftrl")
    with pytest.raises(MFTrainingError, match="--n-users is 10"):
        train_mf(synthetic / "train.parquet", tmp_path / "m", n_users=10)
    with pytest.raises(TrainingInterrupted):
        train_mf(synthetic / "train.parquet", tmp_path / "m", rank=4, epochs=2, threads=1, stop_after_blocks=2)
    with pytest.raises(MFTrainingError, match="the run uses --rank 4; it cannot resume with --rank 8"):
        train_mf(synthetic / "train.parquet", tmp_path / "m", resume=True, rank=8)
    with pytest.raises(MFTrainingError, match="not the data this run was trained on"):
        train_mf(synthetic / "test.parquet", tmp_path / "m", resume=True)
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a streamhog model directory"):
        train_mf(synthetic / "train.parquet", tmp_path / "precious", overwrite=True)
    assert (tmp_path / "precious" / "notes.txt").read_text() == "mine"


def test_divergence_stops_and_marks_the_run(synthetic, tmp_path):
    with pytest.raises(MFDivergenceError, match="lower --lr"):
        train_mf(synthetic / "train.parquet", tmp_path / "m", optimizer="sgd", lr=50.0, l2=0.0, l2_bias=0.0,
                 epochs=3, threads=1)
    record, _ = read_checkpoint(tmp_path / "m")
    assert record["status"] == "diverged"
    with pytest.raises(MFTrainingError, match="diverged"):
        train_mf(synthetic / "train.parquet", tmp_path / "m", resume=True)


def test_model_open_checks_the_files(synthetic, tmp_path):
    train_mf(synthetic / "train.parquet", tmp_path / "m", rank=4, epochs=1, threads=1)
    np.save(tmp_path / "m" / "item_bias.npy", np.zeros(3, np.float32))
    with pytest.raises(Exception, match="item_bias.npy: holds float32"):
        MFModel.open(tmp_path / "m")


def test_weighted_ratings_weigh_the_metrics_and_the_mean(tmp_path):
    rng = np.random.default_rng(4)
    u, i = rng.integers(0, 60, 4000), rng.integers(0, 40, 4000)
    r = rng.integers(1, 6, 4000).astype(np.float32)
    w = rng.uniform(0, 3, 4000).astype(np.float32)
    write_interactions(tmp_path / "w.parquet", u, i, r, w, rows_per_group=1000)
    model = train_mf(tmp_path / "w.parquet", tmp_path / "m", rank=4, epochs=2, threads=1, holdout=0.0)
    w64 = w.astype(np.float64)
    assert model.mu == pytest.approx(float((r * w64).sum() / w64.sum()), rel=1e-12)
    pred = predict(model, tmp_path / "w.parquet")
    e = pred - r
    got = evaluate(model, tmp_path / "w.parquet")
    assert got["rmse"] == pytest.approx(float(np.sqrt((w64 * e * e).sum() / w64.sum())), rel=1e-9)
    assert got["mae"] == pytest.approx(float((w64 * abs(e)).sum() / w64.sum()), rel=1e-9)


def test_constant_ratings_train_to_that_constant(tmp_path):
    rng = np.random.default_rng(5)
    write_interactions(tmp_path / "c.parquet", rng.integers(0, 30, 2000), rng.integers(0, 20, 2000),
                       np.full(2000, 4.0, np.float32))
    model = train_mf(tmp_path / "c.parquet", tmp_path / "m", rank=4, epochs=3, threads=2)
    np.testing.assert_allclose(model.predict([0, 5, 10**6], [0, 3, 2]), 4.0, atol=1e-6)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("holdout", [0.0, 0.2])
def test_training_mean_against_numpy(tmp_path, weighted, holdout):
    """μ, σ, the range and the row count of the training rows (the held-out ones left out),
    over several blocks, against NumPy's weighted mean and standard deviation."""
    from streamhog.factorization.train import training_mean

    rng = np.random.default_rng(4)
    n = 10_000
    u, i = rng.integers(0, 90, n), rng.integers(0, 70, n)
    r = (100.0 + rng.normal(0, 2, n)).astype(np.float32)  # a large offset: the shifted sums must not cancel
    w = rng.uniform(0.1, 3.0, n).astype(np.float32) if weighted else None
    write_interactions(tmp_path / "r.parquet", u, i, r, w, rows_per_group=1_500)
    keep = ~holdout_mask(0, n, holdout, 11) if holdout else np.ones(n, bool)
    rk = r[keep].astype(np.float64)
    wk = w[keep].astype(np.float64) if weighted else np.ones(len(rk))
    mean = np.average(rk, weights=wk)
    std = np.sqrt(np.average((rk - mean) ** 2, weights=wk))
    mu, sigma, rng_, rows = training_mean(InteractionDataset(tmp_path / "r.parquet"), holdout, 11)
    assert rows == keep.sum()
    assert rng_ == [float(rk.min()), float(rk.max())]
    np.testing.assert_allclose([mu, sigma], [mean, std], rtol=1e-10)


@pytest.mark.parametrize("optimizer", ["adagrad", "rowwise-adagrad", "sgd"])
def test_small_data_held_in_memory_trains_exactly_as_streamed(synthetic, tmp_path, monkeypatch, optimizer):
    """Small data is read once and its blocks served from memory in later epochs: one thread
    gives bit for bit the model of a run that streams every epoch from disk."""
    from streamhog.factorization import epochs  # where the held blocks live

    runs, default = {}, epochs.HOLD_BYTES
    for hold in (default, 0):
        monkeypatch.setattr(epochs, "HOLD_BYTES", hold)
        seen = []
        real = epochs._HeldBlocks.__init__

        def spy(self, held, order, real=real, seen=seen):
            seen.append(len(order))
            real(self, held, order)

        monkeypatch.setattr(epochs._HeldBlocks, "__init__", spy)
        model = train_mf(synthetic / "train.parquet", tmp_path / f"m{hold}", rank=6, epochs=4, threads=1, holdout=0.2,
                         optimizer=optimizer)
        runs[hold] = (model, seen)
    (held, seen_held), (streamed, seen_streamed) = runs[default], runs[0]
    n_blocks = InteractionDataset(synthetic / "train.parquet").n_blocks
    assert seen_held == [n_blocks] * 3 and seen_streamed == []  # epochs 2-4 from memory; never without the cache
    for name in held.arrays:
        np.testing.assert_array_equal(held.arrays[name], streamed.arrays[name], err_msg=name)
    assert [h["train_rmse"] for h in held.history] == [h["train_rmse"] for h in streamed.history]


def test_evaluate_is_the_same_to_the_last_bit_with_any_thread_count(tmp_path):
    """Each block's error sums are added up in block order, whichever thread scored it
    (per-thread running sums differed in the last bit from run to run)."""
    d = write_low_rank_split(tmp_path, 400, 300, 4, 12_000, 1_000, seed=3, rows_per_group=150)
    model = train_mf(d / "train.parquet", tmp_path / "m", rank=4, epochs=1, threads=1)
    want = evaluate(model, d / "train.parquet", threads=1)
    for threads in (2, 3, 8, 8, 8):
        assert evaluate(model, d / "train.parquet", threads=threads) == want


def test_scoring_after_each_epoch_from_memory_is_evaluate_to_the_last_bit(tmp_path):
    """The trainer's RepeatedScorer reads the holdout once and then scores it from memory (or,
    beyond its cap, from the files every time): each call gives evaluate()'s figures exactly,
    with more threads than cores too, and those are NumPy's on the held rows."""
    d = write_low_rank_split(tmp_path, 400, 300, 4, 12_000, 1_000, seed=3, rows_per_group=150)
    data = d / "train.parquet"
    first = train_mf(data, tmp_path / "a", rank=4, epochs=1, threads=1, holdout=0.0)
    second = train_mf(data, tmp_path / "b", rank=4, epochs=2, threads=1, holdout=0.0)

    def rows(b):
        return holdout_mask(b.row_start, b.n_rows, 0.1, 0)

    want = {m: evaluate(m, data, threads=1, rows=rows) for m in (first, second)}
    r = pq.read_table(data).column("rating").to_numpy().astype(np.float64)
    held = holdout_mask(0, len(r), 0.1, 0)
    for m in (first, second):
        pred = np.clip(predict(m, data), *m.clip_range(True))
        assert want[m]["n_examples"] == held.sum() > 1000
        assert want[m]["rmse"] == pytest.approx(np.sqrt(np.mean((pred[held] - r[held]) ** 2)), rel=1e-9)
    for threads in (1, 8):
        kept = RepeatedScorer(data, threads=threads, rows=rows)
        assert kept(first) == want[first] and kept.in_memory
        assert kept(first) == want[first]  # from memory
        assert kept(second) == want[second]  # another model, the same rows
        spilled = RepeatedScorer(data, threads=threads, rows=rows, cap_bytes=1_000)
        assert spilled(first) == want[first] and not spilled.in_memory
        assert spilled(second) == want[second]
    whole = RepeatedScorer(d / "test.parquet", threads=3)  # validation data: every row
    assert whole(first) == evaluate(first, d / "test.parquet", threads=1) and whole.in_memory
    assert whole(second) == evaluate(second, d / "test.parquet", threads=1)


def test_best_epoch_copies_are_as_sparse_as_the_factors(tmp_path):
    """A factor file with rows scattered 64 KiB apart: its copy holds the same bytes and no
    more allocated space than the file (the gaps stay holes), and a second copy over it,
    of other rows, punches out what the first one wrote."""
    from streamhog.factorization.copies import sync_file

    src, dst = tmp_path / "f.npy", tmp_path / "copy.npy"
    a = np.lib.format.open_memmap(src, mode="w+", dtype=np.float32, shape=(1 << 20, 16))  # 64 MiB, sparse
    rows = np.arange(0, 1 << 20, 1024)  # one row every 64 KiB
    a[rows] = 1.0
    a.flush()
    sync_file(src, dst)
    assert dst.read_bytes() == src.read_bytes()
    assert allocated_bytes(dst) <= allocated_bytes(src) + (64 << 10), (allocated_bytes(dst), allocated_bytes(src))
    a[rows] = 0.0
    a[rows + 512] = 2.0
    a.flush()
    sync_file(src, dst)
    assert dst.read_bytes() == src.read_bytes()
    del a
