"""Which labels a model takes: one rule for training and for scoring (issue 16, item 8).

``train`` refuses labels its loss cannot take before it starts (streamhog/losses.py says
which: classification losses {-1, +1} or {0, 1}; softmax class ids 0..K-1, two classes at
least, K <= 1,000; regression any finite label); ``evaluate`` and ``predict`` apply the same
rule against the model's loss — a softmax model's K bounds the ids — so a test set with
labels -4 or 0.5 is an error instead of the logloss of a model against labels it was never
meant for. A pass over the label column only. A dataset without rows is refused by
``train`` and ``evaluate`` (its metrics would be NaN).
"""
from __future__ import annotations

from ..errors import LabelError
from ..io.summary import label_counts
from ..losses import CLASS_LABELS, get_loss


def check_labels(dataset, loss: str, *, training: bool = True, n_classes: int | None = None,
                 error=LabelError) -> dict[float, int]:
    """Refuse labels ``loss`` cannot take; return the label counts ({} for losses that take
    any label). ``training``: a run about to train (rows needed; softmax: K = the largest id
    + 1); else scoring a model of ``n_classes`` K (softmax). ``error``: the exception class."""
    if training and int(dataset.n_rows) == 0:
        raise error(f"{dataset.path}: the dataset has no rows; there is nothing to train on")
    spec = get_loss(loss)
    if not spec.distinct_labels_to_check:
        return {}
    if spec.labels == CLASS_LABELS and not training:
        counts = label_counts(dataset, max_distinct=int(n_classes) + 1)
        bad = [v for v in counts if v != int(v) or v < 0 or v >= n_classes]
        if bad:
            what = f"label {bad[0]:g} is not a class id" if bad[0] != int(bad[0]) or bad[0] < 0 else \
                f"label {bad[0]:g} is not one of the model's {n_classes} classes"
            raise error(f"{dataset.path}: {what}; the {loss} loss takes labels 0, 1, ..., K-1 "
                        f"(this model: K = {n_classes})")
        return counts
    counts = label_counts(dataset, max_distinct=spec.distinct_labels_to_check)
    problem = spec.label_problem(counts)
    if problem:
        raise error(f"{dataset.path}: {problem}")
    return counts


def check_scoring_data(dataset, model, *, need_rows: bool) -> None:
    """What ``evaluate`` (``need_rows``: metrics of no rows are NaN) and ``predict`` (no rows:
    no predictions, a valid answer) need of a dataset beyond its features: labels that fit
    the model's loss, the rule ``train`` applied."""
    if need_rows and int(dataset.n_rows) == 0:
        raise LabelError(f"{dataset.path}: the dataset has no rows; no metric is defined")
    check_labels(dataset, model.loss, training=False, n_classes=model.n_classes)
