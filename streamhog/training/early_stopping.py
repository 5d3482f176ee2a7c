"""Holdout rows and early stopping: which rows are held out, and which figure is watched.

With several epochs, a fraction of the training rows is held out (``--holdout``, 0.1 by
default, as Vowpal Wabbit holds out every 10th example when it makes several passes). A
row is held out when a hash of its row number in the dataset and the run's seed falls below
the fraction: the same rows every epoch, whatever the block size, format or thread count,
and spread over the whole file (not a tail that may be sorted). After each epoch the model
is scored on those rows; the run stops when that score has not improved for
``--early-stopping`` epochs, and the model of the best epoch is restored.
"""
from __future__ import annotations

import math

import numpy as np

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


#: The figure early stopping minimises for each loss: the error rate for hinge, whose margins
#: are not probabilities.
WATCHED_NAME = {"logistic": "logloss", "softmax": "logloss", "squared": "rmse", "hinge": "error rate"}


def watched_score(loss: str, metrics: dict | None) -> float:
    """``metrics``' value of :data:`WATCHED_NAME` [loss] (lower is better); NaN when unknown."""
    if not metrics:
        return math.nan
    name = WATCHED_NAME[loss]
    return 1.0 - float(metrics["accuracy"]) if name == "error rate" else float(metrics[name])
