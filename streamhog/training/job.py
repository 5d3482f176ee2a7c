"""A training job: a new run, a resumed one, or one warm-started from another model.

``train`` checks the data and the options, prepares the model directory (never replacing
anything that is not a streamhog model), restores or creates the run's state — a new run
(:func:`_new_run`) or a resumed one (:func:`_resumed_run`) — and hands the epochs to
:class:`~streamhog.training.run.TrainingRun`.
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import asdict
from pathlib import Path

from ..errors import (CheckpointError, ConfigError, DiskSpaceError, DivergenceError, OutputExistsError, TrainingError,
                      TrainingInterrupted)
from ..io.block_cache import BlockCache
from ..io.formats import open_dataset
from ..io.formats.storage import local_model_dir, location
from ..kernels.optimizers import NORMALIZED_RULE
from ..losses import get_loss
from ..model.directory import MAX_FEATURES, META, Model
from ..model.heads import head_for
from ..model.labels import check_labels as _check_labels
from ..model.lock import ModelLock
from . import refit
from .checkpoint import has_checkpoint, read_checkpoint
from .config import TrainConfig
from .copies import ModelCopies
from .run import TrainingRun
from .safety import SpaceWatch, check_writable, verify_files
from .signals import stop_gracefully_on_signals
from .state import RunState
from .targets import inherit_target_scale, start_at_constant
from .warm_start import warm_start_into

CACHE = "cache"  # the block cache's directory inside the model directory


def check_labels(dataset, loss: str) -> dict[float, int]:
    """Refuse, before training, labels the loss cannot take, and data without rows (a pass
    over the label column only: model/labels.py); returns the label counts."""
    return _check_labels(dataset, loss, error=TrainingError)


def dataset_schema(ds) -> dict:
    """What a resumed run must find unchanged in its data."""
    return {"path": location(ds.path), "format": ds.format, "n_rows": ds.n_rows,
            "n_blocks": ds.n_blocks, "n_features": ds.n_features, "has_values": ds.has_values,
            "has_weights": ds.has_weights}


def prepare_new_model_dir(model_dir: Path, overwrite: bool) -> None:
    """Make way for a new model at ``model_dir`` (linear or factorization): refuse an existing
    one unless ``overwrite``, and then delete only a model directory no run is training."""
    if not (model_dir.exists() or model_dir.is_symlink()):
        if not model_dir.parent.exists():
            raise FileNotFoundError(f"{model_dir}: the directory {model_dir.parent} does not exist")
        return
    if not overwrite:
        hint = "pass --resume to continue its training, or " if has_checkpoint(model_dir) else "pass "
        raise OutputExistsError(f"{model_dir}: already exists; {hint}--overwrite to replace it")
    # --overwrite deletes a model directory, never anything else the user pointed at by mistake,
    # and never one another run is training.
    if model_dir.is_dir() and ((model_dir / META).is_file() or not any(model_dir.iterdir())):
        with ModelLock(model_dir):
            shutil.rmtree(model_dir)
    else:
        raise OutputExistsError(f"{model_dir}: exists and is not a streamhog model directory; "
                                "refusing to delete it (choose another --model)")


def _new_run(model_dir: Path, ds, hyper: dict, *, n_features, valid, valid_ds, overwrite, warm_start,
             lock: ModelLock, cluster: bool = False):
    """Create the model of a new run (fresh, or warm-started): its model, config and state."""
    if valid is not None and hyper.get("holdout") is None:
        hyper["holdout"] = 0.0  # early stopping watches the validation data; every row trains
    cfg = TrainConfig(**hyper).resolved()
    refit.resolve(cfg, ds.n_rows, valid, warm_start, cluster)
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
    counts = check_labels(ds, cfg.loss)  # before anything is created or replaced
    n_classes = get_loss(cfg.loss).n_classes(counts)
    if valid_ds is not None:
        _check_labels(valid_ds, cfg.loss, training=False, n_classes=n_classes, error=TrainingError)
    state = starting_state(cfg, counts, ds, n_classes)  # the target's scale too: before the model records cfg
    if warm_start is not None:
        inherit_target_scale(cfg, warm_start)
    prepare_new_model_dir(model_dir, overwrite)
    model_dir.mkdir()
    lock.acquire()
    schema = dict(dataset_schema(ds), labels={f"{k:g}": v for k, v in counts.items()} or None)
    model = Model.create(model_dir, n_features=n_features, loss=cfg.loss, optimizer=cfg.optimizer,
                         hash_bits=cfg.hash_bits, n_classes=n_classes, hyper_parameters=asdict(cfg), data=schema)
    if warm_start is not None:
        state.bstate = warm_start_into(model, warm_start, cfg)
        state.intercept = model.head.intercept_from_bstate(state.bstate)
        model.meta["warm_start"] = str(Path(warm_start).resolve())
    return model, cfg, state


def starting_state(cfg, counts: dict, ds, n_classes: int | None) -> RunState:
    """A new run's state: K intercepts and their state for softmax; with the normalized rule,
    the intercepts at the constant predictor's and the target scale (targets.py)."""
    state = RunState.fresh(head_for(cfg.loss, n_classes))
    start_at_constant(cfg, state, counts, ds)
    return state


_RESUMABLE_CHANGES = ("lr", "lr_schedule", "lr_decay", "power_t", "l2", "l1", "ftrl_beta", "initial_accumulator",
                      "early_stopping", "threads", "readers", "capacity", "sync", "hot_features")
#: What a record of an older streamhog ran with, where today's default differs.
_OLD_RECORD_CONFIG = {"initial_accumulator": 0.0, "holdout": 0.0, "early_stopping": 0}


def _resumed_run(model_dir: Path, ds, hyper: dict, epochs: int | None, n_features, say, lock: ModelLock):
    """The model, config and state to continue; refuses a changed dataset or loss, damaged
    files, a directory it cannot write, and another process training the model."""
    if not has_checkpoint(model_dir):
        raise CheckpointError(f"{model_dir}: no checkpoint to resume from"
                              + ("" if model_dir.exists() else " (the directory does not exist)"))
    check_writable(model_dir, [])
    lock.acquire()  # before anything is cleaned up or written: another run may hold it
    check_writable(model_dir, Model.open(model_dir).files())
    for stale in model_dir.glob(".*.tmp-*"):  # temporaries of a run killed while writing
        stale.unlink()
    ModelCopies(model_dir).finish_interrupted()  # copies it was making (best epoch, snapshots)
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
    verify_files(Model.open(model_dir), record)
    model = Model.open(model_dir, mode="r+")
    if n_features is not None and n_features != model.n_features:
        raise TrainingError(f"{model_dir}: the model has {model.n_features:,} features; --n-features cannot change on resume")
    changes = {k: v for k, v in hyper.items() if k in _RESUMABLE_CHANGES and v != getattr(saved, k)}
    cfg = TrainConfig(**{**asdict(saved), **changes, "epochs": epochs or saved.epochs})
    for k, v in changes.items():
        if k not in ("threads", "readers", "capacity", "hot_features"):
            say(f"note: resuming with {k} {getattr(saved, k)!r} -> {v!r} (the run is no longer the same as an "
                "uninterrupted one)")
    rule = record.get("normalized_rule", 1)  # checkpoints from before revisions: 1
    if saved.optimizer == "normalized" and rule != NORMALIZED_RULE:
        say(f"note: the run began under revision {rule} of the normalized rule; it "
            f"continues under revision {NORMALIZED_RULE} (kernels/optimizers.py), so it is no longer the same as an "
            "uninterrupted one")
    # The run's own thread counts unless given (a one-thread run stays exact).
    return model, cfg.resolved(), RunState.from_record(record)


def train(data, model_dir, *, n_features: int | None = None, valid=None, overwrite: bool = False,
          resume: bool = False, warm_start=None, checkpoint_every: float | None = None, keep_snapshots: int = 0,
          quiet: bool = False, progress: bool | None = None, log=None, handle_signals: bool = True,
          stop_after_blocks: int | None = None, cache: bool | None = None, keep_cache: bool = False,
          run_factory=None, **hyper) -> Model:
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
    the end unless ``keep_cache``. ``run_factory`` replaces :class:`TrainingRun` (same
    arguments): streamhog.cluster trains the epochs on a Dask cluster through it.

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
        raise ConfigError("--keep-snapshots must be >= 0 and --checkpoint-every > 0")
    ds = open_dataset(data, require_labels=True)  # a path, a URL, data in memory, or an open dataset
    for note in getattr(ds, "notes", ()):
        say(note)
    valid_ds = open_dataset(valid, require_labels=True) if valid is not None else None
    for note in getattr(valid_ds, "notes", ()):
        say(note)
    lock = ModelLock(model_dir)
    try:
        if resume:
            model, cfg, state = _resumed_run(model_dir, ds, hyper, hyper.pop("epochs", None), n_features, say, lock)
            pending = refit.pending(cfg, state)  # a first phase whose retraining on every row is still to come
            if state.stopped_early and not state.restoring and not pending:
                say(f"{model_dir}: the run stopped early after epoch {state.epoch} (its holdout or validation loss "
                    f"stopped improving; the model is epoch {state.best_epoch}'s); nothing to do. Use "
                    "--warm-start for a new run.")
                return Model.open(model_dir)
            if state.epoch >= cfg.epochs and not state.restoring and not pending:
                say(f"{model_dir}: already trained {state.epoch} epoch(s) (--epochs {cfg.epochs}); nothing to do. "
                    "Pass a larger --epochs to continue.")
                return Model.open(model_dir)
            counts = check_labels(ds, cfg.loss)
            say(f"resuming {model_dir} in epoch {state.epoch + 1} after {len(state.done_blocks)} of "
                f"{ds.n_blocks} blocks")
        else:
            counts = None
            try:
                model, cfg, state = _new_run(model_dir, ds, hyper, n_features=n_features, valid=valid,
                                             valid_ds=valid_ds, overwrite=overwrite, warm_start=warm_start, lock=lock,
                                             cluster=run_factory is not None)
            except BaseException:
                if lock.held:  # it created the directory: leave nothing half-made behind
                    shutil.rmtree(model_dir, ignore_errors=True)
                raise
        if valid_ds is not None:
            if valid_ds.n_features > model.n_features and model.hash_bits is None:
                raise TrainingError(f"{valid_ds.path}: the validation data has {valid_ds.n_features:,} features, "
                                    f"more than the model's {model.n_features:,}")
            if resume:  # a new run checked them before creating anything
                _check_labels(valid_ds, model.loss, training=False, n_classes=model.n_classes, error=TrainingError)
        if counts is None:  # a new run counted them into its schema
            counts = {float(k): v for k, v in (model.meta.get("data", {}).get("labels") or {}).items()}
        run_kw = dict(checkpoint_every=checkpoint_every, keep_snapshots=keep_snapshots, say=say,
                      stop_after_blocks=stop_after_blocks, baseline=get_loss(cfg.loss).constant_loss(counts))
        _run(model, ds, valid_ds, cfg, state, run_kw, new=not resume, quiet=quiet, progress=progress, cache=cache,
             keep_cache=keep_cache, handle_signals=handle_signals, run_factory=run_factory)
    finally:
        lock.release()
    return Model.open(model_dir)


def _run(model, ds, valid_ds, cfg, state, run_kw: dict, *, new: bool, quiet, progress, cache, keep_cache,
         handle_signals, run_factory=None) -> None:
    """Train the run's epochs; a run that fails is marked failed, or removed when it was new
    and had trained nothing."""
    model_dir = model.path
    space = SpaceWatch(model_dir, model.files(), copies=2 + run_kw["keep_snapshots"])
    if (short := space.shortfall()) is not None:
        raise DiskSpaceError(f"{space.message(*short)}: free some space first")
    show = (not quiet) and (progress if progress is not None else sys.stderr.isatty())
    bar = _progress_bar(round(ds.n_rows * (1 - cfg.holdout)) * (cfg.epochs - state.epoch), show)
    if cache is None:
        # worth it only when an epoch will read the cache, and not for data already in memory
        cache = cfg.epochs - state.epoch > 1 and getattr(ds, "cache_blocks", True)
    block_cache = BlockCache(model_dir / CACHE, ds, reserve=space) if cache else None
    run = (run_factory or TrainingRun)(model, ds, cfg, state, data_schema=dataset_schema(ds), valid=valid_ds, bar=bar,
                                       cache=block_cache, **run_kw)
    if new:
        run.checkpoint("running")  # a crash from here on is resumable
    refit.finish_zeroing(run)  # a second phase killed as it began
    with stop_gracefully_on_signals(run, handle_signals):
        try:
            run.run(run.cfg.epochs)
            if refit.pending(run.cfg, run.state):  # small data: every row, the epochs the holdout chose
                counts = {float(k): v for k, v in (model.meta.get("data", {}).get("labels") or {}).items()}
                run.run(refit.begin(run, starting_state(run.cfg, counts, ds, model.n_classes)))
        except (TrainingInterrupted, DiskSpaceError, DivergenceError, KeyboardInterrupt):
            raise  # each left its own resumable (or rolled-back) state
        except BaseException as exc:
            if new and run.state.epoch == 0 and not run.state.refit_of:
                shutil.rmtree(model_dir, ignore_errors=True)  # it created the model and finished nothing
            else:
                run.fail(exc)
            raise
        finally:
            if bar is not None:
                bar.close()
            if block_cache is not None:
                block_cache.close()
    if not keep_cache:  # kept on interruption (a resume reads it), removed when done
        shutil.rmtree(model_dir / CACHE, ignore_errors=True)


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="ex", unit_scale=True, file=sys.stderr, leave=False, dynamic_ncols=True)

