"""What a training run guarantees (issue 16, docs/guarantees.md): one process trains a model
directory at a time; a resume refuses damaged files, an unwritable directory, a full disk;
a full disk stops a run with a checkpoint; a failed run leaves nothing half-made, or says it
failed; a model that is not a finished one is said to be so; the command line answers
every such case in one line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import streamhog
from streamhog.cli import main as cli_main
from streamhog.datasets.synthetic import SyntheticSpec, synthetic_batches
from streamhog.errors import CheckpointError, DiskSpaceError, ModelError, TrainingInterrupted
from streamhog.io.batch import SparseBatch
from streamhog.io.formats import create_writer
from streamhog.model.directory import Model, UnfinishedModelWarning
from streamhog.model.lock import ModelInUseError, ModelLock, holder
from streamhog.training import safety

SPEC = SyntheticSpec(n_rows=40_000, n_features=5_000, nnz_per_row=20, seed=4)
ONE = dict(threads=1, readers=1, quiet=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("syn")
    for name, (a, b) in {"train": (0, 30_000), "test": (30_000, 40_000)}.items():
        w = create_writer("parquet", d / f"{name}.parquet", rows_per_group=1024)
        for batch in synthetic_batches(SPEC, rows_per_block=8192, start_row=a, stop_row=b):
            w.write(batch)
        w.close(SPEC.n_features)
    return d


def _cli(*args):
    return [sys.executable, "-m", "streamhog", *map(str, args)]


# -- one process at a time -------------------------------------------------------------------

def test_a_model_is_trained_by_one_process_at_a_time(data, tmp_path):
    m = tmp_path / "m"
    first = subprocess.Popen(_cli("train", data / "train.parquet", "--model", m, "--epochs", 200, "--holdout", 0,
                                  "--threads", 1, "--quiet"), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while holder(m) is None:
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read() if first.poll() else ""
            time.sleep(0.05)
        assert holder(m) == first.pid
        for extra in (["--resume"], ["--overwrite"]):
            second = subprocess.run(_cli("train", data / "train.parquet", "--model", m, "--quiet", *extra),
                                    capture_output=True, text=True, timeout=120)
            assert second.returncode == 1
            assert f"model is in use by process {first.pid}" in second.stderr and "Traceback" not in second.stderr
        with pytest.warns(UnfinishedModelWarning, match=f"being trained by process {first.pid}"):
            Model.open(m).evaluate(data / "test.parquet")
    finally:
        first.kill()
        first.wait()
    first.stderr.close()
    assert holder(m) is None  # the kernel released the dead holder's lock: a resume trains
    with pytest.raises(TrainingInterrupted):
        streamhog.train(data / "train.parquet", m, resume=True, stop_after_blocks=2, **ONE)


def test_the_lock_is_exclusive_within_a_process_too(tmp_path):
    with ModelLock(tmp_path):
        with pytest.raises(ModelInUseError, match=f"in use by process {os.getpid()}"):
            ModelLock(tmp_path).acquire()
    ModelLock(tmp_path).acquire().release()


# -- a resume checks what it continues ------------------------------------------------------

def _stopped(data, m, **kw):
    with pytest.raises(TrainingInterrupted):
        streamhog.train(data / "train.parquet", m, epochs=2, stop_after_blocks=5, **ONE, **kw)


@pytest.mark.parametrize("optimizer", ["normalized", "adagrad"])  # one record file; a file per array
def test_a_truncated_weights_file_is_refused_not_zero_filled(data, tmp_path, optimizer):
    m = tmp_path / "m"
    _stopped(data, m, optimizer=optimizer)
    others = {f: f.read_bytes() for f in m.glob("*.npy") if f.name != "weights.npy"}
    assert len(others) == (0 if optimizer == "normalized" else 1)
    os.truncate(m / "weights.npy", 200)
    with pytest.raises(ModelError, match="weights.npy: unreadable weights"):
        streamhog.train(data / "train.parquet", m, resume=True, optimizer=optimizer, **ONE)
    assert (m / "weights.npy").stat().st_size == 200
    assert all(f.read_bytes() == before for f, before in others.items())
    assert cli_main(["train", str(data / "train.parquet"), "--model", str(m), "--resume", "--quiet"]) == 1


def test_changed_content_after_a_clean_stop_is_refused(data, tmp_path):
    m = tmp_path / "m"
    _stopped(data, m)
    w = np.load(m / "weights.npy", mmap_mode="r+")
    w[np.flatnonzero(np.asarray(w))[:3]] = 7.0  # damage of the same size
    w.flush()
    del w
    with pytest.raises(CheckpointError, match="weights.npy: its content differs from what the checkpoint recorded"):
        streamhog.train(data / "train.parquet", m, resume=True, **ONE)


def test_a_killed_run_resumes_although_its_files_moved_on(data, tmp_path):
    """After a kill the memory maps hold updates newer than the checkpoint (by design): the
    content check applies to clean stops only, the size check always."""
    m = tmp_path / "m"
    _stopped(data, m)
    path = m / "checkpoint.json"
    outer = json.loads(path.read_text())
    outer["record"]["status"] = "running"  # as a kill leaves it
    from streamhog.training.checkpoint import write_checkpoint

    write_checkpoint(m, outer["record"])
    w = np.load(m / "weights.npy", mmap_mode="r+")
    w["w"][:10] += 0.5  # what the killed run had written since (the weights of the records)
    w.flush()
    del w
    model = streamhog.train(data / "train.parquet", m, resume=True, **ONE)
    assert model.meta["training"]["status"] == "complete"


def test_an_unwritable_model_directory_is_refused_before_training(data, tmp_path, monkeypatch):
    m = tmp_path / "m"
    _stopped(data, m)
    before = {f.name: f.read_bytes() for f in m.iterdir() if f.is_file()}
    real = os.access
    monkeypatch.setattr(safety.os, "access", lambda p, mode: False if str(p).startswith(str(m)) else real(p, mode))
    with pytest.raises(CheckpointError, match="not writable"):
        streamhog.train(data / "train.parquet", m, resume=True, **ONE)
    assert {f.name: f.read_bytes() for f in m.iterdir() if f.is_file()} == before


# -- a full disk ------------------------------------------------------------------------------

def test_no_room_for_the_run_is_refused_before_it_starts(data, tmp_path, monkeypatch):
    monkeypatch.setattr(safety, "free_bytes", lambda path: 10 << 20)
    with pytest.raises(DiskSpaceError, match="the disk is almost full"):
        streamhog.train(data / "train.parquet", tmp_path / "m", epochs=1, **ONE)


def test_a_filling_disk_stops_the_run_with_a_checkpoint_and_it_resumes(data, tmp_path, monkeypatch):
    m = tmp_path / "m"
    polls = {"n": 0}

    def shrinking(path):
        polls["n"] += 1
        return (10 << 30) if polls["n"] < 4 else (10 << 20)  # plenty, then the disk fills up

    monkeypatch.setattr(safety, "free_bytes", shrinking)
    with pytest.raises(DiskSpaceError, match="stopped with a checkpoint; free some space and resume"):
        streamhog.train(data / "train.parquet", m, epochs=20, holdout=0.0, checkpoint_every=0.01, **ONE)
    assert json.loads((m / "checkpoint.json").read_text())["record"]["status"] == "interrupted"
    monkeypatch.setattr(safety, "free_bytes", lambda path: 10 << 30)
    model = streamhog.train(data / "train.parquet", m, resume=True, epochs=1, **ONE)
    assert model.meta["training"]["status"] == "complete"


def test_a_disk_filling_as_the_epoch_ends_is_still_the_disk_error(data, tmp_path, monkeypatch):
    """The stop may land after the epoch's last block and before its consumer exits: the
    epoch is complete, and the run must still say the disk is full (a fresh-clone CI once
    got "stopped by SIGINT" there)."""
    from streamhog.training import control

    n_blocks = streamhog.open_dataset(data / "train.parquet").n_blocks
    seen = {"blocks": 0, "full": False}
    block_done = control.RunControl.block_done

    def last_block_waits(self, block, *rest):
        stop = block_done(self, block, *rest)
        seen["blocks"] += 1
        if seen["blocks"] == n_blocks:  # the first epoch's last block: the disk fills now
            seen["full"] = True
            time.sleep(0.3)  # the poller sees it before this consumer exits
        return stop

    monkeypatch.setattr(control.RunControl, "block_done", last_block_waits)
    monkeypatch.setattr(safety, "free_bytes", lambda path: (10 << 20) if seen["full"] else (10 << 30))
    m = tmp_path / "m"
    with pytest.raises(DiskSpaceError, match="stopped with a checkpoint; free some space and resume"):
        streamhog.train(data / "train.parquet", m, epochs=3, holdout=0.0, checkpoint_every=0.01, **ONE)
    record = json.loads((m / "checkpoint.json").read_text())["record"]
    assert record["epoch"] == 1 and record["done_blocks"] == [] and record["status"] == "interrupted"


def test_the_block_cache_stops_caching_before_the_disk_fills(data, tmp_path, monkeypatch):
    """Caching is optional: with room for the run but not for one more cached block, it
    trains on (every epoch decodes) and caches nothing."""
    monkeypatch.setattr(safety.SpaceWatch, "shortfall", lambda self, extra=0: (1, 2) if extra else None)
    model = streamhog.train(data / "train.parquet", tmp_path / "m", epochs=3, holdout=0.0, keep_cache=True, **ONE)
    assert model.meta["training"]["status"] == "complete" and len(model.meta["history"]) == 3
    assert not list((tmp_path / "m" / "cache").glob("*block-*"))


def test_small_models_are_allocated_on_disk_when_created(tmp_path):
    from streamhog._fs.sparse_files import allocated_bytes

    m = Model.create(tmp_path / "m", n_features=1 << 20, loss="logistic", optimizer="adagrad")
    for f in m.files():
        assert allocated_bytes(f) >= f.stat().st_size - 4096  # no holes for SIGBUS to hit
    big = Model.create(tmp_path / "big", n_features=1 << 30, loss="logistic", optimizer="sgd")
    assert allocated_bytes(big.files()[0]) < 1 << 20  # 4 GiB apparent, still sparse


# -- a failed run, an unfinished model --------------------------------------------------------

def _with_a_bad_late_block(src, dst):
    """``src``'s rows with a NaN importance weight in the last block: the readers refuse it
    when, and only when, that block is read."""
    ds = streamhog.open_dataset(src)
    reader = ds.open_reader()
    w = create_writer("parquet", dst, rows_per_group=1024, has_weights=True)
    for k in range(ds.n_blocks):
        b = reader.read(k)
        weights = np.ones(b.n_rows, np.float32)
        if k == ds.n_blocks - 1:
            weights[3] = np.nan
        w.write(SparseBatch(b.indptr, b.indices, b.values, b.labels, weights))
    w.close(ds.n_features)


def test_a_new_run_that_fails_leaves_nothing_behind(data, tmp_path):
    bad = tmp_path / "bad.parquet"
    _with_a_bad_late_block(data / "train.parquet", bad)
    with pytest.raises(streamhog.DataFormatError):
        streamhog.train(bad, tmp_path / "m", epochs=1, **ONE)
    assert not (tmp_path / "m").exists()


def test_a_resumed_run_that_fails_is_marked_failed_and_said_to_be(data, tmp_path, capsys):
    bad = tmp_path / "bad.parquet"
    _with_a_bad_late_block(data / "train.parquet", bad)
    m = tmp_path / "m"
    with pytest.raises(TrainingInterrupted):
        streamhog.train(bad, m, epochs=2, stop_after_blocks=3, **ONE)
    with pytest.raises(streamhog.DataFormatError):
        streamhog.train(bad, m, resume=True, **ONE)
    meta = json.loads((m / "model.json").read_text())
    assert meta["training"]["status"] == "failed" and "not finite" in meta["training"]["error"]
    with pytest.warns(UnfinishedModelWarning, match="its training failed"):
        Model.open(m).evaluate(data / "test.parquet")
    assert cli_main(["evaluate", str(data / "test.parquet"), "--model", str(m), "--json"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "not a finished model: its training failed" in err
    assert cli_main(["info", str(m)]) == 0
    assert "not a finished model" in capsys.readouterr().err


# -- one line for every kind of trouble --------------------------------------------------------

@pytest.mark.parametrize("damage", ["empty weights", "float64 weights", "model.json []", "model.json junk"])
def test_damaged_models_get_one_line(data, tmp_path, damage, capsys):
    m = tmp_path / "m"
    streamhog.train(data / "train.parquet", m, epochs=1, **ONE)
    if damage == "empty weights":
        (m / "weights.npy").write_bytes(b"")
    elif damage == "float64 weights":
        np.save(m / "weights.npy", np.zeros(SPEC.n_features))
    elif damage == "model.json []":
        (m / "model.json").write_text("[]")
    else:
        (m / "model.json").write_bytes(b"\xff\xfe{")
    for argv in (["evaluate", str(data / "test.parquet"), "--model", str(m)], ["info", str(m)],
                 ["predict", str(data / "test.parquet"), "--model", str(m), "--out", str(tmp_path / "p.parquet")]):
        assert cli_main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "error" in err and "Traceback" not in err, err


def test_os_errors_name_the_path_and_bugs_say_how_to_see_them(tmp_path, capsys, monkeypatch):
    import errno

    import streamhog.cli as cli

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out.parquet"))

    monkeypatch.setattr(cli, "run_info", full)
    assert cli_main(["info", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == (f"streamhog info: error: {tmp_path / 'out.parquet'}: No space left "
                                               "on device (the disk is full)")

    def bug(args):
        return None + 1

    monkeypatch.setattr(cli, "run_info", bug)
    assert cli_main(["info", str(tmp_path)]) == 2
    assert "internal error: TypeError" in capsys.readouterr().err
    with pytest.raises(TypeError):
        cli_main(["info", str(tmp_path), "--debug"])
    monkeypatch.setenv("STREAMHOG_DEBUG", "1")
    with pytest.raises(TypeError):
        cli_main(["info", str(tmp_path)])
    warnings.resetwarnings()


def test_a_train_loss_above_the_constant_predictors_is_said(data, tmp_path):
    lines = []
    streamhog.train(data / "train.parquet", tmp_path / "m", epochs=1, lr=1e6, log=lines.append, threads=1,
                    readers=1)
    warned = [line for line in lines if line.startswith("warning: epoch 1's train loss")]
    assert warned and "above the constant predictor's 0.6" in warned[0] and "--lr 1e+06" in warned[0]
    lines.clear()
    streamhog.train(data / "train.parquet", tmp_path / "ok", epochs=1, log=lines.append, threads=1, readers=1)
    assert not [line for line in lines if line.startswith("warning")]
