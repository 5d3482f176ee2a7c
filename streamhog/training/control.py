"""What the consumer threads of one epoch share, and how the run stops or pauses them.

Consumers update the counters once per block (not per example), record the blocks they
finished, and check at every block boundary whether to pause (a checkpoint is being
written: they wait) or stop (a signal, an error, ``stop()``: they leave the block in hand
untrained, so it is not marked done and a resume trains it).
"""
from __future__ import annotations

import threading


class RunControl:
    """Counters, the blocks done, and the pause/stop protocol of one epoch's consumers."""

    def __init__(self, state, n_consumers: int, stop_after_blocks: int | None = None):
        self.cond = threading.Condition()
        # Running sums continue the state's (one sequence of additions whether or not the
        # epoch was interrupted: the resumed epoch loss is bit-identical too).
        self.step = state.step
        self.rows, self.nnz = state.epoch_rows, getattr(state, "epoch_nnz", 0)  # factorization: no nnz
        self.loss, self.weight = state.epoch_loss, state.epoch_weight
        self.done: list[int] = []
        self.stopping = False
        self.pause_requested = False
        self.paused = 0
        self.active = n_consumers
        self.blocks_left = stop_after_blocks  # a clean stop after this many blocks (time-boxed jobs, tests)

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
        """The global step of a block's first row; the next block starts ``n`` later."""
        with self.cond:
            t0 = self.step
            self.step += n
            return t0

    def block_done(self, block: int, rows: int, nnz: int, loss: float, weight: float) -> bool:
        """Count a finished block; False when ``stop_after_blocks`` is reached (stop now)."""
        with self.cond:
            self.done.append(block)
            self.rows += rows
            self.nnz += nnz
            self.loss += loss
            self.weight += weight
            if self.blocks_left is not None:
                self.blocks_left -= 1
                if self.blocks_left <= 0:
                    self.stopping = True
                    self.cond.notify_all()
                    return False
            return True

    def consumer_exit(self, exc: BaseException | None) -> None:
        with self.cond:
            if exc is not None:
                self.stopping = True
            self.active -= 1
            self.cond.notify_all()

    def pause(self) -> bool:
        """Wait until every live consumer sits at a block boundary; False if stopping instead."""
        with self.cond:
            self.pause_requested = True
            while self.paused < self.active and not self.stopping:
                self.cond.wait(0.1)
            return not self.stopping

    def resume(self) -> None:
        with self.cond:
            self.pause_requested = False
            self.cond.notify_all()

    def stop(self) -> None:
        """Consumers finish the block in hand and take no other."""
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    def take(self, state) -> None:
        """Move what consumers did since the last call into ``state`` (a RunState)."""
        with self.cond:
            state.done_blocks += self.done
            self.done = []
            state.step, state.epoch_rows, state.epoch_nnz = self.step, self.rows, self.nnz
            state.epoch_loss, state.epoch_weight = self.loss, self.weight
