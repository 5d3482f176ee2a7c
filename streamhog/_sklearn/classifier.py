"""HogwildClassifier: logistic regression, linear SVM or softmax regression, trained with
Hogwild! SGD, as a scikit-learn classifier.

Labels of any kind (strings, {1, 2}, {-1, +1}, ...) are mapped to what the losses take: with
two classes ``classes_[0]`` -> 0 and ``classes_[1]`` -> 1 (the kernels read labels > 0 as
the positive class), with more the class index 0..K-1 for softmax regression, which
``loss="logistic"`` becomes with more than two classes (multinomial logistic regression);
predictions map back. A dataset (path, URL, Arrow table) is streamed as it is, so its labels
must already be {-1, +1} or {0, 1} (two classes) or 0..K-1 (K classes).
"""
from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets

from ..errors import ConfigError, ModelError
from ..io.summary import label_counts
from ..losses import MAX_CLASSES
from .base import HogwildEstimator, _jsonable, is_dataset, set_params_from

LOSSES = ("logistic", "hinge", "softmax")


def _has_proba(est) -> bool:
    loss = getattr(est, "loss_", est.loss)
    if loss not in ("logistic", "softmax"):
        raise AttributeError(f"probability estimates are not available for loss={loss!r} (margins: decision_function)")
    return True


class HogwildClassifier(ClassifierMixin, HogwildEstimator):
    """A linear classifier trained with lock-free Hogwild! SGD on data in memory or streamed
    from Parquet/Zarr, into a memory-mapped model directory.

    ``loss``: ``"logistic"`` (default; softmax with more than two classes), ``"hinge"``
    (linear SVM, two classes), ``"softmax"``. The other arguments are those of
    ``streamhog train`` (``TrainConfig``: epochs, optimizer, lr, ...; ``n_features``,
    ``checkpoint_every``, ``keep_snapshots``, ``cache``), how to read another tool's Parquet
    (``label_column`` ... ``fix_rows``), where the model lives (``model_dir``: None for a
    temporary directory removed with the estimator; ``overwrite``) and ``verbose`` (1: one
    line per epoch). See docs/api.md.
    """

    _classifies = True

    def __init__(self, loss="logistic", *, epochs=5, optimizer="normalized", lr=None, lr_schedule=None, lr_decay=0.8,
                 power_t=0.5, l2=1e-6, l1=0.0, ftrl_beta=1.0, initial_accumulator=None, holdout=None,
                 early_stopping=2, refit=None, hash_bits=None, seed=0, threads=None, readers=None, sync="none",
                 capacity=None, hot_features="auto",
                 n_features=None, checkpoint_every=None, keep_snapshots=0, cache=None, label_column=None,
                 indices_column=None, values_column=None, weight_column=None, index_base=0, fix_rows=False,
                 model_dir=None, overwrite=False, verbose=0):
        set_params_from(self, locals())

    def fit(self, X, y=None, sample_weight=None, *, valid=None):
        """Train on ``X`` (NumPy, scipy.sparse; or a dataset path, URL or Arrow table, whose
        labels and weights are its own) from scratch; ``valid``: data early stopping watches
        (a dataset, or an ``(X, y)`` pair) instead of a holdout."""
        return self._fit(X, y, sample_weight, valid)

    def partial_fit(self, X, y=None, classes=None, sample_weight=None):
        """One pass over ``X``, continuing the run (weights, optimizer state, step count);
        ``classes`` (every class to come) is required on the first call."""
        return self._partial_fit(X, y, sample_weight, classes)

    # -- labels --------------------------------------------------------------------------------
    def _loss_for(self, n_classes: int) -> str:
        if self.loss not in LOSSES:
            raise ConfigError(f"HogwildClassifier: loss must be one of {', '.join(LOSSES)}, got {self.loss!r} "
                              "(HogwildRegressor takes squared and huber)")
        if n_classes > MAX_CLASSES:
            raise ValueError(f"{n_classes:,} classes: at most {MAX_CLASSES:,} are supported")
        if n_classes > 2 and self.loss == "hinge":
            raise ValueError(f"Only binary classification is supported with loss='hinge' (y has {n_classes} "
                             "classes): use loss='logistic', softmax regression with more than two classes")
        return "softmax" if n_classes > 2 else self.loss

    def _set_classes(self, classes) -> None:
        self.classes_ = np.unique(np.asarray(classes))
        if len(self.classes_) < 2:
            raise ValueError(f"a classifier needs samples of at least 2 classes; the data holds only one class: "
                             f"{self.classes_[0] if len(self.classes_) else 'none'}")

    def _targets(self, y, *, first: bool, classes=None, partial: bool = False):
        check_classification_targets(y)
        if first:
            if classes is None and partial:
                raise ValueError("classes must be passed on the first call to partial_fit (every class to come)")
            self._set_classes(y if classes is None else classes)
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise ValueError(f"classes={list(classes)} differs from the classes of the first call {list(self.classes_)}")
        loss = self._loss_for(len(self.classes_)) if first else self.loss_
        return self._known_targets(y), loss

    def _known_targets(self, y) -> np.ndarray:
        """Labels as the losses take them: the index of each label in ``classes_``."""
        y = np.asarray(y)
        known = np.isin(y, self.classes_)
        if not known.all():
            raise ValueError(f"y holds labels that are not among the classes {list(self.classes_)}, e.g. "
                             f"{y[~known][0]!r}")
        return np.searchsorted(self.classes_, y).astype(np.float32)

    def _dataset_loss(self, ds, classes=None) -> str:
        """A dataset's labels are used as they are: decide binary or softmax from them (a pass
        over the label column) and check they fit."""
        seen = sorted(label_counts(ds, MAX_CLASSES + 1)) if classes is None else sorted(np.unique(classes).tolist())
        self._set_classes(seen)
        loss = self._loss_for(len(seen))
        if loss == "softmax":
            if not all(float(v).is_integer() and v >= 0 for v in seen):
                raise ValueError(f"{ds.path}: labels {seen[:5]}...: a dataset's classes must be 0..K-1 (fit arrays "
                                 "to map labels of any kind)")
            self.classes_ = np.arange(int(max(seen)) + 1)
        elif not (set(seen) <= {-1.0, 1.0} or set(seen) <= {0.0, 1.0}):
            raise ValueError(f"{ds.path}: labels {seen}: a dataset's two classes must be {{-1, +1}} or {{0, 1}} "
                             "(fit arrays to map labels of any kind)")
        else:
            self.classes_ = np.asarray(seen, dtype=np.int64)
        return loss

    def _as_targets(self, labels) -> np.ndarray:
        return np.asarray(labels).astype(self.classes_.dtype)

    def _n_classes(self, loss: str):
        return len(self.classes_) if loss == "softmax" else None

    def _restore(self, model, info: dict) -> None:
        if "classes" in info:
            if info["classes"] is None:
                raise ModelError(f"{model.path}: the estimator's classes could not be stored (not JSON)")
            self.classes_ = np.asarray(info["classes"], dtype=info.get("classes_dtype"))
        elif model.n_classes:
            self.classes_ = np.arange(model.n_classes)
        else:
            seen = sorted(float(k) for k in (model.meta.get("data") or {}).get("labels") or {})
            self.classes_ = np.asarray(seen if len(seen) == 2 else [-1, 1], dtype=np.int64)

    def _fitted_info(self) -> dict:
        info = super()._fitted_info()
        info.update(classes=_jsonable(self.classes_.tolist()),
                    classes_dtype=self.classes_.dtype.str if self.classes_.dtype != object else None)
        return info

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = self.loss != "hinge"
        return tags

    # -- predictions -------------------------------------------------------------------------
    @property
    def coef_(self) -> np.ndarray:
        """The weights: (1, n_features), or (K, n_features) for softmax; read-only views of the
        memory-mapped weights.npy (float32)."""
        w = np.asarray(self.model_.weights)
        return w.reshape(1, -1) if w.ndim == 1 else w.T

    def decision_function(self, X) -> np.ndarray:
        """Margins x·w + b: (n_samples,) for two classes (> 0: ``classes_[1]``), else (n_samples, K)."""
        return self._margins(X)

    def predict(self, X) -> np.ndarray:
        m = self._margins(X)
        return self.classes_[m.argmax(axis=1) if m.ndim == 2 else (m > 0).astype(np.intp)]

    @available_if(_has_proba)
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), columns in ``classes_`` order."""
        p = self._predictions(X)
        return p if p.ndim == 2 else np.column_stack([1.0 - p, p])

    @available_if(_has_proba)
    def predict_log_proba(self, X) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def score(self, X, y=None, sample_weight=None) -> float:
        """Accuracy on ``(X, y)``, or on a dataset with its own labels and weights."""
        if is_dataset(X):
            return self._dataset_score(X, y, sample_weight, accuracy_score)
        return super().score(X, y, sample_weight)
