"""Summaries of a dataset that need a pass over a column (``streamhog info``, label checks)."""
from __future__ import annotations

import numpy as np


def label_counts(dataset, max_distinct: int = 1000) -> dict[float, int]:
    """Count of each label value, reading only the label column, block by block.

    Past ``max_distinct`` distinct values (regression targets) new values are not tracked.
    """
    counts: dict[float, int] = {}
    for labels in dataset.iter_labels():
        values, n = np.unique(labels, return_counts=True)
        for v, c in zip(values.tolist(), n.tolist()):
            if v in counts or len(counts) < max_distinct:
                counts[v] = counts.get(v, 0) + c
    return dict(sorted(counts.items()))
