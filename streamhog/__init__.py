"""streamhog: lock-free (Hogwild!) SGD for sparse data larger than memory.

>>> import streamhog
>>> sorted(n for n in streamhog.__all__ if n[0].islower())
['convert', 'open_dataset', 'train']
"""
from __future__ import annotations

from ._version import __version__

from .io.batch import SparseBatch
from .errors import DataFormatError, OutputExistsError, StreamhogError

# The heavy parts (numba kernels, pyarrow, zarr) load on first use, so that importing
# streamhog, or running `streamhog --help`, stays fast.
_LAZY = {
    "train": ("training.job", "train"),
    "TrainConfig": ("training.config", "TrainConfig"),
    "Model": ("model.directory", "Model"),
    "convert": ("io.conversion", "convert"),
    "open_dataset": ("io.formats", "open_dataset"),
    "InMemoryData": ("io.formats.memory", "InMemoryData"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'streamhog' has no attribute {name!r}")


__all__ = ["SparseBatch", "DataFormatError", "OutputExistsError", "StreamhogError", "Model", "TrainConfig",
           "InMemoryData",
           "convert", "open_dataset", "train", "__version__"]
