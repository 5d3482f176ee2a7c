"""Holdout rows and early stopping: which rows are held out, and when a run has stopped improving.

With several epochs, a fraction of the training rows is held out (``--holdout``, 0.1 by
default, as Vowpal Wabbit holds out every 10th example when it makes several passes). A
row is held out when a hash of its row number in the dataset and the run's seed falls below
the fraction: the same rows every epoch, whatever the block size, format or thread count,
and spread over the whole file (not a tail that may be sorted). After each epoch the model
is scored on those rows (or on ``--valid`` data); the run stops when that score — the
loss's watched figure, streamhog/losses.py — has not improved for ``--early-stopping``
epochs, and the model of the best epoch is restored.
"""
from __future__ import annotations

import math

import numpy as np

from ..losses import watched_score

_GOLDEN = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1


def holdout_mask(row_start: int, n_rows: int, fraction: float, seed: int) -> np.ndarray:
    """Booleans for rows ``row_start .. row_start + n_rows - 1``: True where held out.

    The row number goes through SplitMix64's finalizer (Steele et al. 2014) with the seed
    mixed in; its top 53 bits, read as a uniform number in [0, 1), are compared with
    ``fraction``."""
    offset = np.uint64(((seed + 1) * _GOLDEN + row_start) & _MASK64)
    x = np.arange(n_rows, dtype=np.uint64) + offset  # wraps modulo 2^64, as intended
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) * 2.0 ** -53 < fraction


IMPROVED = "improved"    # the model in place is the best so far
CONTINUE = "continue"    # not better, but patience (or epochs) remain
RESTORE = "restore"      # put the best epoch's model back: the run ends


class EarlyStopping:
    """What early stopping watches — the holdout, else ``--valid`` data, else nothing — and
    its verdict after each epoch."""

    def __init__(self, loss: str, patience: int, holdout: float, has_valid: bool):
        self.loss = loss
        self.patience = patience
        if not patience:
            self.key = None
        else:
            self.key = "holdout" if holdout else ("valid" if has_valid else None)

    def verdict(self, state, record: dict, epochs: int) -> str:
        """Judge the epoch just recorded (``state.epoch`` already counts it); records a new
        best in ``state``."""
        score = watched_score(self.loss, record.get(self.key)) if self.key else math.nan
        if score == score and (state.best_score is None or score < state.best_score):
            state.best_epoch, state.best_score = record["epoch"], score
            return IMPROVED
        if self.key is None or state.best_score is None:
            return CONTINUE
        if record["epoch"] - state.best_epoch < self.patience and state.epoch < epochs:
            return CONTINUE
        return RESTORE
