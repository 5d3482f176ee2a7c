"""What the estimators' ``fit`` is given: arrays (checked the scikit-learn way) or a dataset
(a path, a URL, an Arrow table, an open dataset: streamed, never loaded whole)."""
from __future__ import annotations

import os

import numpy as np

from ..errors import ConfigError

#: The estimators' own arguments beside TrainConfig's, with the checks of the command line.
_FLAGS = {"n_features": "--n-features", "checkpoint_every": "--checkpoint-every", "keep_snapshots": "--keep-snapshots"}


def is_dataset(X) -> bool:
    """True for data streamhog opens as a dataset: a path or URL, a pyarrow Table/RecordBatch,
    or an already open dataset. NumPy, scipy.sparse and pandas frames are arrays."""
    if isinstance(X, (str, os.PathLike)):
        return True
    if hasattr(X, "open_reader") and hasattr(X, "n_blocks"):
        return True
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        return False
    return isinstance(X, (pa.Table, pa.RecordBatch))


def sample_weights(sample_weight, n_rows: int) -> np.ndarray | None:
    """``sample_weight`` as float64 (n_rows,), or None; ValueError for a wrong shape, NaN,
    negative weights or all zeros (an SGD step against a negative weight climbs the loss)."""
    if sample_weight is None:
        return None
    if np.isscalar(sample_weight):
        sample_weight = np.full(n_rows, sample_weight, dtype=np.float64)
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"sample_weight must be numbers ({exc})") from None
    if w.shape != (n_rows,):
        raise ValueError(f"sample_weight.shape == {w.shape}, expected {(n_rows,)}")
    if not np.isfinite(w).all():
        raise ValueError(f"sample_weight holds NaN or infinity (entry {int(np.argmin(np.isfinite(w)))})")
    if (w < 0).any():
        raise ValueError(f"sample_weight must be >= 0: entry {int(np.argmax(w < 0))} is {w[np.argmax(w < 0)]:g}")
    if not w.any():
        raise ValueError("sample_weight is zero everywhere: sample weights must contain at least one non-zero number")
    return w


def check_options(est) -> None:
    """The estimator's own arguments (beyond TrainConfig's, which TrainConfig checks), refused
    with the command line's messages."""
    for name, flag in _FLAGS.items():
        value = getattr(est, name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or (
                name != "checkpoint_every" and not isinstance(value, (int, np.integer))):
            raise ConfigError(f"{flag} must be a {'number' if name == 'checkpoint_every' else 'whole number'}, "
                              f"got {value!r}")
    if est.n_features is not None and est.n_features < 1:
        raise ConfigError(f"--n-features must be >= 1, got {est.n_features}")
    if est.keep_snapshots is None or est.keep_snapshots < 0 or (
            est.checkpoint_every is not None and est.checkpoint_every <= 0):
        raise ConfigError("--keep-snapshots must be >= 0 and --checkpoint-every > 0")
    for name in ("overwrite", "fix_rows"):
        if not isinstance(getattr(est, name), (bool, np.bool_)):
            raise ConfigError(f"{name} must be True or False, got {getattr(est, name)!r}")
    if est.cache is not None and not isinstance(est.cache, (bool, np.bool_)):
        raise ConfigError(f"cache must be None, True or False, got {est.cache!r}")
    if isinstance(est.verbose, bool) or not isinstance(est.verbose, (int, np.integer)) or est.verbose < 0:
        raise ConfigError(f"verbose must be a whole number >= 0, got {est.verbose!r}")
    if est.model_dir is not None and not isinstance(est.model_dir, (str, os.PathLike)):
        raise ConfigError(f"model_dir must be a directory path (or None: a temporary directory), got {est.model_dir!r}")
