"""Scratch writes (_fs/atomic.scratch_writes), for the estimators' temporary model
directories: no fsync or msync at all, and the same model, bit for bit, as durable writes —
early stopping's copies of the best epoch and its restore included (they read the weights
through the page cache, never through a sync), and the refit's zeroing of the model files."""
from __future__ import annotations

import os

import numpy as np
import pytest

import streamhog
from streamhog._fs.atomic import durable, scratch_writes
from streamhog.datasets import a9a

KW = dict(epochs=6, lr=1.0, early_stopping=10, holdout=0.2, threads=1, quiet=True)


@pytest.mark.parametrize("refit", [False, True])
def test_scratch_writes_sync_nothing_and_change_nothing(tmp_path, monkeypatch, refit):
    streamhog.convert(a9a("test"), tmp_path / "a.parquet")
    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd))[1])
    msyncs = []
    real_flush = np.memmap.flush
    monkeypatch.setattr(np.memmap, "flush", lambda self: (msyncs.append(1), real_flush(self))[1])

    durable_model = streamhog.train(tmp_path / "a.parquet", tmp_path / "durable", refit=refit, **KW)
    assert calls and msyncs
    calls.clear(), msyncs.clear()
    with scratch_writes():
        assert not durable()
        scratch_model = streamhog.train(tmp_path / "a.parquet", tmp_path / "scratch", refit=refit, **KW)
    assert durable() and calls == [] and msyncs == []
    if refit:  # the model files were zeroed and retrained for the epochs the holdout chose
        assert durable_model.meta["refit"]["best_epoch"] < 6
    else:  # the best epoch was copied aside and restored
        assert durable_model.meta["training"]["best_epoch"] < 6
    names = sorted(f.name for f in (tmp_path / "durable").glob("*.npy"))
    assert names == sorted(f.name for f in (tmp_path / "scratch").glob("*.npy")) and names
    for name in names:  # the default's records: weights and state in weights.npy
        assert np.array_equal(np.load(tmp_path / "durable" / name), np.load(tmp_path / "scratch" / name))
    assert durable_model.intercept == scratch_model.intercept
