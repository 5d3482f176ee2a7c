"""One epoch of a factorization run, below the run itself (trainer.py): where its blocks
come from, the consumer threads that train them, what those threads share, and the main
thread's watch over them.

- **Source.** Small data (at most HOLD_BYTES of ids, ratings and weights) is read from disk
  in the first epoch only: its blocks, validated as they were read, are kept in memory and
  later epochs hand them to the consumers from a list (_HeldBlocks), without reader
  threads. The blocks, their order and each block's row order are the same, so this
  changes no result. Larger data streams through io/stream.py's BatchStream every epoch.
- **Consumers.** Started once a run (io/threads.py's StandingThreads) and given each
  epoch's work: starting them every epoch cost about a millisecond an epoch (on MovieLens
  at rank 100, 27 ms of a 208 ms call: benchmarks/mf_breakdown.md). Hogwild!: each
  consumer trains whole blocks against the shared arrays; strata: one consumer leads
  strata.py's team.
- **Control.** MFControl: the counters, the blocks done and the pause/stop protocol
  (training/control.py's RunControl, counting ratings).
- **Watch.** The main thread waits for the consumers and meanwhile answers signals (stop at
  a block boundary) and the ``checkpoint_every`` timer (pause, checkpoint, resume).
"""
from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np

from ..io.stream import BatchStream, block_order
from ..io.threads import StandingThreads
from ..training.control import RunControl
from .config import MFConfig, MFState

#: Data up to this size stays in memory after the first epoch: later epochs then cost no
#: reads, decoding, checks nor reader threads (about 1 ms an epoch on MovieLens' 80K rows,
#: where an epoch trains in 10 ms).
HOLD_BYTES = 64 << 20


class _HeldBlocks:
    """The blocks of an epoch from memory, in ``order``, with BatchStream's consumer side
    (``next_batch`` from any thread, ``close``)."""

    def __init__(self, held: dict, order: list):
        self._batches = [held[b] for b in reversed(order)]  # popped from the end: in order
        self._lock = threading.Lock()

    def next_batch(self):
        with self._lock:
            return self._batches.pop() if self._batches else None

    def close(self) -> None:
        with self._lock:
            self._batches.clear()

    def __enter__(self) -> "_HeldBlocks":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class HeldData:
    """The blocks of small data read so far (block -> batch), kept for the later epochs;
    nothing when the data is large or one epoch is left."""

    def __init__(self, dataset, epochs_left: int):
        row_bytes = 2 * max(np.dtype(f.id_type).itemsize for f in dataset.files) + 4 + 4 * dataset.has_weights
        self.on = epochs_left > 1 and dataset.n_rows * row_bytes <= HOLD_BYTES
        self.blocks: dict = {}
        self.n_blocks = dataset.n_blocks

    def keep(self, batch) -> None:
        if self.on and batch.block not in self.blocks:
            self.blocks[batch.block] = _held_copy(batch)

    @property
    def complete(self) -> bool:
        return self.on and len(self.blocks) == self.n_blocks


def epoch_source(dataset, order: list, cfg: MFConfig, held: HeldData):
    """The epoch's blocks: from memory when every block is held, else read by the stream
    (in order with one consumer)."""
    if held.complete:
        return _HeldBlocks(held.blocks, order)
    ordered = cfg.threads == 1 or cfg.schedule == "strata"  # one consumer: blocks in the epoch's order
    return BatchStream(dataset, order, readers=cfg.readers, capacity=cfg.capacity, ordered=ordered)


def _held_copy(batch):
    """A batch whose arrays own their memory (not views of the reader's Parquet buffers),
    read-only as the kernels take them."""
    arrays = {}
    for name in ("users", "items", "ratings", "weights"):
        a = getattr(batch, name)
        if a is not None:
            a = np.array(a)
            a.flags.writeable = False
        arrays[name] = a
    return replace(batch, **arrays)


class MFControl(RunControl):
    """training/control.py's RunControl (counters once per block, the blocks done, the
    pause/stop protocol) for MF's state, which counts ratings, not non-zeros: the step moves
    with each block done, and the first consumer error is kept for the main thread."""

    def __init__(self, state: MFState, n_consumers: int, stop_after_blocks: int | None):
        super().__init__(state, n_consumers, stop_after_blocks)
        self.error: BaseException | None = None

    def block_done(self, block: int, rows: int, loss: float, weight: float) -> bool:
        """Count a trained block; True when ``stop_after_blocks`` says to stop now."""
        with self.cond:  # a reentrant lock: RunControl.block_done takes it again
            self.step += rows
            return not super().block_done(block, rows, 0, loss, weight)

    def consumer_exit(self, exc: BaseException | None) -> None:
        with self.cond:
            if exc is not None and self.error is None:
                self.error = exc
            super().consumer_exit(exc)

    def absorb(self, state: MFState, seconds: float) -> None:
        """Move what the consumers did since the last call into the checkpointable state."""
        with self.cond:
            state.done_blocks += self.done
            self.done = []
            state.step, state.epoch_rows, state.epoch_loss, state.epoch_weight = (self.step, self.rows, self.loss,
                                                                                   self.weight)
        state.epoch_seconds += seconds


class EpochConsumers:
    """MFTrainer's epochs (a mixin: it uses the trainer's dataset, config, state, held data,
    strata consumer, block work and checkpoint): the standing consumer threads, the
    Hogwild! consumer loop, the main thread's watch."""

    consumers: StandingThreads | None = None  # from the first epoch to close_consumers()

    # -- consumers ---------------------------------------------------------------------------
    def _consume(self, stream, ctl: MFControl, epoch: int, lr: float) -> None:
        """Hogwild!: each consumer trains whole blocks against the shared arrays."""
        exc = None
        try:
            while (batch := stream.next_batch()) is not None:
                if not ctl.at_block_boundary():
                    return
                rows = self._block_rows(batch, epoch)
                self._finish_block(ctl, batch, epoch, lr, len(rows), self._train_rows(batch, rows, lr, epoch))
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            exc = e
        finally:
            ctl.consumer_exit(exc)

    # -- one epoch ---------------------------------------------------------------------------
    def _run_epoch(self, ctl: MFControl) -> bool:
        """Train the blocks of the current epoch not yet done; False if stopped early."""
        cfg, st, ds = self.cfg, self.state, self.dataset
        epoch, lr = st.epoch, cfg.epoch_lr(st.epoch)
        done = set(st.done_blocks)
        order = [b for b in block_order(ds.n_blocks, epoch=epoch, seed=cfg.seed).tolist() if b not in done]
        start = time.perf_counter()
        with epoch_source(ds, order, cfg, self.held) as stream:
            target, n = (self.strata.consume, 1) if self.strata else (self._consume, cfg.threads)
            if self.consumers is None:  # started once a run: every epoch would cost ~1 ms on MovieLens
                self.consumers = StandingThreads(n, name="streamhog-mf-train")
            self.consumers.start(target, (stream, ctl, epoch, lr))
            try:
                start = self._watch_epoch(stream, ctl, start)
            except BaseException:  # e.g. KeyboardInterrupt, signals not handled: stop after the blocks in hand
                ctl.stop()
                stream.close()
                raise
        if ctl.error is not None:
            raise ctl.error
        ctl.absorb(st, time.perf_counter() - start)
        return len(st.done_blocks) == ds.n_blocks

    def _watch_epoch(self, stream, ctl: MFControl, start: float) -> float:
        """Wait for the epoch's consumers; meanwhile, and once more when they are done, answer
        signals and the checkpoint timer (so ``checkpoint_every`` holds across epochs shorter
        than it). Returns when the epoch's clock last restarted (a checkpoint absorbs the time
        before)."""
        st = self.state
        poll = min(0.2, self.checkpoint_every or 0.2)
        finished = False
        while not finished:
            finished = self.consumers.wait(poll)
            if self.signal_received is not None and not ctl.stopping:
                ctl.stop()  # consumers finish the block in hand; the rest stays for the resume
                stream.close()
            elif (self.checkpoint_every is not None and not ctl.stopping
                  and time.monotonic() - self._last_checkpoint >= self.checkpoint_every):
                ctl.pause()
                if not ctl.stopping:
                    ctl.absorb(st, time.perf_counter() - start)
                    start = time.perf_counter()
                    self.checkpoint("running")
                ctl.resume()
        return start

    def close_consumers(self) -> None:
        if self.consumers is not None:
            self.consumers.close()
            self.consumers = None
