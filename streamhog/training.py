"""A training job: a new run, a resumed one, or one warm-started from another model.

``train`` checks the data and the options, prepares the model directory (never replacing
anything that is not a streamhog model), restores or creates the state, and hands the
epochs to :class:`~streamhog.trainer.Trainer`.
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .checkpoint import CheckpointError, has_checkpoint, read_checkpoint
from .config import TrainConfig
from .errors import OutputExistsError
from .formats import open_dataset
from .formats.block_cache import BlockCache
from .formats.storage import local_model_dir
from .kernels.softmax import bstate_length
from .model import MAX_FEATURES, META, Model
from .signals import stop_gracefully_on_signals
from .trainer import (CACHE, SNAPSHOTS, Trainer, TrainingError, check_labels, dataset_schema,
                      finish_interrupted_copies, fresh_state)


def _prepare_new_model_dir(model_dir: Path, overwrite: bool) -> None:
    if not (model_dir.exists() or model_dir.is_symlink()):
        if not model_dir.parent.exists():
            raise FileNotFoundError(f"{model_dir}: the directory {model_dir.parent} does not exist")
        return
    if not overwrite:
        hint = "pass --resume to continue its training, or " if has_checkpoint(model_dir) else "pass "
        raise OutputExistsError(f"{model_dir}: already exists; {hint}--overwrite to replace it")
    # --overwrite deletes a model directory, never anything else the user pointed at by mistake.
    if model_dir.is_dir() and ((model_dir / META).is_file() or not any(model_dir.iterdir())):
        shutil.rmtree(model_dir)
    else:
        raise OutputExistsError(f"{model_dir}: exists and is not a streamhog model directory; "
                                "refusing to delete it (choose another --model)")


def _warm_start_into(model: Model, source, cfg: TrainConfig) -> list[float]:
    """Copy another model's weights (chunk by chunk, skipping zero chunks), and its optimizer
    state when it used the same optimizer; returns the intercept state (trainer's bstate)."""
    src = Model.open(source)
    if src.n_features > model.n_features:
        raise TrainingError(f"--warm-start {source}: that model has {src.n_features:,} features, more than "
                            f"this run's {model.n_features:,}; give --n-features {src.n_features}")
    if src.n_classes != model.n_classes:
        raise TrainingError(f"--warm-start {source}: that model has {src.n_classes or 'no'} classes, this run "
                            f"{model.n_classes or 'none'}")
    if src.hash_bits != model.hash_bits:
        raise TrainingError(f"--warm-start {source}: that model hashes features with --hash-bits {src.hash_bits}, "
                            f"this run with {model.hash_bits}")
    same = src.optimizer == model.optimizer
    k = model.n_classes or 1
    b0 = np.atleast_1d(src.intercept).tolist()
    bstate = b0 + [0.0] * (2 * k + 2)
    if same and "bstate" in src.meta:
        bstate = list(src.meta["bstate"])
    chunk = 1 << 24
    for start in range(0, src.n_features, chunk):
        part = src.weights[start : start + chunk]
        if not part.any():
            continue
        stop = start + len(part)
        model.weights[start:stop] = part
        if same:
            for name, arr in src.state.items():
                model.state[name][start:stop] = arr[start:stop]
        elif model.optimizer == "ftrl":
            # FTRL derives w from its state: z such that w = -(z - sign(z) l1) / (beta / alpha + l2)
            # with n = 0 gives back the source's weights.
            w = part.astype(np.float64)
            model.state["ftrl_z"][start:stop] = -(w * (cfg.ftrl_beta / cfg.lr + cfg.l2) + np.sign(w) * cfg.l1)
    if not same and model.optimizer == "ftrl":
        bstate[2 * k:3 * k] = [-b * cfg.ftrl_beta / cfg.lr for b in b0]
    return bstate


_RESUMABLE_CHANGES = ("lr", "lr_schedule", "lr_decay", "power_t", "l2", "l1", "ftrl_beta", "initial_accumulator",
                      "early_stopping", "threads", "readers", "capacity", "sync")
#: What a record of an older streamhog ran with, where today's default differs.
_OLD_RECORD_CONFIG = {"initial_accumulator": 0.0, "holdout": 0.0, "early_stopping": 0}


def _resume(model_dir: Path, ds, hyper: dict, epochs: int | None, n_features, say):
    """The model, config and state to continue; refuses a changed dataset or loss."""
    for stale in model_dir.glob(".*.tmp-*"):  # temporaries of a run killed while writing
        stale.unlink()
    for root in (model_dir, model_dir / SNAPSHOTS):  # copies it was making (best epoch, snapshots)
        finish_interrupted_copies(root)
    record, warnings = read_checkpoint(model_dir)
    for w in warnings:
        say(f"warning: {w}; using the previous checkpoint")
    if record.get("status") == "diverged":
        raise TrainingError(f"{model_dir}: this run diverged and its weights are not usable; nothing to resume "
                            "(start again with --overwrite and a lower --lr)")
    saved = TrainConfig(**{**_OLD_RECORD_CONFIG, **record["config"]})
    if "loss" in hyper and hyper["loss"] != saved.loss:
        raise TrainingError(f"{model_dir}: the run trains the {saved.loss} loss; it cannot resume with "
                            f"--loss {hyper['loss']} (use --warm-start {model_dir} for a new run)")
    if "seed" in hyper and hyper["seed"] != saved.seed:
        raise TrainingError(f"{model_dir}: the run uses --seed {saved.seed}; a resumed run keeps its shuffling")
    for key, flag in (("optimizer", "--optimizer"), ("hash_bits", "--hash-bits"), ("holdout", "--holdout")):
        if key in hyper and hyper[key] != getattr(saved, key):
            raise TrainingError(f"{model_dir}: the run uses {flag} {getattr(saved, key)}; it cannot resume with "
                                f"{flag} {hyper[key]} (use --warm-start {model_dir} for a new run)")
    schema, want = dataset_schema(ds), record["data"]
    diff = [f"{k} {want.get(k)!r} -> {schema[k]!r}" for k in schema if k != "path" and schema[k] != want.get(k)]
    if diff:
        raise TrainingError(f"{ds.path}: not the data this run was trained on ({want.get('path')}): "
                            + ", ".join(diff) + "; use --warm-start for new data")
    model = Model.open(model_dir, mode="r+")
    if n_features is not None and n_features != model.n_features:
        raise TrainingError(f"{model_dir}: the model has {model.n_features:,} features; --n-features cannot change on resume")
    changes = {k: v for k, v in hyper.items() if k in _RESUMABLE_CHANGES and v != getattr(saved, k)}
    cfg = TrainConfig(**{**asdict(saved), **changes, "epochs": epochs or saved.epochs})
    for k, v in changes.items():
        if k not in ("threads", "readers", "capacity"):
            say(f"note: resuming with {k} {getattr(saved, k)!r} -> {v!r} (the run is no longer the same as an "
                "uninterrupted one)")
    state = {k: record[k] for k in fresh_state() if k in record}
    state.setdefault("bstate", [record["intercept"], 0.0, 0.0, 0.0, 0.0])  # a record of streamhog <= 0.1
    return model, cfg, state


def train(data, model_dir, *, n_features: int | None = None, valid=None, overwrite: bool = False,
          resume: bool = False, warm_start=None, checkpoint_every: float | None = None, keep_snapshots: int = 0,
          quiet: bool = False, progress: bool | None = None, log=None, handle_signals: bool = True,
          stop_after_blocks: int | None = None, cache: bool | None = None, keep_cache: bool = False,
          **hyper) -> Model:
    """Train a linear model on ``data`` into ``model_dir`` (a local directory).

    ``data``: a Parquet file/directory or Zarr store, local or at a URL; data in memory with
    its labels (``streamhog.InMemoryData(X, y)``); or an open dataset (``open_dataset``).

    Keyword arguments are the fields of :class:`TrainConfig` (loss, epochs, lr, lr_schedule,
    lr_decay, power_t, l2, seed, threads, readers, sync, capacity). ``epochs`` is the total:
    ``resume=True`` continues the run in ``model_dir`` from its checkpoint up to ``epochs``.
    ``warm_start`` starts a new run from another model's weights. ``valid`` is a dataset
    evaluated after each epoch. SIGINT/SIGTERM write a checkpoint and raise
    :class:`TrainingInterrupted`; so does ``stop_after_blocks`` once that many blocks were
    trained in this call (time-boxed jobs, tests of exact resume). ``cache`` (default: when
    more than one epoch is left) writes the decoded blocks of the first epoch to
    ``model_dir/cache`` so later epochs memory-map them instead of decoding; it is removed at
    the end unless ``keep_cache``.

    >>> import streamhog, tempfile, os
    >>> from streamhog.datasets import a9a
    >>> tmp = tempfile.mkdtemp()
    >>> _ = streamhog.convert(a9a("train"), os.path.join(tmp, "a9a.parquet"))
    >>> model = streamhog.train(os.path.join(tmp, "a9a.parquet"), os.path.join(tmp, "model"), quiet=True)
    >>> model.n_features, model.loss, model.meta["training"]["status"]
    (123, 'logistic', 'complete')
    """
    model_dir = local_model_dir(model_dir)  # a URL is refused: the weights are memory-mapped
    say = (lambda msg: None) if quiet else (log or (lambda msg: print(msg, file=sys.stderr)))
    if resume and warm_start is not None:
        raise TrainingError("--resume continues a run; --warm-start begins a new one: choose one")
    if keep_snapshots < 0 or (checkpoint_every is not None and checkpoint_every <= 0):
        raise ValueError("--keep-snapshots must be >= 0 and --checkpoint-every > 0")
    ds = open_dataset(data, require_labels=True)  # a path, a URL, data in memory, or an open dataset
    for note in getattr(ds, "notes", ()):
        say(note)
    if resume:
        if not has_checkpoint(model_dir):
            raise CheckpointError(f"{model_dir}: no checkpoint to resume from"
                                  + ("" if model_dir.exists() else " (the directory does not exist)"))
        epochs = hyper.pop("epochs", None)
        model, cfg, state = _resume(model_dir, ds, hyper, epochs, n_features, say)
        cfg = cfg.resolved()  # the run's own thread counts unless given (a one-thread run stays exact)
        if state.get("stopped_early") and not state.get("restoring"):
            say(f"{model_dir}: the run stopped early after epoch {state['epoch']} (its holdout or validation loss stopped improving; "
                f"the model is epoch {state.get('best_epoch')}'s); nothing to do. Use --warm-start for a new run.")
            return Model.open(model_dir)
        if state["epoch"] >= cfg.epochs and not state.get("restoring"):
            say(f"{model_dir}: already trained {state['epoch']} epoch(s) (--epochs {cfg.epochs}); nothing to do. "
                "Pass a larger --epochs to continue.")
            return Model.open(model_dir)
        say(f"resuming {model_dir} in epoch {state['epoch'] + 1} after {len(state['done_blocks'])} of "
            f"{ds.n_blocks} blocks")
    else:
        if valid is not None and hyper.get("holdout") is None:
            hyper["holdout"] = 0.0  # early stopping watches the validation data; every row trains
        cfg = TrainConfig(**hyper).resolved()
        if cfg.hash_bits is not None:
            if n_features is not None and n_features != 2 ** cfg.hash_bits:
                raise TrainingError(f"--n-features {n_features:,} contradicts --hash-bits {cfg.hash_bits} "
                                    f"(2^{cfg.hash_bits} = {2 ** cfg.hash_bits:,} slots)")
            n_features = 2 ** cfg.hash_bits
        n_features = max(ds.n_features, 1) if n_features is None else n_features
        if n_features < ds.n_features and cfg.hash_bits is None:
            raise TrainingError(f"{ds.path}: the data has {ds.n_features:,} features but --n-features is "
                                f"{n_features:,}; the model must be at least as large as the data")
        if n_features > MAX_FEATURES:
            raise TrainingError(f"--n-features {n_features:,} is above the maximum, 2^34")
        _prepare_new_model_dir(model_dir, overwrite)
        state = fresh_state()
    valid_ds = open_dataset(valid, require_labels=True) if valid is not None else None
    counts = check_labels(ds, cfg.loss)
    if not resume:
        schema = dict(dataset_schema(ds), labels={f"{k:g}": v for k, v in counts.items()} or None)
        n_classes = int(max(counts)) + 1 if cfg.loss == "softmax" else None
        model = Model.create(model_dir, n_features=n_features, loss=cfg.loss, optimizer=cfg.optimizer,
                             hash_bits=cfg.hash_bits, n_classes=n_classes, hyper_parameters=asdict(cfg), data=schema)
        if n_classes is not None:
            state["bstate"] = [0.0] * bstate_length(n_classes)  # K intercepts, K of each state, N, T
            state["intercept"] = [0.0] * n_classes
        if warm_start is not None:
            state["bstate"] = _warm_start_into(model, warm_start, cfg)
            state["intercept"] = state["bstate"][0] if n_classes is None else state["bstate"][:n_classes]
            model.meta["warm_start"] = str(Path(warm_start).resolve())
    if valid_ds is not None and valid_ds.n_features > model.n_features and model.hash_bits is None:
        raise TrainingError(f"{valid_ds.path}: the validation data has {valid_ds.n_features:,} features, "
                            f"more than the model's {model.n_features:,}")
    show = (not quiet) and (progress if progress is not None else sys.stderr.isatty())
    bar = _progress_bar(round(ds.n_rows * (1 - cfg.holdout)) * (cfg.epochs - state["epoch"]), show)
    if cache is None:
        # worth it only when an epoch will read the cache, and not for data already in memory
        cache = cfg.epochs - state["epoch"] > 1 and getattr(ds, "cache_blocks", True)
    block_cache = BlockCache(model_dir / CACHE, ds) if cache else None
    trainer = Trainer(model, ds, cfg, dict(state), valid=valid_ds, checkpoint_every=checkpoint_every,
                      keep_snapshots=keep_snapshots, say=say, bar=bar, stop_after_blocks=stop_after_blocks,
                      cache=block_cache)
    if not resume:
        trainer.checkpoint("running")  # a crash from here on is resumable
    with stop_gracefully_on_signals(trainer, handle_signals):
        try:
            trainer.run(cfg.epochs)
        finally:
            if bar is not None:
                bar.close()
            if block_cache is not None:
                block_cache.close()
    if not keep_cache:  # kept on interruption (a resume reads it), removed when done
        shutil.rmtree(model_dir / CACHE, ignore_errors=True)
    return Model.open(model_dir)


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="ex", unit_scale=True, file=sys.stderr, leave=False, dynamic_ncols=True)
