"""The model directory: ``weights.npy`` (memory-mapped, updated in place) + ``model.json``.

``weights.npy`` is a plain NumPy file created with ``open_memmap``: anyone can
``np.load(path, mmap_mode="r")`` it. Creating or opening it never reads or zeroes the whole
file, so the dimension is bounded by disk, not RAM (a fresh file is sparse: untouched
pages cost neither memory nor disk). ``model.json`` holds everything else: format version,
n_features, loss, intercept, hyper-parameters, the data schema and the training history.
Never pickle.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from . import __version__
from .errors import StreamhogError

MODEL_FORMAT_VERSION = 1
WEIGHTS = "weights.npy"
META = "model.json"
LOSSES = ("logistic", "hinge", "squared")
CLASSIFICATION_LOSSES = ("logistic", "hinge")
#: Largest model dimension accepted (weights of 2^34 float32 = 64 GiB, sparse on disk).
MAX_FEATURES = 2**34


class ModelError(StreamhogError):
    """A model directory that is missing, incomplete or of another version."""


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON under a temporary name, fsync, rename: a reader sees the old or the new file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Model:
    """A linear model in a directory. ``weights`` is a writable or read-only memory map."""

    def __init__(self, path: Path, meta: dict, weights: np.memmap):
        self.path = Path(path)
        self.meta = meta
        self.weights = weights

    # -- creating and opening ----------------------------------------------------------------
    @classmethod
    def create(cls, path, *, n_features: int, loss: str, hyper_parameters: dict | None = None,
               data: dict | None = None, dtype: str = "float32") -> "Model":
        """A new model of zero weights in the existing empty directory ``path``."""
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if not 1 <= n_features <= MAX_FEATURES:
            raise ValueError(f"n_features must be between 1 and 2^34, got {n_features}")
        path = Path(path)
        path.mkdir(exist_ok=True)
        # open_memmap extends the file with a seek: no page is written, the file stays sparse.
        weights = np.lib.format.open_memmap(path / WEIGHTS, mode="w+", dtype=np.dtype(dtype), shape=(n_features,))
        meta = {
            "format_version": MODEL_FORMAT_VERSION,
            "kind": "linear",
            "n_features": int(n_features),
            "dtype": str(np.dtype(dtype)),
            "loss": loss,
            "intercept": 0.0,
            "hyper_parameters": hyper_parameters or {},
            "data": data or {},
            "history": [],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "streamhog_version": __version__,
        }
        model = cls(path, meta, weights)
        model.save_meta()
        return model

    @classmethod
    def open(cls, path, mode: str = "r") -> "Model":
        """Open a model directory; ``mode="r+"`` maps the weights writable (training)."""
        path = Path(path)
        meta_path = path / META
        if not meta_path.is_file():
            raise ModelError(f"{path}: not a streamhog model (no {META})")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise ModelError(f"{meta_path}: unreadable ({exc})") from exc
        version = meta.get("format_version")
        if version != MODEL_FORMAT_VERSION:
            raise ModelError(f"{meta_path}: model format_version {version!r} is not supported by this streamhog")
        try:
            weights = np.load(path / WEIGHTS, mmap_mode=mode)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path / WEIGHTS}: unreadable ({exc})") from exc
        if weights.shape != (meta["n_features"],):
            raise ModelError(f"{path / WEIGHTS}: shape {weights.shape} does not match n_features {meta['n_features']}")
        return cls(path, meta, weights)

    # -- properties ---------------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        return int(self.meta["n_features"])

    @property
    def loss(self) -> str:
        return self.meta["loss"]

    @property
    def intercept(self) -> float:
        return float(self.meta["intercept"])

    @property
    def is_classifier(self) -> bool:
        return self.loss in CLASSIFICATION_LOSSES

    def save_meta(self) -> None:
        write_json_atomic(self.path / META, self.meta)

    def flush(self) -> None:
        """Write dirty weight pages to disk (the memory map is file-backed)."""
        if isinstance(self.weights, np.memmap) and self.weights.mode != "r":
            self.weights.flush()

    # -- using it -----------------------------------------------------------------------------
    def decision_function(self, batch) -> np.ndarray:
        """Margins ``x·w + b`` (float64) of a SparseBatch's rows."""
        from .kernels.predict import batch_margins

        return batch_margins(batch, self.weights, self.intercept)

    def predict(self, data, *, threads: int | None = None) -> np.ndarray:
        """Predictions for every row of ``data`` (a dataset path or object), in dataset order:
        the probability of the positive class (logistic), or the score (hinge, squared)."""
        from .inference import predict

        return predict(self, data, threads=threads)

    def evaluate(self, data, *, threads: int | None = None) -> dict:
        """Metrics on ``data``: logloss, auc, accuracy (classification) or rmse, mae; and n_examples."""
        from .inference import evaluate

        return evaluate(self, data, threads=threads)

    def __repr__(self) -> str:
        return f"Model({str(self.path)!r}, loss={self.loss!r}, n_features={self.n_features:,})"
