"""The stratified schedule of factorization training (``schedule="strata"``; FPSGD, Chin,
Zhuang, Juan & Lin, ACM TIST 2015): T threads train each block together, never two of
them on the same row.

A block's rows (holdout rows out, by the rule of kernels.shuffled_rows) are cut by a nogil
counting sort into a T x T grid of cells by (user group, item group). Ids are grouped by
runs of 16 (id >> 4): 16 float32 biases are one 64-byte line and 16 factor rows a whole
number of lines, so no line is written by two groups (no false sharing). The runs are
hashed into BUCKETS buckets, and the buckets dealt to the T groups largest first, each to
the group with the fewest of the block's rows so far: the groups get about equal work even
when a few users or items hold much of the block (a plain hash mod 2 gave the synthetic
set's item groups 39% and 61%). Thread j trains cell (j, (j + r) mod T) in round r, first
shuffling its rows (a seeded order of (seed, epoch, block, cell), so the shuffle runs in
parallel too; the cut itself depends on no epoch, and the trainer keeps it for the blocks
of small data it keeps in memory), with a barrier between rounds: the cells of a round share no user group
and no item group, so the threads read and write disjoint rows, and the result is that of
one thread training the cells round 0's first, then round 1's, ... bit for bit, whatever
the threads' timing (tests/test_mf_strata.py: 8 threads on 2 cores). The per-cell losses
are summed in cell order, so the epoch figures are deterministic too.

Each thread's part of a block is one nogil call (train_cells: its cells, round by round,
shuffles included), and the rounds meet at a barrier inside those calls
(kernels/atomics.barrier_wait): a MovieLens round lasts about 0.2 ms, and a Python barrier
and a call per cell took a large part of it (benchmarks/mf_schedule.md, Run E: strata end to
end 1.21-1.27x faster on MovieLens). The team's threads stand for the whole run.

Blocks are trained one at a time, in the epoch's order (the stream is ordered), so a run
is deterministic for a seed and a thread count, and a resume after a clean stop is exact.
A block too small for T x T cells of MIN_CELL_ROWS rows on average is trained by the
largest team that fits (team_size: T' threads on T' x T' cells, the others sitting the block
out), and by one thread in kernels.shuffled_rows' order when not even two fit: barrier waits
would cost more than its work. Before, any such block went to one thread, and at 16 threads
that was every block of a file converted with the default 16,384-row groups (a 10% holdout
leaves 14,746 rows, under 64 x 16 x 16). The team of a block depends on its rows and T only,
so runs stay deterministic for a seed and a thread count.
"""
from __future__ import annotations

import threading

import numpy as np
from numba import njit, types

from ..kernels.atomics import BARRIER_BROKEN, BARRIER_THREADS, barrier_wait
from .kernels import FAST, _GOLDEN, _mix, _train, holdout_offset, is_held, shuffle_in_place

#: Below this many rows a cell on average, a block is trained by one thread.
MIN_CELL_ROWS = 64
#: Ids in a run of 2^GROUP_SHIFT share a group: one 64-byte line of float32 biases.
GROUP_SHIFT = 4
#: Runs of ids are hashed into this many buckets, which are dealt to the groups.
BUCKETS = 1024
_SALT_USER, _SALT_ITEM, _SALT_CELL = (np.uint64(0x243F6A8885A308D3), np.uint64(0x13198A2E03707344),
                                      np.uint64(0xA4093822299F31D0))

_ro = lambda dt: types.Array(dt, 1, "C", readonly=True)  # noqa: E731
_rw = lambda dt: types.Array(dt, 1, "C")  # noqa: E731
_u64, _i64 = types.uint64, types.int64


@njit(inline="always", cache=True, error_model="numpy")
def _bucket(x, salt):
    return np.int64(_mix((np.uint64(x) >> np.uint64(GROUP_SHIFT)) * _GOLDEN + salt) % np.uint64(BUCKETS))


@njit(cache=True, error_model="numpy")
def _deal(counts, t, group):
    """group[b] for each bucket: largest first, to the least-loaded group (ties: the lowest)."""
    order = np.argsort(-counts, kind="mergesort")
    loads = np.zeros(t, np.int64)
    for b in order:
        g = 0
        for j in range(1, t):
            if loads[j] < loads[g]:
                g = j
        group[b] = g
        loads[g] += counts[b]


def _cells_signature(id_type):
    return _i64(_ro(id_type), _ro(id_type), _u64, types.float64, _i64, _i64, _rw(_i64), _rw(_i64))


@njit([_cells_signature(types.uint32), _cells_signature(types.uint64)], nogil=True, cache=True,
      error_model="numpy")
def strata_cells(users, items, seed, holdout, row_start, t, out, starts):
    """Cut a block into t x t cells; returns the rows kept (not held out). ``out[starts[c]:
    starts[c + 1]]`` are the rows of cell c = user group * t + item group, in row order
    (shuffle_cell gives them their epoch's order)."""
    n = users.shape[0]
    offset = holdout_offset(seed, row_start)
    cu = np.zeros(BUCKETS, np.int64)
    ci = np.zeros(BUCKETS, np.int64)
    code = np.empty(n, np.int32)  # the row's user bucket * BUCKETS + item bucket; -1: held out
    for r in range(n):
        if is_held(r, offset, holdout):
            code[r] = -1
            continue
        bu = _bucket(users[r], _SALT_USER)
        bi = _bucket(items[r], _SALT_ITEM)
        cu[bu] += 1
        ci[bi] += 1
        code[r] = bu * BUCKETS + bi
    gu = np.empty(BUCKETS, np.int64)
    gi = np.empty(BUCKETS, np.int64)
    _deal(cu, t, gu)
    _deal(ci, t, gi)
    n_cells = t * t
    for c in range(n_cells + 1):
        starts[c] = 0
    for r in range(n):
        k = code[r]
        if k >= 0:
            c = gu[k // BUCKETS] * t + gi[k % BUCKETS]
            code[r] = c
            starts[c + 1] += 1
    for c in range(n_cells):
        starts[c + 1] += starts[c]
    fill = starts[:n_cells].copy()
    for r in range(n):
        c = code[r]
        if c >= 0:
            out[fill[c]] = r
            fill[c] += 1
    return starts[n_cells]


@njit([types.void(_u64, _u64, _u64, _i64, _ro(_i64), _rw(_i64))], nogil=True, cache=True, error_model="numpy")
def shuffle_cell(seed, epoch, block_key, cell, src, dst):
    """dst = a cell's rows ``src`` (strata_cells' row order) in their seeded order for the
    epoch: a function of the four keys and src only, so a cut kept from an earlier epoch
    gives what a fresh one would."""
    dst[:] = src
    shuffle_in_place(dst, _mix(_mix(_mix(seed * _GOLDEN + epoch) + block_key * _GOLDEN) + np.uint64(cell) * _GOLDEN
                               + _SALT_CELL))


def team_size(kept: int, t: int) -> int:
    """The threads that train a block of ``kept`` rows with a team of ``t``: the most, up to
    t, whose t' x t' cells hold MIN_CELL_ROWS rows on average (1: too small to share)."""
    while t > 1 and kept < MIN_CELL_ROWS * t * t:
        t -= 1
    return t


def cell_schedule(t: int) -> list[list[int]]:
    """The cells of each round: round r, thread j trains cell (j, (j + r) mod t)."""
    return [[j * t + (j + r) % t for j in range(t)] for r in range(t)]


def _cells_kernel_signature(id_type):
    f32, f64 = types.float32, types.float64
    ro = lambda dt, nd=1: types.Array(dt, nd, "C", readonly=True)  # noqa: E731
    rw = lambda dt, nd=1: types.Array(dt, nd, "C")  # noqa: E731
    return types.boolean(
        _i64, _i64, _i64, rw(types.int32), ro(_i64), ro(_i64), rw(_i64), rw(f64, 2), _u64, _u64,  # opt .. block_key
        ro(id_type), ro(id_type), ro(f32), ro(f32), types.boolean,                                # the block's columns
        rw(f32, 2), rw(f32, 2), rw(f32), rw(f32), rw(f32, 2), rw(f32, 2), rw(f32), rw(f32),        # the model's arrays
        f64, f64, f64, f64, f64, f64, f64, f64, _u64)  # mu, lr, lr_bias, l2, l2_bias, beta, beta_bias, init_scale, seed


# As kernels.py's training kernels: fastmath FAST (the same arithmetic, so a strata run
# equals its serial replay through those kernels bit for bit) and no reference counting.
@njit([_cells_kernel_signature(types.uint32), _cells_kernel_signature(types.uint64)], nogil=True, cache=True,
      error_model="numpy", fastmath=FAST, _nrt=False)
def train_cells(opt, j, t, barrier, cells, starts, order, results, epoch, block_key, users, items, ratings, weights,
                has_weights, P, Q, bu, bi, Pa, Qa, bua, bia, mu, lr, lr_bias, l2, l2_bias, beta, beta_bias, init_scale,
                seed):
    """Thread j's part of a block (``cells``, ``starts``: strata_cells'): in round r its cell
    c = (j, (j + r) mod t), shuffled into ``order`` (shuffle_cell) then trained under rule
    ``opt`` (kernels._train; results[c]: its 4 figures), and a wait for the other threads at
    the round's end (the barrier's cells, atomics.barrier_wait). False when the barrier was
    broken (a thread failed): the block is then incomplete."""
    for r in range(t):
        c = j * t + (j + r) % t
        lo, hi = starts[c], starts[c + 1]
        if hi > lo:
            shuffle_cell(seed, epoch, block_key, c, cells[lo:hi], order[lo:hi])
            res = _train(users, items, ratings, weights, has_weights, order[lo:hi], P, Q, bu, bi, Pa, Qa, bua, bia,
                         opt, mu, lr, lr_bias, l2, l2_bias, beta, beta_bias, init_scale, seed)
            results[c, 0], results[c, 1], results[c, 2], results[c, 3] = res
        else:
            results[c, 0], results[c, 1], results[c, 2], results[c, 3] = 0.0, 0.0, 0.0, 0.0
        if not barrier_wait(barrier):
            return False
    return True


class StrataTeamError(RuntimeError):
    """A thread of the team stopped before its block was trained."""


class StrataTeam:
    """T threads (the caller's, the leader, and T - 1 helpers kept for the whole run) that
    train each block's cells together. For a block, the leader wakes the helpers (one
    ``threading.Barrier`` wait) and every thread makes one nogil call of the cells kernel
    with its index j; the rounds' barriers are inside those calls (atomics.barrier_wait),
    and the last one means that every cell is trained when the leader's call returns.

    A thread whose call fails breaks the kernel's barrier, so no other thread waits for it
    for ever; the leader then raises the first error and the team is not used again."""

    def __init__(self, threads: int, opt: int, name: str = "streamhog-mf-strata"):
        self.t, self.opt = threads, opt
        self.barrier = np.zeros(4, np.int32)  # atomics.barrier_wait's cells
        self.barrier[BARRIER_THREADS] = threads
        self.wake = threading.Barrier(threads)
        self.results = np.zeros((threads * threads, 4))
        self._job: tuple | None = None
        self._error: BaseException | None = None
        self._helpers = [threading.Thread(target=self._helper, args=(j,), name=f"{name}-{j}", daemon=True)
                         for j in range(1, threads)]
        for h in self._helpers:
            h.start()

    def run(self, args: tuple, t: int | None = None) -> np.ndarray:
        """Train one block with the first ``t`` threads (default all; the others sit it out):
        ``args`` are train_cells' after (opt, j, t, barrier); returns the per-cell results
        (cell order: the first t x t rows)."""
        if self._error is not None:
            raise self._error
        t = self.t if t is None else t
        self._job = (args, t)
        self.barrier[BARRIER_THREADS] = t  # every thread is out of the last block's barriers
        self.wake.wait()  # the helpers start
        complete = self._call(0, args, t)
        if self._error is not None:
            raise self._error
        if not complete:
            raise StrataTeamError("a strata thread stopped before its block was trained")
        return self.results

    def _call(self, j: int, args: tuple, t: int) -> bool:
        try:
            return train_cells(self.opt, j, t, self.barrier, *args)
        except BaseException as e:  # noqa: BLE001 - the leader raises it
            self._error = self._error or e
            self.barrier[BARRIER_BROKEN] = 1  # the others stop waiting for this thread
            return False

    def _helper(self, j: int) -> None:
        while True:
            try:
                self.wake.wait()
            except threading.BrokenBarrierError:
                return
            if (job := self._job) is None:
                return
            args, t = job
            if j < t:
                self._call(j, args, t)

    def close(self) -> None:
        """Let the helpers go: those waiting for a block, and any waiting inside a call."""
        self._job = None
        self.barrier[BARRIER_BROKEN] = 1
        self.wake.abort()
        for h in self._helpers:
            h.join()


class StrataConsumer:
    """The one consumer of a strata run (trainer.MFTrainer's, whose block helpers it uses:
    _block_rows, _train_rows, _finish_block): it leads a team of cfg.threads that trains
    each block's cells round by round, blocks one at a time in the epoch's order. The team
    lives for the whole run (``close`` ends it), not an epoch: starting threads every epoch
    cost about a millisecond an epoch (on MovieLens, 27 ms of a 208 ms call). The cut of a
    block depends on no epoch: it is kept for the blocks of small data held in memory."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.cuts: dict = {}  # block -> (its rows in cell order, the cells' bounds)
        self.team: StrataTeam | None = None

    def consume(self, stream, ctl, epoch: int, lr: float) -> None:
        tr = self.trainer
        t, exc = tr.cfg.threads, None
        try:
            if self.team is None:
                self.team = StrataTeam(t, tr.optimizer_id)
            starts = np.empty(t * t + 1, np.int64)
            while (batch := stream.next_batch()) is not None:
                if not ctl.at_block_boundary():
                    return
                cells, kept, tb = self._cut(batch, t, starts)
                if tb < 2:  # too small to share: one thread, the Hogwild! path's order
                    result = tr._train_rows(batch, tr._block_rows(batch, epoch), lr, epoch)
                else:
                    tr.held.keep(batch)
                    order = np.empty(kept, np.int64)
                    cells_args = (cells, starts, order, self.team.results, np.uint64(epoch), np.uint64(batch.block))
                    per_cell = self.team.run(cells_args + tr._kernel_args(batch, lr), tb)
                    result = tuple(float(x) for x in per_cell[:tb * tb].sum(axis=0))  # cell order: deterministic
                tr._finish_block(ctl, batch, epoch, lr, kept, result)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            exc = e
            self.close()  # a failed team is not used again
        finally:
            ctl.consumer_exit(exc)

    def close(self) -> None:
        if self.team is not None:
            self.team.close()
            self.team = None

    def _cut(self, batch, t: int, starts: np.ndarray) -> tuple[np.ndarray, int, int]:
        """The block's rows in cell order (``starts`` filled with the bounds), how many, and
        its team's size (team_size: the cut is then that team's)."""
        if (cut := self.cuts.get(batch.block)) is not None:
            starts[:len(cut[1])] = cut[1]
            return cut[0], len(cut[0]), cut[2]
        tr = self.trainer
        cells = np.empty(batch.n_rows, np.int64)
        args = (batch.users, batch.items, tr.seed, tr.cfg.holdout, batch.row_start)
        kept = strata_cells(*args, t, cells, starts)
        tb = team_size(kept, t)
        if 1 < tb < t:  # a smaller team's grid (the rows kept do not depend on it)
            strata_cells(*args, tb, cells, starts)
        cells = cells[:kept]
        cells.flags.writeable = False
        if tr.held.on:
            self.cuts[batch.block] = (cells, starts[:tb * tb + 1].copy(), tb)
        return cells, kept, tb
