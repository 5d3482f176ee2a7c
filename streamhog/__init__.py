"""streamhog: lock-free (Hogwild!) SGD for sparse data larger than memory.

Linear models (logistic regression, linear SVM, least squares, Huber, softmax) trained with
Hogwild! SGD on data streamed from Parquet or Zarr — local or at a URL — or held in memory
(scipy.sparse, NumPy, Arrow), into a memory-mapped model directory (.npy + JSON) that
checkpoints as it goes and resumes exactly.

The API (docs/api.md has examples):

    train(data, model_dir, **hyper)        train a model (hyper: TrainConfig's fields) -> Model
    evaluate(model, data)                  metrics: logloss, auc, accuracy / rmse, mae
    predict(model, data, out=None)         predictions, in memory or streamed to Parquet
    convert(src, dst)                      LIBSVM text, click logs -> Parquet / Zarr
    open_dataset(data)                     a dataset of blocks, from a path, a URL or memory
    plot_history(model, out)               the training history as a picture (matplotlib)
    Model                                  an open model directory: predict, evaluate, weights
    TrainConfig                            every hyper-parameter, checked
    InMemoryData(X, y, sample_weight)      data in memory as a dataset (no file written)
    SparseBatch                            a block of rows, as readers hand them to kernels
    HogwildClassifier, HogwildRegressor    scikit-learn estimators (streamhog.sklearn)
    HogwildRecommender                     matrix factorization of (user, item) ratings, the same way
    StreamhogError and its kinds           every error raised on purpose (streamhog.errors)

>>> import streamhog
>>> sorted(n for n in streamhog.__all__ if n[0].islower() and not n.startswith("_"))
['convert', 'evaluate', 'open_dataset', 'plot_history', 'predict', 'train']
"""
from ._version import __version__

from .io.batch import SparseBatch
from .errors import (CheckpointError, ConfigError, DataFormatError, DataTypeError, DivergenceError,  # noqa: F401
                     IncompatibleDataError, MissingDependencyError, ModelError, ModelTooLargeError,
                     OutputExistsError, ReaderError, StreamhogError, TrainingError, TrainingInterrupted)

# The heavy parts (numba kernels, pyarrow, zarr, scikit-learn) load on first use, so that
# importing streamhog, or running `streamhog --help`, stays fast.
_LAZY = {
    "train": ("training.job", "train"),
    "TrainConfig": ("training.config", "TrainConfig"),
    "Model": ("model.directory", "Model"),
    "evaluate": ("model.api", "evaluate"),
    "predict": ("model.api", "predict"),
    "plot_history": ("model.plot", "plot_history"),
    "convert": ("io.conversion", "convert"),
    "open_dataset": ("io.formats", "open_dataset"),
    "InMemoryData": ("io.formats.memory", "InMemoryData"),
    "HogwildClassifier": ("sklearn", "HogwildClassifier"),
    "HogwildRegressor": ("sklearn", "HogwildRegressor"),
    "HogwildRecommender": ("sklearn", "HogwildRecommender"),
}

_ERRORS = ["StreamhogError", "ConfigError", "DataFormatError", "DataTypeError", "IncompatibleDataError",
           "OutputExistsError", "ModelError", "ModelTooLargeError", "CheckpointError", "TrainingError",
           "DivergenceError", "TrainingInterrupted", "ReaderError", "MissingDependencyError"]

__all__ = ["train", "evaluate", "predict", "convert", "open_dataset", "plot_history", "Model", "TrainConfig",
           "InMemoryData", "SparseBatch", "HogwildClassifier", "HogwildRegressor",
           "HogwildRecommender", *_ERRORS, "__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        try:
            value = getattr(importlib.import_module(f".{module}", __name__), attr)
        except MissingDependencyError as exc:
            # an AttributeError, so that help(streamhog) and hasattr() work without the extra
            raise AttributeError(f"streamhog.{name}: {exc}") from exc
        globals()[name] = value
        return value
    raise AttributeError(f"module 'streamhog' has no attribute {name!r}")


def __dir__():
    """The public API (not the subpackages and helpers that importing brings in)."""
    return sorted(__all__)
