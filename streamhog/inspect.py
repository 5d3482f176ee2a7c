"""Summaries of a dataset that need a pass over a column (``streamhog info``)."""
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


def model_info(path, chunk: int = 1 << 24) -> dict:
    """What a model directory holds; counts non-zero weights chunk by chunk (bounded memory;
    the pages of a sparse weight file that were never written read as zeros cheaply)."""
    from .model import Model

    model = Model.open(path)
    w = model.weights
    nonzero = 0
    norm2 = 0.0
    for start in range(0, model.n_features, chunk):
        part = np.asarray(w[start : start + chunk], dtype=np.float64)
        nonzero += int(np.count_nonzero(part))
        norm2 += float(part @ part)
    meta = model.meta
    history = meta.get("history", [])
    info = {"kind": "model", "path": str(model.path), "loss": model.loss, "n_features": model.n_features,
            "nonzero_weights": nonzero, "weight_l2_norm": norm2 ** 0.5, "intercept": model.intercept,
            "epochs_trained": len(history), "hyper_parameters": meta.get("hyper_parameters", {}),
            "data": meta.get("data", {})}
    if history:
        info["last_epoch"] = history[-1]
    return info
