"""The target's location and scale, from one pass over the label column, for the default
(``normalized``) rule: where the intercept starts and the scale of a regression loss's steps.

The normalized rule is free of the features' scales (kernels/optimizers.py). With the
squared loss it must also be free of the target's: a target of mean 50,000 and spread 30,000
needs weights 10^4 times larger than one of mean 5 and spread 3, and an adaptive step (whose
size does not grow with the gradient's) would take 10^4 times longer to get there (VW, whose
update has this flaw, does worse than the constant predictor on such data: benchmarks/
quality.md). So, for a new ``normalized`` run with a real-valued target (squared, huber):

* the intercept starts at the mean label (the best constant of the squared loss), and
* the target scale sigma, the labels' standard deviation, sets the step's units: the kernel is
  given lr * sigma and an initial accumulator beta * sigma^2, so that acc / sigma^2 is
  dimensionless. Labels mapped to a y + c (a > 0) then give the same squared-loss run, a times
  larger and shifted by c. (Huber's threshold is 1 in the label's units, so huber is not
  free of the target's scale; the units still give steps of the target's size.)

Classification margins are log-odds whatever the labels, so their sigma is 1; the intercept
starts at the constant predictor's value too: the log-odds of the positive rate (logistic),
the centred log shares of the classes (softmax). The pass reads only the label column
(``check_labels`` already counts the labels of classification data).
"""
from __future__ import annotations

import math

import numpy as np

from ..losses import REAL_LABELS, get_loss


def label_moments(dataset) -> tuple[int, float, float]:
    """(n, mean, standard deviation) of the labels, block by block (Chan et al.'s merge)."""
    n, mean, m2 = 0, 0.0, 0.0
    for labels in dataset.iter_labels():
        y = np.asarray(labels, dtype=np.float64)
        if not len(y):
            continue
        k, mu = len(y), float(y.mean())
        d = mu - mean
        m2 += float(((y - mu) ** 2).sum()) + d * d * n * k / (n + k)
        mean += d * k / (n + k)
        n += k
    return n, mean, math.sqrt(m2 / n) if n else 0.0


def start_at_constant(cfg, state, counts: dict, dataset) -> None:
    """For a new ``normalized`` run (not warm-started): set ``cfg.target_scale`` and the
    intercept(s) of ``state`` (a RunState: its bstate holds the K intercepts first) to the
    constant predictor's."""
    if cfg.optimizer != "normalized":
        return
    b0, cfg.target_scale = initial_state(cfg.loss, counts, dataset)
    k = len(b0) if isinstance(b0, list) else 1
    state.bstate[:k] = b0 if isinstance(b0, list) else [b0]
    state.intercept = b0


def inherit_target_scale(cfg, source) -> None:
    """A warm start from a ``normalized`` model keeps its target scale: the accumulators it
    carries over are in that scale's units (sigma^2), as the initial accumulator is."""
    from ..model.directory import Model

    if cfg.optimizer != "normalized":
        return
    src = Model.open(source)
    if src.optimizer == "normalized":
        cfg.target_scale = float((src.meta.get("hyper_parameters") or {}).get("target_scale", 1.0))


def initial_state(loss: str, counts: dict, dataset) -> tuple[list[float] | float, float]:
    """(initial intercept: a float, or K floats for softmax; target scale sigma), from the
    label counts of classification data or a pass over the labels of regression data."""
    spec = get_loss(loss)
    if spec.labels == REAL_LABELS:
        _, mean, std = label_moments(dataset)
        return mean, (std if std > 0 else max(abs(mean), 1.0))
    total = sum(counts.values())
    if spec.head == "softmax":
        k = int(max(counts)) + 1
        # A class absent from the training data gets the share of half an example.
        logs = [math.log(max(counts.get(float(c), 0), 0.5) / total) for c in range(k)]
        centre = sum(logs) / k
        return [v - centre for v in logs], 1.0
    pos = sum(c for v, c in counts.items() if v > 0)
    if loss != "logistic" or pos == 0 or pos == total:
        return 0.0, 1.0
    return math.log(pos / (total - pos)), 1.0
