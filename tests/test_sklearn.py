"""The scikit-learn estimators (streamhog/sklearn.py): the same model as the command line on
the same data and seed (bit for bit, one thread), labels of any kind, quality against
scikit-learn's exact solvers, Pipeline / GridSearchCV / cross_val_score, datasets streamed
from paths and URLs. partial_fit, pickling and the model directory: tests/test_sklearn_state.py."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import expit, softmax
from sklearn.datasets import dump_svmlight_file, load_digits, load_svmlight_file
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, log_loss, r2_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler

import streamhog
from streamhog.cli import main
from streamhog.datasets import a9a
from streamhog.errors import ConfigError
from streamhog.sklearn import HogwildClassifier, HogwildRegressor


@pytest.fixture(scope="module")
def a9a_data():
    X, y = load_svmlight_file(a9a("train"), n_features=123)
    Xt, yt = load_svmlight_file(a9a("test"), n_features=123)
    return X.tocsr(), y, Xt.tocsr(), yt


@pytest.fixture(scope="module")
def a9a_parquet(tmp_path_factory):
    path = tmp_path_factory.mktemp("a9a") / "a9a.parquet"
    assert main(["convert", str(a9a("train")), str(path), "--quiet"]) == 0
    return path


def cli_model(data, model_dir, *args):
    assert main(["train", str(data), "--model", str(model_dir), "--threads", "1", "--quiet", *args]) == 0
    return streamhog.Model.open(model_dir)


def libsvm_to_parquet(X, y, tmp_path, name):
    """The data as a user of the command line would have it: LIBSVM text, converted."""
    dump_svmlight_file(X, y, str(tmp_path / f"{name}.svm"), zero_based=False)
    assert main(["convert", str(tmp_path / f"{name}.svm"), str(tmp_path / f"{name}.parquet"), "--quiet",
                 "--n-features", str(X.shape[1])]) == 0
    return tmp_path / f"{name}.parquet"


def without_times(history):
    return [{k: v for k, v in r.items() if "seconds" not in k and k != "examples_per_s"} for r in history]


# -- the same model as the command line ------------------------------------------------------
def test_binary_classifier_is_the_cli_model_bit_for_bit(a9a_data, a9a_parquet, tmp_path):
    """Default hyper-parameters (5 epochs, holdout, early stopping), labels as strings."""
    X, y, _, _ = a9a_data
    reference = cli_model(a9a_parquet, tmp_path / "cli", "--seed", "3")
    labels = np.where(y > 0, ">50K", "<=50K")  # sorted: "<=50K" is class 0, ">50K" class 1
    clf = HogwildClassifier(threads=1, seed=3).fit(X, labels)
    assert np.array_equal(clf.coef_[0], reference.weights) and clf.intercept_[0] == reference.intercept
    assert without_times(clf.history_) == without_times(reference.meta["history"])
    assert clf.best_epoch_ == reference.meta["training"]["best_epoch"]
    from_path = HogwildClassifier(threads=1, seed=3).fit(a9a_parquet)
    assert np.array_equal(from_path.coef_[0], reference.weights) and from_path.intercept_[0] == reference.intercept
    assert from_path.classes_.tolist() == [-1, 1] and from_path.n_features_in_ == 123


@pytest.mark.parametrize("optimizer", ["sgd", "ftrl", "normalized"])
def test_every_optimizer_and_option_reaches_the_cli_model(a9a_data, a9a_parquet, tmp_path, optimizer):
    X, y, _, _ = a9a_data
    args = ["--optimizer", optimizer, "--epochs", "2", "--l2", "1e-5", "--holdout", "0.2", "--seed", "1"]
    reference = cli_model(a9a_parquet, tmp_path / "cli", *args, *(["--l1", "2"] if optimizer == "ftrl" else []))
    clf = HogwildClassifier(optimizer=optimizer, epochs=2, l2=1e-5, holdout=0.2, seed=1, threads=1,
                            l1=2.0 if optimizer == "ftrl" else 0.0).fit(X, y)
    assert np.array_equal(clf.coef_[0], reference.weights) and clf.intercept_[0] == reference.intercept


def test_multiclass_labels_train_softmax_as_the_cli_does(tmp_path):
    digits = load_digits()
    X, y = digits.data / 16.0, digits.target  # values k/16: exact in float32
    path = libsvm_to_parquet(X, y, tmp_path, "digits")
    reference = cli_model(path, tmp_path / "cli", "--loss", "softmax", "--epochs", "3")
    names = np.array([f"digit-{k}" for k in range(10)])[y]  # sorted as 0..9
    clf = HogwildClassifier(epochs=3, threads=1).fit(X, names)
    assert clf.loss_ == "softmax" and clf.coef_.shape == (10, 64) and clf.intercept_.shape == (10,)
    assert np.array_equal(clf.coef_.T, reference.weights) and np.array_equal(clf.intercept_, reference.intercept)
    assert set(clf.predict(X[:50])) <= set(names) and clf.score(X, names) > 0.9


def test_regressor_is_the_cli_model_bit_for_bit(rng, tmp_path):
    X = sp.random(3000, 40, density=0.2, random_state=1, format="csr", dtype=np.float32).astype(np.float64)
    true_w = rng.normal(size=40)
    y = (X @ true_w + 0.5 + 0.1 * rng.normal(size=3000)).astype(np.float32).astype(np.float64)
    path = libsvm_to_parquet(X, y, tmp_path, "reg")
    for loss in ("squared", "huber"):
        reference = cli_model(path, tmp_path / f"cli-{loss}", "--loss", loss)
        reg = HogwildRegressor(loss=loss, threads=1).fit(X, y)
        assert np.array_equal(reg.coef_, reference.weights) and reg.intercept_[0] == reference.intercept


# -- labels, predictions ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["01", "12", "strings", "bool", "float"])
def test_labels_of_any_kind_give_the_same_model(a9a_data, kind):
    X, y, Xt, _ = a9a_data
    X, y = X[:4000], y[:4000]
    pos = y > 0
    labels = {"01": pos.astype(int), "12": np.where(pos, 2, 1), "strings": np.where(pos, "yes", "no"),
              "bool": pos, "float": np.where(pos, 3.0, -1.0)}[kind]
    base = HogwildClassifier(epochs=2, threads=1).fit(X, y)
    clf = HogwildClassifier(epochs=2, threads=1).fit(X, labels)
    assert np.array_equal(clf.coef_, base.coef_) and np.array_equal(clf.intercept_, base.intercept_)
    assert clf.classes_.tolist() == sorted(set(labels.tolist()))
    predicted = clf.predict(Xt[:500])
    assert predicted.dtype == clf.classes_.dtype
    assert np.array_equal(predicted == clf.classes_[1], base.predict(Xt[:500]) > 0)


def test_probabilities_and_margins_agree(a9a_data):
    X, y, Xt, _ = a9a_data
    clf = HogwildClassifier(epochs=1, threads=1).fit(X[:5000], y[:5000])
    margins, proba = clf.decision_function(Xt[:300]), clf.predict_proba(Xt[:300])
    assert margins.shape == (300,) and proba.shape == (300, 2)
    np.testing.assert_allclose(proba[:, 1], expit(margins), rtol=1e-12)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(clf.predict(Xt[:300]), clf.classes_[(margins > 0).astype(int)])
    # the model is x·w + b with the weights coef_ and intercept_ show
    np.testing.assert_allclose(margins, Xt[:300] @ clf.coef_[0].astype(np.float64) + clf.intercept_[0], rtol=1e-6)
    digits = load_digits()
    soft = HogwildClassifier(epochs=2, threads=1).fit(digits.data / 16, digits.target)
    m, p = soft.decision_function(digits.data[:100] / 16), soft.predict_proba(digits.data[:100] / 16)
    np.testing.assert_allclose(p, softmax(m, axis=1), rtol=1e-6, atol=1e-12)
    assert np.array_equal(soft.predict(digits.data[:100] / 16), soft.classes_[p.argmax(axis=1)])
    hinge = HogwildClassifier(loss="hinge", epochs=1, threads=1).fit(X[:2000], y[:2000])
    assert not hasattr(hinge, "predict_proba")  # margins only: decision_function
    with pytest.raises(ValueError, match="Only binary classification"):
        HogwildClassifier(loss="hinge", threads=1).fit(digits.data, digits.target)


# -- quality against scikit-learn's exact solvers -----------------------------------------------
def test_classifier_matches_exact_logistic_regression(a9a_data):
    X, y, Xt, yt = a9a_data
    clf = HogwildClassifier(threads=1).fit(X, y)
    exact = LogisticRegression(C=1e4, max_iter=2000).fit(X, y)
    assert log_loss(yt, clf.predict_proba(Xt)) < log_loss(yt, exact.predict_proba(Xt)) + 0.005  # 0.3237
    assert abs(clf.score(Xt, yt) - exact.score(Xt, yt)) < 0.005


def test_eight_threads_on_two_cores_still_learn_a9a(a9a_data):
    """Hogwild! with more threads than cores: the races cost nothing measurable."""
    X, y, Xt, yt = a9a_data
    clf = HogwildClassifier(threads=8, epochs=2).fit(X, y)
    assert log_loss(yt, clf.predict_proba(Xt)) < 0.333 and clf.score(Xt, yt) > 0.845


def test_regressor_recovers_a_known_linear_model(rng):
    X = rng.normal(size=(20000, 10))
    true_w = rng.normal(size=10)
    y = X @ true_w + 2.0 + 0.1 * rng.normal(size=20000)
    reg = HogwildRegressor(threads=1, optimizer="sgd", epochs=5).fit(X[:15000], y[:15000])
    exact = LinearRegression().fit(X[:15000], y[:15000])
    np.testing.assert_allclose(reg.coef_, true_w, atol=0.02)
    assert reg.intercept_[0] == pytest.approx(2.0, abs=0.02)
    assert reg.score(X[15000:], y[15000:]) == pytest.approx(exact.score(X[15000:], y[15000:]), abs=0.002)


# -- scikit-learn's tools ------------------------------------------------------------------------
def test_cross_val_score_is_the_folds_fitted_by_hand(a9a_data):
    X, y, _, _ = a9a_data
    X, y = X[:6000], y[:6000]
    est = HogwildClassifier(epochs=2, threads=1)
    scores = cross_val_score(est, X, y, cv=3)
    by_hand = [accuracy_score(y[te], HogwildClassifier(epochs=2, threads=1).fit(X[tr], y[tr]).predict(X[te]))
               for tr, te in StratifiedKFold(3).split(X, y)]
    assert scores.tolist() == by_hand and min(scores) > 0.82


def test_grid_search_over_a_pipeline_in_worker_processes(a9a_data):
    """n_jobs=2: the estimators travel to loky's worker processes and back (pickling)."""
    X, y, Xt, yt = a9a_data
    pipe = make_pipeline(MaxAbsScaler(), HogwildClassifier(epochs=1, threads=1))
    grid = GridSearchCV(pipe, {"hogwildclassifier__l2": [1e-6, 0.05], "hogwildclassifier__optimizer": ["adagrad", "sgd"]},
                        cv=2, n_jobs=2).fit(X[:8000], y[:8000])
    assert len(grid.cv_results_["params"]) == 4
    assert grid.best_params_["hogwildclassifier__l2"] == 1e-6  # l2 = 0.05 per example shrinks every weight hard
    assert grid.score(Xt, yt) > 0.84
    fitted = grid.best_estimator_[-1]
    assert fitted.model_path_.exists() and fitted.n_features_in_ == 123


def test_feature_names_of_a_data_frame_are_kept_and_checked(a9a_data):
    pd = pytest.importorskip("pandas")
    X, y, _, _ = a9a_data
    frame = pd.DataFrame(X[:500].toarray(), columns=[f"f{i}" for i in range(123)])
    clf = HogwildClassifier(epochs=1, threads=1).fit(frame, y[:500])
    assert clf.feature_names_in_.tolist() == list(frame.columns)
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(frame.to_numpy())


# -- datasets: paths, URLs, other tools' Parquet -----------------------------------------------
def test_a_dataset_is_streamed_and_scored_like_the_arrays(a9a_data, a9a_parquet, tmp_path):
    fsspec = pytest.importorskip("fsspec")
    X, y, _, _ = a9a_data
    clf = HogwildClassifier(epochs=2, threads=1).fit(X, y)
    fs = fsspec.filesystem("memory")
    with open(a9a_parquet, "rb") as f:
        fs.pipe("/sklearn-test/a9a.parquet", f.read())
    url = "memory://sklearn-test/a9a.parquet"
    try:
        streamed = HogwildClassifier(epochs=2, threads=1).fit(url)
        assert np.array_equal(streamed.coef_, clf.coef_) and np.array_equal(streamed.intercept_, clf.intercept_)
        assert np.array_equal(streamed.predict(url), clf.predict(X))
        assert streamed.score(url) == pytest.approx(clf.score(X, y), abs=1e-12)
        np.testing.assert_allclose(streamed.predict_proba(a9a_parquet), clf.predict_proba(X))
    finally:
        fs.rm("/sklearn-test", recursive=True)
    with pytest.raises(ConfigError, match="carries its own labels"):
        HogwildClassifier().fit(a9a_parquet, y)
    with pytest.raises(ConfigError, match="scored against its own labels"):
        clf.score(a9a_parquet, y)


def test_other_tools_parquet_with_the_data_options(a9a_data, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    X, y, _, _ = a9a_data
    ids = pa.ListArray.from_arrays(pa.array(X.indptr.astype(np.int32)), pa.array(X.indices.astype(np.int64) + 1))
    pq.write_table(pa.table({"clicked": y, "feature_ids": ids}), tmp_path / "events.parquet", row_group_size=16384)
    opts = dict(label_column="clicked", indices_column="feature_ids", index_base=1, epochs=2, threads=1)
    clf = HogwildClassifier(**opts).fit(tmp_path / "events.parquet")
    same = HogwildClassifier(epochs=2, threads=1).fit(X, y)
    assert np.array_equal(clf.coef_, same.coef_) and clf.intercept_[0] == same.intercept_[0]
    reg = HogwildRegressor(label_column="clicked", indices_column="feature_ids", index_base=1, epochs=1, threads=1)
    assert reg.fit(tmp_path / "events.parquet").score(tmp_path / "events.parquet") == pytest.approx(
        r2_score(y, reg.predict(X)), rel=1e-9)


def test_a_dataset_with_labels_the_losses_cannot_take_is_refused_before_training(tmp_path, rng):
    X = sp.random(200, 5, density=0.5, random_state=0, format="csr")
    path = libsvm_to_parquet(X, rng.choice([1, 2], 200), tmp_path, "ones-twos")
    with pytest.raises(ValueError, match=r"two classes must be \{-1, \+1\} or \{0, 1\}"):
        HogwildClassifier().fit(path)
    path = libsvm_to_parquet(X, rng.choice([0, 1, 2], 200).astype(float), tmp_path, "three")
    clf = HogwildClassifier(epochs=1, threads=1).fit(path)
    assert clf.loss_ == "softmax" and clf.classes_.tolist() == [0, 1, 2]


def test_validation_data_replaces_the_holdout(a9a_data):
    X, y, Xt, yt = a9a_data
    clf = HogwildClassifier(epochs=3, threads=1).fit(X, np.where(y > 0, "yes", "no"),
                                                     valid=(Xt, np.where(yt > 0, "yes", "no")))
    assert all("valid" in r and "holdout" not in r for r in clf.history_)
    best = min(clf.history_, key=lambda r: r["valid"]["logloss"])
    assert clf.best_epoch_ == best["epoch"]
    assert log_loss(yt, clf.predict_proba(Xt)) == pytest.approx(best["valid"]["logloss"], rel=1e-4)
    with pytest.raises(ValueError, match="not among the classes"):
        HogwildClassifier(epochs=2).fit(X, y, valid=(Xt, yt + 5))
