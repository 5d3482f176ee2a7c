"""streamhog: lock-free (Hogwild!) SGD for sparse data larger than memory."""
from __future__ import annotations

__version__ = "0.1.0"

from .batch import SparseBatch
from .errors import DataFormatError, OutputExistsError, StreamhogError

__all__ = ["SparseBatch", "DataFormatError", "OutputExistsError", "StreamhogError", "__version__"]
