"""Warm start: a new run that begins from another model's weights (and optimizer state)."""
from __future__ import annotations

import numpy as np

from ..errors import TrainingError
from ..model.directory import Model


def warm_start_into(model: Model, source, cfg) -> list[float]:
    """Copy another model's weights (chunk by chunk, skipping zero chunks), and its optimizer
    state when it used the same optimizer; returns the intercept state (the kernels' bstate)."""
    src = Model.open(source)
    if src.n_features > model.n_features:
        raise TrainingError(f"--warm-start {source}: that model has {src.n_features:,} features, more than "
                            f"this run's {model.n_features:,}; give --n-features {src.n_features}")
    if src.n_classes != model.n_classes:
        raise TrainingError(f"--warm-start {source}: that model has {src.n_classes or 'no'} classes, this run "
                            f"{model.n_classes or 'none'}")
    if src.hash_bits != model.hash_bits:
        raise TrainingError(f"--warm-start {source}: that model hashes features with --hash-bits {src.hash_bits}, "
                            f"this run with {model.hash_bits}")
    same = src.optimizer == model.optimizer
    k = model.head.n_outputs
    b0 = np.atleast_1d(src.intercept).tolist()
    bstate = b0 + [0.0] * (2 * k + 2)
    if same and "bstate" in src.meta:
        bstate = list(src.meta["bstate"])
    chunk = 1 << 24
    for start in range(0, src.n_features, chunk):
        part = src.weights[start : start + chunk]
        if not part.any():
            continue
        stop = start + len(part)
        model.weights[start:stop] = part
        if same:
            for name, arr in src.optimizer_state.items():
                model.optimizer_state[name][start:stop] = arr[start:stop]
        elif model.optimizer == "ftrl":
            # FTRL derives w from its state: z such that w = -(z - sign(z) l1) / (beta / alpha + l2)
            # with n = 0 gives back the source's weights.
            w = part.astype(np.float64)
            model.optimizer_state["ftrl_z"][start:stop] = -(w * (cfg.ftrl_beta / cfg.lr + cfg.l2) + np.sign(w) * cfg.l1)
    if not same and model.optimizer == "ftrl":
        bstate[2 * k:3 * k] = [-b * cfg.ftrl_beta / cfg.lr for b in b0]
    return bstate
