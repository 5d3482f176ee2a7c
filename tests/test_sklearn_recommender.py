"""HogwildRecommender (streamhog.sklearn): matrix factorization behind scikit-learn's API.

The same model as ``train_mf`` on the same rows (one thread: bit for bit), predictions
against the model's own arrays in NumPy, R² against scikit-learn's, bad input refused with
the row, the temporary model in memory and removed with the estimator (and a killed
process's removed by the next), pickling, ``load``, model selection, and more threads than
cores against one."""
from __future__ import annotations

import gc
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

from mf_data import write_low_rank_split
from streamhog.errors import ConfigError, ModelError
from streamhog.factorization import train_mf, write_interactions
from streamhog.factorization.config import MFConfig
from streamhog.sklearn import HogwildRecommender, HogwildRegressor
from streamhog._sklearn import home as H
from streamhog._sklearn.recommender import HYPER, STRATA_BLOCK_ROWS, block_rows
from streamhog.factorization.format import DEFAULT_ROWS_PER_GROUP

FIXED = dict(rank=8, epochs=6, holdout=0.0, early_stopping=0, threads=1)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """Train and test arrays of one low-rank truth (and their files)."""
    import pyarrow.parquet as pq

    d = write_low_rank_split(tmp_path_factory.mktemp("rec"), 300, 200, 4, 20_000, 4_000, seed=3,
                             rows_per_group=4_096)
    out = {}
    for name in ("train", "test"):
        t = pq.read_table(d / f"{name}.parquet")
        out[name] = (np.c_[t["user"].to_numpy(), t["item"].to_numpy()].astype(np.int64),
                     t["rating"].to_numpy().astype(np.float64), d / f"{name}.parquet")
    return out


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def test_constructor_defaults_are_the_command_lines():
    est, cfg = HogwildRecommender(), MFConfig()
    assert all(getattr(est, f) == getattr(cfg, f) for f in HYPER)
    assert set(HYPER) <= set(est.get_params())


def test_fit_on_arrays_is_train_mf_on_the_same_rows(split, tmp_path):
    X, y, _ = split["train"]
    est = HogwildRecommender(**FIXED).fit(X, y)
    write_interactions(tmp_path / "t.parquet", X[:, 0], X[:, 1], y.astype(np.float32))
    ref = train_mf(tmp_path / "t.parquet", tmp_path / "m", **FIXED)
    for name in ("user_factors", "item_factors", "user_bias", "item_bias"):
        np.testing.assert_array_equal(getattr(est, name + "_"), ref.arrays[name])
    assert est.global_mean_ == ref.mu
    Xt = split["test"][0]
    np.testing.assert_array_equal(est.predict(Xt), ref.predict(Xt[:, 0], Xt[:, 1]))
    assert est.n_iter_ == 6 and len(est.history_) == 6


def test_strata_fits_larger_blocks_and_equals_train_mf_on_them(split, tmp_path):
    X, y, _ = split["train"]
    opts = dict(FIXED, threads=4, optimizer="sgd", schedule="strata")  # more threads than cores
    est = HogwildRecommender(**opts).fit(X, y)
    write_interactions(tmp_path / "t.parquet", X[:, 0], X[:, 1], y.astype(np.float32),
                       rows_per_group=STRATA_BLOCK_ROWS)
    ref = train_mf(tmp_path / "t.parquet", tmp_path / "m", **opts)
    for name in ("user_factors", "item_factors", "user_bias", "item_bias"):
        np.testing.assert_array_equal(getattr(est, name + "_"), ref.arrays[name])
    assert block_rows(MFConfig(**opts).resolved()) == STRATA_BLOCK_ROWS
    assert block_rows(MFConfig(**{**opts, "threads": 1}).resolved()) == DEFAULT_ROWS_PER_GROUP
    assert block_rows(MFConfig(**{**opts, "schedule": "hogwild"}).resolved()) == DEFAULT_ROWS_PER_GROUP


def test_predictions_are_the_factor_model(split):
    X, y, _ = split["train"]
    est = HogwildRecommender(**FIXED).fit(X, y)
    Xt = np.r_[split["test"][0][:500], [[299, 10_000], [10_000, 5], [10_000, 10_000]]]
    P, Q = np.asarray(est.user_factors_, np.float64), np.asarray(est.item_factors_, np.float64)
    bu, bi = np.asarray(est.user_bias_, np.float64), np.asarray(est.item_bias_, np.float64)
    u, i = Xt[:, 0], Xt[:, 1]
    seen_u, seen_i = u < len(bu), i < len(bi)  # ids beyond the model: bias and factors 0
    z = est.global_mean_ + np.where(seen_u, bu[np.minimum(u, len(bu) - 1)], 0) \
        + np.where(seen_i, bi[np.minimum(i, len(bi) - 1)], 0) \
        + np.where(seen_u & seen_i, (P[np.minimum(u, len(P) - 1)] * Q[np.minimum(i, len(Q) - 1)]).sum(1), 0)
    z = np.clip(z, y.min(), y.max())
    np.testing.assert_allclose(est.predict(Xt), z, rtol=1e-5, atol=1e-5)
    assert est.predict([[10_000, 10_000]])[0] == pytest.approx(est.global_mean_)
    assert est.score(Xt[:500], split["test"][1][:500]) == pytest.approx(
        r2_score(split["test"][1][:500], z[:500]), abs=1e-5)


def test_learns_the_low_rank_truth(split):
    X, y, _ = split["train"]
    Xt, yt, _ = split["test"]
    est = HogwildRecommender(seed=1).fit(X, y)  # the defaults: holdout, early stopping
    baseline = rmse(np.full(len(yt), y.mean()), yt)
    assert rmse(est.predict(Xt), yt) < 0.6 * baseline
    assert est.best_epoch_ is not None and "holdout" in est.history_[-1]


def test_a_file_fits_and_scores_as_its_arrays(split, tmp_path):
    X, y, train = split["train"]
    Xt, yt, test = split["test"]
    f = HogwildRecommender(**FIXED).fit(train)  # streamed: its row groups are the blocks
    ref = train_mf(train, tmp_path / "m", **FIXED)
    np.testing.assert_array_equal(f.predict(Xt), ref.predict(Xt[:, 0], Xt[:, 1]))
    np.testing.assert_array_equal(f.predict(test), f.predict(Xt))
    assert f.score(test) == pytest.approx(f.score(Xt, yt), abs=1e-9)
    with pytest.raises(ConfigError, match="own ratings"):
        HogwildRecommender(**FIXED).fit(train, y)


def test_valid_arrays_are_watched(split):
    X, y, _ = split["train"]
    Xt, yt, _ = split["test"]
    est = HogwildRecommender(rank=8, epochs=5, threads=1).fit(X, y, valid=(Xt, yt))
    assert all("valid" in h for h in est.history_)
    assert est.history_[-1]["valid"]["rmse"] == pytest.approx(rmse(est.predict(Xt), yt), rel=1e-4)


@pytest.mark.parametrize("X, y, match", [
    ([[0, 1], [-1, 2]], [3.0, 4.0], "row 1 .*non-negative"),
    ([[0, 1], [1.5, 2]], [3.0, 4.0], "row 1 .*whole numbers"),
    ([[0, 1], [np.nan, 2]], [3.0, 4.0], "row 1"),
    ([[0, 1, 2]], [3.0], r"shape \(n, 2\)"),
    ([["a", "b"]], [3.0], "whole numbers"),
    (np.zeros((0, 2), int), [], "no .*pairs"),
    ([[0, 1], [1, 2]], [3.0, np.nan], "rating 1 .*finite"),
    ([[0, 1], [1, 2]], [3.0], r"y.shape"),
    ([[0, 1], [1, 2]], None, "needs the ratings"),
])
def test_bad_input_is_refused_with_the_row(X, y, match):
    with pytest.raises(ValueError, match=match):
        HogwildRecommender(**FIXED).fit(X, y)


def test_bad_options_get_the_command_lines_messages():
    X, y = [[0, 1], [1, 2]], [3.0, 4.0]
    with pytest.raises(ConfigError, match="--rank"):
        HogwildRecommender(rank=0).fit(X, y)
    with pytest.raises(ConfigError, match="--n-users"):
        HogwildRecommender(n_users=0).fit(X, y)
    with pytest.raises(ValueError, match="y=None"):
        HogwildRecommender(feedback="implicit").fit(X, y)
    with pytest.raises(ValueError, match="sample_weight"):
        HogwildRecommender(**FIXED).fit(X, y, sample_weight=[1.0, -1.0])
    with pytest.raises(Exception, match="not fitted"):
        HogwildRecommender().predict(X)


def test_sample_weights_reach_the_model(split):
    X, y, _ = split["train"]
    w = np.where(X[:, 0] % 2 == 0, 3.0, 0.5)
    a = HogwildRecommender(**FIXED).fit(X, y)
    b = HogwildRecommender(**FIXED).fit(X, y, sample_weight=w)
    assert not np.array_equal(a.predict(X[:100]), b.predict(X[:100]))


def test_the_temporary_model_lives_in_memory_and_goes_with_the_estimator(split, monkeypatch, tmp_path):
    monkeypatch.setattr(H, "MEMORY_DIR", tmp_path / "shm")  # /dev/shm's stand-in: the same rule
    H.MEMORY_DIR.mkdir()
    monkeypatch.delenv("TMPDIR", raising=False)
    X, y, _ = split["train"]
    est = HogwildRecommender(**FIXED).fit(X, y)
    root = est.model_path_.parent
    assert root.parent == H.MEMORY_DIR and root.name.startswith(f"streamhog-model-{H.pid_namespace()}-{os.getpid()}-")
    del est
    gc.collect()
    assert not root.exists()
    # Too large a model for memory, or $TMPDIR set by the user: the disk.
    monkeypatch.setattr(H, "MEMORY_SHARE", 1e-12)
    assert HogwildRecommender(**FIXED).fit(X, y).model_path_.parent.parent != H.MEMORY_DIR
    monkeypatch.setattr(H, "MEMORY_SHARE", 0.25)
    assert H.memory_home_dir(1 << 20) == H.MEMORY_DIR
    monkeypatch.setenv("TMPDIR", str(H.MEMORY_DIR.parent))
    assert H.memory_home_dir(1 << 20) is None


def test_a_killed_processs_homes_are_removed_and_no_one_elses(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    pid, ns = int(dead.stdout), H.pid_namespace()
    gone = tmp_path / f"streamhog-model-{ns}-{pid}-abc"
    live = tmp_path / f"streamhog-model-{ns}-{os.getpid()}-def"
    elsewhere = tmp_path / f"streamhog-model-{ns + 1}-{pid}-ghi"  # another pid namespace: its pids are not ours
    other = tmp_path / f"someone-else-{ns}-{pid}-x"
    for d in (gone, live, elsewhere, other):
        (d / "model").mkdir(parents=True)
    assert H.remove_dead_homes(tmp_path) == [gone]
    assert not gone.exists() and live.exists() and elsewhere.exists() and other.exists()


def test_pickle_carries_the_model_by_value(split):
    X, y, _ = split["train"]
    est = HogwildRecommender(**FIXED).fit(X, y)
    copy = pickle.loads(pickle.dumps(est))
    assert copy.model_path_ != est.model_path_
    np.testing.assert_array_equal(copy.predict(X[:200]), est.predict(X[:200]))
    del est
    gc.collect()
    assert copy.predict(X[:5]).shape == (5,)


def test_load_reopens_a_model_directory(split, tmp_path):
    X, y, train = split["train"]
    est = HogwildRecommender(**FIXED, model_dir=tmp_path / "m").fit(X, y)
    back = HogwildRecommender.load(tmp_path / "m")
    assert back.rank == 8 and back.epochs == 6
    np.testing.assert_array_equal(back.predict(X[:200]), est.predict(X[:200]))
    with pytest.raises(Exception, match="already exists"):
        HogwildRecommender(**FIXED, model_dir=tmp_path / "m").fit(X, y)
    train_mf(train, tmp_path / "cli", rank=4, epochs=2, threads=1)  # what `streamhog train --loss mf` makes
    assert HogwildRecommender.load(tmp_path / "cli").rank == 4
    HogwildRegressor(epochs=1, threads=1, model_dir=tmp_path / "lin").fit([[0.0, 1.0], [1.0, 0.0]] * 5, [1.0, 2.0] * 5)
    with pytest.raises(ModelError):
        HogwildRecommender.load(tmp_path / "lin")


def test_model_selection_clones_and_scores(split):
    X, y, _ = split["train"]
    search = GridSearchCV(HogwildRecommender(epochs=4, holdout=0.0, early_stopping=0, threads=1),
                          {"rank": [2, 8]}, cv=KFold(2, shuffle=True, random_state=0))
    search.fit(X[:6000], y[:6000])
    assert search.best_params_["rank"] in (2, 8) and np.isfinite(search.best_score_)
    scores = cross_val_score(clone(search.best_estimator_), X[:6000], y[:6000], cv=2)
    assert scores.shape == (2,) and np.isfinite(scores).all()


@pytest.mark.parametrize("schedule", ["hogwild", "strata"])
def test_more_threads_than_cores_train_as_one(split, schedule):
    X, y, _ = split["train"]
    Xt, yt, _ = split["test"]
    opts = dict(rank=8, epochs=8, holdout=0.0, early_stopping=0, optimizer="sgd", schedule=schedule)
    one = rmse(HogwildRecommender(**opts, threads=1).fit(X, y).predict(Xt), yt)
    many = rmse(HogwildRecommender(**opts, threads=4 * (os.cpu_count() or 1)).fit(X, y).predict(Xt), yt)
    assert many == pytest.approx(one, abs=0.02)


def test_implicit_feedback_gives_preferences(split):
    X = split["train"][0]
    est = HogwildRecommender(feedback="implicit", rank=8, epochs=3, threads=1).fit(X)
    p = est.predict(X[:300])
    assert ((p > 0) & (p < 1)).all()
    with pytest.raises(ConfigError, match="implicit"):
        est.score(X[:10], np.ones(10))


def test_recommend_ranks_by_the_predicted_score(split):
    X, y, _ = split["train"]
    est = HogwildRecommender(**{**FIXED, "clip": False}).fit(X, y)
    recs = est.recommend([7], top=5)
    items = np.unique(X[:, 1])
    scores = est.predict(np.c_[np.full(len(items), 7), items])
    best = items[np.argsort(-scores, kind="stable")[:5]]
    assert recs["item"].tolist() == best.tolist()


def test_only_a_temporary_models_checkpoints_skip_msync(split, monkeypatch, tmp_path):
    flushed = []
    monkeypatch.setattr(np.memmap, "flush", lambda self: flushed.append(1))
    X, y, _ = split["train"]
    HogwildRecommender(**FIXED).fit(X, y)
    assert not flushed
    HogwildRecommender(**FIXED, model_dir=tmp_path / "m").fit(X, y)  # the user's directory: durable
    assert flushed
