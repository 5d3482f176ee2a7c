"""Which labels a loss takes: one rule for training and for scoring (issue 16, item 8).

``train`` refuses labels its loss cannot take before it starts; ``evaluate`` and ``predict``
apply the same rule against the model's loss, so a test set with labels -4 or 0.5 is an
error instead of a logloss of a model against labels it was never meant for. A pass over the
label column only (the other columns are not read). ``evaluate`` also refuses a dataset
without rows: its metrics would be NaN.

- logistic, hinge: labels in {-1, +1} or in {0, 1} (one class alone is fine);
- softmax: class ids 0..K-1; training needs two classes at least and K <= MAX_CLASSES,
  scoring needs ids below the model's K;
- squared: any finite label (the readers refuse non-finite ones).
"""
from __future__ import annotations

from .describe import label_counts
from .errors import StreamhogError
from .model import CLASSIFICATION_LOSSES

#: Most classes a softmax model takes (K weights per feature).
MAX_CLASSES = 1000


class LabelError(StreamhogError, ValueError):
    """Labels that the loss (of a run, or of a model being scored) cannot take."""


def check_labels(dataset, loss: str, *, training: bool = True, n_classes: int | None = None,
                 error=LabelError) -> dict[float, int]:
    """Refuse labels ``loss`` cannot take; return the label counts ({} for squared).

    ``training``: a run about to train on ``dataset`` (rows needed; softmax: K = the largest
    id + 1, at least two classes); else scoring, where a softmax model's ``n_classes`` K
    bounds the ids (any number of them present). ``error``: the exception class to raise
    (training raises its TrainingError).
    """
    if training and int(dataset.n_rows) == 0:
        raise error(f"{dataset.path}: the dataset has no rows; there is nothing to train on")
    if loss == "softmax":
        limit = MAX_CLASSES if training else int(n_classes)
        counts = label_counts(dataset, max_distinct=limit + 1)
        bad = [v for v in counts if v != int(v) or v < 0]
        if bad or len(counts) > limit or (counts and max(counts) >= limit):
            if bad:
                what = f"label {bad[0]:g} is not a class id"
            elif training:
                what = f"more than {MAX_CLASSES} classes"
            else:
                what = f"label {max(counts):g} is not one of the model's {n_classes} classes"
            raise error(f"{dataset.path}: {what}; the softmax loss takes labels 0, 1, ..., K-1 "
                        + (f"(K <= {MAX_CLASSES})" if training else f"(this model: K = {n_classes})"))
        if training and (not counts or max(counts) < 1):  # distinct ids: largest >= 1 means >= 2 classes
            raise error(f"{dataset.path}: the softmax loss needs at least two classes (labels 0..K-1)")
        return counts
    if loss not in CLASSIFICATION_LOSSES:
        return {}
    counts = label_counts(dataset, max_distinct=3)  # three distinct values are already too many
    seen = set(counts)
    if not (seen <= {-1.0, 1.0} or seen <= {0.0, 1.0}):
        bad = sorted(seen - ({-1.0, 1.0} if -1.0 in seen else {0.0, 1.0}))[0]
        raise error(
            f"{dataset.path}: label {bad:g} does not fit the {loss} loss, which takes labels "
            f"{{-1, +1}} or {{0, 1}} (labels seen: {', '.join(f'{v:g}' for v in sorted(seen))}"
            f"{', ...' if len(seen) >= 3 else ''}); use --loss squared for real-valued targets")
    return counts


def check_scoring_data(dataset, model, *, need_rows: bool) -> None:
    """What ``evaluate`` (``need_rows``: metrics of no rows are NaN) and ``predict`` (no rows:
    no predictions, a valid answer) need of a dataset beyond its features: labels that fit
    the model's loss, the rule ``train`` applied."""
    if need_rows and int(dataset.n_rows) == 0:
        raise LabelError(f"{dataset.path}: the dataset has no rows; no metric is defined")
    check_labels(dataset, model.loss, training=False, n_classes=model.n_classes)
