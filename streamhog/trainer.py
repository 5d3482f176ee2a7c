"""Training: reader threads → bounded stream → N consumer threads → one shared weight vector.

Consumers run the nogil training kernel (kernels/sgd.py, or kernels/softmax.py for K
classes) on whole blocks and write the memory-mapped weights and optimizer state without
locks (Hogwild!). Each block arrives with its learning-rate state: the step
counter of its first row, claimed under a lock once per block (not per example). With
one consumer thread the stream delivers blocks in the epoch's order and the run is
deterministic for a given seed.

Training happens in place in the model directory, with checkpoints (streamhog/checkpoint.py)
at the end of every epoch, every ``checkpoint_every`` seconds, on SIGINT/SIGTERM and at the
end. A checkpoint is taken at a block boundary: consumers finish the block in hand and
wait, the weights are flushed, the record is written, and they go on. Resuming skips the
blocks the record lists as done, so a one-thread run resumed after a clean stop is
bit-identical to an uninterrupted one.

After a crash (kill -9) the resumed run replays the blocks trained since the last
checkpoint. The weights on disk may already hold part of their updates (the memory map
is written in place), so those examples are seen once more: an extra step on a few
examples (and, for the adaptive optimizers, their squared gradients accumulated once
more) — noise of the order of one block's updates, which later steps wash out — never a
corrupt model.
"""
from __future__ import annotations

import math
import shutil
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .checkpoint import read_checkpoint, write_checkpoint
from .config import TrainConfig
from .errors import DataFormatError, StreamhogError
from .formats.block_cache import BlockCache
from .hashing import hash_batch
from .holdout import WATCHED_NAME, holdout_mask, watched_score
from .interrupt import TrainingInterrupted
from .labels import check_labels as _check_labels
from .kernels.losses import LOSS_IDS
from .kernels.optimizers import B_VALUE, OPTIMIZER_IDS
from .kernels.sgd import CONSTANT, INVSCALING, train_rows
from .kernels.softmax import bstate_length, softmax_train_rows
from .model import Model
from .stream import BatchStream, block_order

_EMPTY_F32 = np.zeros(0, np.float32)
SNAPSHOTS = "snapshots"
CACHE = "cache"
BEST = "best-epoch"  # a copy of the model of the best epoch so far (early stopping)


def finish_interrupted_copies(root: Path) -> None:
    """Complete or undo the copies (best epoch, snapshots) that a killed run left in ``root``.

    Trainer._save_copy writes ``.NAME.tmp``, then moves NAME aside to ``.NAME.old`` and
    renames the copy into place. A ``.NAME.old`` therefore means the copy was whole: put it
    in place if NAME is missing (the kill fell between the two renames), else it is the
    replaced one. A ``.NAME.tmp`` without ``.NAME.old`` may be partial: drop it, as any
    ``.NAME.deleted`` (remove_copy's).
    """
    if not root.is_dir():
        return
    for gone in root.glob(".*.deleted"):
        shutil.rmtree(gone, ignore_errors=True)
    for old in root.glob(".*.old"):
        dest, tmp = root / old.name[1:-4], root / (old.name[:-4] + ".tmp")
        if not dest.exists():
            (tmp if tmp.is_dir() else old).rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    for tmp in root.glob(".*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)


def remove_copy(path: Path) -> None:
    """Remove a copy so that a kill midway never leaves a partial one under its name (a
    later rollback or best-epoch restore would read it): hide it first, then delete."""
    if path.exists():
        gone = path.with_name(f".{path.name}.deleted")
        shutil.rmtree(gone, ignore_errors=True)
        path.rename(gone)
        shutil.rmtree(gone, ignore_errors=True)


class TrainingError(StreamhogError):
    """Training stopped: labels that do not fit the loss, divergence, or bad options."""


class DivergenceError(TrainingError):
    """A margin became NaN or infinite: the step size is too large for the data."""


def check_labels(dataset, loss: str) -> dict[float, int]:
    """Refuse, before training, labels the loss cannot take (streamhog/labels.py)."""
    return _check_labels(dataset, loss, error=TrainingError)


def dataset_schema(ds) -> dict:
    """What a resumed run must find unchanged in its data."""
    return {"path": str(Path(ds.path).resolve()), "format": ds.format, "n_rows": ds.n_rows,
            "n_blocks": ds.n_blocks, "n_features": ds.n_features, "has_values": ds.has_values,
            "has_weights": ds.has_weights}


class _EpochControl:
    """What consumers of one epoch share: counters (updated once per block), the set of
    blocks done, the error, and the pause/stop protocol for checkpoints and signals."""

    def __init__(self, state: dict, n_consumers: int):
        self.cond = threading.Condition()
        # Running sums continue the state's (one sequence of additions whether or not the
        # epoch was interrupted: the resumed epoch loss is bit-identical too).
        self.step = state["step"]
        self.rows, self.nnz = state["epoch_rows"], state["epoch_nnz"]
        self.loss, self.weight = state["epoch_loss"], state["epoch_weight"]
        self.done: list[int] = []
        self.error: BaseException | None = None
        self.stopping = False
        self.pause_requested = False
        self.paused = 0
        self.active = n_consumers

    def at_block_boundary(self) -> bool:
        """Called by a consumer holding a new batch, before training it: wait out a pause;
        False means stop (the batch is left untrained, so it is not marked done)."""
        with self.cond:
            if self.pause_requested and not self.stopping:
                self.paused += 1
                self.cond.notify_all()
                while self.pause_requested and not self.stopping:
                    self.cond.wait()
                self.paused -= 1
            return not self.stopping

    def claim_steps(self, n: int) -> int:
        with self.cond:
            t0 = self.step
            self.step += n
            return t0

    def block_done(self, block: int, rows: int, nnz: int, loss: float, weight: float) -> None:
        with self.cond:
            self.done.append(block)
            self.rows += rows
            self.nnz += nnz
            self.loss += loss
            self.weight += weight

    def consumer_exit(self, exc: BaseException | None) -> None:
        with self.cond:
            if exc is not None and self.error is None:
                self.error = exc
                self.stopping = True
            self.active -= 1
            self.cond.notify_all()

    def pause(self) -> None:
        """Wait until every live consumer sits at a block boundary."""
        with self.cond:
            self.pause_requested = True
            while self.paused < self.active and not self.stopping:
                self.cond.wait(0.1)

    def resume(self) -> None:
        with self.cond:
            self.pause_requested = False
            self.cond.notify_all()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()


class Trainer:
    """Runs (or continues) the epochs of one training job on an open model."""

    def __init__(self, model: Model, dataset, config: TrainConfig, state: dict, *, valid=None,
                 checkpoint_every: float | None = None, keep_snapshots: int = 0, say=None, bar=None,
                 stop_after_blocks: int | None = None, cache: BlockCache | None = None):
        # state: the checkpointed progress (fresh_state's keys); the data schema and the
        # config are written beside it in every record.
        self.model = model
        self.dataset = dataset
        self.cfg = config
        self.state = state
        self.valid = valid
        self.checkpoint_every = checkpoint_every
        self.keep_snapshots = keep_snapshots
        self.say = say or (lambda msg: None)
        self.bar = bar
        self.loss_id = LOSS_IDS.get(config.loss, -1)  # softmax has its own kernel
        self.schedule = INVSCALING if config.lr_schedule == "invscaling" else CONSTANT
        # Plain flat ndarray views (cheaper to pass to numba; a softmax matrix row-major, j*K + k).
        self.w = np.asarray(model.weights).reshape(-1)
        self.n_classes = model.n_classes
        self.optimizer_id = OPTIMIZER_IDS[config.optimizer]
        state_arrays = [np.asarray(a).reshape(-1) for a in model.state.values()]
        self.acc = state_arrays[0] if state_arrays else np.zeros(0, np.float32)
        self.aux = state_arrays[1] if len(state_arrays) > 1 else np.zeros(0, np.float32)
        # The intercept, its optimizer state and the normalized rule's N and T (optimizers.py).
        self.bstate = np.array(state["bstate"], dtype=np.float64)
        self.lock_cell = np.zeros(1, np.int32)
        self.signal_received: int | None = None
        self._last_checkpoint = time.monotonic()
        self._blocks_left = stop_after_blocks
        self.cache = cache
        self.data_schema = dataset_schema(dataset)

    # -- consumers -------------------------------------------------------------------------
    def _consume(self, stream: BatchStream, ctl: _EpochControl, epoch: int, lr: float) -> None:
        cfg = self.cfg
        exc = None
        try:
            while (batch := stream.next_batch()) is not None:
                if not ctl.at_block_boundary():
                    return
                # Rows in a fresh order every epoch, fixed by (seed, epoch, block): reproducible.
                rows = np.random.default_rng([cfg.seed, epoch, batch.block]).permutation(batch.n_rows)
                nnz = batch.nnz
                if cfg.holdout:  # held-out rows are scored after the epoch, never trained on
                    rows = rows[~self._held_out(batch)[rows]]
                    nnz = int(np.diff(batch.indptr)[rows].sum())
                t0 = ctl.claim_steps(len(rows))
                values = batch.values if batch.values is not None else _EMPTY_F32
                weights = batch.weights if batch.weights is not None else _EMPTY_F32
                # Training-time --hash-bits: each row keeps its (possibly colliding) ids, as scoring does.
                indices = batch.indices if cfg.hash_bits is None else hash_batch(batch, cfg.hash_bits, merge=False).indices
                if self.n_classes is None:
                    loss, weight, n_bad, n_out = train_rows(
                        batch.indptr, indices, values, batch.values is not None, batch.labels, weights,
                        batch.weights is not None, rows, self.w, self.acc, self.aux, self.bstate, self.lock_cell,
                        cfg.sync == "lock", self.optimizer_id, self.loss_id, self.schedule, lr, cfg.power_t, t0,
                        cfg.l1, cfg.l2, cfg.smoothing, True)
                else:
                    loss, weight, n_bad, n_out, n_label = softmax_train_rows(
                        batch.indptr, indices, values, batch.values is not None, batch.labels, weights,
                        batch.weights is not None, rows, self.w, self.acc, self.aux, self.bstate, self.lock_cell,
                        cfg.sync == "lock", self.optimizer_id, self.schedule, lr, cfg.power_t, t0,
                        cfg.l1, cfg.l2, cfg.smoothing, True, self.n_classes)
                    if n_label:
                        raise DataFormatError(batch.source, f"a label is not a class id 0..{self.n_classes - 1}; "
                                                            "the block was refused")
                if n_out:
                    raise DataFormatError(batch.source, f"a feature index is >= the model's n_features "
                                                        f"{len(self.w):,}; the block was refused")
                if n_bad or not np.isfinite(loss) or not np.isfinite(self.bstate).all():
                    raise DivergenceError(
                        f"training diverged in epoch {epoch + 1}, {batch.source}: the margin became NaN or "
                        f"infinite; lower --lr (now {cfg.lr:g})")
                if self.cache is not None:
                    self.cache.offer(batch)  # background write; later epochs memory-map it
                ctl.block_done(batch.block, len(rows), nnz, loss, weight)
                if self._blocks_left is not None:
                    with ctl.cond:
                        self._blocks_left -= 1
                        if self._blocks_left <= 0:  # a clean stop, exactly as on SIGINT
                            self.signal_received = self.signal_received or signal.SIGINT
                            ctl.stopping = True
                            ctl.cond.notify_all()
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            exc = e
        finally:
            ctl.consumer_exit(exc)

    # -- one epoch ---------------------------------------------------------------------------
    def _run_epoch(self) -> bool:
        """Train the blocks of the current epoch not yet done; False if stopped by a signal."""
        cfg, st, ds = self.cfg, self.state, self.dataset
        epoch = st["epoch"]
        lr = cfg.epoch_lr(epoch)
        done = set(st["done_blocks"])
        order = [b for b in block_order(ds.n_blocks, epoch=epoch, seed=cfg.seed).tolist() if b not in done]
        ctl = _EpochControl(st, cfg.threads)
        start = time.perf_counter()
        shown = 0
        with BatchStream(self._source(), order, readers=cfg.readers, capacity=cfg.capacity, ordered=cfg.threads == 1) as stream:
            consumers = [threading.Thread(target=self._consume, args=(stream, ctl, epoch, lr),
                                          name=f"streamhog-train-{i}", daemon=True) for i in range(cfg.threads)]
            for t in consumers:
                t.start()
            poll = min(0.2, self.checkpoint_every or 0.2)
            while alive := [t for t in consumers if t.is_alive()]:
                alive[0].join(poll)
                if self.signal_received is not None and not ctl.stopping:
                    ctl.stop()  # consumers finish the block in hand; the rest stays for the resume
                    stream.close()
                elif (self.checkpoint_every is not None and not ctl.stopping
                      and time.monotonic() - self._last_checkpoint >= self.checkpoint_every):
                    ctl.pause()
                    if not ctl.stopping:
                        self._absorb(ctl, time.perf_counter() - start)
                        start = time.perf_counter()
                        self.checkpoint("running")
                    ctl.resume()
                shown = self._show(ctl, shown, epoch)
        if ctl.error is not None:
            raise ctl.error
        self._absorb(ctl, time.perf_counter() - start)
        self._show(ctl, shown, epoch)
        return len(st["done_blocks"]) == ds.n_blocks

    def _source(self):
        """The training data, read through the block cache when there is one."""
        return self.cache.as_dataset() if self.cache is not None else self.dataset

    def _held_out(self, batch) -> np.ndarray:
        return holdout_mask(batch.row_start, batch.n_rows, self.cfg.holdout, self.cfg.seed)

    def _absorb(self, ctl: _EpochControl, seconds: float) -> None:
        """Move what consumers did since the last call into the checkpointable state."""
        st = self.state
        with ctl.cond:
            st["done_blocks"] += ctl.done
            ctl.done = []
            st.update(step=ctl.step, epoch_rows=ctl.rows, epoch_nnz=ctl.nnz, epoch_loss=ctl.loss,
                      epoch_weight=ctl.weight)
        st["epoch_seconds"] += seconds
        self._store_bstate()

    def _store_bstate(self) -> None:
        self.state["bstate"] = self.bstate.tolist()  # JSON floats round-trip exactly
        self.state["intercept"] = self._intercept()

    def _intercept(self):
        """The model's intercept: a float, or the K intercepts of a softmax model."""
        if self.n_classes is None:
            return float(self.bstate[B_VALUE])
        return self.bstate[:self.n_classes].tolist()

    def _show(self, ctl: _EpochControl, shown: int, epoch: int) -> int:
        if self.bar is None:
            return shown
        with ctl.cond:
            rows, loss, weight = ctl.rows, ctl.loss, ctl.weight
        self.bar.update(max(0, rows - shown))
        if weight:
            self.bar.set_postfix(epoch=epoch + 1, loss=f"{loss / weight:.4f}", refresh=False)
        return rows

    # -- the run -----------------------------------------------------------------------------
    def run(self, epochs: int) -> None:
        st = self.state
        if st.get("restoring"):  # killed while restoring the best epoch: finish that
            self._restore_best(st.get("stopped_early", False))
            return
        best_dir = self.model.path / BEST
        if (self._watched() and st.get("best_score") is not None and not best_dir.exists()
                and not st["done_blocks"] and st["epoch"] < epochs):
            # A completed run extended with more epochs: the model in place is its best one
            # (restored, or the last epoch's); keep it as the copy later epochs must beat.
            self._save_copy(best_dir, self.checkpoint("running"))
        while st["epoch"] < epochs and not st.get("stopped_early"):
            try:
                complete = self._run_epoch()
            except DivergenceError as exc:
                self._after_divergence(exc)
                raise
            if not complete:
                self.checkpoint("interrupted")
                raise TrainingInterrupted(self._interrupt_message(), self.signal_received or signal.SIGINT)
            secs = st["epoch_seconds"]
            record = {"epoch": st["epoch"] + 1, "examples": st["epoch_rows"], "nnz": st["epoch_nnz"],
                      "lr": self.cfg.epoch_lr(st["epoch"]),
                      "train_loss": st["epoch_loss"] / st["epoch_weight"] if st["epoch_weight"] else None,
                      "seconds": round(secs, 4), "examples_per_s": round(st["epoch_rows"] / secs, 1) if secs else None}
            self._score(record)
            st["history"].append(record)
            st.update(epoch=st["epoch"] + 1, done_blocks=[], epoch_rows=0, epoch_nnz=0, epoch_loss=0.0,
                      epoch_weight=0.0, epoch_seconds=0.0)
            self.say(_epoch_line(record, epochs))
            if st["epoch"] >= epochs:
                status = "complete"
            else:
                status = "interrupted" if self.signal_received is not None else "running"
            if self._early_stopping(record, status, epochs):
                return
            if status == "interrupted":
                raise TrainingInterrupted(self._interrupt_message(), self.signal_received)
        remove_copy(self.model.path / BEST)

    def _score(self, record: dict) -> None:
        """Add the epoch's --valid and holdout metrics to its record, and the time they took
        (apart from the training ``seconds``)."""
        from .inference import evaluate

        if self.valid is None and not self.cfg.holdout:
            return
        start = time.perf_counter()
        self.model.meta["intercept"] = self._intercept()  # what evaluate() scores with
        if self.valid is not None:
            record["valid"] = evaluate(self.model, self.valid, threads=self.cfg.threads)
        if self.cfg.holdout:
            record["holdout"] = evaluate(self.model, self._source(), threads=self.cfg.threads, rows=self._held_out)
        record["scoring_seconds"] = round(time.perf_counter() - start, 4)

    # -- early stopping ----------------------------------------------------------------------
    def _early_stopping(self, record: dict, status: str, epochs: int) -> bool:
        """Checkpoint the epoch just recorded; keep a copy of the model when it is the best so
        far, or put the best back when patience has run out or the run ends on a worse epoch.
        True when the run has ended that way."""
        st, key = self.state, self._watched()
        score = watched_score(self.cfg.loss, record.get(key)) if key else math.nan
        improved = score == score and (st.get("best_score") is None or score < st["best_score"])
        if improved:  # the model in place is the best so far
            st.update(best_epoch=record["epoch"], best_score=score)
        saved = self.checkpoint(status, snapshot=True)
        if improved:
            if st["epoch"] < epochs:  # after the last epoch it simply stays in place
                self._save_copy(self.model.path / BEST, saved)
            return False
        if key is None or st.get("best_score") is None:
            return False
        if record["epoch"] - st["best_epoch"] < self.cfg.early_stopping and st["epoch"] < epochs:
            return False
        self._restore_best(stopped_early=st["epoch"] < epochs)
        return True

    def _watched(self) -> str | None:
        """The history key early stopping watches: the holdout, else --valid, else none."""
        if not self.cfg.early_stopping:
            return None
        return "holdout" if self.cfg.holdout else ("valid" if self.valid is not None else None)

    def _restore_best(self, stopped_early: bool) -> None:
        """Put the best epoch's model back in place; the run is then complete."""
        st, best_dir = self.state, self.model.path / BEST
        st.update(restoring=True, stopped_early=stopped_early)
        self.checkpoint("restoring-best")  # killed from here on: a resume finishes the restore
        self._restore_copy(best_dir)
        st["restoring"] = False
        self.checkpoint("complete")
        remove_copy(best_dir)
        self.say(f"{'early stop: ' if stopped_early else ''}the {self._watched()} {WATCHED_NAME[self.cfg.loss]} "
                 f"was best after epoch {st['best_epoch']} ({st['best_score']:.5f}); restored that epoch's model")

    def checkpoint(self, status: str, snapshot: bool = False) -> dict:
        """Flush the weights, then write the record and model.json (in that order); returns the record."""
        self._store_bstate()
        self.model.flush()
        record = dict(self.state, data=self.data_schema, config=asdict(self.cfg), status=status)
        write_checkpoint(self.model.path, record)
        meta = self.model.meta
        meta.update(intercept=self.state["intercept"], bstate=self.state["bstate"], history=self.state["history"],
                    hyper_parameters=asdict(self.cfg),
                    training={"status": status, "epochs_done": self.state["epoch"],
                              "blocks_done_in_epoch": len(self.state["done_blocks"]),
                              "best_epoch": self.state.get("best_epoch"),
                              "stopped_early": self.state.get("stopped_early", False)})
        self.model.save_meta()
        self._last_checkpoint = time.monotonic()
        if snapshot and self.keep_snapshots:
            self._snapshot(record)
        return record

    # -- snapshots: rollback points ---------------------------------------------------------
    def _snapshots(self) -> list[Path]:
        """Complete snapshots, oldest first (names sort by epoch and step; hidden = being written)."""
        root = self.model.path / SNAPSHOTS
        return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []

    def _snapshot(self, record: dict) -> None:
        root = self.model.path / SNAPSHOTS
        root.mkdir(exist_ok=True)
        self._save_copy(root / f"epoch-{record['epoch']:05d}-step-{record['step']:012d}", record)
        for old in self._snapshots()[:-self.keep_snapshots]:
            remove_copy(old)

    def _save_copy(self, dest: Path, record: dict) -> None:
        """Copy the model's files (weights, optimizer state; sparse-aware) and ``record`` into
        ``dest``, replacing it only once the copy is whole."""
        from .sparse_files import copy_sparse

        tmp = dest.parent / f".{dest.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for f in self.model.files():
            copy_sparse(f, tmp / f.name)
        write_checkpoint(tmp, record)
        old = dest.parent / f".{dest.name}.old"
        if dest.exists():
            shutil.rmtree(old, ignore_errors=True)  # a stale one would make the rename fail
            dest.rename(old)  # from here until old is gone, tmp is whole: see finish_interrupted_copies
        tmp.rename(dest)
        shutil.rmtree(old, ignore_errors=True)

    def _restore_copy(self, src: Path) -> dict:
        """Make the model files and the intercept's state those of the copy in ``src`` (a
        snapshot or the best epoch's); returns the copy's record."""
        from .sparse_files import restore_sparse

        record, _ = read_checkpoint(src)
        for f in self.model.files():
            restore_sparse(src / f.name, f)  # in place: the maps stay valid
        self.bstate[:] = record["bstate"]
        return record

    def _after_divergence(self, exc: DivergenceError) -> None:
        """Roll back to the newest snapshot if one is kept; else mark the run diverged (its
        weights hold NaN/inf, so it must not be resumed as it is)."""
        snaps = self._snapshots()
        if not snaps:
            self.checkpoint("diverged")
            exc.args = (f"{exc.args[0]}. The weights in {self.model.path} are not usable (no snapshot was kept: "
                        "--keep-snapshots K keeps rollback points); start again with --overwrite",)
            return
        record = self._restore_copy(snaps[-1])
        self.state = {k: record[k] for k in self.state}
        self.checkpoint("rolled-back")
        exc.args = (f"{exc.args[0]}. Rolled the model back to its snapshot {snaps[-1].name} "
                    f"(after epoch {record['epoch']}); resume with a lower --lr",)

    def _interrupt_message(self) -> str:
        st = self.state
        name = signal.Signals(self.signal_received).name if self.signal_received else "a signal"
        return (f"stopped by {name} in epoch {st['epoch'] + 1} after {len(st['done_blocks'])} of "
                f"{self.dataset.n_blocks} blocks; checkpoint written to {self.model.path}. Resume with: "
                f"streamhog train {self.dataset.path} --model {self.model.path} --resume")


def _epoch_line(record: dict, epochs: int) -> str:
    line = (f"epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.5f}, "
            f"{record['examples']:,} examples in {record['seconds']:.2f} s "
            f"({(record['examples_per_s'] or 0):,.0f}/s), lr {record['lr']:.4g}")
    for key in ("valid", "holdout"):
        if key in record:
            line += f", {key} " + ", ".join(f"{k} {v:.5f}" for k, v in record[key].items() if k != "n_examples")
    return line


def fresh_state() -> dict:
    """The progress of a run that has not trained anything yet (the keys of a checkpoint's state)."""
    return {"epoch": 0, "done_blocks": [], "step": 0, "intercept": 0.0, "bstate": [0.0] * bstate_length(1), "epoch_loss": 0.0,
            "epoch_weight": 0.0, "epoch_rows": 0, "epoch_nnz": 0, "epoch_seconds": 0.0, "history": [],
            "best_epoch": None, "best_score": None, "stopped_early": False, "restoring": False}
