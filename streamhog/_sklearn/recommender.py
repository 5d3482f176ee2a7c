"""HogwildRecommender: biased matrix factorization (streamhog.factorization) behind
scikit-learn's API, for ratings held in memory as Surprise's users hold them.

``X`` is (user, item) pairs: an array of shape (n, 2) of non-negative whole-number ids
(column 0 the user, column 1 the item; ids index the factor matrices directly, as in the
interaction files), ``y`` the ratings. Or ``X`` is an interaction Parquet file (docs/
formats.md), streamed, with ``y=None``. ``fit`` writes arrays as an interaction file in a
temporary directory (row groups of 16,384 rows, :data:`STRATA_BLOCK_ROWS` under
``schedule="strata"``) and runs :func:`~streamhog.factorization.train_mf` on it, so the
estimator and ``streamhog train --loss mf`` on the same rows in the same row groups, seed
and hyper-parameters give the same model (bit for bit with one thread, or with strata's
threads, deterministic for a seed and a thread count). Every hyper-parameter of MFConfig
is a constructor argument, checked with the command line's messages.

The fitted model is a factorization model directory: ``model_dir=`` names it, else it lives
in a temporary directory removed with the estimator, in memory when its arrays fit there
(home.py). Pickling carries it by value (up to ``pickle_limit``); ``load(DIR)`` reopens one.

MovieLens latest-small (bundled), the issue's split, the defaults (holdout, early stopping):

>>> import numpy as np
>>> from streamhog.datasets import movielens_small
>>> from streamhog.factorization.parse import RatingsReader
>>> from streamhog.sklearn import HogwildRecommender
>>> parts = list(RatingsReader(movielens_small()))
>>> X, y = np.concatenate([np.c_[p[0], p[1]] for p in parts]), np.concatenate([p[2] for p in parts])
>>> perm = np.random.default_rng(0).permutation(len(y))
>>> test, train = perm[:len(y) // 5], perm[len(y) // 5:]
>>> rec = HogwildRecommender().fit(X[train], y[train])
>>> rmse = np.sqrt(np.mean((rec.predict(X[test]) - y[test]) ** 2))
>>> bool(rmse < 0.86)  # scikit-surprise's SVD with its defaults: 0.874
True
>>> rec.recommend([1], top=3)["item"].shape
(3,)
"""
from __future__ import annotations

import numbers
import os
from dataclasses import fields

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from ..errors import ConfigError, ModelError
from ..factorization.config import MFConfig
from ..factorization.format import DEFAULT_ROWS_PER_GROUP, MAX_ID, InteractionDataset, write_interactions
from ..factorization.model import MFModel, dense_bytes
from ..factorization.recommendations import recommend
from ..factorization.score import evaluate, predict as predict_file
from ..factorization.train import train_mf, training_mean
from .base import _jsonable, set_params_from
from .home import CarriedByValue, FittedModel, ModelHome, new_home
from .inputs import is_dataset, sample_weights

#: MFConfig's fields: the hyper-parameters of ``streamhog train --loss mf``, constructor arguments here.
HYPER = tuple(f.name for f in fields(MFConfig))
#: Hyper-parameters that describe the machine a model was trained on, not the model.
_MACHINE = ("threads", "readers", "capacity")


def id_pairs(X, what: str = "X") -> tuple[np.ndarray, np.ndarray]:
    """(users, items) as uint64 from an array of shape (n, 2) of non-negative whole numbers;
    ValueError naming the first bad row otherwise."""
    try:
        a = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be an array of (user, item) id pairs ({exc})") from None
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"{what} must be (user, item) id pairs, an array of shape (n, 2); got shape {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{what} holds no (user, item) pairs")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.floor(a)) | (a < 0) | (a > MAX_ID)
        if bad.any():
            r = int(np.flatnonzero(bad.any(axis=1))[0])
            raise ValueError(f"{what}: row {r} holds {a[r].tolist()}: ids must be non-negative whole numbers")
        a = a.astype(np.uint64)
    elif a.dtype.kind == "i":
        if a.min() < 0:
            r = int(np.flatnonzero((a < 0).any(axis=1))[0])
            raise ValueError(f"{what}: row {r} holds {a[r].tolist()}: ids must be non-negative")
    elif a.dtype.kind == "u":
        if a.max() > MAX_ID:
            r = int(np.flatnonzero((a > MAX_ID).any(axis=1))[0])
            raise ValueError(f"{what}: row {r} holds an id above {MAX_ID} (2^63 - 1)")
    else:
        raise ValueError(f"{what}: ids must be whole numbers, got dtype {a.dtype}")
    a = a.astype(np.uint64, copy=False)
    return np.ascontiguousarray(a[:, 0]), np.ascontiguousarray(a[:, 1])


def _ratings(y, n: int) -> np.ndarray:
    if y is None:
        raise ValueError("explicit feedback needs the ratings: fit(X, y)")
    try:
        r = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y must be numbers ({exc})") from None
    if r.shape != (n,):
        raise ValueError(f"y.shape == {r.shape}, expected {(n,)} (one rating per pair of X)")
    bad = ~np.isfinite(r) | (np.abs(r) > np.finfo(np.float32).max)
    if bad.any():
        raise ValueError(f"y: rating {int(np.argmax(bad))} is {r[np.argmax(bad)]!r}: ratings must be finite")
    return r.astype(np.float32)


#: The blocks (row groups) of the file ``fit`` writes from arrays under ``schedule="strata"``:
#: a strata block costs its team's rounds and the leader's Python (about 0.2 ms a block on
#: MovieLens: 20 epochs of sgd at rank 100 took 59 ms in the team's calls as one 80,669-row
#: block an epoch, 70 ms as five of 16,384), so larger blocks pay it less often. Hogwild!
#: keeps the default: each thread trains whole blocks, and one block an epoch idled a thread
#: (1.15x slower).
STRATA_BLOCK_ROWS = 1 << 18


def block_rows(cfg: MFConfig) -> int:
    """Rows per block of the file written from arrays for the run ``cfg``."""
    return STRATA_BLOCK_ROWS if cfg.schedule == "strata" and cfg.threads > 1 else DEFAULT_ROWS_PER_GROUP


def check_own_options(est) -> None:
    """The estimator's arguments beyond MFConfig's, refused with the command line's messages."""
    for name in ("n_users", "n_items"):
        value = getattr(est, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
            raise ConfigError(f"--{name.replace('_', '-')} must be a whole number >= 1, got {value!r}")
    every = est.checkpoint_every
    if every is not None and (isinstance(every, bool) or not isinstance(every, numbers.Real) or not every > 0):
        raise ConfigError(f"--checkpoint-every must be a number > 0, got {every!r}")
    if not isinstance(est.overwrite, (bool, np.bool_)):
        raise ConfigError(f"overwrite must be True or False, got {est.overwrite!r}")
    if isinstance(est.verbose, bool) or not isinstance(est.verbose, numbers.Integral) or est.verbose < 0:
        raise ConfigError(f"verbose must be a whole number >= 0, got {est.verbose!r}")
    if est.model_dir is not None and not isinstance(est.model_dir, (str, os.PathLike)):
        raise ConfigError(f"model_dir must be a directory path (or None: a temporary directory), got {est.model_dir!r}")


class HogwildRecommender(RegressorMixin, CarriedByValue, FittedModel, BaseEstimator):
    """Biased matrix factorization r̂ = μ + b_u + b_i + p_u·q_i with Hogwild! threads (see the
    module docstring); ``feedback="implicit"``: every pair an interaction, sampled negatives,
    ``predict`` gives preferences in (0, 1)."""

    _model_type = MFModel
    _memory_home = True

    def __init__(self, rank=64, epochs=40, optimizer="rowwise-adagrad", lr=None, lr_decay=1.0, l2=None,
                 l2_bias=0.02, initial_accumulator=None, init_scale=None, holdout=None, early_stopping=2, clip=True,
                 seed=0, threads=0, schedule=None, readers=0, capacity=0, feedback="explicit", negatives=None,
                 n_users=None, n_items=None, checkpoint_every=None, model_dir=None, overwrite=False, verbose=0):
        set_params_from(self, locals())

    # -- fit -----------------------------------------------------------------------------------
    def _hyper(self) -> tuple[dict, MFConfig]:
        """MFConfig's fields from the parameters, checked as the command line checks them, and
        the run's resolved config."""
        check_own_options(self)
        hyper = {name: getattr(self, name) for name in HYPER}
        return hyper, MFConfig(**hyper).resolved()

    def _write(self, pairs, y, sample_weight, path, rows_per_group: int = DEFAULT_ROWS_PER_GROUP):
        """Checked ``pairs`` (id_pairs') and their ratings as an interaction file at ``path``
        (row groups of ``rows_per_group``: the blocks); returns (path, max user + 1, max item + 1)."""
        users, items = pairs
        implicit = self.feedback == "implicit"
        if implicit and y is not None:
            raise ValueError("implicit feedback: every (user, item) pair is an interaction; pass y=None")
        ratings = None if implicit else _ratings(y, len(users))
        w = sample_weights(sample_weight, len(users))
        if w is not None and implicit:
            ratings = np.ones(len(users), np.float32)  # a file's weights need a rating column
        write_interactions(path, users, items, ratings, None if w is None else w.astype(np.float32),
                           rows_per_group=rows_per_group)
        return path, int(users.max()) + 1, int(items.max()) + 1

    def fit(self, X, y=None, sample_weight=None, valid=None):
        """Train a new model on ``X`` (pairs and ``y``, or an interaction file); ``valid``
        (pairs and ratings as ``(X, y)``, or a file) is scored after each epoch and watched by
        early stopping."""
        hyper, cfg = self._hyper()  # refuse bad hyper-parameters before reading anything
        scratch = None
        try:
            if is_dataset(X):
                if y is not None or sample_weight is not None:
                    raise ConfigError("an interaction file carries its own ratings and weights: pass y and "
                                      "sample_weight with arrays only")
                data, ds = X, InteractionDataset(X)
                n_users, n_items = ds.n_users, ds.n_items
            else:
                pairs = id_pairs(X, "X")
                scratch = ModelHome.temporary_dir(4 * pairs[0].nbytes)  # the file: ids, ratings, weights
                scratch.path.mkdir()
                data, n_users, n_items = self._write(pairs, y, sample_weight, scratch.path / "train.parquet",
                                                     block_rows(cfg))
            valid_data = self._valid(valid, scratch)
            n_users, n_items = max(n_users, self.n_users or 0), max(n_items, self.n_items or 0)
            home = new_home(self, dense_bytes(n_users, n_items, cfg.rank, cfg.optimizer))
            try:
                with home.writes():
                    model = train_mf(data, home.path, valid=valid_data, n_users=n_users, n_items=n_items,
                                     checkpoint_every=self.checkpoint_every, quiet=not self.verbose,
                                     handle_signals=False, **hyper)
                    self._adopt(home, model)
            except BaseException:
                home.release()
                raise
        finally:
            if scratch is not None:
                scratch.release()
        return self

    def _valid(self, valid, scratch):
        if valid is None or is_dataset(valid):
            return valid
        if not (isinstance(valid, (tuple, list)) and len(valid) == 2):
            raise ConfigError("valid= takes an interaction file or an (X, y) pair like the training arrays")
        if scratch is None:
            raise ConfigError("valid= as arrays goes with training arrays; with a training file, give a file")
        return self._write(id_pairs(valid[0], "valid X"), valid[1], None, scratch.path / "valid.parquet")[0]

    def _adopt(self, home: ModelHome, model: MFModel, *, record: bool = True) -> None:
        old = getattr(self, "_home", None)
        self._home, self._model = home, model
        self.n_iter_ = len(model.history)
        self.n_features_in_ = 2
        if old is not None and old is not home:
            old.release()
        if record:
            model.meta["sklearn"] = {"estimator": type(self).__name__,
                                     "params": {k: _jsonable(v) for k, v in self.get_params().items()}}
            model.save_meta()

    # -- predictions ---------------------------------------------------------------------------
    def predict(self, X) -> np.ndarray:
        """Predicted ratings of the pairs of ``X`` (float64), clipped to the training range
        with ``clip``; an id training never saw gets the biases it has (the global mean μ
        for both unseen). Implicit feedback: preferences in (0, 1)."""
        check_is_fitted(self)
        if is_dataset(X):
            return predict_file(self._model, X, threads=self.threads or None, clip=self.clip)
        users, items = id_pairs(X)
        return self._model.predict(users, items, clip=self.clip)

    def score(self, X, y=None, sample_weight=None) -> float:
        """R² of the predicted ratings (scikit-learn's regressor score); a file is scored
        against its own ratings and weights."""
        check_is_fitted(self)
        if self._model.implicit:
            raise ConfigError("score is the R² of predicted ratings; under implicit feedback use "
                              "streamhog.factorization.evaluate (logloss, AUC)")
        if not is_dataset(X):
            return super().score(X, y, sample_weight)
        if y is not None or sample_weight is not None:
            raise ConfigError("a file is scored against its own ratings and weights: pass y and sample_weight "
                              "with arrays only")
        # Streamed, as fit streams a file: R² = 1 - (weighted MSE) / (weighted variance of the
        # ratings), from evaluate's sums and the spread training_mean computes, never the
        # file's ratings and predictions in memory at once.
        ds = InteractionDataset(X)
        _, spread, _, _ = training_mean(ds, 0.0, 0)
        mse = evaluate(self._model, ds, threads=self.threads or None, clip=self.clip)["rmse"] ** 2
        if spread == 0.0:  # constant ratings: as r2_score (1 for a perfect fit, else 0)
            return 1.0 if mse == 0.0 else 0.0
        return 1.0 - mse / spread ** 2

    def recommend(self, users=None, *, top: int = 10, exclude=()) -> dict:
        """Each user's ``top`` best items (:func:`streamhog.factorization.recommend`): columns
        ``user``, ``rank``, ``item``, ``score``; ``exclude``: interaction files whose pairs are
        never recommended."""
        check_is_fitted(self)
        return recommend(self._model, users, top=top, exclude=exclude, threads=self.threads or None)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.threads != 1  # Hogwild!: threads race on purpose
        return tags

    # -- the fitted model (model_, model_path_, history_, best_epoch_: FittedModel) ---------------
    @property
    def global_mean_(self) -> float:
        return self.model_.mu

    @property
    def user_factors_(self) -> np.ndarray:
        """(n_users, rank) float32, read-only (the memory map: rows of unseen ids are 0)."""
        return self.model_.arrays["user_factors"]

    @property
    def item_factors_(self) -> np.ndarray:
        return self.model_.arrays["item_factors"]

    @property
    def user_bias_(self) -> np.ndarray:
        return self.model_.arrays["user_bias"]

    @property
    def item_bias_(self) -> np.ndarray:
        return self.model_.arrays["item_bias"]

    # -- load ----------------------------------------------------------------------------------
    @classmethod
    def load(cls, model_dir, **params):
        """An estimator over the factorization model in ``model_dir`` (fitted with
        ``model_dir=``, or trained by ``streamhog train --loss mf``), used in place; ``fit``
        replaces it only with ``overwrite=True``. ``params`` override the saved parameters."""
        return _load(cls, model_dir, params)


def _load(cls, model_dir, params: dict) -> HogwildRecommender:
    model = MFModel.open(model_dir)
    info = model.meta.get("sklearn") or {}
    if info.get("estimator", cls.__name__) != cls.__name__:
        raise ModelError(f"{model.path}: a {info.get('estimator')}'s model, not a {cls.__name__}'s")
    # A model of `streamhog train`: its hyper-parameters, less those of the machine it ran on.
    saved = info.get("params") or {k: v for k, v in (model.meta.get("hyper_parameters") or {}).items()
                                   if k in HYPER and k not in _MACHINE}
    known = cls._get_param_names()
    est = cls(**{**{k: v for k, v in saved.items() if k in known}, "model_dir": str(model.path), **params})
    est._adopt(ModelHome(model.path, created=False), model, record=False)
    return est
