"""Holdout rows and early stopping: which rows are held out, that they are never trained on,
that the holdout score is the model's true loss on them, and that the best epoch's model is
the one kept — also across a crash while it is being put back."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import binom

import streamhog

from streamhog.training.checkpoint import CHECKPOINT
from streamhog.cli import main as cli_main
from streamhog.io.batch import SparseBatch
from streamhog.datasets import criteo_sample
from streamhog.io.formats import create_writer, open_dataset
from streamhog.training.early_stopping import holdout_mask
from streamhog.model.directory import Model
from streamhog.training.copies import BEST

ONE = dict(threads=1, readers=1, quiet=True, refit=False)  # phase 1 alone (refit: test_refit.py)


def test_holdout_rows_are_a_fixed_fraction_whatever_the_blocks():
    n, f = 200_000, 0.1
    whole = holdout_mask(0, n, f, seed=3)
    # The count is binomial(n, f): inside its 1e-6 two-sided interval.
    lo, hi = binom.ppf(5e-7, n, f), binom.ppf(1 - 5e-7, n, f)
    assert lo <= whole.sum() <= hi
    # Any split into blocks gives the same rows (a row's fate is its row number's).
    cuts = [0, 1, 999, 65_536, 65_537, 150_000, n]
    pieces = [holdout_mask(a, b - a, f, seed=3) for a, b in zip(cuts, cuts[1:])]
    assert np.array_equal(np.concatenate(pieces), whole)
    # Spread evenly: each tenth of the rows holds about a tenth of the holdout.
    per_tenth = whole.reshape(10, -1).sum(axis=1)
    assert (abs(per_tenth - n * f / 10) < 6 * math.sqrt(n / 10 * f * (1 - f))).all()
    other = holdout_mask(0, n, f, seed=4)
    assert 0.05 < (other != whole).mean() < 0.25  # another seed, other rows (2 f (1 - f) = 0.18)
    assert not holdout_mask(0, n, 0.0, seed=3).any() and holdout_mask(5, 10, 0.999999999, 0).all()


@pytest.fixture(scope="module")
def one_feature_per_row(tmp_path_factory):
    """Row i has only feature i (label alternating): after training, weight i is non-zero
    exactly when row i was trained on."""
    n = 3000
    path = tmp_path_factory.mktemp("rows") / "rows.parquet"
    batch = SparseBatch(np.arange(n + 1, dtype=np.int64), np.arange(n, dtype=np.uint32), None,
                        np.where(np.arange(n) % 2, 1.0, -1.0).astype(np.float32), None)
    w = create_writer("parquet", path, rows_per_group=700)
    w.write(batch)
    w.close(n)
    return path, n


def test_held_out_rows_are_never_trained_on(one_feature_per_row, tmp_path):
    path, n = one_feature_per_row
    m = streamhog.train(path, tmp_path / "m", epochs=3, holdout=0.2, early_stopping=0, seed=11, **ONE)
    held = holdout_mask(0, n, 0.2, seed=11)
    w = np.asarray(m.weights)
    assert np.array_equal(w != 0, ~held)
    history = m.meta["history"]
    assert [h["examples"] for h in history] == [int((~held).sum())] * 3
    assert [h["holdout"]["n_examples"] for h in history] == [int(held.sum())] * 3
    assert all(h["scoring_seconds"] > 0 for h in history)


def _numpy_logloss(path, model, rows):
    """Log loss of ``model`` on the given rows, from weights.npy with SciPy/NumPy."""
    ds = open_dataset(path)
    reader = ds.open_reader()
    X, y = [], []
    for b in range(ds.n_blocks):
        batch = reader.read(b)
        X.append(batch.to_scipy(ds.n_features))
        y.append(batch.labels)
    import scipy.sparse as sp

    X, y = sp.vstack(X).tocsr()[rows], np.concatenate(y)[rows]
    z = X @ np.asarray(model.weights, np.float64) + model.intercept
    return float(np.mean(np.logaddexp(0, -np.where(y > 0, 1, -1) * z)))


@pytest.fixture(scope="module")
def criteo(tmp_path_factory):
    d = tmp_path_factory.mktemp("criteo")
    for split in ("train", "test"):
        streamhog.convert(criteo_sample(split), d / f"{split}.parquet", input_format="criteo", rows_per_group=1000)
    return d


def test_holdout_score_is_the_models_loss_on_those_rows(criteo, tmp_path):
    train = criteo / "train.parquet"
    m = streamhog.train(train, tmp_path / "m", epochs=2, early_stopping=0, seed=2, **ONE)
    held = holdout_mask(0, 8000, 0.1, seed=2)
    last = m.meta["history"][-1]["holdout"]
    assert last["n_examples"] == held.sum()
    assert last["logloss"] == pytest.approx(_numpy_logloss(train, m, held), rel=1e-6)


def test_early_stopping_keeps_the_best_epoch(criteo, tmp_path):
    """8,000 rows of click data overfit after one epoch: the run stops and puts epoch 1 back."""
    train = criteo / "train.parquet"
    m = streamhog.train(train, tmp_path / "m", epochs=5, seed=0, **ONE)  # defaults: holdout 0.1, patience 2
    history = m.meta["history"]
    scores = [h["holdout"]["logloss"] for h in history]
    assert len(history) == 3 and scores[0] < min(scores[1:])
    assert m.meta["training"]["stopped_early"] is True and m.meta["training"]["best_epoch"] == 1
    assert not (m.path / BEST).exists()
    one = streamhog.train(train, tmp_path / "one", epochs=1, holdout=0.1, seed=0, **ONE)
    assert np.array_equal(np.asarray(m.weights), np.asarray(one.weights))
    assert np.array_equal(np.asarray(m.optimizer_state["accum"]), np.asarray(one.optimizer_state["accum"]))
    assert m.intercept == one.intercept
    # The test loss of the kept model (the last epoch's would be worse).
    assert m.evaluate(criteo / "test.parquet")["logloss"] < 0.4775  # VW's best on these rows
    # Resuming a run that stopped early changes nothing.
    before = (m.path / "weights.npy").read_bytes()
    streamhog.train(train, m.path, epochs=8, resume=True, quiet=True)
    assert (m.path / "weights.npy").read_bytes() == before


def test_a_crash_while_restoring_the_best_epoch_is_finished_by_resume(criteo, tmp_path, monkeypatch):
    train = criteo / "train.parquet"
    ref = streamhog.train(train, tmp_path / "ref", epochs=5, seed=0, **ONE)
    import streamhog._fs.sparse_files as sf

    real = sf.restore_sparse

    def dies_after_one_file(snapshot, live, **kw):
        real(snapshot, live, **kw)
        raise KeyboardInterrupt  # as a kill -9 would leave it: one file put back, not the others

    monkeypatch.setattr(sf, "restore_sparse", dies_after_one_file)
    with pytest.raises(KeyboardInterrupt):
        streamhog.train(train, tmp_path / "m", epochs=5, seed=0, **ONE)
    record = json.loads((tmp_path / "m" / CHECKPOINT).read_text())["record"]
    assert record["status"] == "restoring-best" and (tmp_path / "m" / BEST).exists()
    monkeypatch.setattr(sf, "restore_sparse", real)
    m = streamhog.train(train, tmp_path / "m", resume=True, quiet=True)
    assert (m.path / "weights.npy").read_bytes() == (ref.path / "weights.npy").read_bytes()
    assert m.meta["training"]["best_epoch"] == 1 and m.meta["training"]["status"] == "complete"
    assert not (m.path / BEST).exists()


def test_without_early_stopping_every_epoch_runs_and_the_last_is_kept(criteo, tmp_path):
    train = criteo / "train.parquet"
    assert cli_main(["train", str(train), "--model", str(tmp_path / "m"), "--epochs", "3", "--holdout", "0",
                     "--threads", "1", "--quiet"]) == 0
    m = Model.open(tmp_path / "m")
    assert [h["examples"] for h in m.meta["history"]] == [8000] * 3
    assert "holdout" not in m.meta["history"][0] and m.meta["training"]["best_epoch"] is None
    assert m.meta["hyper_parameters"]["holdout"] == 0.0


def test_with_valid_data_early_stopping_watches_it(criteo, tmp_path):
    train, test = criteo / "train.parquet", criteo / "test.parquet"
    m = streamhog.train(train, tmp_path / "m", epochs=5, valid=test, seed=0, **ONE)
    assert m.meta["hyper_parameters"]["holdout"] == 0.0  # every row trains
    history = m.meta["history"]
    assert [h["examples"] for h in history] == [8000] * len(history) and len(history) < 5
    best = m.meta["training"]["best_epoch"]
    assert history[best - 1]["valid"]["logloss"] == min(h["valid"]["logloss"] for h in history)
    assert m.evaluate(test)["logloss"] == pytest.approx(history[best - 1]["valid"]["logloss"], rel=1e-9)


def test_best_epoch_is_recorded_when_the_last_epoch_is_best(one_feature_per_row, tmp_path):
    path, _ = one_feature_per_row  # held-out rows have unseen features: their loss never moves
    m = streamhog.train(path, tmp_path / "m", epochs=2, holdout=0.2, **ONE)
    scores = [h["holdout"]["logloss"] for h in m.meta["history"]]
    assert m.meta["training"]["best_epoch"] == 1 + scores.index(min(scores))


@pytest.mark.parametrize("args, message", [(["--holdout", "1"], "--holdout must be in"),
                                           (["--early-stopping", "-1"], "--early-stopping must be"),
                                           (["--initial-accumulator", "-1"], "--initial-accumulator must be")])
def test_bad_options_are_refused(criteo, tmp_path, capsys, args, message):
    assert cli_main(["train", str(criteo / "train.parquet"), "--model", str(tmp_path / "m"), *args]) != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_resume_keeps_the_holdout_it_started_with(criteo, tmp_path):
    from streamhog.errors import TrainingInterrupted
    from streamhog.errors import TrainingError

    train = criteo / "train.parquet"
    with pytest.raises(TrainingInterrupted):
        streamhog.train(train, tmp_path / "m", epochs=3, stop_after_blocks=4, **ONE)
    with pytest.raises(TrainingError, match="cannot resume with --holdout 0.2"):
        streamhog.train(train, tmp_path / "m", resume=True, holdout=0.2, quiet=True)
    m = streamhog.train(train, tmp_path / "m", resume=True, holdout=0.1, quiet=True)  # the same: fine
    assert m.meta["training"]["status"] == "complete"


def test_extending_a_finished_run_keeps_its_best_model_as_the_one_to_beat(criteo, tmp_path):
    """A run whose last epoch was not its best ends on the best model; more epochs on resume
    must beat that one, and end on it again when they do not."""
    train = criteo / "train.parquet"
    m = streamhog.train(train, tmp_path / "m", epochs=2, early_stopping=5, seed=0, **ONE)
    assert m.meta["training"]["best_epoch"] == 1 and not m.meta["training"]["stopped_early"]
    kept = (m.path / "weights.npy").read_bytes()
    m = streamhog.train(train, m.path, epochs=4, resume=True, quiet=True)  # 3 and 4 overfit further
    history = m.meta["history"]
    assert len(history) == 4 and min(h["holdout"]["logloss"] for h in history[1:]) > history[0]["holdout"]["logloss"]
    assert m.meta["training"]["best_epoch"] == 1 and not (m.path / BEST).exists()
    assert (m.path / "weights.npy").read_bytes() == kept


def test_the_holdout_is_read_once_and_scored_as_read_from_the_files(criteo, tmp_path, monkeypatch):
    """The rows held out are read for the first epoch's scoring and kept: no later scoring
    reads the data, and every epoch's holdout figures are those of a run that reads them from
    the files each time (one thread: the same run), with three threads on 2 cores too; the
    last equals NumPy's loss of the model on those rows."""
    import streamhog.model.inference as inference

    train = criteo / "train.parquet"
    reads = []
    real = inference._workers
    monkeypatch.setattr(inference, "_workers",
                        lambda ds, works, name, **kw: (reads.append(name), real(ds, works, name, **kw))[1])
    kept = streamhog.train(train, tmp_path / "kept", epochs=3, early_stopping=0, seed=2, **ONE)
    assert reads == ["eval"]
    monkeypatch.setattr(inference, "SCORED_ROWS_CACHE_BYTES", 0)  # nothing kept: read every time
    read = streamhog.train(train, tmp_path / "read", epochs=3, early_stopping=0, seed=2, **ONE)
    assert reads == ["eval"] * 4
    assert [h["holdout"] for h in kept.meta["history"]] == [h["holdout"] for h in read.meta["history"]]
    monkeypatch.setattr(inference, "SCORED_ROWS_CACHE_BYTES", 256 << 20)
    reads.clear()
    m = streamhog.train(train, tmp_path / "threads", epochs=3, early_stopping=0, seed=2, quiet=True, refit=False,
                        threads=3, readers=2)
    assert reads == ["eval"]
    held = holdout_mask(0, 8000, 0.1, seed=2)
    last = m.meta["history"][-1]["holdout"]
    assert last["n_examples"] == held.sum()
    assert last["logloss"] == pytest.approx(_numpy_logloss(train, m, held), rel=1e-6)
