"""A factorization training job: a new run or a resumed one (what ``streamhog train --loss mf``
runs).

``train_mf`` opens the interaction data, checks the options, prepares the model directory
(never replacing anything that is not a streamhog model), computes the global mean μ and
the rating range of the training rows (a pass over the rating column only), creates the
sparse memory-mapped factor files, and hands the epochs to
:class:`~streamhog.factorization.trainer.MFTrainer`. Everything a resumed run needs is in
the checkpoint record (MFState + MFConfig) and the array files (model.model_files).

>>> import os, tempfile, numpy as np
>>> from streamhog.factorization import train_mf, write_interactions
>>> tmp = tempfile.mkdtemp()
>>> rng = np.random.default_rng(0)
>>> u, i = rng.integers(0, 50, 2000), rng.integers(0, 40, 2000)
>>> _ = write_interactions(os.path.join(tmp, "r.parquet"), u, i, (1 + (u + i) % 5).astype(np.float32))
>>> model = train_mf(os.path.join(tmp, "r.parquet"), os.path.join(tmp, "m"), rank=4, epochs=3, threads=1)
>>> model.rank, model.meta["training"]["status"], len(model.history) > 0
(4, 'complete', True)
"""
from __future__ import annotations

import json
import math
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..training.checkpoint import CheckpointError, has_checkpoint, read_checkpoint
from ..model.lock import ModelLock
from ..training.early_stopping import holdout_mask
from ..training.job import prepare_new_model_dir
from ..training.signals import stop_gracefully_on_signals
from .config import RESUMABLE, MFConfig, MFState
from .format import InteractionDataset
from .model import MFModel
from .trainer import MFTrainer, MFTrainingError

#: What a resumed run keeps: another value would make it a different run.
_IDENTITY = ("rank", "optimizer", "seed", "holdout", "init_scale", "initial_accumulator", "feedback", "negatives")


def training_mean(ds: InteractionDataset, holdout: float, seed: int) -> tuple[float, float, list, int]:
    """(μ, σ, [min, max], rows) of the training rows' ratings (weighted when there are
    weights), leaving the held-out rows out; reads the rating (and weight) column only."""
    shift = None
    s0 = s1 = s2 = 0.0
    lo, hi, n = np.inf, -np.inf, 0
    for row_start, ratings, weights in ds.iter_ratings():
        keep = ~holdout_mask(row_start, len(ratings), holdout, seed) if holdout else slice(None)
        r = ratings[keep].astype(np.float64)
        if not len(r):
            continue
        shift = float(r[0]) if shift is None else shift  # sums of shifted values: no cancellation
        d = r - shift
        # Elementwise products and sums, not ``s @ d``: BLAS's threaded dot on a block this
        # small costs milliseconds of thread wake-ups on a busy machine (0.1 s of a 0.5 s run).
        if weights is None:
            s0, s1, s2 = s0 + len(r), s1 + float(d.sum()), s2 + float((d * d).sum())
        else:
            s = weights[keep].astype(np.float64)
            sd = s * d
            s0, s1, s2 = s0 + float(s.sum()), s1 + float(sd.sum()), s2 + float((sd * d).sum())
        lo, hi, n = min(lo, float(r.min())), max(hi, float(r.max())), n + len(r)
    if n == 0 or s0 <= 0:
        raise MFTrainingError(f"{ds.path}: no rows to train on ({ds.n_rows} rows"
                              + (f", --holdout {holdout} holds them out" if holdout else "") + ", or zero weights)")
    mean = s1 / s0
    return shift + mean, math.sqrt(max(s2 / s0 - mean * mean, 0.0)), [lo, hi], n


def _saved_feedback(model_dir: Path) -> str:
    """The feedback of the run in ``model_dir`` (its model.json; explicit when unreadable: the
    resume then says what is wrong)."""
    try:
        return json.loads((model_dir / "model.json").read_text()).get("feedback", "explicit")
    except (OSError, ValueError, AttributeError):
        return "explicit"


def _resume(model_dir: Path, ds: InteractionDataset, hyper: dict, say,
            lock: ModelLock) -> tuple[MFModel, MFConfig, MFState]:
    if not has_checkpoint(model_dir):
        raise CheckpointError(f"{model_dir}: no checkpoint to resume from"
                              + ("" if model_dir.exists() else " (the directory does not exist)"))
    lock.acquire()  # before anything is cleaned up or written: another run may hold it
    for stale in model_dir.glob(".*.tmp-*"):  # temporaries of a run killed while writing
        stale.unlink()
    shutil.rmtree(model_dir / ".best-epoch.deleted", ignore_errors=True)  # a removal a kill interrupted
    record, warnings = read_checkpoint(model_dir)
    for w in warnings:
        say(f"warning: {w}; using the previous checkpoint")
    if record.get("kind") != "mf":
        raise MFTrainingError(f"{model_dir}: a linear model's run; it cannot resume as a factorization")
    if record.get("status") == "diverged":
        raise MFTrainingError(f"{model_dir}: this run diverged and its factors are not usable; start again with "
                              "--overwrite and a lower --lr")
    saved = MFConfig(**{"schedule": "hogwild", **record["config"]})  # a run from before schedules: Hogwild!
    for key in _IDENTITY:
        if key in hyper and hyper[key] != getattr(saved, key):
            flag = "--" + key.replace("_", "-")
            raise MFTrainingError(f"{model_dir}: the run uses {flag} {getattr(saved, key)}; it cannot resume with "
                                  f"{flag} {hyper[key]} (start a new run)")
    schema, want = ds.schema(), record["data"]
    diff = [f"{k} {want.get(k)!r} -> {schema[k]!r}" for k in schema if k != "path" and schema[k] != want.get(k)]
    if diff:
        raise MFTrainingError(f"{ds.path}: not the data this run was trained on ({want.get('path')}): "
                              + ", ".join(diff))
    changes = {k: v for k, v in hyper.items() if k in RESUMABLE and v != getattr(saved, k)}
    for k, v in changes.items():
        if k not in ("threads", "readers", "capacity"):
            say(f"note: resuming with {k} {getattr(saved, k)!r} -> {v!r} (no longer the same as an uninterrupted run)")
    cfg = MFConfig(**{**asdict(saved), **changes, "epochs": hyper.get("epochs", saved.epochs),
                      "threads": hyper.get("threads", 0), "readers": hyper.get("readers", 0),
                      "capacity": hyper.get("capacity", 0)}).resolved()
    return MFModel.open(model_dir, mode="r+"), cfg, MFState.from_record(record)


def train_mf(data, model_dir, *, valid=None, resume: bool = False, overwrite: bool = False,
             n_users: int | None = None, n_items: int | None = None, checkpoint_every: float | None = None,
             stop_after_blocks: int | None = None, quiet: bool = True, log=None, handle_signals: bool = True,
             **hyper) -> MFModel:
    """Train biased matrix factorization on interaction ``data`` into ``model_dir``.

    Keyword arguments are :class:`MFConfig`'s fields (rank, epochs, optimizer, lr, l2, ...);
    ``epochs`` is the total, so ``resume=True`` continues the run in ``model_dir`` up to it.
    ``valid`` (interaction data) is scored after each epoch and, without a holdout, watched
    by early stopping. ``n_users`` / ``n_items`` size the factor matrices beyond the data's
    ids (the files are sparse: unused rows are free). SIGINT/SIGTERM, or
    ``stop_after_blocks`` blocks, stop at a block boundary with a checkpoint and raise
    :class:`~streamhog.errors.TrainingInterrupted`. Returns the model, opened read-only;
    ``model.history`` holds each epoch's metrics."""
    model_dir = Path(model_dir)
    say = (lambda msg: None) if quiet else (log or (lambda msg: print(msg, file=sys.stderr)))
    if not resume:
        MFConfig(**hyper).resolved()  # bad options are refused before any data is read
    ds = InteractionDataset(data)
    # A resume checks its data as the run it continues (a different --feedback is refused below).
    implicit = (_saved_feedback(model_dir) if resume else hyper.get("feedback", "explicit")) == "implicit"
    if not implicit:  # implicit feedback: every row is an interaction, ratings or not
        ds.require_ratings("training")
    valid_ds = InteractionDataset(valid) if valid is not None else None
    if valid_ds is not None and not implicit:
        valid_ds.require_ratings("validation")
    lock = ModelLock(model_dir)  # one run per model directory (model/lock.py), released at the end
    try:
        return _train(model_dir, ds, valid_ds, resume, overwrite, n_users, n_items, checkpoint_every,
                      stop_after_blocks, say, handle_signals, hyper, lock)
    finally:
        lock.release()


def _train(model_dir, ds, valid_ds, resume, overwrite, n_users, n_items, checkpoint_every, stop_after_blocks, say,
           handle_signals, hyper, lock) -> MFModel:
    if resume:
        model, cfg, state = _resume(model_dir, ds, hyper, say, lock)
        if state.stopped_early and not state.restoring:
            say(f"{model_dir}: the run stopped early after epoch {state.epoch}; nothing to do")
            return MFModel.open(model_dir)
        if state.epoch >= cfg.epochs and not state.restoring:
            say(f"{model_dir}: already trained {state.epoch} epoch(s) (--epochs {cfg.epochs}); nothing to do")
            return MFModel.open(model_dir)
        say(f"resuming {model_dir} in epoch {state.epoch + 1} after {len(state.done_blocks)} of {ds.n_blocks} blocks")
    else:
        if valid_ds is not None and hyper.get("holdout") is None:
            hyper["holdout"] = 0.0  # early stopping watches the validation data; every row trains
        cfg = MFConfig(**hyper).resolved()
        sizes = {}
        for what, given, have in (("users", n_users, ds.n_users), ("items", n_items, ds.n_items)):
            if given is not None and given < have:
                raise MFTrainingError(f"{ds.path}: the data has ids up to {have - 1:,} but --n-{what} is {given:,}")
            sizes[what] = given if given is not None else have
        if cfg.implicit:  # logits: μ one positive among negatives + 1 observations, no rating scale
            mu, sigma, rating_range = -math.log(cfg.negatives), 1.0, None
        else:
            mu, sigma, rating_range, _ = training_mean(ds, cfg.holdout, cfg.seed)
        prepare_new_model_dir(model_dir, overwrite)
        model_dir.mkdir()
        lock.acquire()
        model = MFModel.create(model_dir, n_users=sizes["users"], n_items=sizes["items"], rank=cfg.rank,
                               optimizer=cfg.optimizer, hyper_parameters=asdict(cfg), data=ds.schema(),
                               feedback=cfg.feedback, negatives=cfg.negatives)
        state = MFState(mu=mu, sigma=sigma if sigma > 0 else 1.0, rating_range=rating_range)
    trainer = MFTrainer(model, ds, cfg, state, valid=valid_ds, checkpoint_every=checkpoint_every,
                        stop_after_blocks=stop_after_blocks, say=say)
    if not resume:
        trainer.checkpoint("running")  # a crash from here on is resumable
    try:
        with stop_gracefully_on_signals(trainer, handle_signals):
            trainer.run()
    finally:
        trainer.close()
    return MFModel.open(model_dir)
