"""The one entry point to the training kernels: ``train_block``.

A consumer thread hands it a block of rows, the model's arrays (bundled in
:class:`ModelArrays`) and the update rule's scalars (:class:`UpdateRule`); it picks the
compiled kernel — the linear one for a vector model (logistic, hinge, squared, ...), the
softmax one for K classes, each specialised per optimizer where that pays — and returns a
:class:`BlockResult`. Both kernels take the same explicit arguments at the numba boundary
(kernels/linear.py's ``TRAIN_SIGNATURE``), scikit-learn style.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .linear import BAD_CALL, BAD_LABEL, LINEAR_KERNELS, OUT_OF_RANGE
from .softmax import bstate_length, softmax_train

_EMPTY_F32 = np.zeros(0, np.float32)
_EMPTY_F64 = np.zeros(0, np.float64)
_NO_HOT_COUNT = np.zeros(0, np.int32)

#: Rows, and change of an intercept (in margin units), that all threads together may hold
#: unpublished (kernels/linear.py): a thread publishes every ``SYNC_BUDGET_ROWS // threads``
#: rows, or once its own change reaches ``SYNC_BUDGET_CHANGE / threads``, so that a view of
#: the intercept misses at most this much of the others' work, whatever the thread count.
#: (Issue 14: one publication per block let 16 threads move it 16 times too far.)
SYNC_BUDGET_ROWS = 1024
SYNC_BUDGET_CHANGE = 0.05


def sync_rows_for(threads: int) -> int:
    """Rows between two publications of a thread's intercept change, with ``threads`` training."""
    return max(1, SYNC_BUDGET_ROWS // max(1, int(threads)))


def sync_change_for(threads: int) -> float:
    """A thread's unpublished intercept change that triggers a publication."""
    return SYNC_BUDGET_CHANGE / max(1, int(threads))


@dataclass(frozen=True)
class ModelArrays:
    """What the training kernels update, as flat arrays: the weights ``w`` (a softmax
    matrix row-major, entry j * K + k), the optimizer's per-coordinate state ``acc`` and
    ``aux`` (empty where the rule keeps none), ``bstate`` (float64: the intercepts, their
    state, the normalized rule's N and T; kernels/softmax.py), the shared values of the hot
    coordinates (kernels/hot.py: [w, acc, aux] of H slots; empty when none) and ``cells``:
    the lock of ``--sync lock`` (tests append a gate: kernels/atomics.gate_wait)."""

    w: np.ndarray
    acc: np.ndarray
    aux: np.ndarray
    bstate: np.ndarray
    n_classes: int = 1
    hot: np.ndarray = None
    cells: np.ndarray = None

    def __post_init__(self):
        if self.cells is None:
            object.__setattr__(self, "cells", np.zeros(1, np.int32))
        if self.hot is None:
            object.__setattr__(self, "hot", _EMPTY_F64)

    @classmethod
    def zeros(cls, n_features: int, n_state: int, n_classes: int = 1) -> "ModelArrays":
        """Fresh in-memory arrays (tests, benchmarks): ``n_state`` per-coordinate state arrays."""
        n = n_features * n_classes
        return cls(np.zeros(n, np.float32), np.zeros(n if n_state > 0 else 0, np.float32),
                   np.zeros(n if n_state > 1 else 0, np.float32), np.zeros(bstate_length(n_classes)), n_classes)


@dataclass(frozen=True)
class UpdateRule:
    """The scalars of an update (see kernels/linear.py): optimizer and loss ids, the step
    schedule, regularization, the optimizer's smoothing ``beta``, and how threads share the
    intercept (``sync_rows``, ``sync_change``; ``use_lock`` for the locking baseline)."""

    optimizer: int
    loss: int
    schedule: int
    power_t: float = 0.5
    l1: float = 0.0
    l2: float = 0.0
    beta: float = 1.0
    fit_intercept: bool = True
    use_lock: bool = False
    sync_rows: int = SYNC_BUDGET_ROWS
    sync_change: float = SYNC_BUDGET_CHANGE

    @classmethod
    def for_threads(cls, threads: int, *args, **kwargs) -> "UpdateRule":
        """The rule with the intercept's publication bounds of ``threads`` training threads."""
        return cls(*args, **kwargs, sync_rows=sync_rows_for(threads), sync_change=sync_change_for(threads))


class BlockResult(NamedTuple):
    """What a block's training reports: sum of s * loss before each update, sum of the
    importance weights s, rows whose margin was not finite (divergence), and flags."""

    loss_sum: float
    weight_sum: float
    n_nonfinite: int
    flags: int

    @property
    def out_of_range(self) -> bool:
        """A feature index >= the model's n_features stopped the block."""
        return bool(self.flags & OUT_OF_RANGE)

    @property
    def bad_label(self) -> bool:
        """A label the head cannot take (softmax: not a class id) stopped the block."""
        return bool(self.flags & BAD_LABEL)

    @property
    def bad_call(self) -> bool:
        """The arrays did not fit together: nothing was written."""
        return bool(self.flags & BAD_CALL)


def train_block(batch, rows: np.ndarray, arrays: ModelArrays, rule: UpdateRule, *, lr: float, t0: int,
                indices: np.ndarray | None = None, values: np.ndarray | None = None,
                hot_count: np.ndarray | None = None) -> BlockResult:
    """Train ``rows`` of ``batch`` (a SparseBatch), in that order, into ``arrays``; runs
    without the GIL. ``lr`` is the block's step size and ``t0`` the global step of its first
    row (the schedule's). ``indices`` (and ``values``) replace the batch's: ids hashed at
    training time, or rows rearranged for the hot coordinates (``hot_count``: kernels/hot.py)."""
    kernel = softmax_train if arrays.n_classes > 1 else LINEAR_KERNELS[rule.optimizer]
    values = batch.values if values is None else values
    has_values, has_weights = values is not None, batch.weights is not None
    out = kernel(batch.indptr, batch.indices if indices is None else indices,
                 values if has_values else _EMPTY_F32, has_values,
                 batch.labels, batch.weights if has_weights else _EMPTY_F32, has_weights,
                 np.asarray(rows, dtype=np.int64), _NO_HOT_COUNT if hot_count is None else hot_count,
                 arrays.w, arrays.acc, arrays.aux, arrays.bstate, arrays.hot, arrays.cells,
                 arrays.n_classes, rule.optimizer, rule.loss, rule.schedule, lr, rule.power_t, t0,
                 rule.l1, rule.l2, rule.beta, rule.fit_intercept, rule.use_lock, rule.sync_rows,
                 rule.sync_change)
    return BlockResult(*out)
