"""scikit-learn estimators: :class:`HogwildClassifier` and :class:`HogwildRegressor`, and
:class:`HogwildRecommender` (matrix factorization of (user, item) pairs and ratings).

Lock-free Hogwild! SGD behind scikit-learn's API: ``fit`` (NumPy arrays, scipy.sparse
matrices, or a Parquet/Zarr dataset path or URL, streamed out of core), ``partial_fit`` (one
pass, continuing the run: weights, optimizer state and step count persist between calls),
``predict``, ``predict_proba``, ``decision_function``, ``score``, ``coef_``/``intercept_``,
``classes_``, ``n_features_in_``; every hyper-parameter of ``streamhog train`` is a
constructor argument, checked with the command line's messages. They work in ``Pipeline``,
``GridSearchCV`` and ``cross_val_score`` and pass ``check_estimator``.

The fitted model is a streamhog model directory: ``model_dir=`` names it, else it lives in
a temporary directory removed with the estimator (or at exit). ``joblib.dump``/``pickle``
carry the model's arrays by value up to ``pickle_limit`` bytes (1 GiB); above it, keep the
directory (``model_dir=``) and reopen it with ``HogwildClassifier.load(DIR)``. The parts
live in ``streamhog/_sklearn/``; docs/api.md has examples. Needs the ``sklearn`` extra.

>>> from streamhog.sklearn import HogwildClassifier
>>> clf = HogwildClassifier(epochs=1, threads=1).fit([[0.0, 1.0], [1.0, 0.0]] * 20, ["no", "yes"] * 20)
>>> clf.classes_.tolist(), clf.predict([[1.0, 0.0]]).tolist(), clf.coef_.shape
(['no', 'yes'], ['yes'], (1, 2))
"""
from __future__ import annotations

from ._sklearn.classifier import HogwildClassifier
from ._sklearn.recommender import HogwildRecommender
from ._sklearn.regressor import HogwildRegressor

__all__ = ["HogwildClassifier", "HogwildRecommender", "HogwildRegressor"]
