"""Training: reader threads → bounded stream → N consumer threads → one shared weight vector.

Consumers run the nogil SGD kernel on whole blocks and write the memory-mapped weights
without locks (Hogwild!). Each block arrives with its learning-rate state: the step
counter of its first row, claimed under a lock once per block (not per example).
With one consumer thread the stream delivers blocks in the epoch's order and the run is
deterministic for a given seed.
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .atomic import atomic_output
from .errors import StreamhogError
from .formats import open_dataset
from .inspect import label_counts
from .kernels.losses import LOSS_IDS
from .kernels.sgd import CONSTANT, INVSCALING, sgd_train_rows
from .config import LR_SCHEDULES, TrainConfig  # noqa: F401 (re-exported)
from .model import CLASSIFICATION_LOSSES, MAX_FEATURES, Model
from .stream import BatchStream, block_order

_EMPTY_F32 = np.zeros(0, np.float32)


class TrainingError(StreamhogError):
    """Training stopped: labels that do not fit the loss, divergence, or bad options."""


def check_labels(dataset, loss: str) -> dict[float, int]:
    """Refuse, before training, labels a classification loss cannot take (a pass over the
    label column only); returns the label counts. Any label suits the squared loss (the
    readers already refuse non-finite ones)."""
    if loss not in CLASSIFICATION_LOSSES:
        return {}
    counts = label_counts(dataset, max_distinct=3)  # three distinct values are already too many
    seen = set(counts)
    if not (seen <= {-1.0, 1.0} or seen <= {0.0, 1.0}):
        bad = sorted(seen - ({-1.0, 1.0} if -1.0 in seen else {0.0, 1.0}))[0]
        raise TrainingError(
            f"{dataset.path}: label {bad:g} does not fit the {loss} loss, which takes labels "
            f"{{-1, +1}} or {{0, 1}} (labels seen: {', '.join(f'{v:g}' for v in sorted(seen))}"
            f"{', ...' if len(seen) >= 3 else ''}); use --loss squared for real-valued targets")
    return counts


class _EpochState:
    """Counters shared by the consumer threads of one epoch (updated once per block)."""

    def __init__(self, t0: int):
        self.lock = threading.Lock()
        self.step = t0
        self.rows = 0
        self.nnz = 0
        self.loss = 0.0
        self.weight = 0.0
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def claim_steps(self, n: int) -> int:
        with self.lock:
            t0 = self.step
            self.step += n
            return t0

    def add(self, rows: int, nnz: int, loss: float, weight: float) -> None:
        with self.lock:
            self.rows += rows
            self.nnz += nnz
            self.loss += loss
            self.weight += weight

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = exc
        self.stop.set()


class Trainer:
    """Runs the epochs of one training job on an open model."""

    def __init__(self, model: Model, dataset, config: TrainConfig, *, progress: bool | None = None):
        self.model = model
        self.dataset = dataset
        self.cfg = config
        self.loss_id = LOSS_IDS[config.loss]
        self.schedule = INVSCALING if config.lr_schedule == "invscaling" else CONSTANT
        self.w = np.asarray(model.weights)  # a plain ndarray view: cheaper to pass to numba
        self.intercept = np.array([model.intercept], dtype=np.float64)
        self.lock_cell = np.zeros(1, np.int32)
        self.progress = sys.stderr.isatty() if progress is None else progress

    def _consume(self, stream: BatchStream, state: _EpochState, epoch: int, lr: float) -> None:
        cfg = self.cfg
        try:
            while not state.stop.is_set():
                batch = stream.next_batch()
                if batch is None:
                    return
                # Rows in a fresh order every epoch, fixed by (seed, epoch, block): reproducible.
                rows = np.random.default_rng([cfg.seed, epoch, batch.block]).permutation(batch.n_rows)
                t0 = state.claim_steps(batch.n_rows)
                values = batch.values if batch.values is not None else _EMPTY_F32
                weights = batch.weights if batch.weights is not None else _EMPTY_F32
                loss, weight, n_bad = sgd_train_rows(
                    batch.indptr, batch.indices, values, batch.values is not None, batch.labels, weights,
                    batch.weights is not None, rows, self.w, self.intercept, self.lock_cell, cfg.sync == "lock",
                    self.loss_id, self.schedule, lr, cfg.power_t, t0, cfg.l2, True)
                if n_bad or not np.isfinite(loss) or not np.isfinite(self.intercept[0]):
                    raise TrainingError(
                        f"training diverged in epoch {epoch + 1}, {batch.source}: the margin became NaN or "
                        f"infinite; lower --lr (now {cfg.lr:g})")
                state.add(batch.n_rows, batch.nnz, loss, weight)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            state.fail(exc)

    def run_epoch(self, epoch: int, t0: int, bar=None) -> dict:
        cfg = self.cfg
        ds = self.dataset
        lr = cfg.epoch_lr(epoch)
        order = block_order(ds.n_blocks, epoch=epoch, seed=cfg.seed)
        state = _EpochState(t0)
        start = time.perf_counter()
        with BatchStream(ds, order, readers=cfg.readers, capacity=cfg.capacity, ordered=cfg.threads == 1) as stream:
            consumers = [threading.Thread(target=self._consume, args=(stream, state, epoch, lr),
                                          name=f"streamhog-train-{i}", daemon=True) for i in range(cfg.threads)]
            for t in consumers:
                t.start()
            shown = 0
            while alive := [t for t in consumers if t.is_alive()]:
                alive[0].join(0.2)
                if bar is not None:
                    with state.lock:
                        rows, loss, weight = state.rows, state.loss, state.weight
                    bar.update(rows - shown)
                    shown = rows
                    if weight:
                        bar.set_postfix(epoch=epoch + 1, loss=f"{loss / weight:.4f}", refresh=False)
            if state.error is not None:
                stream.close()
                raise state.error
        seconds = time.perf_counter() - start
        return {"epoch": epoch + 1, "examples": state.rows, "nnz": state.nnz, "lr": lr,
                "train_loss": state.loss / state.weight if state.weight else None,
                "seconds": round(seconds, 4), "examples_per_s": round(state.rows / seconds, 1),
                "steps_end": state.step}

    def finish(self) -> None:
        self.model.meta["intercept"] = float(self.intercept[0])
        self.model.flush()
        self.model.save_meta()


def dataset_schema(ds) -> dict:
    return {"path": str(Path(ds.path).resolve()), "format": ds.format, "n_rows": ds.n_rows,
            "n_features": ds.n_features, "has_values": ds.has_values, "has_weights": ds.has_weights}


def train(data, model_dir, *, n_features: int | None = None, valid=None, overwrite: bool = False,
          quiet: bool = False, progress: bool | None = None, log=None, **hyper) -> Model:
    """Train a linear model on ``data`` (Parquet file/directory or Zarr store) into ``model_dir``.

    Keyword arguments are the fields of :class:`TrainConfig` (loss, epochs, lr, lr_schedule,
    lr_decay, power_t, l2, seed, threads, readers, sync, capacity). ``valid`` is a dataset
    evaluated after each epoch. The model directory is written under a temporary name and
    appears complete at the end; an existing one is replaced only with ``overwrite``.

    >>> import streamhog, tempfile, os
    >>> from streamhog.datasets import a9a
    >>> tmp = tempfile.mkdtemp()
    >>> _ = streamhog.convert(a9a("train"), os.path.join(tmp, "a9a.parquet"))
    >>> model = streamhog.train(os.path.join(tmp, "a9a.parquet"), os.path.join(tmp, "model"), quiet=True)
    >>> model.n_features, model.loss
    (123, 'logistic')
    """
    from .inference import evaluate

    cfg = TrainConfig(**hyper).resolved()
    ds = open_dataset(data)
    if n_features is None:
        n_features = max(ds.n_features, 1)
    if n_features < ds.n_features:
        raise TrainingError(f"{ds.path}: the data has {ds.n_features:,} features but --n-features is "
                            f"{n_features:,}; the model must be at least as large as the data")
    if n_features > MAX_FEATURES:
        raise TrainingError(f"--n-features {n_features:,} is above the maximum, 2^34")
    valid_ds = open_dataset(valid) if valid is not None else None
    if valid_ds is not None and valid_ds.n_features > n_features:
        raise TrainingError(f"{valid_ds.path}: the validation data has {valid_ds.n_features:,} features, "
                            f"more than the model's {n_features:,}")
    counts = check_labels(ds, cfg.loss)
    say = (lambda msg: None) if quiet else (log or (lambda msg: print(msg, file=sys.stderr)))
    with atomic_output(model_dir, overwrite=overwrite) as tmp:
        schema = dataset_schema(ds)
        schema["labels"] = {f"{k:g}": v for k, v in counts.items()} or None
        model = Model.create(tmp, n_features=n_features, loss=cfg.loss, hyper_parameters=asdict(cfg), data=schema)
        trainer = Trainer(model, ds, cfg, progress=None if not quiet else False)
        bar = _progress_bar(ds.n_rows * cfg.epochs, enabled=(not quiet) and (progress if progress is not None
                                                                              else sys.stderr.isatty()))
        try:
            steps = 0
            for epoch in range(cfg.epochs):
                record = trainer.run_epoch(epoch, steps, bar)
                steps = record.pop("steps_end")
                if valid_ds is not None:
                    trainer.finish()  # the evaluation reads the intercept from the model
                    record["valid"] = evaluate(model, valid_ds, threads=cfg.threads)
                model.meta["history"].append(record)
                say(_epoch_line(record, cfg))
        finally:
            if bar is not None:
                bar.close()
        trainer.finish()
        del model, trainer
    return Model.open(model_dir)


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="ex", unit_scale=True, file=sys.stderr, leave=False, dynamic_ncols=True)


def _epoch_line(record: dict, cfg: TrainConfig) -> str:
    line = (f"epoch {record['epoch']}/{cfg.epochs}: train loss {record['train_loss']:.5f}, "
            f"{record['examples']:,} examples in {record['seconds']:.2f} s ({record['examples_per_s']:,.0f}/s), "
            f"lr {record['lr']:.4g}")
    if "valid" in record:
        line += ", valid " + ", ".join(f"{k} {v:.5f}" for k, v in record["valid"].items() if k != "n_examples")
    return line
