"""Streamed evaluation metrics: bounded memory, one accumulator per thread, merged at the end.

Classification (the losses streamhog.losses marks ``classifies``: logistic, hinge; a label is
positive iff ``label > 0``, so
{-1, +1} and {0, 1} both work):

* ``logloss``: mean of ``-log p(label)`` with ``p = sigmoid(margin)``, computed from the margin
  as a softplus (``log1p(exp(-|z|)) + max(z, 0)``), so it is exact and finite for any finite
  margin: no clipping of probabilities. For hinge models the margin is a score, not a
  log-odds: their logloss is reported for comparison only, it is not calibrated.
* ``accuracy``: the model predicts positive iff ``margin > 0``.
* ``auc``: area under the ROC curve from two weighted histograms (positives, negatives) over
  the margin, ties counted as half a pair (as ``sklearn.metrics.roc_auc_score``).

Regression (the other vector losses: squared, ...): ``rmse`` and ``mae`` of ``margin - label``.

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

from ..kernels.metrics import (  # noqa: F401 (AUC_BITS, margin_bin: re-exported for tests)
    AUC_BINS, AUC_BITS, accumulate_classification, accumulate_regression, histogram_auc, margin_bin)
from ..losses import get_loss

_EMPTY_F32 = np.zeros(0, dtype=np.float32)

class MetricAccumulator:
    """Streamed metrics of a model with loss ``loss``: ``update`` per batch, ``merge`` the
    per-thread accumulators, ``result`` at the end (see the module docstring).

    Not thread-safe: give each thread its own and merge them.
    """

    def __init__(self, loss: str):
        self.loss = loss
        self.is_classifier = get_loss(loss).classifies
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


class MulticlassAccumulator:
    """Streamed metrics of a softmax model: multiclass ``logloss`` (mean of -log p(label),
    from the margins by a stable log-sum-exp) and ``accuracy`` (the arg-max class), weighted
    like the binary metrics. Not thread-safe: one per thread, merged."""

    def __init__(self, n_classes: int):
        self.n_classes = int(n_classes)
        self.n_examples = 0
        self.sum_weight = 0.0
        self._logloss = 0.0
        self._correct = 0.0

    def update(self, margins, labels, weights=None) -> None:
        z = np.asarray(margins, dtype=np.float64)
        y = np.asarray(labels).astype(np.int64)
        if z.shape != (len(y), self.n_classes):
            raise ValueError(f"margins of shape {z.shape} for {len(y)} labels and {self.n_classes} classes")
        if len(y) and (y.min() < 0 or y.max() >= self.n_classes):
            raise ValueError(f"labels outside the model's classes 0..{self.n_classes - 1}")
        s = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
        top = z.max(axis=1)
        log_norm = top + np.log(np.exp(z - top[:, None]).sum(axis=1))
        rows = np.arange(len(y))
        self._logloss += float(s @ (log_norm - z[rows, y]))
        self._correct += float(s @ (z.argmax(axis=1) == y))
        self.sum_weight += float(s.sum())
        self.n_examples += len(y)

    def merge(self, other: "MulticlassAccumulator") -> "MulticlassAccumulator":
        self.n_examples += other.n_examples
        self.sum_weight += other.sum_weight
        self._logloss += other._logloss
        self._correct += other._correct
        return self

    def result(self) -> dict:
        mean = (lambda t: t / self.sum_weight) if self.sum_weight > 0 else (lambda t: math.nan)
        return {"logloss": mean(self._logloss), "accuracy": mean(self._correct), "n_examples": int(self.n_examples)}
