"""What a loss is, in one table: the loss registry.

Every part of streamhog that depends on the loss asks this table: the training kernel (by
the loss's name, kernels/losses.LOSS_IDS), the head a model gets (``head``: one output and
a link, or K softmax outputs; model/heads.py owns margins, predictions, metrics and the
intercept layout for each), the labels the loss takes (checked before training and
scoring), the link from margins to predictions, and the metric early stopping watches.
scikit-learn keeps such a table (``loss_functions``); river a ``Loss`` class per loss.

Adding a loss is an entry here and its function in kernels/losses.py (value, derivative,
id): nothing else changes. Light on purpose (no numba): the command line's ``--help``
lists the losses from this table.

>>> from streamhog.losses import LOSSES, get_loss
>>> sorted(LOSSES)
['hinge', 'huber', 'logistic', 'softmax', 'squared']
>>> get_loss("hinge").watched
'error rate'
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ConfigError

#: Most classes a softmax model takes (K weights per feature).
MAX_CLASSES = 1000

BINARY_LABELS = "binary"      # {-1, +1} or {0, 1}
REAL_LABELS = "real"          # any finite number (the readers refuse non-finite ones)
CLASS_LABELS = "class ids"    # 0, 1, ..., K-1


@dataclass(frozen=True)
class Loss:
    """One loss of the registry (see the module docstring)."""

    name: str
    description: str          # for --help
    labels: str               # BINARY_LABELS, REAL_LABELS or CLASS_LABELS
    link: str                 # predictions from margins: "logistic" (a probability), "identity", "softmax"
    watched: str              # early stopping minimises this metric: "logloss", "error rate", "rmse", "mae"
    head: str = "vector"      # "vector": one weight per feature; "softmax": K

    @property
    def classifies(self) -> bool:
        """Whether predictions are classes (metrics: logloss, AUC, accuracy)."""
        return self.labels != REAL_LABELS

    def label_problem(self, counts: dict[float, int]) -> str | None:
        """What is wrong with labels of these counts (``label_counts``), or None."""
        seen = set(counts)
        if self.labels == BINARY_LABELS:
            if seen <= {-1.0, 1.0} or seen <= {0.0, 1.0}:
                return None
            bad = sorted(seen - ({-1.0, 1.0} if -1.0 in seen else {0.0, 1.0}))[0]
            return (f"label {bad:g} does not fit the {self.name} loss, which takes labels {{-1, +1}} or {{0, 1}} "
                    f"(labels seen: {', '.join(f'{v:g}' for v in sorted(seen))}{', ...' if len(seen) >= 3 else ''}); "
                    "use --loss squared for real-valued targets")
        if self.labels == CLASS_LABELS:
            bad = [v for v in counts if v != int(v) or v < 0]
            if bad or len(counts) > MAX_CLASSES or (counts and max(counts) >= MAX_CLASSES):
                what = f"label {bad[0]:g} is not a class id" if bad else f"more than {MAX_CLASSES} classes"
                return f"{what}; the {self.name} loss takes labels 0, 1, ..., K-1 (K <= {MAX_CLASSES})"
            if not counts or max(counts) < 1:  # distinct class ids: a largest id >= 1 means >= 2 classes
                return f"the {self.name} loss needs at least two classes (labels 0..K-1)"
        return None

    @property
    def distinct_labels_to_check(self) -> int:
        """How many distinct label values a check needs to see (beyond that it already fails)."""
        return {BINARY_LABELS: 3, CLASS_LABELS: MAX_CLASSES + 1}.get(self.labels, 0)

    def constant_loss(self, counts: dict[float, int]) -> float | None:
        """The training loss of the best constant predictor for labels of these counts (the
        base rate): a run whose train loss is above it has learned nothing, or diverges."""
        total = sum(counts.values())
        if not total or self.labels == REAL_LABELS:
            return None
        if self.labels == CLASS_LABELS:
            return -sum(c / total * math.log(c / total) for c in counts.values() if c)
        p = sum(c for v, c in counts.items() if v > 0) / total
        if self.name == "hinge":  # the best constant margin is the majority's sign: 1 - |2p - 1|
            return 2.0 * min(p, 1.0 - p)
        return -sum(q * math.log(q) for q in (p, 1.0 - p) if q > 0)

    def n_classes(self, counts: dict[float, int]) -> int | None:
        """K for a softmax model trained on labels of these counts, else None."""
        return int(max(counts)) + 1 if self.head == "softmax" else None


LOSSES: dict[str, Loss] = {loss.name: loss for loss in (
    Loss("logistic", "logistic regression", BINARY_LABELS, "logistic", "logloss"),
    # The hinge's margins are scores, not log-odds: early stopping watches the error rate.
    Loss("hinge", "linear SVM", BINARY_LABELS, "identity", "error rate"),
    Loss("squared", "least squares", REAL_LABELS, "identity", "rmse"),
    # Robust regression: outliers count linearly, so early stopping watches the mean absolute error.
    Loss("huber", "robust regression (Huber, delta 1)", REAL_LABELS, "identity", "mae"),
    Loss("softmax", "multinomial logistic regression: labels 0..K-1, K weights per feature", CLASS_LABELS,
         "softmax", "logloss", head="softmax"),
)}


def get_loss(name: str) -> Loss:
    """The registry's entry for ``name``; ConfigError naming the choices otherwise."""
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ConfigError(f"--loss must be one of {', '.join(LOSSES)}, got {name!r}") from None


def watched_score(loss: str, metrics: dict | None) -> float:
    """``metrics``' value of the figure early stopping watches for ``loss`` (lower is better);
    NaN when unknown."""
    if not metrics:
        return float("nan")
    name = get_loss(loss).watched
    return 1.0 - float(metrics["accuracy"]) if name == "error rate" else float(metrics[name])
