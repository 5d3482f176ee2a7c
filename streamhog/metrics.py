"""Streamed evaluation metrics: bounded memory, one accumulator per thread, merged at the end.

Classification (``logistic`` and ``hinge`` models; a label is positive iff ``label > 0``, so
{-1, +1} and {0, 1} both work):

* ``logloss``: mean of ``-log p(label)`` with ``p = sigmoid(margin)``, computed from the margin
  as a softplus (``log1p(exp(-|z|)) + max(z, 0)``), so it is exact and finite for any finite
  margin: no clipping of probabilities. For hinge models the margin is a score, not a
  log-odds: their logloss is reported for comparison only, it is not calibrated.
* ``accuracy``: the model predicts positive iff ``margin > 0``.
* ``auc``: area under the ROC curve from two weighted histograms (positives, negatives) over
  the margin, ties counted as half a pair (as ``sklearn.metrics.roc_auc_score``).

Regression (``squared`` models): ``rmse`` and ``mae`` of ``margin - label``.

Every metric is weighted by the importance weights when a batch has them (scikit-learn's
``sample_weight`` semantics: weighted means, weighted pairs for AUC); ``n_examples`` counts
rows. A metric with no (or zero total) weight behind it is NaN; so is ``auc`` while one
class is missing.

AUC resolution
--------------
Each margin is rounded to float32 and mapped to its order-preserving uint32 key (flip every
bit of a negative, set the sign bit of a positive, so key order is float order), whose top
``AUC_BITS = 20`` bits pick one of 2^20 bins per class. A bin is 2^12 consecutive float32
values: 1 sign bit + 8 exponent bits + the 11 leading mantissa bits, so two margins share a
bin only when they agree to within a relative 2^-11 (about 0.05 %) of their magnitude (or are
both far below 1e-38). Pairs (positive, negative) inside one bin count as ties (half), so the
AUC is exact when no bin holds both classes, and in general within
:meth:`MetricAccumulator.auc_max_error` (at most half the weight of same-bin pairs) of the
exact value. The histograms are two float64 arrays of 2^20 (16 MiB per accumulator) allocated
with ``np.zeros``, whose untouched pages the OS never commits: margins of a real model occupy
a few thousand to tens of thousands of bins, so resident memory stays far below that.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types

from .model import CLASSIFICATION_LOSSES, LOSSES

#: Bits of the order-preserving margin key kept for the AUC histogram.
AUC_BITS = 20
AUC_BINS = 1 << AUC_BITS
_SHIFT = 32 - AUC_BITS

_ro_f64 = types.Array(types.float64, 1, "C", readonly=True)
_ro_f32 = types.Array(types.float32, 1, "C", readonly=True)
_f64 = types.Array(types.float64, 1, "C")


@njit(types.int64(types.int64), nogil=True, cache=True)
def _bin_of_bits(bits):
    """Histogram bin of a float32 given its bit pattern (as a non-negative int64)."""
    if bits == 0x80000000:
        bits = 0  # -0.0 == +0.0 but their keys differ: count them as equal
    # int64 arithmetic avoids uint32 promotion quirks
    if bits >= 0x80000000:
        key = 0xFFFFFFFF - bits  # negative: flipping every bit reverses the order of magnitudes
    else:
        key = bits + 0x80000000  # positive: above every negative
    return key >> _SHIFT


@njit(types.int64(types.float64), nogil=True, cache=True)
def margin_bin(margin):
    """The AUC histogram bin of a margin: top AUC_BITS bits of its float32 order-preserving key."""
    buf = np.empty(1, np.float32)
    buf[0] = np.float32(margin)
    return _bin_of_bits(np.int64(buf.view(np.uint32)[0]))


@njit(
    types.UniTuple(types.float64, 3)(_ro_f64, _ro_f32, _ro_f32, types.boolean, _f64, _f64),
    nogil=True,
    cache=True,
)
def accumulate_classification(margins, labels, weights, has_weights, pos_hist, neg_hist):
    """Add a batch to the AUC histograms; return its (total weight, weighted logloss sum,
    weighted count of correct predictions). ``weights`` is ignored unless ``has_weights``."""
    sum_w = 0.0
    loss = 0.0
    correct = 0.0
    buf = np.empty(1, np.float32)  # reinterprets a float32 as its bits (numba has no scalar view)
    bits = buf.view(np.uint32)
    for i in range(margins.shape[0]):
        m = margins[i]
        w = np.float64(weights[i]) if has_weights else 1.0
        positive = labels[i] > 0
        # -log sigmoid(m) for a positive, -log(1 - sigmoid(m)) = -log sigmoid(-m) for a negative,
        # as softplus(z): never exp of a large positive number, never log of 0.
        z = -m if positive else m
        if z > 0:
            loss += w * (z + np.log1p(np.exp(-z)))
        else:
            loss += w * np.log1p(np.exp(z))
        if (m > 0) == positive:
            correct += w
        sum_w += w
        buf[0] = np.float32(m)
        b = _bin_of_bits(np.int64(bits[0]))
        if positive:
            pos_hist[b] += w
        else:
            neg_hist[b] += w
    return sum_w, loss, correct


@njit(
    types.UniTuple(types.float64, 3)(_ro_f64, _ro_f32, _ro_f32, types.boolean),
    nogil=True,
    cache=True,
)
def accumulate_regression(margins, labels, weights, has_weights):
    """A batch's (total weight, weighted sum of squared errors, weighted sum of absolute errors)."""
    sum_w = 0.0
    sq = 0.0
    ab = 0.0
    for i in range(margins.shape[0]):
        w = np.float64(weights[i]) if has_weights else 1.0
        e = margins[i] - np.float64(labels[i])
        sum_w += w
        sq += w * e * e
        ab += w * abs(e)
    return sum_w, sq, ab


@njit(types.float64(_ro_f64, _ro_f64), nogil=True, cache=True)
def histogram_auc(pos_hist, neg_hist):
    """Weighted AUC from the two histograms (ties within a bin count half); NaN if a class is empty."""
    below = 0.0  # weight of negatives in lower bins
    area = 0.0
    for b in range(pos_hist.shape[0]):
        p = pos_hist[b]
        n = neg_hist[b]
        if p != 0.0:
            area += p * (below + 0.5 * n)
        below += n
    total_pos = pos_hist.sum()
    if total_pos <= 0.0 or below <= 0.0:
        return np.nan
    return area / (total_pos * below)


_EMPTY_F32 = np.zeros(0, dtype=np.float32)


class MetricAccumulator:
    """Streamed metrics of a model with loss ``loss``: ``update`` per batch, ``merge`` the
    per-thread accumulators, ``result`` at the end (see the module docstring).

    Not thread-safe: give each thread its own and merge them.
    """

    def __init__(self, loss: str):
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.loss = loss
        self.is_classifier = loss in CLASSIFICATION_LOSSES
        self.n_examples = 0
        self.sum_weight = 0.0
        if self.is_classifier:
            # np.zeros is calloc: pages of bins never hit are never committed.
            self._pos = np.zeros(AUC_BINS, dtype=np.float64)
            self._neg = np.zeros(AUC_BINS, dtype=np.float64)
            self._logloss = 0.0
            self._correct = 0.0
        else:
            self._sq = 0.0
            self._abs = 0.0

    def update(self, margins, labels, weights=None) -> None:
        """Add rows: their margins ``x·w + b``, labels and optional importance weights."""
        margins = np.ascontiguousarray(margins, dtype=np.float64)
        labels = np.ascontiguousarray(labels, dtype=np.float32)
        has_weights = weights is not None
        weights = np.ascontiguousarray(weights, dtype=np.float32) if has_weights else _EMPTY_F32
        n = margins.shape[0]
        if labels.shape != (n,) or (has_weights and weights.shape != (n,)):
            raise ValueError(f"{n} margins but {labels.shape[0]} labels"
                             + (f" and {weights.shape[0]} weights" if has_weights else ""))
        if self.is_classifier:
            sw, ll, correct = accumulate_classification(margins, labels, weights, has_weights, self._pos, self._neg)
            self._logloss += ll
            self._correct += correct
        else:
            sw, sq, ab = accumulate_regression(margins, labels, weights, has_weights)
            self._sq += sq
            self._abs += ab
        self.sum_weight += sw
        self.n_examples += n

    def merge(self, other: "MetricAccumulator") -> "MetricAccumulator":
        """Add ``other``'s rows to this accumulator (in place); returns self."""
        if other.is_classifier != self.is_classifier:
            raise ValueError(f"cannot merge metrics of a {other.loss} model into a {self.loss} one")
        self.n_examples += other.n_examples
        self.sum_weight += other.sum_weight
        if self.is_classifier:
            for mine, theirs in ((self._pos, other._pos), (self._neg, other._neg)):
                nz = np.flatnonzero(theirs)  # only the touched bins: keeps our pages uncommitted
                mine[nz] += theirs[nz]
            self._logloss += other._logloss
            self._correct += other._correct
        else:
            self._sq += other._sq
            self._abs += other._abs
        return self

    def _mean(self, total: float) -> float:
        return total / self.sum_weight if self.sum_weight > 0 else math.nan

    def auc_max_error(self) -> float:
        """Upper bound on |reported AUC - exact AUC| from margins sharing a histogram bin."""
        if not self.is_classifier:
            raise ValueError("AUC is a classification metric")
        P, N = self._pos.sum(), self._neg.sum()
        if P <= 0 or N <= 0:
            return math.nan
        both = np.flatnonzero((self._pos != 0) & (self._neg != 0))
        return float(0.5 * np.dot(self._pos[both], self._neg[both]) / (P * N))

    def result(self) -> dict:
        """``{logloss, auc, accuracy, n_examples}`` (classifiers) or ``{rmse, mae, n_examples}``."""
        if self.is_classifier:
            return {
                "logloss": self._mean(self._logloss),
                "auc": float(histogram_auc(self._pos, self._neg)),
                "accuracy": self._mean(self._correct),
                "n_examples": int(self.n_examples),
            }
        mse = self._mean(self._sq)
        return {"rmse": math.sqrt(mse) if mse == mse else math.nan,
                "mae": self._mean(self._abs),
                "n_examples": int(self.n_examples)}
