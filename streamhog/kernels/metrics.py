"""Metric accumulation kernels (numba, nogil): logloss/accuracy sums and the AUC histograms.

streamhog/metrics.py documents the metrics and the AUC resolution; these are its hot loops.
"""
from __future__ import annotations

import numpy as np
from numba import njit, types

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


