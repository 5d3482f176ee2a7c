"""Checkpoints and resume: bit-identical continuation with one thread, crash safety under
kill -9 (also while a checkpoint is being written), damaged records, misuse, snapshots."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import streamhog
from streamhog.errors import CheckpointError
from streamhog.kernels.optimizers import NORMALIZED_RULE
from streamhog.training.checkpoint import CHECKPOINT, PREVIOUS, write_checkpoint
from streamhog.datasets.synthetic import SyntheticSpec, synthetic_batches
from streamhog.io.formats import create_writer
from streamhog.errors import TrainingInterrupted
from streamhog.model.directory import Model, UnfinishedModelWarning
from streamhog.errors import TrainingError

SPEC = SyntheticSpec(n_rows=70_000, n_features=20_000, nnz_per_row=20, seed=5)
ONE_THREAD = dict(threads=1, readers=2, seed=7, lr=0.5, quiet=True, refit=False)  # refit: test_refit.py


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("syn")
    for name, (a, b) in {"train": (0, 60_000), "test": (60_000, 70_000)}.items():
        w = create_writer("parquet", d / f"{name}.parquet", rows_per_group=1024)
        for batch in synthetic_batches(SPEC, rows_per_block=8192, start_row=a, stop_row=b):
            w.write(batch)
        w.close(SPEC.n_features)
    return d


def weights_bytes(model_dir):
    return (model_dir / "weights.npy").read_bytes()


def same_run(a, b):
    """Bit-identical weights and the same intercept and per-epoch losses."""
    assert weights_bytes(a) == weights_bytes(b)
    ma, mb = Model.open(a), Model.open(b)
    assert ma.intercept == mb.intercept
    assert [h["train_loss"] for h in ma.meta["history"]] == [h["train_loss"] for h in mb.meta["history"]]


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    """Two epochs in one go, one thread, fixed seed."""
    d = tmp_path_factory.mktemp("straight") / "m"
    streamhog.train(data / "train.parquet", d, epochs=2, **ONE_THREAD)
    return d


def test_resume_after_an_epoch_is_bit_identical(data, straight, tmp_path):
    m = tmp_path / "m"
    # A run keeps the holdout it started with; a 1-epoch run's default is none, so the
    # straight 2-epoch run's 10% is asked for explicitly.
    streamhog.train(data / "train.parquet", m, epochs=1, holdout=0.1, **ONE_THREAD)
    streamhog.train(data / "train.parquet", m, epochs=2, resume=True, quiet=True)
    same_run(m, straight)


def test_resume_mid_epoch_twice_is_bit_identical(data, straight, tmp_path):
    m = tmp_path / "m"
    with pytest.raises(TrainingInterrupted, match=r"after 17 of 59 blocks.*--resume"):
        streamhog.train(data / "train.parquet", m, epochs=2, stop_after_blocks=17, **ONE_THREAD)
    record = json.loads((m / CHECKPOINT).read_text())["record"]
    assert record["epoch"] == 0 and len(record["done_blocks"]) == 17 and record["status"] == "interrupted"
    with pytest.raises(TrainingInterrupted):  # across the epoch boundary
        streamhog.train(data / "train.parquet", m, resume=True, quiet=True, stop_after_blocks=50)
    streamhog.train(data / "train.parquet", m, resume=True, quiet=True)
    same_run(m, straight)


def test_a_run_begun_under_the_previous_normalized_rule_resumes_with_a_note(data, tmp_path):
    """Checkpoints name the normalized rule's revision; one written before revisions existed
    (revision 1: rates after the example's gradient) resumes under today's, and says so."""
    m = tmp_path / "m"
    with pytest.raises(TrainingInterrupted):
        streamhog.train(data / "train.parquet", m, epochs=2, stop_after_blocks=5, **ONE_THREAD)
    record = json.loads((m / CHECKPOINT).read_text())["record"]
    assert record["config"]["optimizer"] == "normalized" and record["normalized_rule"] == NORMALIZED_RULE
    logs = []
    with pytest.raises(TrainingInterrupted):  # the same revision: nothing to say
        streamhog.train(data / "train.parquet", m, resume=True, stop_after_blocks=5, log=logs.append)
    assert logs and not any("revision" in line for line in logs)
    record = json.loads((m / CHECKPOINT).read_text())["record"]
    del record["normalized_rule"]
    write_checkpoint(m, record)
    streamhog.train(data / "train.parquet", m, resume=True, log=logs.append)
    assert any("began under revision 1 of the normalized rule; it continues under revision 2" in line
               for line in logs)
    assert Model.open(m).meta["training"]["status"] == "complete"


def _cli(*args, env=None):
    return [sys.executable, "-m", "streamhog", *map(str, args)]


def _wait_for(path, timeout=60):
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.02)


def test_sigint_then_resume_is_bit_identical(data, straight, tmp_path):
    m = tmp_path / "m"
    # Slow checkpoints (every block) stretch the run so the signal lands mid-training.
    env = dict(os.environ, STREAMHOG_TEST_CHECKPOINT_DELAY="0.01")
    proc = subprocess.Popen(_cli("train", data / "train.parquet", "--model", m, "--epochs", 2, "--threads", 1,
                                 "--seed", 7, "--lr", 0.5, "--checkpoint-every", 0.001, "--no-refit"),
                            env=env, stderr=subprocess.PIPE, text=True)
    _wait_for(m / CHECKPOINT)
    time.sleep(0.8)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "finishing the blocks in flight" in err and "Resume with: streamhog train" in err
    record = json.loads((m / CHECKPOINT).read_text())["record"]
    assert record["status"] == "interrupted" and (record["epoch"], len(record["done_blocks"])) != (2, 0)
    r = subprocess.run(_cli("train", data / "train.parquet", "--model", m, "--resume", "--quiet"),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    same_run(m, straight)


def _mtime(path):
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _wait_for_new_checkpoint(model_dir, before, proc, timeout=120):
    """Until the run writes a checkpoint, or ends (a run killed after its last checkpoint
    is complete: its resume has nothing to do and writes none)."""
    end = time.monotonic() + timeout
    while _mtime(model_dir / CHECKPOINT) in (before, None) and proc.poll() is None:
        assert time.monotonic() < end, "the run wrote no checkpoint"
        time.sleep(0.01)


def _logloss(model_dir, data):
    return Model.open(model_dir).evaluate(data / "test.parquet")["logloss"]


def test_kill_9_at_random_moments_always_resumes(data, tmp_path):
    """Two threads, several epochs; SIGKILL many times, several of them while a checkpoint
    is being written (a test hook widens that window); every resume works, the model is
    always readable, and the final test loss is within 1% of an uninterrupted run."""
    # The defaults: normalized, and on these 60,000 rows a second phase retrained on every row
    # (refit.py), which the kills hit too.
    args = ["--epochs", 3, "--threads", 2, "--checkpoint-every", 0.02, "--quiet"]
    ref = tmp_path / "ref"
    subprocess.run(_cli("train", data / "train.parquet", "--model", ref, *args), check=True)
    m = tmp_path / "m"
    env = dict(os.environ, STREAMHOG_TEST_CHECKPOINT_DELAY="0.08")  # the write window dominates
    rng = np.random.default_rng(0)
    kills = in_write = 0
    first = True
    while True:
        cmd = _cli("train", data / "train.parquet", "--model", m, *args, *([] if first else ["--resume"]))
        before = _mtime(m / CHECKPOINT)
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        if kills < 30 and (kills < 6 or in_write < 3):  # a loaded machine lands fewer kills in writes
            _wait_for_new_checkpoint(m, before, proc)  # past start-up, whatever the machine's load
            time.sleep(rng.uniform(0.0, 0.4))
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                kills += 1
                in_write += any(p.name.startswith(".checkpoint.json.tmp") for p in m.iterdir())
                with warnings.catch_warnings(record=True) as caught:  # readable at every moment,
                    warnings.simplefilter("always")                     # and said unfinished unless it is
                    Model.open(m).evaluate(data / "test.parquet")
                finished = Model.open(m).meta["training"]["status"] == "complete"
                assert finished == (not [w for w in caught if w.category is UnfinishedModelWarning])
                first = False
                continue
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        break
    assert kills >= 5 and in_write >= 2, (kills, in_write)
    model = Model.open(m)
    assert model.meta["training"]["status"] == "complete"
    assert len(model.meta["history"]) == model.meta["refit"]["best_epoch"] and model.meta["refit"]["epochs"] == 3
    assert _logloss(m, data) == pytest.approx(_logloss(ref, data), rel=0.01)
    # stale temporaries cleaned on resume (.lock is the directory's lock file: model/lock.py)
    assert not [p.name for p in m.iterdir() if p.name.startswith(".") and p.name != ".lock"]


def test_damaged_records_fall_back_or_say_so(data, tmp_path):
    m = tmp_path / "m"
    streamhog.train(data / "train.parquet", m, epochs=1, **ONE_THREAD)
    text = (m / CHECKPOINT).read_text()
    (m / CHECKPOINT).write_text(text[: len(text) // 2])  # truncated
    logs = []
    streamhog.train(data / "train.parquet", m, epochs=2, resume=True, log=logs.append)
    assert any("unreadable or truncated" in line and "using the previous checkpoint" in line for line in logs)
    for name in (CHECKPOINT, PREVIOUS):
        outer = json.loads((m / name).read_text())
        outer["record"]["step"] += 1  # altered: the checksum no longer matches
        (m / name).write_text(json.dumps(outer))
    with pytest.raises(CheckpointError, match="no usable checkpoint.*checksum mismatch.*checksum mismatch"):
        streamhog.train(data / "train.parquet", m, epochs=3, resume=True, quiet=True)


def test_misuse_is_refused_with_a_clear_message(data, tmp_path, capsys):
    m = tmp_path / "m"
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        streamhog.train(data / "train.parquet", m, resume=True, quiet=True)
    streamhog.train(data / "train.parquet", m, epochs=1, **ONE_THREAD)
    with pytest.raises(TrainingError, match="cannot resume with --loss hinge"):
        streamhog.train(data / "train.parquet", m, epochs=2, resume=True, loss="hinge", quiet=True)
    with pytest.raises(TrainingError, match="not the data this run was trained on.*n_rows 60000 -> 10000"):
        streamhog.train(data / "test.parquet", m, epochs=2, resume=True, quiet=True)
    logs = []
    streamhog.train(data / "train.parquet", m, epochs=1, resume=True, log=logs.append)
    assert "already trained 1 epoch(s) (--epochs 1); nothing to do" in logs[0]
    streamhog.train(data / "train.parquet", m, epochs=2, resume=True, quiet=True)
    assert len(Model.open(m).meta["history"]) == 2
    from streamhog.cli import main

    assert main(["train", str(data / "train.parquet"), "--model", str(m), "--quiet"]) == 1
    assert "pass --resume to continue its training, or --overwrite" in capsys.readouterr().err


def test_warm_start_begins_a_new_run_from_the_weights(data, tmp_path):
    # AdaGrad: with a tiny lr its weights do not move (the normalized rule also rescales a
    # weight whose feature shows a larger value than any before, whatever the lr).
    src = tmp_path / "src"
    streamhog.train(data / "train.parquet", src, epochs=2, optimizer="adagrad", **ONE_THREAD)
    warm = tmp_path / "warm"
    streamhog.train(data / "test.parquet", warm, warm_start=src, epochs=1, lr=1e-12, quiet=True,
                    n_features=SPEC.n_features, optimizer="adagrad")
    np.testing.assert_allclose(np.load(warm / "weights.npy"), np.load(src / "weights.npy"), atol=1e-6)
    model = Model.open(warm)
    assert len(model.meta["history"]) == 1 and model.meta["warm_start"] == str(src.resolve())


def _head(path, n=2**20):
    with open(path, "rb") as f:  # the first MiB (holds every weight of this data); never the 4 GiB
        return f.read(n)


def test_snapshots_are_sparse_and_roll_back_a_divergence(data, tmp_path):
    m = tmp_path / "m"
    # squared loss: unbounded gradients, so a huge --lr really diverges (logistic saturates)
    streamhog.train(data / "train.parquet", m, epochs=3, keep_snapshots=2, n_features=2**30, loss="squared",
                    **{**ONE_THREAD, "lr": 0.05, "optimizer": "sgd"})
    snaps = sorted((m / "snapshots").iterdir())
    assert [s.name[:11] for s in snaps] == ["epoch-00002", "epoch-00003"]
    assert (snaps[-1] / "weights.npy").stat().st_blocks * 512 < 16 * 2**20  # 4 GiB file, sparse copy
    kept = _head(snaps[-1] / "weights.npy")
    with pytest.raises(TrainingError, match="diverged.*Rolled the model back to its snapshot epoch-00003"):
        streamhog.train(data / "train.parquet", m, epochs=5, resume=True, lr=1e4, lr_schedule="constant",
                        quiet=True)
    assert _head(m / "weights.npy") == kept
    record = json.loads((m / CHECKPOINT).read_text())["record"]
    assert record["status"] == "rolled-back" and record["epoch"] == 3
    streamhog.train(data / "train.parquet", m, epochs=4, resume=True, lr=0.02, quiet=True)  # a lower --lr
    assert len(Model.open(m).meta["history"]) == 4
