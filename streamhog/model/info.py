"""What a model directory holds (``streamhog info MODEL``)."""
from __future__ import annotations

import numpy as np

from .._fs.sparse_files import allocated_bytes, data_extents
from .directory import WEIGHTS, Model


def model_info(path, chunk: int = 1 << 22) -> dict:
    """What a model directory holds. Non-zero weights are counted over the data extents of
    weights.npy only (SEEK_DATA/SEEK_HOLE): a 32 GiB sparse model is scanned in the time its
    few written pages take, never read whole."""
    model = Model.open(path)
    header = model.weights.offset  # the .npy header precedes the data
    w = model.weights.reshape(-1)  # softmax: the (n_features, K) matrix, row-major
    # A file entry: a weight, or a record (weight and state: format 2's record layout).
    itemsize = (model.records if model.records is not None else w).dtype.itemsize
    nonzero = 0
    norm2 = 0.0
    for offset, length in data_extents(model.path / WEIGHTS):
        lo = max(0, (offset - header) // itemsize)
        hi = min(w.size, -(-(offset + length - header) // itemsize))
        for start in range(lo, hi, chunk):
            part = np.asarray(w[start : min(hi, start + chunk)], dtype=np.float64)
            nonzero += int(np.count_nonzero(part))
            norm2 += float(part @ part)
    meta = model.meta
    history = meta.get("history", [])
    intercept = model.intercept
    info = {"kind": "model", "path": str(model.path), "loss": model.loss, "n_features": model.n_features,
            **({"n_classes": model.n_classes} if model.n_classes else {}), "optimizer": model.optimizer,
            "format_version": meta.get("format_version"), "state_layout": meta.get("state_layout", "files"),
            **({"hash_bits": model.hash_bits} if model.hash_bits is not None else {}),
            "nonzero_weights": nonzero, "weight_l2_norm": norm2 ** 0.5,
            "intercept": intercept.tolist() if model.n_classes else intercept,
            "weights_allocated_bytes": allocated_bytes(model.path / WEIGHTS),
            "epochs_trained": len(history), "training": meta.get("training", {}),
            **({"unfinished": model.unfinished} if model.unfinished else {}),
            "hyper_parameters": meta.get("hyper_parameters", {}), "data": meta.get("data", {})}
    if history:
        # The epoch whose model is in place: early stopping may have restored an earlier one.
        kept = (meta.get("training") or {}).get("best_epoch") or len(history)
        if 1 <= kept < len(history) and model.unfinished is None:
            info["kept_epoch"] = history[kept - 1]
        info["last_epoch"] = history[-1]
    return info
