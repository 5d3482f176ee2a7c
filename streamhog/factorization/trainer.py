"""The epochs of a factorization run: reader threads → bounded stream → N consumer threads
→ the nogil kernel → the shared memory-mapped factors, without locks (Hogwild!).

Each consumer takes a block, draws its row order and holdout mask in the kernel
(``shuffled_rows``: a function of (seed, epoch, block)), and trains it. With one consumer
the stream delivers blocks in the epoch's order, so a run is deterministic for a seed.
With ``schedule="strata"`` (and more than one thread) one consumer leads a team of
``threads`` that trains each block together on cells that share no user and no item
(strata.py): the blocks come in the epoch's order and a run is deterministic for a seed
and a thread count.

Checkpoints (streamhog/checkpoint.py's records, with MFState's fields) are taken at block
boundaries: at an epoch end when EPOCH_CHECKPOINT_S have passed since the last one, every
``checkpoint_every`` seconds, on SIGINT/SIGTERM (blocks in hand are finished first) and at
the end. The arrays are flushed (msync) before
the record is written, so a record never describes updates that are not on disk. A resume
skips the blocks the record lists as done: after a clean stop, a one-thread run resumes bit
for bit. After a crash, the blocks since the record are trained again on factors that may
already hold part of their updates (an extra step on those observations, and their squared
gradients added twice to AdaGrad's sums): noise of the order of those blocks' updates.

One epoch (epochs.py): its blocks from the stream, or from memory for small data; the
consumer threads, started once a run; the main thread's watch over them.

Early stopping, as for the linear models: after each epoch the holdout (else ``valid``) is
scored; the best epoch's arrays are copied aside (copies.py: two alternating slots) and put
back in place when the RMSE has not improved for ``early_stopping`` epochs or the run ends
on a worse epoch.
"""
from __future__ import annotations

import math
import signal
import time
from dataclasses import asdict

import numpy as np

from ..training.checkpoint import write_checkpoint
from ..training.early_stopping import holdout_mask
from ..errors import DataFormatError, DivergenceError, TrainingError, TrainingInterrupted
from . import kernels as K
from .config import MFConfig, MFState, kernel_hyper
from .copies import BEST, BestEpochCopies
from .epochs import EpochConsumers, HeldData, MFControl
from .implicit_kernels import IMPLICIT_KERNELS, negatives_key
from .model import MFModel
from .score import RepeatedScorer
from .strata import StrataConsumer

#: An epoch end writes a checkpoint when this long has passed since the last one (and always
#: at the end, on a stop, and when early stopping restores): fsyncing the factor files after
#: every epoch of a small set (milliseconds each) would cost more than its training.
EPOCH_CHECKPOINT_S = 10.0
_EMPTY_F32 = np.zeros(0, np.float32)
_EMPTY_F32.flags.writeable = False


class MFTrainingError(TrainingError):
    """Training stopped: bad options, data that does not fit the run, divergence."""


class MFDivergenceError(MFTrainingError, DivergenceError):
    """A prediction became NaN or infinite: the step size is too large for the data."""


class _BlockWork:
    """The work on one block both schedules share (MFTrainer's: the run's arrays, config,
    hyper-parameters and held data): its row order, the kernel call, the checks after it."""

    def _block_rows(self, batch, epoch: int) -> np.ndarray:
        """The block's rows to train this epoch, in their seeded order (holdout rows out)."""
        self.held.keep(batch)
        held = np.empty(batch.n_rows, bool)
        rows = np.empty(batch.n_rows, np.int64)
        kept = K.shuffled_rows(self.seed, np.uint64(epoch), np.uint64(batch.block), self.cfg.holdout,
                               batch.row_start, held, rows)
        return rows[:kept]

    def _hyper_args(self, lr: float) -> tuple:
        """The kernels' arguments after the arrays: mu, the step sizes (lr_decay^epoch
        applied to both), l2s, betas, init_scale, seed."""
        h, decay = self.hyper, lr / self.cfg.lr
        return (self.state.mu, h["lr"] * decay, h["lr_bias"] * decay, h["l2"], h["l2_bias"], h["beta"],
                h["beta_bias"], h["init_scale"], self.seed)

    def _kernel_args(self, batch, lr: float) -> tuple:
        """The explicit kernels' arguments from the block's columns on, the rows aside
        (strata.py's cells kernels take them in this order)."""
        w = _EMPTY_F32 if batch.weights is None else batch.weights
        return (batch.users, batch.items, batch.ratings, w, w is not _EMPTY_F32, *self.arrays,
                *self._hyper_args(lr))

    def _train_rows(self, batch, rows: np.ndarray, lr: float, epoch: int) -> tuple:
        if self.cfg.implicit:  # the negatives' draws: a function of (seed, epoch, block)
            w = _EMPTY_F32 if batch.weights is None else batch.weights
            key = negatives_key(self.seed, np.uint64(epoch), np.uint64(batch.block))
            return self.kernel(batch.users, batch.items, w, w is not _EMPTY_F32, rows, *self.arrays,
                               *self._hyper_args(lr), self.pool, self.cfg.negatives, key)
        users, items, ratings, w, has_w, *rest = self._kernel_args(batch, lr)
        return self.kernel(users, items, ratings, w, has_w, rows, *rest)

    def _finish_block(self, ctl: MFControl, batch, epoch: int, lr: float, kept: int, result: tuple) -> None:
        loss, weight, n_bad, n_out = result
        if n_out:
            raise DataFormatError(batch.source, "an id is beyond the model's factor matrices; the block was refused")
        if n_bad or not math.isfinite(loss):
            raise MFDivergenceError(f"training diverged in epoch {epoch + 1}, {batch.source}: a prediction "
                                    f"became NaN or infinite; lower --lr (now {lr:g})")
        if ctl.block_done(batch.block, kept, loss, weight):
            self.signal_received = self.signal_received or signal.SIGINT  # a clean stop, as on Ctrl-C


class MFTrainer(_BlockWork, EpochConsumers):
    """Runs (or continues) the epochs of one run on an open model."""

    def __init__(self, model: MFModel, dataset, config: MFConfig, state: MFState, *, valid=None,
                 checkpoint_every: float | None = None, stop_after_blocks: int | None = None, say=None):
        self.model, self.dataset, self.cfg, self.state = model, dataset, config, state
        self.valid, self.checkpoint_every, self.stop_after_blocks = valid, checkpoint_every, stop_after_blocks
        self.say = say or (lambda msg: None)
        kernels = IMPLICIT_KERNELS if config.implicit else K.TRAIN_KERNELS
        self.optimizer_id = K.OPTIMIZER_IDS[config.optimizer]
        self.kernel = kernels[self.optimizer_id]
        self.metric = "logloss" if config.implicit else "rmse"  # what early stopping minimizes
        # Implicit feedback's negatives: uniform over the data's items (implicit_kernels.py).
        self.pool = dataset.distinct_ids("item").astype(np.int64) if config.implicit else np.zeros(0, np.int64)
        self.pool.flags.writeable = False
        self.arrays = model.kernel_arrays()
        self.seed = np.uint64(config.seed & (2**64 - 1))
        self.hyper = kernel_hyper(config, state.sigma)  # in rating units
        self.signal_received: int | None = None  # set by streamhog.training.signals
        self.data_schema = dataset.schema()
        self._last_checkpoint = time.monotonic()
        self.best = BestEpochCopies(model.path / BEST, model.files, state.best_slot)
        # Scoring after each epoch: the validation data and the holdout rows are read once
        # and kept in memory while they fit (score.RepeatedScorer).
        holdout, seed = config.holdout, config.seed
        self.scorers = {}
        if valid is not None:
            self.scorers["valid"] = RepeatedScorer(valid, threads=config.threads, clip=config.clip,
                                                   implicit=config.implicit, pool=self.pool)
        if holdout:
            self.scorers["holdout"] = RepeatedScorer(
                dataset, threads=config.threads, clip=config.clip, implicit=config.implicit, pool=self.pool,
                rows=lambda b: holdout_mask(b.row_start, b.n_rows, holdout, seed))
        # What early stopping watches: the holdout, else --valid, else nothing.
        self.watched = None if not config.early_stopping else (
            "holdout" if config.holdout else ("valid" if valid is not None else None))
        self.held = HeldData(dataset, config.epochs - state.epoch)
        # One thread: the strata schedule is the Hogwild! one (a 1 x 1 grid: the block's order).
        self.strata = StrataConsumer(self) if config.schedule == "strata" and config.threads > 1 else None
        model.meta.update(mu=state.mu, sigma=state.sigma, rating_range=state.rating_range)  # what scoring uses

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> list:
        """Train up to ``config.epochs`` epochs; returns the history (one record per epoch)."""
        st, cfg = self.state, self.cfg
        if st.restoring:  # killed while putting the best epoch back: finish that
            self._restore_best(st.stopped_early)
            return st.history
        if (self.watched and st.best_score is not None and st.best_slot is None and not st.done_blocks
                and st.epoch < cfg.epochs):
            # A finished run extended with more epochs: the model in place is its best one so far.
            self._save_best()
            self.checkpoint("running")
        while st.epoch < cfg.epochs and not st.stopped_early:
            ctl = MFControl(st, 1 if self.strata else cfg.threads, self.stop_after_blocks)
            try:
                complete = self._run_epoch(ctl)
            except MFDivergenceError:
                self.checkpoint("diverged")
                raise
            if self.stop_after_blocks is not None:
                self.stop_after_blocks = ctl.blocks_left
            if not complete:
                self.checkpoint("interrupted")
                raise self._interrupted()
            record = self._epoch_record()
            st.history.append(record)
            st.start_epoch()
            self.say(epoch_line(record, cfg.epochs))
            status = "complete" if st.epoch >= cfg.epochs else (
                "interrupted" if self.signal_received is not None else "running")
            if self._early_stopping(record, status):
                return st.history
            if status == "interrupted":
                raise self._interrupted()
        self.best.remove()
        return st.history

    def _epoch_record(self) -> dict:
        st, secs = self.state, self.state.epoch_seconds
        mean = st.epoch_loss / st.epoch_weight if st.epoch_weight else math.nan  # s e², or the logistic loss
        train = {"train_logloss": mean if mean == mean else None} if self.cfg.implicit else {
            "train_rmse": math.sqrt(mean) if mean == mean else None}
        record = {"epoch": st.epoch + 1, "examples": st.epoch_rows, "lr": self.cfg.epoch_lr(st.epoch), **train,
                  "seconds": round(secs, 4),
                  "examples_per_s": round(st.epoch_rows / secs, 1) if secs else None}
        if self.scorers:
            start = time.perf_counter()
            for key, score in self.scorers.items():
                record[key] = score(self.model)
            record["scoring_seconds"] = round(time.perf_counter() - start, 4)
        return record

    # -- early stopping ------------------------------------------------------------------------
    def _early_stopping(self, record: dict, status: str) -> bool:
        """Keep a copy of the arrays when the epoch just recorded is the best so far, or put
        the best back when patience ran out or the run ends on a worse epoch; checkpoint.
        True when the run has ended that way."""
        st, key = self.state, self.watched
        score = float(record[key][self.metric]) if key and key in record else math.nan
        improved = score == score and (st.best_score is None or score < st.best_score)
        if improved:
            st.best_epoch, st.best_score = record["epoch"], score
            if st.epoch < self.cfg.epochs:  # after the last epoch it simply stays in place
                self._save_best()
        if (status != "running" or self.signal_received is not None
                or time.monotonic() - self._last_checkpoint >= EPOCH_CHECKPOINT_S):
            self.checkpoint(status)
        if improved or key is None or st.best_score is None:
            return False
        if record["epoch"] - st.best_epoch < self.cfg.early_stopping and st.epoch < self.cfg.epochs:
            return False
        self._restore_best(stopped_early=st.epoch < self.cfg.epochs)
        return True

    def _save_best(self) -> None:
        st = self.state
        st.best_slot = self.best.save()

    def _restore_best(self, stopped_early: bool) -> None:
        st = self.state
        st.restoring, st.stopped_early = True, stopped_early
        if st.best_slot is not None:  # none: the last epoch was the best, and it is in place
            self.checkpoint("restoring-best")  # killed from here on: a resume finishes the restore
            self.best.restore(st.best_slot)
        st.restoring, st.best_slot = False, None
        self.checkpoint("complete")
        self.best.remove()
        self.say(f"{'early stop: ' if stopped_early else ''}the {self.watched} {self.metric} was best after epoch "
                 f"{st.best_epoch} ({st.best_score:.5f}); restored that epoch's model")

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint(self, status: str) -> dict:
        """Flush the arrays, then write the record and model.json (in that order)."""
        st = self.state
        self.model.flush()
        self.best.before_record(st.best_slot)
        record = st.record(self.cfg, self.data_schema, status)
        write_checkpoint(self.model.path, record)
        self.model.meta.update(history=st.history, hyper_parameters=asdict(self.cfg), training={
            "status": status, "epochs_done": st.epoch, "blocks_done_in_epoch": len(st.done_blocks),
            "best_epoch": st.best_epoch, "stopped_early": st.stopped_early})
        self.model.save_meta()
        self._last_checkpoint = time.monotonic()
        self.best.after_record(st.best_slot)
        return record

    def close(self) -> None:
        """End the run's threads: the consumers, the strata team's helpers."""
        self.close_consumers()
        if self.strata is not None:
            self.strata.close()

    def _interrupted(self) -> TrainingInterrupted:
        st, signum = self.state, self.signal_received or signal.SIGINT
        return TrainingInterrupted(
            f"stopped by {signal.Signals(signum).name} in epoch {st.epoch + 1} after {len(st.done_blocks)} of "
            f"{self.dataset.n_blocks} blocks; checkpoint written to {self.model.path}. Resume with: streamhog train "
            f"{self.dataset.path} --model {self.model.path} --loss mf --resume", signum)


def epoch_line(record: dict, epochs: int) -> str:
    implicit = "train_logloss" in record
    train = (f"train logloss {record['train_logloss'] or math.nan:.5f}" if implicit
             else f"train rmse {record['train_rmse'] or math.nan:.5f}")
    line = (f"epoch {record['epoch']}/{epochs}: {train}, {record['examples']:,} "
            f"{'interactions' if implicit else 'ratings'} in {record['seconds']:.2f} s "
            f"({(record['examples_per_s'] or 0):,.0f}/s), lr {record['lr']:.4g}")
    for key in ("valid", "holdout"):
        if key in record:
            m = record[key]
            line += (f", {key} logloss {m['logloss']:.5f} auc {m['auc']:.5f}" if implicit
                     else f", {key} rmse {m['rmse']:.5f} mae {m['mae']:.5f}")
    return line
