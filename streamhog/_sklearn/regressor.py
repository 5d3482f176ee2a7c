"""HogwildRegressor: least squares or Huber regression trained with Hogwild! SGD, as a
scikit-learn regressor. Targets are float32 in the model's kernels (as in a Parquet file);
a target beyond float32's range is refused."""
from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score

from ..errors import ConfigError
from .base import HogwildEstimator, is_dataset, set_params_from

LOSSES = ("squared", "huber")


class HogwildRegressor(RegressorMixin, HogwildEstimator):
    """A linear regressor trained with lock-free Hogwild! SGD on data in memory or streamed
    from Parquet/Zarr, into a memory-mapped model directory.

    ``loss``: ``"squared"`` (least squares, default) or ``"huber"`` (robust regression,
    delta 1). The other arguments are HogwildClassifier's: those of ``streamhog train``,
    the data options of another tool's Parquet, ``model_dir``, ``overwrite``, ``verbose``.
    See docs/api.md.
    """

    _classifies = False

    def __init__(self, loss="squared", *, epochs=5, optimizer="normalized", lr=None, lr_schedule=None, lr_decay=0.8,
                 power_t=0.5, l2=1e-6, l1=0.0, ftrl_beta=1.0, initial_accumulator=None, holdout=None,
                 early_stopping=2, refit=None, hash_bits=None, seed=0, threads=None, readers=None, sync="none",
                 capacity=None, hot_features="auto",
                 n_features=None, checkpoint_every=None, keep_snapshots=0, cache=None, label_column=None,
                 indices_column=None, values_column=None, weight_column=None, index_base=0, fix_rows=False,
                 model_dir=None, overwrite=False, verbose=0):
        set_params_from(self, locals())

    def fit(self, X, y=None, sample_weight=None, *, valid=None):
        """Train on ``X`` (NumPy, scipy.sparse; or a dataset path, URL or Arrow table, whose
        targets and weights are its own) from scratch; ``valid``: data early stopping watches
        (a dataset, or an ``(X, y)`` pair) instead of a holdout."""
        return self._fit(X, y, sample_weight, valid)

    def partial_fit(self, X, y=None, sample_weight=None):
        """One pass over ``X``, continuing the run (weights, optimizer state, step count)."""
        return self._partial_fit(X, y, sample_weight)

    def _check_loss(self) -> str:
        if self.loss not in LOSSES:
            raise ConfigError(f"HogwildRegressor: loss must be one of {', '.join(LOSSES)}, got {self.loss!r} "
                              "(HogwildClassifier takes logistic, hinge and softmax)")
        return self.loss

    def _targets(self, y, *, first: bool, classes=None, partial: bool = False):
        return self._known_targets(y), self._check_loss() if first else self.loss_

    def _known_targets(self, y) -> np.ndarray:
        return np.asarray(y, dtype=np.float64)

    def _dataset_loss(self, ds, classes=None) -> str:
        return self._check_loss()

    def _as_targets(self, labels) -> np.ndarray:
        return np.asarray(labels, dtype=np.float64)

    def _n_classes(self, loss: str):
        return None

    def _restore(self, model, info: dict) -> None:
        pass

    @property
    def coef_(self) -> np.ndarray:
        """The weights (n_features,): a read-only view of the memory-mapped weights.npy (float32)."""
        return np.asarray(self.model_.weights)

    def predict(self, X) -> np.ndarray:
        """x·w + b for every row of ``X`` (arrays, or a dataset in its row order)."""
        return self._predictions(X)

    def score(self, X, y=None, sample_weight=None) -> float:
        """R² on ``(X, y)``, or on a dataset with its own targets and weights."""
        if is_dataset(X):
            return self._dataset_score(X, y, sample_weight, r2_score)
        return super().score(X, y, sample_weight)
