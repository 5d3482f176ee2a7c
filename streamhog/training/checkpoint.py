"""Checkpoint records: everything needed to continue a training run exactly.

A model directory being trained holds, beside ``weights.npy`` and ``model.json``:

``checkpoint.json``       the newest record
``checkpoint.prev.json``  the record before it (the fallback if the newest is damaged)
``snapshots/``            with ``--keep-snapshots K``: K rollback points (weights + record)

A record is JSON: ``{"checksum": sha256 of the canonical record text, "record": {...}}``.
The record holds the epoch in progress, the blocks of that epoch already trained (so a
resumed run skips exactly them), the step counter (the learning-rate state), the
intercept (exact: JSON floats round-trip), the running loss sums of the epoch, the
metrics history, the hyper-parameters and the data's schema. Block and row orders are
pure functions of (seed, epoch, block), so the shuffling state is the seed.

Writing is crash-safe: the weights are flushed (msync) first; the record goes to a
temporary file, is fsynced, the current record is renamed to ``checkpoint.prev.json``,
the new one renamed into place, and the directory fsynced. A crash at any moment leaves
at least one complete, checksummed record whose weights were on disk before it was written.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from .._fs.atomic import fsync, fsync_directory
from ..errors import CheckpointError

CHECKPOINT = "checkpoint.json"
PREVIOUS = "checkpoint.prev.json"
CHECKPOINT_VERSION = 1
#: Test hook: seconds to sleep inside the write window, so that tests can kill -9 a run
#: while it writes a checkpoint. Never set in normal use.
_TEST_DELAY_ENV = "STREAMHOG_TEST_CHECKPOINT_DELAY"

_REQUIRED = ("version", "epoch", "done_blocks", "step", "intercept", "epoch_loss", "epoch_weight",
             "epoch_rows", "epoch_nnz", "epoch_seconds", "history", "config", "data")




def _canonical(record: dict) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"))




def _test_delay() -> None:
    delay = os.environ.get(_TEST_DELAY_ENV)
    if delay:
        time.sleep(float(delay))


def write_checkpoint(model_dir, record: dict) -> None:
    """Atomically make ``record`` the newest checkpoint (see the module docstring)."""
    model_dir = Path(model_dir)
    record = dict(record, version=CHECKPOINT_VERSION, written=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    text = _canonical(record)
    payload = json.dumps({"checksum": hashlib.sha256(text.encode()).hexdigest(), "record": record}, indent=1)
    tmp = model_dir / f".{CHECKPOINT}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(payload)
        _test_delay()
        f.flush()
        fsync(f.fileno())
    current = model_dir / CHECKPOINT
    if current.exists():
        os.replace(current, model_dir / PREVIOUS)
        _test_delay()
    os.replace(tmp, current)
    fsync_directory(model_dir)


def _load(path: Path) -> dict:
    try:
        outer = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable or truncated ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(outer, dict) or "record" not in outer or "checksum" not in outer:
        raise CheckpointError(f"{path}: not a streamhog checkpoint record")
    record = outer["record"]
    if hashlib.sha256(_canonical(record).encode()).hexdigest() != outer["checksum"]:
        raise CheckpointError(f"{path}: checksum mismatch (the record was altered or corrupted)")
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        raise CheckpointError(f"{path}: record lacks {', '.join(missing)}")
    if record["version"] != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {record['version']!r} is not supported")
    return record


def has_checkpoint(model_dir) -> bool:
    model_dir = Path(model_dir)
    return (model_dir / CHECKPOINT).exists() or (model_dir / PREVIOUS).exists()


def read_checkpoint(model_dir) -> tuple[dict, list[str]]:
    """The newest usable record and warnings about damaged newer ones.

    Falls back to ``checkpoint.prev.json`` when the newest is missing (a crash between the
    two renames) or damaged; raises :class:`CheckpointError` naming both when neither is usable.
    """
    model_dir = Path(model_dir)
    problems = []
    for name in (CHECKPOINT, PREVIOUS):
        path = model_dir / name
        if not path.exists():
            problems.append(f"{path}: missing")
            continue
        try:
            return _load(path), [p for p in problems if not p.endswith(": missing")]
        except CheckpointError as exc:
            problems.append(str(exc))
    if all(p.endswith(": missing") for p in problems):
        raise CheckpointError(f"{model_dir}: no checkpoint to resume from (the run was never started "
                              "here, or finished before checkpoints existed); start a new run without --resume")
    raise CheckpointError(f"{model_dir}: no usable checkpoint: " + "; ".join(problems))
