"""What HogwildClassifier and HogwildRegressor share: hyper-parameters, fit, partial_fit,
scoring, the fitted model's attributes, pickling and ``load``.

``fit`` is ``streamhog.train`` (training/job.py) on the data as given: arrays go through
:class:`~streamhog.io.formats.memory.InMemoryData` (a CSR matrix's blocks are views of it, no
file written), a path, URL or Arrow table is streamed as a dataset. So an estimator and
``streamhog train`` with the same data, seed and hyper-parameters give the same model (with
one thread, bit for bit). ``partial_fit`` is one pass (training/incremental.py) continuing
the run in the model directory: weights, optimizer state and step counter carry over.
Hyper-parameters are checked by TrainConfig, with the command line's messages.
"""
from __future__ import annotations

import json
import os

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from ..errors import ConfigError, ModelError
from ..io.formats import open_dataset
from ..io.formats.memory import InMemoryData
from ..model.directory import Model
from ..model.inference import predict
from ..training.config import TrainConfig
from ..training.incremental import train_pass
from ..training.job import train
from .home import CarriedByValue, FittedModel, ModelHome, new_home
from .inputs import check_options, is_dataset, sample_weights

#: TrainConfig's fields: the hyper-parameters of the command line, constructor arguments here
#: (less the target's scale, which a run derives from its labels: training/targets.py).
HYPER = tuple(f for f in TrainConfig.__dataclass_fields__ if f != "target_scale")
#: How to read Parquet written by other tools (the command line's data options).
DATA_OPTIONS = ("label_column", "indices_column", "values_column", "weight_column", "index_base", "fix_rows")
#: Hyper-parameters that describe the machine a model was trained on, not the model.
_MACHINE = ("threads", "readers", "capacity", "hot_features")


def set_params_from(est, args: dict) -> None:
    """``__init__``: store every argument as it is (scikit-learn's rule)."""
    for name, value in args.items():
        if name not in ("self", "__class__"):
            setattr(est, name, value)


def _jsonable(value):
    """``value`` as JSON can hold it (paths as text, NumPy scalars as Python's), or None."""
    value = os.fspath(value) if isinstance(value, os.PathLike) else value
    value = value.item() if isinstance(value, np.generic) else value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value


def labels_and_weights(ds) -> tuple[np.ndarray, np.ndarray | None]:
    """A dataset's labels and importance weights, block by block in row order (a pass)."""
    reader = ds.open_reader()
    try:
        batches = [reader.read(k) for k in np.argsort(ds.block_row_start, kind="stable").tolist()]
    finally:
        reader.close()
    labels = np.concatenate([b.labels for b in batches]) if batches else np.zeros(0, np.float32)
    if not ds.has_weights:
        return labels, None
    return labels, np.concatenate([b.weights for b in batches])


class HogwildEstimator(CarriedByValue, FittedModel, BaseEstimator):
    """The shared part of the estimators (see the module docstring)."""

    # -- configuration ---------------------------------------------------------------------
    def _hyper(self, loss: str) -> dict:
        """TrainConfig's fields from the parameters, checked as the command line checks them."""
        check_options(self)
        hyper = {name: getattr(self, name) for name in HYPER}
        hyper["loss"] = loss
        TrainConfig(**hyper).resolved()
        return hyper

    def _open(self, X, require_labels: bool = False):
        """A dataset from a path, URL or Arrow table (with the data options), or one already open."""
        if hasattr(X, "open_reader"):
            return open_dataset(X, require_labels=require_labels)
        options = {k: getattr(self, k) for k in DATA_OPTIONS}
        return open_dataset(X, require_labels=require_labels, n_features=self.n_features, **options)

    def _train_options(self) -> dict:
        return dict(n_features=self.n_features, quiet=not self.verbose, handle_signals=False, cache=self.cache,
                    checkpoint_every=self.checkpoint_every, keep_snapshots=self.keep_snapshots)

    # -- fit and partial_fit -------------------------------------------------------------------
    def _validate_xy(self, X, y, *, reset: bool):
        return validate_data(self, X, y, accept_sparse="csr", reset=reset, y_numeric=not self._classifies)

    def _validate_x(self, X):
        return validate_data(self, X, accept_sparse="csr", reset=False)

    def _in_memory(self, X, y, sample_weight, *, reset: bool, classes=None, partial: bool = False):
        X, y = self._validate_xy(X, y, reset=reset)
        weights = sample_weights(sample_weight, X.shape[0])
        targets, loss = self._targets(y, first=reset, classes=classes, partial=partial)
        return InMemoryData(X, targets, weights), loss

    def _fit(self, X, y, sample_weight, valid):
        self._hyper(self.loss)  # refuse bad hyper-parameters before reading anything
        if is_dataset(X):
            if y is not None or sample_weight is not None:
                raise ConfigError("a dataset carries its own labels and weights (label_column=, weight_column=): "
                                  "pass y and sample_weight with arrays only")
            data = self._open(X, require_labels=True)
            loss = self._dataset_loss(data)
            self._forget_inputs(data.n_features)
        else:
            data, loss = self._in_memory(X, y, sample_weight, reset=True)
        hyper = self._hyper(loss)
        valid_ds = self._valid_data(valid)
        home = self._new_home()
        try:
            with home.writes():
                model = train(data, home.path, valid=valid_ds, **self._train_options(), **hyper)
                self._adopt(home, model)
        except BaseException:
            home.release()
            raise
        return self

    def _partial_fit(self, X, y, sample_weight, classes=None):
        first = not self.__sklearn_is_fitted__()
        self._hyper(self.loss)
        if is_dataset(X):
            if y is not None or sample_weight is not None:
                raise ConfigError("a dataset carries its own labels and weights: pass y and sample_weight with "
                                  "arrays only")
            data = self._open(X, require_labels=True)
            loss = self.loss_ if not first else self._dataset_loss(data, classes)
            if first:
                self._forget_inputs(data.n_features)
        else:
            data, loss = self._in_memory(X, y, sample_weight, reset=first, classes=classes, partial=True)
        hyper = self._hyper(loss)
        home = self._new_home() if first else self._home
        try:
            with home.writes():
                model = train_pass(data, home.path, n_classes=self._n_classes(loss), **{
                    k: v for k, v in self._train_options().items() if k in ("n_features", "quiet")}, **hyper)
                self._adopt(home, model)
        except BaseException:
            if first:
                home.release()
            raise
        return self

    def _valid_data(self, valid):
        """``fit(valid=)``: a dataset, or an ``(X, y)`` pair like the training arrays."""
        if valid is None or is_dataset(valid):
            return None if valid is None else self._open(valid, require_labels=True)
        if not (isinstance(valid, (tuple, list)) and len(valid) == 2):
            raise ConfigError("valid= takes a dataset (a path, URL or Arrow table) or an (X, y) pair")
        Xv, yv = self._validate_xy(*valid, reset=False)
        return InMemoryData(Xv, self._known_targets(yv))

    def _new_home(self) -> ModelHome:
        return new_home(self)

    def _forget_inputs(self, n_features: int) -> None:
        """Fitting a dataset: its dimension is the input's, and it has no column names."""
        self.n_features_in_ = int(n_features)
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

    def _adopt(self, home: ModelHome, model: Model, *, record: bool = True) -> None:
        """Make ``model`` (in ``home``) the fitted model; record in its model.json what
        ``load`` needs to rebuild the estimator."""
        old = getattr(self, "_home", None)
        self._home, self._model = home, model
        self.loss_ = model.loss
        self.n_iter_ = len(model.meta.get("history") or [])
        if old is not None and old is not home:
            old.release()
        if record:
            model.meta["sklearn"] = self._fitted_info()
            model.save_meta()

    def _fitted_info(self) -> dict:
        names = getattr(self, "feature_names_in_", None)
        return {"estimator": type(self).__name__, "n_features_in": int(self.n_features_in_),
                "feature_names_in": None if names is None else [str(n) for n in names],
                "params": {k: _jsonable(v) for k, v in self.get_params().items()}}

    # -- predictions -------------------------------------------------------------------------
    def _scoring_data(self, X):
        check_is_fitted(self)
        if is_dataset(X):
            return self._open(X)
        return InMemoryData(self._validate_x(X))

    def _margins(self, X) -> np.ndarray:
        data = self._scoring_data(X)  # first: it checks the estimator is fitted
        return predict(self._model, data, threads=self.threads, margins=True)

    def _predictions(self, X) -> np.ndarray:
        data = self._scoring_data(X)
        return predict(self._model, data, threads=self.threads)

    def _dataset_score(self, X, y, sample_weight, metric) -> float:
        if y is not None or sample_weight is not None:
            raise ConfigError("a dataset is scored against its own labels and weights: pass y and sample_weight "
                              "with arrays only")
        ds = self._open(X, require_labels=True)
        y, w = labels_and_weights(ds)
        return float(metric(self._as_targets(y), self.predict(ds), sample_weight=w))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.non_deterministic = self.threads != 1  # Hogwild!: threads race on purpose
        return tags

    # -- the fitted model (model_, model_path_, history_, best_epoch_: FittedModel) ---------------
    @property
    def intercept_(self) -> np.ndarray:
        """The intercept: (1,), or (K,) for a softmax classifier."""
        return np.atleast_1d(np.asarray(self.model_.intercept, dtype=np.float64))

    # -- load ----------------------------------------------------------------------------------
    @classmethod
    def load(cls, model_dir, **params):
        """An estimator over the model in ``model_dir`` (fitted by an estimator with
        ``model_dir=``, or trained by ``streamhog train``), used in place: predictions read
        it, ``partial_fit`` continues it; ``fit`` replaces it only with ``overwrite=True``.
        ``params`` override the saved parameters."""
        return _load(cls, model_dir, params)


def _load(cls, model_dir, params: dict):
    """``cls.load``: the estimator rebuilt from what ``model.json`` records."""
    model = Model.open(model_dir)
    info = model.meta.get("sklearn") or {}
    if info.get("estimator", cls.__name__) != cls.__name__ or model.is_classifier != cls._classifies:
        raise ModelError(f"{model.path}: a {info.get('estimator') or model.loss + ' model'}, not a model for "
                         f"{cls.__name__}")
    # A model of `streamhog train`: its hyper-parameters, less those of the machine it ran on.
    saved = info.get("params") or {k: v for k, v in (model.meta.get("hyper_parameters") or {}).items()
                                   if k in HYPER and k not in _MACHINE}
    known = cls._get_param_names()
    est = cls(**{**{k: v for k, v in saved.items() if k in known}, "model_dir": str(model.path), **params})
    data = model.meta.get("data") or {}
    est.n_features_in_ = int(info.get("n_features_in") or data.get("n_features") or model.n_features)
    if info.get("feature_names_in"):
        est.feature_names_in_ = np.asarray(info["feature_names_in"], dtype=object)
    est._restore(model, info)
    est._adopt(ModelHome(model.path, created=False), model, record=False)
    return est
