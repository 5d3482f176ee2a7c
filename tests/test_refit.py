"""Retraining on every row for the epochs the holdout chose (refit.py, issue 15 item 5): the
second phase equals a run with no holdout for that many epochs, bit for bit; it is skipped on
large data, with --no-refit, --valid or --warm-start; a stop or a crash during it, or as it
begins, resumes exactly; zeroing keeps a huge model sparse."""
from __future__ import annotations

import json

import numpy as np
import pytest

import streamhog
from streamhog._fs.sparse_files import allocated_bytes
from streamhog.datasets.synthetic import SyntheticSpec, synthetic_batches
from streamhog.errors import TrainingInterrupted
from streamhog.io.formats import create_writer
from streamhog.model.directory import Model
from streamhog.training import refit
from streamhog.training.checkpoint import CHECKPOINT

SPEC = SyntheticSpec(n_rows=6_000, n_features=3_000, nnz_per_row=15, seed=2)
ONE = dict(threads=1, readers=1, seed=4, quiet=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("refit")
    for name, (a, b) in {"train": (0, 5_000), "test": (5_000, 6_000)}.items():
        w = create_writer("parquet", d / f"{name}.parquet", rows_per_group=500)
        for batch in synthetic_batches(SPEC, rows_per_block=1000, start_row=a, stop_row=b):
            w.write(batch)
        w.close(SPEC.n_features)
    return d


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    """The defaults (5 epochs, holdout, early stopping, then the refit), one thread."""
    m = tmp_path_factory.mktemp("straight") / "m"
    return streamhog.train(data / "train.parquet", m, **ONE)


def same_model(a: Model, b: Model):
    assert (a.path / "weights.npy").read_bytes() == (b.path / "weights.npy").read_bytes()
    for name in a.optimizer_state:
        assert np.array_equal(np.asarray(a.optimizer_state[name]), np.asarray(b.optimizer_state[name])), name
    assert a.meta["bstate"] == b.meta["bstate"]
    assert [h["train_loss"] for h in a.meta["history"]] == [h["train_loss"] for h in b.meta["history"]]


def test_small_data_is_retrained_on_every_row_for_the_epochs_the_holdout_chose(data, straight, tmp_path):
    info = straight.meta["refit"]
    first = info["first_phase"]
    assert info["holdout"] == 0.1 and all("holdout" in h for h in first)
    scores = [h["holdout"]["logloss"] for h in first]
    assert info["best_epoch"] == 1 + scores.index(min(scores))
    history = straight.meta["history"]
    assert len(history) == info["best_epoch"] and all(h["examples"] == 5_000 for h in history)
    assert straight.meta["hyper_parameters"]["holdout"] == 0.0 and straight.meta["training"]["status"] == "complete"
    # The second phase is exactly a run on every row for that many epochs.
    plain = streamhog.train(data / "train.parquet", tmp_path / "plain", epochs=info["best_epoch"], holdout=0.0,
                            early_stopping=0, **ONE)
    same_model(straight, plain)
    assert straight.intercept == plain.intercept


def test_no_refit_on_large_data_or_when_not_wanted(data, tmp_path, monkeypatch):
    train = data / "train.parquet"
    kept = streamhog.train(train, tmp_path / "no", refit=False, **ONE)
    assert "refit" not in kept.meta and kept.meta["hyper_parameters"]["holdout"] == 0.1
    valid = streamhog.train(train, tmp_path / "valid", valid=data / "test.parquet", **ONE)
    assert "refit" not in valid.meta
    warm = streamhog.train(train, tmp_path / "warm", warm_start=kept.path, **ONE)
    assert "refit" not in warm.meta
    monkeypatch.setattr(refit, "REFIT_MAX_ROWS", 4_999)
    large = streamhog.train(train, tmp_path / "large", **ONE)
    assert "refit" not in large.meta and large.meta["hyper_parameters"]["refit"] is False
    forced = streamhog.train(train, tmp_path / "forced", refit=True, **ONE)
    assert "refit" in forced.meta


def test_a_stop_during_the_second_phase_resumes_bit_identically(data, straight, tmp_path):
    m = tmp_path / "m"
    first_phase_blocks = sum(len(range(0, 5_000, 500)) for _ in straight.meta["refit"]["first_phase"])
    with pytest.raises(TrainingInterrupted):
        streamhog.train(data / "train.parquet", m, stop_after_blocks=first_phase_blocks + 3, **ONE)
    record = json.loads((m / CHECKPOINT).read_text())["record"]
    assert record["status"] == "interrupted"
    assert record["refit_of"]["best_epoch"] == straight.meta["refit"]["best_epoch"]
    resumed = streamhog.train(data / "train.parquet", m, resume=True, quiet=True)
    same_model(resumed, straight)


def test_a_crash_as_the_second_phase_begins_is_finished_by_resume(data, straight, tmp_path, monkeypatch):
    import streamhog._fs.sparse_files as sf

    real = sf.zero_data
    calls = []

    def dies_after_one_file(path, start=0, **kw):
        real(path, start, **kw)
        calls.append(path)
        raise KeyboardInterrupt  # as a kill -9 would leave it: one file zeroed, not the others

    monkeypatch.setattr(sf, "zero_data", dies_after_one_file)
    with pytest.raises(KeyboardInterrupt):
        streamhog.train(data / "train.parquet", tmp_path / "m", **ONE)
    record = json.loads((tmp_path / "m" / CHECKPOINT).read_text())["record"]
    assert record["refit_zero_pending"] is True and record["epoch"] == 0 and len(calls) == 1
    monkeypatch.setattr(sf, "zero_data", real)
    resumed = streamhog.train(data / "train.parquet", tmp_path / "m", resume=True, quiet=True)
    same_model(resumed, straight)


def test_zeroing_keeps_a_huge_model_sparse(data, tmp_path):
    m = streamhog.train(data / "train.parquet", tmp_path / "m", n_features=2**28, epochs=2, **ONE)  # 1 GiB files
    assert "refit" in m.meta
    for f in m.files():
        assert allocated_bytes(f) < 8 * 2**20, f
    assert m.evaluate(data / "test.parquet")["logloss"] < 0.69
