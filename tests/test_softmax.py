"""--loss softmax end to end: digits (scikit-learn's bundled data, tools/make_digits.py),
metrics and predictions against NumPy from weights.npy, exact resume, bad labels."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import streamhog
from streamhog.cli import main
from streamhog.errors import TrainingInterrupted
from streamhog.model.directory import Model
from streamhog.errors import TrainingError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    d = tmp_path_factory.mktemp("digits")
    subprocess.run([sys.executable, ROOT / "tools" / "make_digits.py", d], check=True)
    streamhog.convert(d / "digits.train", d / "train.parquet", rows_per_group=256)  # LIBSVM multiclass, as is
    streamhog.convert(d / "digits.test", d / "test.parquet", n_features=64)
    return d


def _numpy_scores(model_dir: Path, data: Path):
    """Margins from weights.npy and the intercepts in model.json, with scipy/NumPy only."""
    from sklearn.datasets import load_svmlight_file

    X, y = load_svmlight_file(str(data), n_features=64)
    W = np.load(model_dir / "weights.npy").astype(np.float64)
    b = np.asarray(json.loads((model_dir / "model.json").read_text())["intercept"])
    return X @ W + b, y.astype(int)


def test_digits_with_the_defaults_through_the_cli(digits, tmp_path, capsys):
    m = tmp_path / "m"
    assert main(["train", str(digits / "train.parquet"), "--model", str(m), "--loss", "softmax", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(digits / "test.parquet"), "--model", str(m), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["accuracy"] >= 0.95 and metrics["n_examples"] == 397  # exact softmax regression: 0.980
    z, y = _numpy_scores(m, digits / "digits.test")
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert metrics["accuracy"] == pytest.approx(np.mean(p.argmax(1) == y), abs=1e-12)
    assert metrics["logloss"] == pytest.approx(-np.mean(np.log(p[np.arange(len(y)), y])), rel=1e-5)
    np.testing.assert_allclose(Model.open(m).predict(digits / "test.parquet"), p, rtol=1e-5, atol=1e-7)
    assert main(["predict", str(digits / "test.parquet"), "--model", str(m), "--out", str(tmp_path / "p.parquet")]) == 0
    out = pq.read_table(tmp_path / "p.parquet").to_pydict()
    assert out["class"] == p.argmax(1).tolist()
    np.testing.assert_allclose(out["probability"], p.max(1), rtol=1e-5)
    assert out["label"] == y.astype(float).tolist()
    model = Model.open(m)
    assert model.weights.shape == (64, 10) and model.n_classes == 10 and model.optimizer == "normalized"
    assert np.load(m / "accum.npy").shape == np.load(m / "scale.npy").shape == (64, 10)


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "ftrl"])
def test_every_optimizer_learns_digits(digits, tmp_path, optimizer):
    model = streamhog.train(digits / "train.parquet", tmp_path / "m", loss="softmax", optimizer=optimizer, quiet=True)
    assert model.evaluate(digits / "test.parquet")["accuracy"] >= 0.94


def test_softmax_resume_is_bit_exact(digits, tmp_path):
    kw = dict(loss="softmax", threads=1, epochs=2, seed=5, quiet=True)
    whole = streamhog.train(digits / "train.parquet", tmp_path / "whole", **kw)
    with pytest.raises(TrainingInterrupted):
        streamhog.train(digits / "train.parquet", tmp_path / "parts", stop_after_blocks=7, **kw)  # 6 blocks an epoch
    parts = streamhog.train(digits / "train.parquet", tmp_path / "parts", resume=True, **kw)
    for name in ("weights", "accum"):
        assert np.array_equal(np.load(whole.path / f"{name}.npy"), np.load(parts.path / f"{name}.npy"))
    assert whole.meta["bstate"] == parts.meta["bstate"] and len(parts.meta["bstate"]) == 32


def test_hashing_and_softmax(digits, tmp_path):
    model = streamhog.train(digits / "train.parquet", tmp_path / "m", loss="softmax", hash_bits=12, quiet=True)
    assert model.weights.shape == (4096, 10)
    assert model.evaluate(digits / "test.parquet")["accuracy"] >= 0.94


def test_labels_that_are_not_class_ids_are_refused(tmp_path):
    (tmp_path / "bad.svm").write_text("0 1:1\n1 2:1\n2.5 1:1 2:1\n")
    streamhog.convert(tmp_path / "bad.svm", tmp_path / "bad.parquet")
    with pytest.raises(TrainingError, match="label 2.5 is not a class id"):
        streamhog.train(tmp_path / "bad.parquet", tmp_path / "m", loss="softmax", quiet=True)
    (tmp_path / "neg.svm").write_text("0 1:1\n-1 2:1\n")
    streamhog.convert(tmp_path / "neg.svm", tmp_path / "neg.parquet")
    with pytest.raises(TrainingError, match="label -1 is not a class id"):
        streamhog.train(tmp_path / "neg.parquet", tmp_path / "m2", loss="softmax", quiet=True)
