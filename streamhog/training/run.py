"""A training run: epochs, checkpoints, scoring, early stopping, stopping and rollback.

Training happens in place in the model directory, with checkpoints (training/checkpoint.py)
at the end of every epoch, every ``checkpoint_every`` seconds, on SIGINT/SIGTERM (or
:meth:`TrainingRun.stop`) and at the end. A checkpoint is taken at a block boundary:
consumers finish the block in hand and wait, the weights are flushed, the record is
written, and they go on. Resuming skips the blocks the record lists as done, so a
one-thread run resumed after a clean stop is bit-identical to an uninterrupted one.

After a crash (kill -9) the resumed run replays the blocks trained since the last
checkpoint. The weights on disk may already hold part of their updates (the memory map
is written in place), so those examples are seen once more: an extra step on a few
examples (and, for the adaptive optimizers, their squared gradients accumulated once
more) — noise of the order of one block's updates, which later steps wash out — never a
corrupt model.
"""
from __future__ import annotations

import signal
import time
from dataclasses import asdict

import numpy as np

from .._fs.sparse_files import digest
from ..errors import DiskSpaceError, DivergenceError, StreamhogError, TrainingInterrupted
from ..losses import get_loss
from ..kernels.optimizers import NORMALIZED_RULE
from .checkpoint import write_checkpoint
from .control import RunControl
from .copies import ModelCopies
from .early_stopping import IMPROVED, RESTORE, EarlyStopping
from .engine import EpochEngine
from .safety import SpaceWatch


def _stopped(run: TrainingRun) -> StreamhogError:
    """What a run stopped cleanly (checkpoint written) raises: the disk filling up has its
    own error, whether the stop came mid-epoch or as the epoch ended; else the signal."""
    if run.disk_full:
        return DiskSpaceError(f"{run.disk_full}: stopped with a checkpoint; free some space and resume with: "
                              f"streamhog train {run.dataset.path} --model {run.model.path} --resume")
    return TrainingInterrupted(_interrupt_message(run), run.signal_received or signal.SIGINT)


class TrainingRun:
    """Runs (or continues) the epochs of one training job on an open model."""

    def __init__(self, model, dataset, config, state, *, data_schema: dict, valid=None,
                 checkpoint_every: float | None = None, keep_snapshots: int = 0, say=None, bar=None,
                 stop_after_blocks: int | None = None, cache=None, baseline: float | None = None):
        self.model, self.dataset, self.cfg, self.state, self.valid = model, dataset, config, state, valid
        self.data_schema = data_schema  # what a resumed run must find unchanged in its data
        self.baseline = baseline  # the constant predictor's training loss, when known
        self.checkpoint_every = checkpoint_every
        self.keep_snapshots = keep_snapshots
        self.say = say or (lambda msg: None)
        self.bar = bar
        # The intercept, its optimizer state and the normalized rule's N and T, shared by the kernels.
        self.bstate = np.array(state.bstate, dtype=np.float64)
        self.engine = EpochEngine(model, config, self.bstate, dataset=dataset, cache=cache)
        self.copies = ModelCopies(model.path)
        self.early = EarlyStopping(config.loss, config.early_stopping, config.holdout, valid is not None)
        self.signal_received: int | None = None
        self.space = SpaceWatch(model.path, model.files(), copies=2 + keep_snapshots)
        self.disk_full: str | None = None  # why the run stopped for space, when it did
        self._blocks_left = stop_after_blocks
        self._last_checkpoint = time.monotonic()
        self._scorers: dict | None = None  # built at the first epoch's scoring

    def stop(self, signum: int = signal.SIGINT) -> None:
        """Stop at the next block boundary, checkpoint and raise TrainingInterrupted (any thread)."""
        self.signal_received = self.signal_received or signum

    # -- the run -----------------------------------------------------------------------------
    def run(self, epochs: int) -> None:
        st = self.state
        if st.restoring:  # killed while restoring the best epoch: finish that
            self._restore_best(st.stopped_early)
            return
        if (self.early.key and st.best_score is not None and not self.copies.best.exists()
                and not st.done_blocks and st.epoch < epochs):
            # A completed run extended with more epochs: the model in place is its best one
            # (restored, or the last epoch's); keep it as the copy later epochs must beat.
            self.copies.save(self.copies.best, self.model.files(), self.checkpoint("running"))
        while st.epoch < epochs and not st.stopped_early:
            try:
                complete = self._run_epoch()
            except DivergenceError as exc:
                self._after_divergence(exc)
                raise
            if not complete:
                self.checkpoint("interrupted")
                raise self.stopped_error()
            secs = st.epoch_seconds
            record = {"epoch": st.epoch + 1, "examples": st.epoch_rows, "nnz": st.epoch_nnz,
                      "lr": self.cfg.epoch_lr(st.epoch), "train_loss": st.train_loss, "seconds": round(secs, 4),
                      "examples_per_s": round(st.epoch_rows / secs, 1) if secs else None}
            self._score(record)
            st.epoch_done(record)
            self.say(_epoch_line(record, epochs))
            if self.baseline is not None and (record["train_loss"] or 0.0) > self.baseline:
                self.say(f"warning: epoch {record['epoch']}'s train loss {record['train_loss']:.5g} is above the "
                         f"constant predictor's {self.baseline:.5g}: the model has learned nothing, or the step size "
                         f"is too large (--lr {self.cfg.lr:g})")
            if st.epoch >= epochs:
                status = "complete"
            else:
                status = "interrupted" if self.signal_received is not None else "running"
            if self._after_epoch(record, status, epochs):
                return
            if status == "interrupted":  # the stop came as the epoch ended: the disk, or a signal
                raise self.stopped_error()
        self.copies.remove(self.copies.best)

    stopped_error = _stopped  # what a clean stop raises (a method: the cluster's L-BFGS loop calls it)

    def _run_epoch(self) -> bool:
        """Train the blocks of the current epoch not yet done; False if stopped."""
        st = self.state
        ctl = RunControl(st, self.cfg.threads, self._blocks_left)
        shown = [st.epoch_rows]

        def on_poll() -> None:
            if self.disk_full is None and (short := self.space.shortfall()) is not None:
                self.disk_full = self.space.message(*short)  # stop while the checkpoint still fits
                self.stop()
            if self.signal_received is not None and not ctl.stopping:
                self.engine.stop(ctl)
            elif (self.checkpoint_every is not None and not ctl.stopping
                  and time.monotonic() - self._last_checkpoint >= self.checkpoint_every):
                if ctl.pause():
                    self.engine.absorb(st, ctl)
                    self.checkpoint("running")
                ctl.resume()
            shown[0] = _show(self.bar, ctl, shown[0], self.state.epoch)

        self.engine.run_epoch(self.dataset, st, ctl, poll=min(0.2, self.checkpoint_every or 0.2), on_poll=on_poll)
        self._blocks_left = ctl.blocks_left
        if self._blocks_left is not None and self._blocks_left <= 0:  # a clean stop, exactly as on SIGINT
            self.stop()
        _show(self.bar, ctl, shown[0], st.epoch)
        return len(st.done_blocks) == self.dataset.n_blocks

    def _score(self, record: dict) -> None:
        """Add the epoch's --valid and holdout metrics to its record, and the time they took
        (apart from the training ``seconds``)."""
        from ..model.inference import RepeatedScorer

        if self.valid is None and not self.cfg.holdout:
            return
        start = time.perf_counter()
        self.engine.store_hot()  # evaluate() scores the model's arrays and its meta's intercept
        self.model.meta["intercept"] = self._intercept()
        # The validation data and the holdout rows are read once per run and scored from
        # memory after the later epochs while they fit (inference.RepeatedScorer).
        if self._scorers is None:
            self._scorers = {}
            if self.valid is not None:
                self._scorers["valid"] = RepeatedScorer(self.valid, threads=self.cfg.threads)
            if self.cfg.holdout:
                self._scorers["holdout"] = RepeatedScorer(self.engine.source(self.dataset), threads=self.cfg.threads,
                                                          rows=self.engine.held_out)
        for key, score in self._scorers.items():
            record[key] = score(self.model)
        record["scoring_seconds"] = round(time.perf_counter() - start, 4)

    # -- early stopping ----------------------------------------------------------------------
    def _after_epoch(self, record: dict, status: str, epochs: int) -> bool:
        """Checkpoint the epoch just recorded; keep a copy of the model when it is the best so
        far, or put the best back when patience has run out or the run ends on a worse epoch.
        True when the run has ended that way."""
        st = self.state
        verdict = self.early.verdict(st, record, epochs)
        saved = self.checkpoint(status, snapshot=True)
        if verdict == IMPROVED and st.epoch < epochs:  # after the last epoch it simply stays in place
            self.copies.save(self.copies.best, self.model.files(), saved)
        if verdict != RESTORE:
            return False
        self._restore_best(stopped_early=st.epoch < epochs)
        return True

    def _restore_best(self, stopped_early: bool) -> None:
        """Put the best epoch's model back in place; the run is then complete."""
        st = self.state
        st.restoring, st.stopped_early = True, stopped_early
        self.checkpoint("restoring-best")  # killed from here on: a resume finishes the restore
        self.bstate[:] = self.copies.restore(self.copies.best, self.model.files())["bstate"]
        self.engine.load_hot()
        st.restoring = False
        self.checkpoint("complete")
        self.copies.remove(self.copies.best)
        self.say(f"{'early stop: ' if stopped_early else ''}the {self.early.key} {get_loss(self.cfg.loss).watched} "
                 f"was best after epoch {st.best_epoch} ({st.best_score:.5f}); restored that epoch's model")

    # -- checkpoints ---------------------------------------------------------------------------
    def _intercept(self):
        """The model's intercept: a float, or the K intercepts of a softmax model."""
        return self.model.head.intercept_from_bstate(self.bstate)

    def checkpoint(self, status: str, snapshot: bool = False, error: str | None = None) -> dict:
        """Flush the weights, then write the record and model.json (in that order); returns the record."""
        st = self.state
        st.bstate, st.intercept = self.bstate.tolist(), self._intercept()  # JSON floats round-trip exactly
        self.engine.store_hot()
        self.model.flush()
        files = {f.name: digest(f) for f in self.model.files()}  # what a resume verifies (training/verify.py)
        record = dict(st.to_record(), data=self.data_schema, config=asdict(self.cfg), status=status, files=files,
                      **({"normalized_rule": NORMALIZED_RULE} if self.cfg.optimizer == "normalized" else {}))
        write_checkpoint(self.model.path, record)
        self.model.meta.update(
            intercept=st.intercept, bstate=st.bstate, history=st.history, hyper_parameters=asdict(self.cfg),
            training={"status": status, "epochs_done": st.epoch, "blocks_done_in_epoch": len(st.done_blocks),
                      "best_epoch": st.best_epoch, "stopped_early": st.stopped_early,
                      **({"error": error} if error else {})})
        self.model.save_meta()
        self._last_checkpoint = time.monotonic()
        if snapshot and self.keep_snapshots:
            self.copies.snapshot(self.model.files(), record, self.keep_snapshots)
        return record

    def fail(self, exc: BaseException) -> None:
        """Mark the run failed (a data error part-way, say): model.json says so and why, and
        evaluate/predict/info warn that the model is not a finished one; a fixed run resumes."""
        self.checkpoint("failed", error=str(exc) if isinstance(exc, StreamhogError) else f"{type(exc).__name__}: {exc}")

    def _after_divergence(self, exc: DivergenceError) -> None:
        """Roll back to the newest snapshot if one is kept; else mark the run diverged (its
        weights hold NaN/inf, so it must not be resumed as it is)."""
        from .state import RunState

        snaps = self.copies.snapshots()
        if not snaps:
            self.checkpoint("diverged")
            exc.args = (f"{exc.args[0]}. The weights in {self.model.path} are not usable (no snapshot was kept: "
                        "--keep-snapshots K keeps rollback points); start again with --overwrite",)
            return
        record = self.copies.restore(snaps[-1], self.model.files())
        self.state = RunState.from_record(record)
        self.bstate[:] = self.state.bstate
        self.engine.load_hot()
        self.checkpoint("rolled-back")
        exc.args = (f"{exc.args[0]}. Rolled the model back to its snapshot {snaps[-1].name} "
                    f"(after epoch {record['epoch']}); resume with a lower --lr",)

def _show(bar, ctl: RunControl, shown: int, epoch: int) -> int:
    """Move the progress bar to the rows the consumers have trained; returns them."""
    if bar is None:
        return shown
    with ctl.cond:
        rows, loss, weight = ctl.rows, ctl.loss, ctl.weight
    bar.update(max(0, rows - shown))
    if weight:
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss / weight:.4f}", refresh=False)
    return rows


def _interrupt_message(run: TrainingRun) -> str:
    st = run.state
    name = signal.Signals(run.signal_received).name if run.signal_received else "a signal"
    return (f"stopped by {name} in epoch {st.epoch + 1} after {len(st.done_blocks)} of "
            f"{run.dataset.n_blocks} blocks; checkpoint written to {run.model.path}. Resume with: "
            f"streamhog train {run.dataset.path} --model {run.model.path} --resume")


def _epoch_line(record: dict, epochs: int) -> str:
    line = (f"epoch {record['epoch']}/{epochs}: train loss {record['train_loss']:.5f}, "
            f"{record['examples']:,} examples in {record['seconds']:.2f} s "
            f"({(record['examples_per_s'] or 0):,.0f}/s), lr {record['lr']:.4g}")
    for key in ("valid", "holdout"):
        if key in record:
            line += f", {key} " + ", ".join(f"{k} {v:.5f}" for k, v in record[key].items() if k != "n_examples")
    return line
