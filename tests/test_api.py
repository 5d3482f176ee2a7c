"""The package's face: dir(streamhog) and help(streamhog) show the public API, docs/api.md's
examples run (doctest), streamhog.evaluate / streamhog.predict agree with the command line
and with scikit-learn's metrics, and the API works without its optional extras."""
from __future__ import annotations

import doctest
import pydoc
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy.special import expit, logit
from sklearn.datasets import load_svmlight_file
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

import streamhog
from streamhog.cli import main
from streamhog.datasets import a9a
from streamhog.errors import ConfigError, DataTypeError

DOCS = Path(__file__).resolve().parents[1] / "docs"
PUBLIC = ["train", "evaluate", "predict", "convert", "open_dataset", "plot_history", "Model", "TrainConfig",
          "InMemoryData", "SparseBatch", "HogwildClassifier", "HogwildRegressor", "HogwildRecommender",
          "StreamhogError", "ConfigError", "DataFormatError", "ModelTooLargeError"]


def test_docs_api_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = doctest.testfile(str(DOCS / "api.md"), module_relative=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 50 and result.failed == 0


def test_dir_shows_the_public_api_and_nothing_else():
    names = dir(streamhog)
    assert set(PUBLIC) <= set(names)
    assert not {"annotations", "batch", "errors", "io", "training", "kernels"} & set(names)
    for name in names:
        assert getattr(streamhog, name) is not None  # every listed name resolves


def test_help_shows_the_public_api():
    text = pydoc.render_doc(streamhog, renderer=pydoc.plaintext)
    for piece in ("train(data, model_dir", "evaluate(model, data", "predict(model, data", "class HogwildClassifier",
                  "class Model", "class TrainConfig", "class ConfigError", "plot_history(model, out=None"):
        assert piece in text, piece
    assert "annotations = _Feature" not in text  # no stray module-level names (issue 18)


def test_without_the_optional_extras_the_api_still_imports_and_says_what_is_missing():
    code = ("import sys; sys.modules['sklearn'] = None; sys.modules['matplotlib'] = None\n"
            "import pydoc, streamhog\n"
            "assert 'HogwildClassifier' in dir(streamhog)\n"
            "try:\n    streamhog.HogwildClassifier\nexcept AttributeError as e:\n    print(e)\n"
            "assert 'train(data, model_dir' in pydoc.render_doc(streamhog)  # help() works\n"
            "from streamhog.errors import MissingDependencyError\n"
            "try:\n    import streamhog.sklearn\nexcept MissingDependencyError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0] == ("streamhog.HogwildClassifier: the scikit-learn estimators need scikit-learn, which is not "
                        "installed: pip install 'streamhog[sklearn]'")
    assert lines[1].endswith("pip install 'streamhog[sklearn]'")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("api")
    assert main(["convert", str(a9a("train")), str(d / "train.parquet"), "--quiet"]) == 0
    assert main(["convert", str(a9a("test")), str(d / "test.parquet"), "--quiet", "--n-features", "123"]) == 0
    assert main(["train", str(d / "train.parquet"), "--model", str(d / "m"), "--quiet", "--epochs", "2"]) == 0
    return d


def test_evaluate_is_scikit_learns_metrics_of_predict(trained):
    Xt, yt = load_svmlight_file(a9a("test"), n_features=123)
    p = streamhog.predict(trained / "m", Xt)
    metrics = streamhog.evaluate(trained / "m", Xt, labels=yt)
    assert metrics["n_examples"] == len(yt)
    assert metrics["logloss"] == pytest.approx(log_loss(yt, p), rel=1e-9)
    assert metrics["auc"] == pytest.approx(roc_auc_score(yt, p), abs=1e-4)  # streamed AUC: histogram bins
    assert metrics["accuracy"] == pytest.approx(accuracy_score(yt > 0, p > 0.5), rel=1e-12)
    assert streamhog.evaluate(streamhog.Model.open(trained / "m"), trained / "test.parquet") == metrics
    np.testing.assert_allclose(streamhog.predict(trained / "m", Xt, margins=True), logit(p), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(expit(streamhog.predict(trained / "m", trained / "test.parquet", margins=True)), p)


def test_predict_to_a_file_is_the_command_lines_file(trained, tmp_path):
    assert streamhog.predict(trained / "m", trained / "test.parquet", out=tmp_path / "api.parquet") == 16281
    assert main(["predict", str(trained / "test.parquet"), "--model", str(trained / "m"),
                 "--out", str(tmp_path / "cli.parquet")]) == 0
    assert pq.read_table(tmp_path / "api.parquet").equals(pq.read_table(tmp_path / "cli.parquet"))
    with pytest.raises(streamhog.OutputExistsError):
        streamhog.predict(trained / "m", trained / "test.parquet", out=tmp_path / "api.parquet")
    with pytest.raises(ConfigError, match="margins=True gives an array"):
        streamhog.predict(trained / "m", trained / "test.parquet", out=tmp_path / "x.parquet", margins=True)


def test_bad_input_through_the_api_is_a_one_line_error(trained, tmp_path):
    with pytest.raises(ConfigError, match=r"^--threads, --readers and the capacity must be >= 1$"):
        streamhog.train(trained / "train.parquet", tmp_path / "m", threads=0)
    with pytest.raises(ConfigError, match=r"^--epochs must be a whole number, got '3'$"):
        streamhog.train(trained / "train.parquet", tmp_path / "m", epochs="3")
    assert not (tmp_path / "m").exists()
    with pytest.raises(DataTypeError, match="must be a 1-D array of numbers|must be numbers"):
        streamhog.evaluate(trained / "m", np.eye(3), labels=["a", "b", "c"])
    with pytest.raises(streamhog.ModelError, match="not a streamhog model"):
        streamhog.evaluate(tmp_path, trained / "test.parquet")
