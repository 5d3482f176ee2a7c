"""--hash-bits at training time: ids hashed into 2^B weights, consistent with hashing at
conversion time, scored the same way, for every optimizer and loss."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.utils import murmurhash3_32

import streamhog
from streamhog.cli import main
from streamhog.datasets import a9a
from streamhog.errors import TrainingError


@pytest.fixture(scope="module")
def a9a_parquet(tmp_path_factory):
    d = tmp_path_factory.mktemp("a9a")
    streamhog.convert(a9a("train"), d / "train.parquet", rows_per_group=8192)
    streamhog.convert(a9a("test"), d / "test.parquet", n_features=123)
    streamhog.convert(a9a("train"), d / "train-h12.parquet", rows_per_group=8192, hash_bits=12)
    streamhog.convert(a9a("test"), d / "test-h12.parquet", hash_bits=12)
    return d


def test_training_time_hashing_equals_conversion_time_hashing(a9a_parquet, tmp_path):
    d = a9a_parquet
    # AdaGrad: the normalized rule also sees a collision merged into one value of 2 as a scale
    # of 2, where training-time hashing sees two values of 1: the weights of those slots differ.
    kw = dict(threads=1, epochs=2, seed=1, quiet=True, optimizer="adagrad")
    at_train = streamhog.train(d / "train.parquet", tmp_path / "t", hash_bits=12, **kw)
    at_convert = streamhog.train(d / "train-h12.parquet", tmp_path / "c", **kw)
    assert at_train.n_features == at_convert.n_features == 4096 and at_train.hash_bits == 12
    # Which slots hold the weights: those of sklearn's MurmurHash3 of each id (an independent implementation).
    slots = {murmurhash3_32(j, seed=0, positive=True) & 4095 for j in range(123)}
    assert set(np.flatnonzero(at_train.weights)) <= slots
    # Equal up to summation order, except where two ids of one row collide: conversion merges
    # them into one feature of value 2, training-time hashing updates the slot twice (AdaGrad's
    # accumulator then differs slightly).
    np.testing.assert_allclose(at_train.weights, at_convert.weights, rtol=0.01, atol=1e-4)
    # Scoring hashes the raw test ids the same way; the pre-hashed test set gives the same metrics.
    m1, m2 = at_train.evaluate(d / "test.parquet"), at_convert.evaluate(d / "test-h12.parquet")
    assert m1["logloss"] == pytest.approx(m2["logloss"], rel=1e-3)
    assert m1["logloss"] < 0.335
    np.testing.assert_allclose(at_train.predict(d / "test.parquet"), at_convert.predict(d / "test-h12.parquet"),
                               rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "normalized", "ftrl"])
@pytest.mark.parametrize("loss", ["logistic", "hinge", "squared"])
def test_hashing_works_with_every_optimizer_and_loss(a9a_parquet, tmp_path, optimizer, loss):
    d = a9a_parquet
    lr = {"lr": 0.02} if (optimizer, loss) == ("sgd", "squared") else {}  # sgd's default lr 1.0 is for logistic
    model = streamhog.train(d / "train.parquet", tmp_path / "m", hash_bits=10, optimizer=optimizer, loss=loss,
                            epochs=1, quiet=True, **lr)
    assert model.n_features == 1024
    metrics = model.evaluate(d / "test.parquet")
    if loss == "squared":
        assert metrics["rmse"] < 0.75  # labels are -1/+1: 1.0 means no skill
    else:
        assert metrics["auc"] > 0.88


def test_hashing_options_are_checked_and_kept_on_resume(a9a_parquet, tmp_path, capsys):
    d = a9a_parquet
    with pytest.raises(TrainingError, match="contradicts --hash-bits 10"):
        streamhog.train(d / "train.parquet", tmp_path / "m", hash_bits=10, n_features=100, quiet=True)
    with pytest.raises(ValueError, match="--hash-bits must be between 1 and 32"):
        streamhog.train(d / "train.parquet", tmp_path / "m", hash_bits=40, quiet=True)
    streamhog.train(d / "train.parquet", tmp_path / "m", hash_bits=10, epochs=1, quiet=True)
    with pytest.raises(TrainingError, match="cannot resume with --hash-bits 11"):
        streamhog.train(d / "train.parquet", tmp_path / "m", hash_bits=11, epochs=2, resume=True, quiet=True)
    assert main(["train", str(d / "train.parquet"), "--model", str(tmp_path / "cli"), "--hash-bits", "9",
                 "--epochs", "1", "--quiet"]) == 0
    assert json.loads((tmp_path / "cli" / "model.json").read_text())["hash_bits"] == 9
    assert main(["evaluate", str(d / "test.parquet"), "--model", str(tmp_path / "cli"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["n_examples"] == 16281
