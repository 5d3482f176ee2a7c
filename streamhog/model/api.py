"""``streamhog.evaluate`` and ``streamhog.predict``: the command line's evaluate and predict
from Python, on a model directory (or an open Model) and any data streamhog reads.

``data`` is what ``open_dataset`` takes — a Parquet file or directory, a Zarr store, a URL,
a scipy.sparse matrix, a NumPy array, a pyarrow Table — with the same data options as the
command line (``label_column=``, ``indices_column=``, ``values_column=``,
``weight_column=``, ``index_base=``, ``fix_rows=``), and ``labels=``/``weights=`` for data
in memory. Scoring runs through model/inference.py: reader threads, nogil kernels.
"""
from __future__ import annotations

import numpy as np

from ..io.formats import open_dataset
from .directory import Model
from .inference import evaluate as _evaluate
from .inference import predict as _predict
from .inference import predict_to_parquet


def _model(model) -> Model:
    return model if isinstance(model, Model) else Model.open(model)


def evaluate(model, data, *, threads: int | None = None, labels=None, weights=None, **data_options) -> dict:
    """Metrics of ``model`` (a model directory or a :class:`Model`) on labelled ``data``, as
    ``streamhog evaluate --json`` prints them: logloss, auc, accuracy (binary classifiers),
    logloss, accuracy (softmax), rmse, mae (regression), and n_examples; weighted by the
    data's importance weights.

    >>> import streamhog
    >>> from streamhog.datasets import a9a
    >>> from sklearn.datasets import load_svmlight_file
    >>> X, y = load_svmlight_file(a9a("train"), n_features=123)
    >>> model = streamhog.train(streamhog.InMemoryData(X, y), "m", epochs=1, threads=1, quiet=True)
    >>> m = streamhog.evaluate("m", X, labels=y)
    >>> round(m["accuracy"], 2), m["n_examples"]
    (0.85, 32561)
    """
    ds = open_dataset(data, labels=labels, weights=weights, require_labels=True, **data_options)
    model = _model(model)
    model.warn_if_unfinished()
    return _evaluate(model, ds, threads=threads)


def predict(model, data, *, out=None, overwrite: bool = False, margins: bool = False, threads: int | None = None,
            weights=None, **data_options):
    """Predictions of ``model`` (a model directory or a :class:`Model`) for every row of
    ``data``, in its order.

    Without ``out``: a float64 array — the probability of the positive class (logistic), the
    score ``x·w + b`` (hinge, squared, huber), or (n_rows, K) class probabilities (softmax);
    ``margins=True`` gives the margins ``x·w + b`` before the link. With ``out`` (a path or a
    URL): the predictions are streamed to that Parquet file instead, as ``streamhog predict
    --out`` writes it (bounded memory), and the number of rows written is returned.

    >>> import numpy as np, streamhog
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]] * 50)
    >>> _ = streamhog.train(streamhog.InMemoryData(X, [1, 0] * 50), "tiny", threads=1, quiet=True)
    >>> streamhog.predict("tiny", X[:2]).round(2)
    array([0.99, 0.01])
    >>> streamhog.predict("tiny", X[:2], margins=True) > 0
    array([ True, False])
    """
    ds = open_dataset(data, weights=weights, **data_options)
    m = _model(model)
    if out is not None:
        if margins:
            from ..errors import ConfigError

            raise ConfigError("margins=True gives an array; a predictions file (out=) holds the predictions")
        m.warn_if_unfinished()
        return predict_to_parquet(m, ds, out, overwrite=overwrite, threads=threads)
    m.warn_if_unfinished()
    return np.asarray(_predict(m, ds, threads=threads, margins=margins))
