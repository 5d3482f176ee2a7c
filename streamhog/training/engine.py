"""The epoch engine: reader threads → bounded stream → N consumer threads → one shared model.

Consumers run the nogil training kernels through kernels/block.train_block on whole blocks
and write the memory-mapped weights and optimizer state without locks (Hogwild!). Each
block arrives with its learning-rate state: the step counter of its first row, claimed
under a lock once per block (not per example). With one consumer thread the stream
delivers blocks in the epoch's order and the run is deterministic for a given seed.

Every epoch visits the blocks in a new seeded order and each block's rows in a new seeded
order (pure functions of (seed, epoch, block): the shuffling state is the seed). Held-out
rows (early stopping's) are never trained on.
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import DataFormatError, DivergenceError
from ..io.hashing import hash_batch
from ..io.stream import BatchStream, block_order
from ..io.threads import Workers
from ..kernels.block import ModelArrays, UpdateRule, train_block
from ..kernels.linear import CONSTANT, INVSCALING
from ..kernels.losses import LOSS_IDS
from ..kernels.optimizers import OPTIMIZER_IDS
from .control import RunControl
from .early_stopping import holdout_mask
from .hot import HotCoordinates


class EpochEngine:
    """Trains the blocks of an epoch into one model with ``config.threads`` consumer threads."""

    def __init__(self, model, config, bstate: np.ndarray, *, dataset, cache=None):
        self.model = model
        self.cfg = config
        self.cache = cache
        self._stream = None
        self._mark = time.perf_counter()
        # Plain flat ndarray views (cheaper to pass to numba; a softmax matrix row-major, j*K + k).
        state = [np.asarray(a).reshape(-1) for a in model.optimizer_state.values()]
        empty = np.zeros(0, np.float32)
        w, acc = np.asarray(model.weights).reshape(-1), state[0] if state else empty
        # The features most rows hold, kept per thread (training/hot.py); their values live in
        # self.hot.values while training, in the model's files at checkpoints.
        self.hot = HotCoordinates.choose(dataset, config)
        aux = state[1] if len(state) > 1 else empty
        if self.hot is not None:
            self.hot.load(w, acc, aux)
        self.arrays = ModelArrays(w, acc, aux, bstate, model.head.n_outputs,
                                  hot=None if self.hot is None else self.hot.values)
        self.rule = UpdateRule.for_threads(
            config.threads, OPTIMIZER_IDS[config.optimizer], LOSS_IDS.get(config.loss, -1),
            INVSCALING if config.lr_schedule == "invscaling" else CONSTANT, power_t=config.power_t, l1=config.l1,
            l2=config.l2, beta=config.smoothing, use_lock=config.sync == "lock")

    def store_hot(self) -> None:
        """The hot coordinates' values into the model's arrays (checkpoints, scoring, the end)."""
        if self.hot is not None:
            self.hot.store(self.arrays.w, self.arrays.acc, self.arrays.aux)

    def load_hot(self) -> None:
        """The hot coordinates' values from the model's arrays (after a restore)."""
        if self.hot is not None:
            self.hot.load(self.arrays.w, self.arrays.acc, self.arrays.aux)

    def held_out(self, batch) -> np.ndarray:
        """The batch's rows early stopping holds out (never trained on)."""
        return holdout_mask(batch.row_start, batch.n_rows, self.cfg.holdout, self.cfg.seed)

    def source(self, dataset):
        """The training data, read through the block cache when there is one."""
        return self.cache.as_dataset() if self.cache is not None else dataset

    def run_epoch(self, dataset, state, ctl: RunControl, *, poll: float, on_poll) -> None:
        """Train the blocks of epoch ``state.epoch`` not in ``state.done_blocks``; ``on_poll()``
        runs in the calling thread every ``poll`` seconds (checkpoints, signals)."""
        cfg, epoch = self.cfg, state.epoch
        lr = cfg.kernel_lr(epoch)  # the target's units for normalized (training/targets.py)
        done = set(state.done_blocks)
        order = [b for b in block_order(dataset.n_blocks, epoch=epoch, seed=cfg.seed).tolist() if b not in done]
        stream = BatchStream(self.source(dataset), order, readers=cfg.readers, capacity=cfg.capacity,
                             ordered=cfg.threads == 1)

        def work(batch) -> bool:
            if not ctl.at_block_boundary():
                return False
            rows, nnz = self._rows(batch, epoch)
            indices, values, hot_count = self._indices(batch), None, None
            if self.hot is not None:
                indices, values, hot_count = self.hot.split(batch, batch.indices if indices is None else indices)
            res = train_block(batch, rows, self.arrays, self.rule, lr=lr, t0=ctl.claim_steps(len(rows)),
                              indices=indices, values=values, hot_count=hot_count)
            self._check(batch, res, epoch)
            if self.cache is not None:
                self.cache.offer(batch)  # background write; later epochs memory-map it
            return ctl.block_done(batch.block, len(rows), nnz, res.loss_sum, res.weight_sum)

        self._stream, self._mark = stream, time.perf_counter()
        try:
            Workers(stream, [work] * cfg.threads, name="train", on_error=ctl.stop,
                    on_exit=ctl.consumer_exit).run(poll=poll, on_poll=on_poll)
        finally:
            self._stream = None
            self.absorb(state, ctl)

    def absorb(self, state, ctl: RunControl) -> None:
        """Move what the consumers did since the last call, and the time it took, into ``state``."""
        now = time.perf_counter()
        state.epoch_seconds += now - self._mark
        self._mark = now
        ctl.take(state)

    def stop(self, ctl: RunControl) -> None:
        """Consumers finish the block in hand; the readers stop; the rest stays for a resume."""
        ctl.stop()
        if self._stream is not None:
            self._stream.close()

    def _rows(self, batch, epoch: int) -> tuple[np.ndarray, int]:
        """The block's rows to train, in this epoch's order (fixed by (seed, epoch, block)), and their nnz."""
        rows = np.random.default_rng([self.cfg.seed, epoch, batch.block]).permutation(batch.n_rows)
        if not self.cfg.holdout:
            return rows, batch.nnz
        rows = rows[~self.held_out(batch)[rows]]
        return rows, int(np.diff(batch.indptr)[rows].sum())

    def _indices(self, batch):
        """Training-time --hash-bits: each row keeps its (possibly colliding) ids, as scoring does."""
        return None if self.cfg.hash_bits is None else hash_batch(batch, self.cfg.hash_bits, merge=False).indices

    def _check(self, batch, res, epoch: int) -> None:
        if res.bad_label:
            raise DataFormatError(batch.source, f"a label is not a class id 0..{self.arrays.n_classes - 1}; "
                                                "the block was refused")
        if res.out_of_range:
            raise DataFormatError(batch.source, f"a feature index is >= the model's n_features "
                                                f"{self.model.n_features:,}; the block was refused")
        if res.bad_call:
            raise RuntimeError(f"{batch.source}: the training kernel refused the model's arrays")
        if res.n_nonfinite or not np.isfinite(res.loss_sum) or not np.isfinite(self.arrays.bstate).all():
            raise DivergenceError(f"training diverged in epoch {epoch + 1}, {batch.source}: the margin became NaN "
                                  f"or infinite; lower --lr (now {self.cfg.lr:g})")
