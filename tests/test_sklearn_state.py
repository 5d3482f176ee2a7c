"""The estimators' state: partial_fit continues the run (against a NumPy reference of the
update rules), pickling carries the model by value (up to pickle_limit), the model lives in
model_dir or in a temporary directory removed with the estimator, ``load`` reopens a model
directory, and bad arguments get the command line's messages."""
from __future__ import annotations

import copy
import gc
import math
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_svmlight_file

import streamhog
from streamhog.cli import main
from streamhog.datasets import a9a
from streamhog.errors import ConfigError, ModelError, ModelTooLargeError, OutputExistsError
from streamhog.sklearn import HogwildClassifier, HogwildRegressor


@pytest.fixture(scope="module")
def a9a_data():
    X, y = load_svmlight_file(a9a("train"), n_features=123)
    Xt, yt = load_svmlight_file(a9a("test"), n_features=123)
    return X.tocsr()[:6000], y[:6000], Xt.tocsr()[:2000], yt[:2000]


def small_batches(rng, n=300, d=8):
    """Two dense batches of a noisy linear problem (values exact in float32)."""
    out = []
    w = rng.normal(size=d)
    for _ in range(2):
        X = np.round(rng.normal(size=(n, d)) * (rng.random((n, d)) < 0.6), 3).astype(np.float32).astype(np.float64)
        out.append((X, (X @ w + 0.3 * rng.normal(size=n) > 0).astype(int)))
    return out


def reference_passes(batches, optimizer, lr, l2=1e-6, beta=1.0, power_t=0.5, seed=0, reset_state=False):
    """The kernels' rules (kernels/optimizers.py) written out with NumPy for logistic loss,
    one pass per batch; weights, accumulators, intercept state and step count carry over
    between passes (``reset_state``: the accumulators do not). Row order: the engine's,
    a function of (seed, pass, block) with one block per batch."""
    d = batches[0][0].shape[1]
    f32 = lambda a: np.asarray(a, np.float32).astype(np.float64)  # noqa: E731 - stored as float32
    w, acc, b, b_acc, t = np.zeros(d), np.zeros(d), 0.0, 0.0, 0
    for epoch, (X, y) in enumerate(batches):
        if reset_state:
            acc, b_acc = np.zeros(d), 0.0
        for i in np.random.default_rng([seed, epoch, 0]).permutation(len(y)):
            idx = np.flatnonzero(X[i])
            x = X[i, idx]
            target = 1.0 if y[i] > 0 else -1.0
            eta = lr if optimizer == "adagrad" else lr / (1.0 + t) ** power_t
            z = b + float(w[idx] @ x)
            g = -target / (1.0 + math.exp(target * z))
            if optimizer == "adagrad":
                gr = g * x + l2 * w[idx]
                acc[idx] += gr ** 2
                w[idx] -= eta * gr / np.sqrt(beta + acc[idx])
                b_acc += g * g
                b -= eta * g / math.sqrt(beta + b_acc)
            else:
                w[idx] = w[idx] * (1 - eta * l2) - eta * g * x
                b -= eta * g
            w, acc, t = f32(w), f32(acc), t + 1
    return w, b


# -- partial_fit ----------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer,lr", [("adagrad", 0.1), ("sgd", 1.0)])
def test_partial_fit_continues_the_run_as_the_update_rules_say(rng, optimizer, lr):
    """AdaGrad's accumulators (and the intercept's) and SGD's step count carry over between
    calls: two passes equal the NumPy reference of one continued run, and differ from a
    reference whose state restarts."""
    batches = small_batches(rng)
    clf = HogwildClassifier(optimizer=optimizer, threads=1)
    for X, y in batches:
        clf.partial_fit(X, y, classes=[0, 1])
    w, b = reference_passes(batches, optimizer, lr)
    np.testing.assert_allclose(clf.coef_[0], w, rtol=2e-5, atol=1e-6)
    assert clf.intercept_[0] == pytest.approx(b, rel=1e-6, abs=1e-9)
    assert clf.n_iter_ == 2 and [r["epoch"] for r in clf.history_] == [1, 2]
    if optimizer == "adagrad":
        restarted, _ = reference_passes(batches, optimizer, lr, reset_state=True)
        assert np.abs(restarted - w).max() > 1e-3  # the test sees the state
        assert np.asarray(np.load(clf.model_path_ / "accum.npy")).any()


def test_partial_fit_after_fit_continues_it(a9a_data):
    X, y, Xt, _ = a9a_data
    fitted = HogwildClassifier(epochs=1, threads=1).fit(X[:3000], y[:3000])
    passes = HogwildClassifier(threads=1).partial_fit(X[:3000], y[:3000], classes=[-1, 1])
    assert np.array_equal(fitted.coef_, passes.coef_)
    before = fitted.coef_.copy()
    for est in (fitted, passes):
        est.partial_fit(X[3000:], y[3000:])
    assert np.array_equal(fitted.coef_, passes.coef_) and fitted.intercept_[0] == passes.intercept_[0]
    assert not np.array_equal(before, fitted.coef_) and fitted.n_iter_ == 2


def test_partial_fit_takes_its_classes_up_front(a9a_data):
    X, y, _, _ = a9a_data
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        HogwildClassifier().partial_fit(X[:100], y[:100])
    clf = HogwildClassifier(threads=1).partial_fit(X[:100], np.where(y[:100] > 0, "b", "a"), classes=["a", "b"])
    clf.partial_fit(X[100:200], np.full(100, "b"))  # one class in a batch is fine
    with pytest.raises(ValueError, match="not among the classes"):
        clf.partial_fit(X[:10], np.full(10, "c"))
    with pytest.raises(ValueError, match="differs from the classes of the first call"):
        clf.partial_fit(X[:10], np.full(10, "a"), classes=["a", "b", "c"])
    with pytest.raises(ValueError, match="X has 122 features, but HogwildClassifier is expecting 123"):
        clf.partial_fit(X[:10, :122], np.full(10, "a"))
    # softmax: K from classes, though the first batch holds two of them
    digits_like = np.eye(4)[np.arange(400) % 4] + 0.01
    soft = HogwildClassifier(threads=1).partial_fit(digits_like[:200][np.arange(200) % 4 < 2],
                                                    (np.arange(200) % 4)[np.arange(200) % 4 < 2], classes=[0, 1, 2, 3])
    assert soft.loss_ == "softmax" and soft.coef_.shape == (4, 4)
    for _ in range(5):
        soft.partial_fit(digits_like, np.arange(400) % 4)
    assert soft.score(digits_like, np.arange(400) % 4) == 1.0


def test_partial_fit_streams_a_dataset_too(a9a_data, tmp_path):
    X, y, _, _ = a9a_data
    path = tmp_path / "part.parquet"
    from sklearn.datasets import dump_svmlight_file

    dump_svmlight_file(X[:2000], y[:2000], str(tmp_path / "part.svm"), zero_based=False)
    streamhog.convert(tmp_path / "part.svm", path, n_features=123)
    arrays = HogwildClassifier(threads=1).partial_fit(X[:2000], y[:2000], classes=[-1, 1])
    arrays.partial_fit(X[:2000], y[:2000])
    files = HogwildClassifier(threads=1).partial_fit(path).partial_fit(path)
    assert np.array_equal(arrays.coef_, files.coef_) and arrays.intercept_[0] == files.intercept_[0]


# -- pickling ---------------------------------------------------------------------------------
def test_joblib_dump_carries_the_model_not_its_directory(a9a_data, tmp_path):
    X, y, Xt, _ = a9a_data
    clf = HogwildClassifier(epochs=2, threads=1).fit(X, np.where(y > 0, "rich", "not"))
    expected = clf.predict_proba(Xt)
    joblib.dump(clf, tmp_path / "clf.joblib")
    home = clf.model_path_.parent
    del clf
    gc.collect()
    assert not home.exists()  # the original's temporary directory went with it
    loaded = joblib.load(tmp_path / "clf.joblib")
    assert loaded.model_path_.parent != home and loaded.model_path_.exists()
    np.testing.assert_array_equal(loaded.predict_proba(Xt), expected)
    assert set(loaded.predict(Xt)) == {"rich", "not"}


def test_unpickled_estimators_continue_the_same_run(a9a_data):
    X, y, _, _ = a9a_data
    clf = HogwildClassifier(threads=1).partial_fit(X[:3000], y[:3000], classes=[-1, 1])
    twin = pickle.loads(pickle.dumps(clf))
    copied = copy.deepcopy(clf)
    before = clf.coef_.copy()
    clf.partial_fit(X[3000:], y[3000:])
    twin.partial_fit(X[3000:], y[3000:])
    assert np.array_equal(clf.coef_, twin.coef_) and clf.intercept_[0] == twin.intercept_[0]
    # weights.npy: the default's records hold the accumulators and scales too
    assert np.array_equal(np.load(clf.model_path_ / "weights.npy"), np.load(twin.model_path_ / "weights.npy"))
    assert np.array_equal(copied.coef_, before)  # a deep copy is independent
    assert len(pickle.dumps(HogwildClassifier())) < 5000  # unfitted: parameters only


def test_a_model_above_the_pickle_limit_says_to_keep_its_directory(a9a_data, tmp_path):
    X, y, _, _ = a9a_data
    # 2^20 records of weight, accumulator, scale and pad (the normalized rule's): 16 MiB
    clf = HogwildClassifier(epochs=1, threads=1, hash_bits=20).fit(X, y)
    clf.pickle_limit = 1 << 20
    with pytest.raises(ModelTooLargeError, match=r"16\.0 MiB of arrays.*model_dir=DIR.*HogwildClassifier\.load"):
        joblib.dump(clf, tmp_path / "big.joblib")
    clf.pickle_limit = 17 << 20
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict(X[:100]), clf.predict(X[:100]))


# -- where the model lives -------------------------------------------------------------------
def test_temporary_model_directories_are_removed_with_the_estimator(a9a_data):
    X, y, _, _ = a9a_data
    clf = HogwildRegressor(epochs=1, threads=1).fit(X[:500], y[:500])
    first = clf.model_path_
    assert first.is_dir() and Path(tempfile.gettempdir()) in first.parents
    clf.fit(X[:500], y[:500])
    assert not first.parent.exists() and clf.model_path_.is_dir()  # a refit replaced it
    second = clf.model_path_.parent
    del clf
    gc.collect()
    assert not second.exists()


def test_temporary_model_directories_are_removed_at_exit():
    code = ("import numpy as np; from streamhog.sklearn import HogwildRegressor\n"
            "r = HogwildRegressor(epochs=1, threads=1).fit(np.eye(5), np.arange(5.0))\n"
            "print(r.model_path_)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    path = Path(out.stdout.strip())
    assert path.name == "model" and not path.parent.exists()


def test_model_dir_holds_the_model_and_load_reopens_it(a9a_data, tmp_path):
    pd = pytest.importorskip("pandas")
    X, y, Xt, _ = a9a_data
    frame = pd.DataFrame(X[:2000].toarray(), columns=[f"f{i}" for i in range(123)])
    labels = np.where(y[:2000] > 0, "rich", "not")
    clf = HogwildClassifier(epochs=2, threads=1, l2=1e-5, model_dir=tmp_path / "m").fit(frame, labels)
    assert clf.model_path_ == tmp_path / "m" and streamhog.Model.open(tmp_path / "m").n_features == 123
    clf.fit(frame, labels)  # its own model: replaced
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        HogwildClassifier(model_dir=tmp_path / "m").fit(frame, labels)
    loaded = HogwildClassifier.load(tmp_path / "m")
    assert loaded.get_params()["l2"] == 1e-5 and loaded.classes_.tolist() == ["not", "rich"]
    assert loaded.feature_names_in_.tolist() == list(frame.columns)
    test = pd.DataFrame(Xt[:300].toarray(), columns=frame.columns)
    np.testing.assert_array_equal(loaded.predict_proba(test), clf.predict_proba(test))
    fitted = len(streamhog.Model.open(tmp_path / "m").meta["history"])  # the epochs the refit retrained
    loaded.partial_fit(frame, labels)  # continues in place
    assert len(streamhog.Model.open(tmp_path / "m").meta["history"]) == fitted + 1
    del clf, loaded
    gc.collect()
    assert (tmp_path / "m" / "weights.npy").exists()  # the user's directory stays
    with pytest.raises(ModelError, match="not a model for HogwildRegressor"):
        HogwildRegressor.load(tmp_path / "m")


def test_overwrite_replaces_models_only(a9a_data, tmp_path):
    X, y, _, _ = a9a_data
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not a streamhog model directory"):
        HogwildClassifier(model_dir=tmp_path / "notes", overwrite=True).fit(X[:100], y[:100])
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"
    HogwildClassifier(epochs=1, model_dir=tmp_path / "m").fit(X[:100], y[:100])
    HogwildClassifier(epochs=1, model_dir=tmp_path / "m", overwrite=True).fit(X[:200], y[:200])
    assert streamhog.Model.open(tmp_path / "m").meta["data"]["n_rows"] == 200
    with pytest.raises(streamhog.StreamhogError, match="local"):
        HogwildClassifier(model_dir="s3://bucket/model").fit(X[:100], y[:100])


def test_load_opens_a_model_the_command_line_trained(a9a_data, tmp_path):
    X, y, Xt, _ = a9a_data
    assert main(["convert", str(a9a("train")), str(tmp_path / "a.parquet"), "--quiet"]) == 0
    assert main(["train", str(tmp_path / "a.parquet"), "--model", str(tmp_path / "m"), "--quiet", "--epochs", "1"]) == 0
    clf = HogwildClassifier.load(tmp_path / "m")
    assert clf.classes_.tolist() == [-1, 1] and clf.n_features_in_ == 123 and clf.epochs == 1
    np.testing.assert_array_equal(clf.predict_proba(Xt)[:, 1], streamhog.Model.open(tmp_path / "m").predict(Xt))


# -- bad arguments: the command line's checks and messages -------------------------------------
BAD = [("threads", 0), ("epochs", "3"), ("epochs", 0), ("lr", -1.0), ("holdout", 1.5), ("l1", 1.0),
       ("hash_bits", 40), ("optimizer", "adam"), ("sync", "maybe"), ("early_stopping", -1), ("lr_decay", 2.0),
       ("seed", 1.5), ("keep_snapshots", -1), ("checkpoint_every", 0)]
#: Those the command line's parser lets through to the same check (the others it refuses itself).
CLI_REACHES = {"lr", "holdout", "l1", "hash_bits", "early_stopping", "lr_decay"}


@pytest.mark.parametrize("name,value", BAD)
def test_bad_arguments_get_the_command_lines_messages(tmp_path, capsys, name, value):
    X, y = np.eye(4), [0, 1, 0, 1]
    with pytest.raises(ConfigError) as from_estimator:
        HogwildClassifier(**{name: value}, model_dir=tmp_path / "m").fit(X, y)
    assert not (tmp_path / "m").exists()  # refused before anything was made
    with pytest.raises(ConfigError) as from_train:
        streamhog.train(streamhog.InMemoryData(X, y), tmp_path / "t", **{name: value})
    assert str(from_estimator.value) == str(from_train.value)
    if name in CLI_REACHES:
        streamhog.convert(a9a("test"), tmp_path / "d.parquet")
        assert main(["train", str(tmp_path / "d.parquet"), "--model", str(tmp_path / "c"),
                     f"--{name.replace('_', '-')}", str(value)]) == 1
        assert str(from_estimator.value) in capsys.readouterr().err


def test_estimator_arguments_are_checked_at_fit(tmp_path):
    with pytest.raises(ConfigError, match="loss must be one of logistic, hinge, softmax"):
        HogwildClassifier(loss="squared").fit(np.eye(2), [0, 1])
    with pytest.raises(ConfigError, match="loss must be one of squared, huber"):
        HogwildRegressor(loss="logistic").fit(np.eye(2), [0, 1])
    with pytest.raises(ConfigError, match="verbose"):
        HogwildRegressor(verbose="yes").fit(np.eye(2), [0, 1])
    with pytest.raises(ValueError, match="sample_weight must be >= 0"):
        HogwildRegressor().fit(np.eye(2), [0, 1], sample_weight=[1, -1])
