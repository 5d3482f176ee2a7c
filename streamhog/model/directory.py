"""The model directory: ``weights.npy`` (memory-mapped, updated in place) + ``model.json``.

``weights.npy`` is a plain NumPy file created with ``open_memmap``: anyone can
``np.load(path, mmap_mode="r")`` it. Creating or opening it never reads or zeroes the whole
file, so the dimension is bounded by disk, not RAM (a fresh file is sparse: untouched
pages cost neither memory nor disk). Adaptive optimizers keep their per-coordinate state
in files of the same shape beside it (``accum.npy``, ``scale.npy``, ``ftrl_n.npy``,
``ftrl_z.npy``: see ``OPTIMIZER_STATE``), memory-mapped, checkpointed and resumed with it. ``model.json`` holds everything else: format version,
n_features, loss, intercept, hyper-parameters, the data schema and the training history.
Never pickle.

Format 2 (``"state_layout": "records"`` in model.json): a vector model trained by the
``normalized`` rule keeps each coordinate's weight and state side by side, one 16-byte record
(``RECORD_DTYPE``: w, acc, scale, pad) per coordinate in ``weights.npy`` itself, so that one
cache line serves a non-zero where three files took three (issue 15; benchmarks/
default_speed.md). ``np.load(path)["w"]`` is the weight vector; ``Model.weights`` and
``optimizer_state`` are strided views of the fields, so NumPy-level code reads them as it
reads the separate files of format 1 (which every other model keeps, and which still opens).
"""
from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import numpy as np

from .._fs.access import advise_random_if_sparse
from .._fs.atomic import durable, fsync
from .._version import __version__
from ..errors import ConfigError, ModelError
from ..losses import LOSSES
from .heads import head_for

MODEL_FORMAT_VERSION = 2
#: Versions this code opens: 1 (every array in its own file), 2 (adds the record layout).
READABLE_FORMAT_VERSIONS = (1, 2)
#: One coordinate's weight and normalized-rule state in a format-2 record file; 16 bytes, so
#: a record never straddles a cache line (.npy data starts 64-byte aligned).
RECORD_DTYPE = np.dtype([("w", "<f4"), ("acc", "<f4"), ("scale", "<f4"), ("pad", "<f4")])
#: The record fields holding each OPTIMIZER_STATE entry.
RECORD_FIELDS = {"accum": "acc", "scale": "scale"}
RECORDS = "records"
WEIGHTS = "weights.npy"
META = "model.json"
OPTIMIZERS = ("sgd", "adagrad", "normalized", "ftrl")
#: Per-coordinate state files of each optimizer, in the kernels' (acc, aux) order
#: (streamhog/kernels/optimizers.py gives the rules).
OPTIMIZER_STATE = {
    "sgd": (),
    "adagrad": ("accum",),             # acc: sum of squared gradients
    "normalized": ("accum", "scale"),  # acc: sum of squared normalized gradients; aux: max |x|
    "ftrl": ("ftrl_n", "ftrl_z"),      # acc: n, aux: z
}
#: Largest model dimension accepted (weights of 2^34 float32 = 64 GiB, sparse on disk).
MAX_FEATURES = 2**34




#: Model files up to this size are allocated on disk when created: writing into a hole of
#: a memory-mapped file on a full disk kills the process (SIGBUS). Larger files stay sparse
#: (a 2^33-feature model is 32 GiB); training watches the free space for them
#: (training/safety.py).
RESERVE_MAX_BYTES = 256 << 20


def _reserve(path: Path) -> None:
    """Allocate a small model file's blocks now (ENOSPC here, not SIGBUS mid-training)."""
    size = path.stat().st_size
    if size > RESERVE_MAX_BYTES:
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        # EOPNOTSUPP (a filesystem without fallocate): stay sparse, the space watch remains
    finally:
        os.close(fd)


class UnfinishedModelWarning(UserWarning):
    """A model whose training did not finish is being scored."""


def _load_array(path: Path, mode: str, shape: tuple, dtype: np.dtype, what: str) -> np.memmap:
    """A model array, memory-mapped; ModelError naming the file when it is missing, not a
    .npy file, or not of the model's dtype and shape (a truncated file is refused here, never
    zero-filled back to size)."""
    try:
        arr = np.load(path, mmap_mode=mode)
    except (OSError, ValueError, EOFError) as exc:
        raise ModelError(f"{path}: unreadable {what} ({type(exc).__name__}: {exc})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.shape != shape:
        raise ModelError(f"{path}: {what} of dtype {getattr(arr, 'dtype', '?')} and shape "
                         f"{getattr(arr, 'shape', '?')}; the model's are {np.dtype(dtype)} and {shape}")
    advise_random_if_sparse(arr)
    return arr


def _record_views(records: np.memmap) -> tuple[np.memmap, dict]:
    """The weights and the optimizer state (OPTIMIZER_STATE["normalized"] order) as views of
    the records' fields: strided memory maps (stride 16 bytes)."""
    return records["w"], {name: records[field] for name, field in RECORD_FIELDS.items()}


def _create_arrays(path: Path, shape: tuple, optimizer: str, loss: str, dtype) -> tuple:
    """A new model's (weights, state, records) memory maps, zero: one record file
    (``uses_records``) or a file per array. open_memmap extends a file with a seek: no page is
    written, the file stays sparse; small ones are then allocated (``_reserve``)."""
    records = None
    if uses_records(optimizer, loss, dtype):
        records = np.lib.format.open_memmap(path / WEIGHTS, mode="w+", dtype=RECORD_DTYPE, shape=shape)
        weights, state = _record_views(records)
    else:
        weights = np.lib.format.open_memmap(path / WEIGHTS, mode="w+", dtype=np.dtype(dtype), shape=shape)
        state = {name: np.lib.format.open_memmap(path / f"{name}.npy", mode="w+", dtype=np.float32, shape=shape)
                 for name in OPTIMIZER_STATE[optimizer]}
    for f in [path / WEIGHTS] + ([] if records is not None else [path / f"{name}.npy" for name in state]):
        _reserve(f)
    advise_random_if_sparse(weights, *state.values())
    return weights, state, records


def _open_arrays(path: Path, meta: dict, mode: str, shape: tuple) -> tuple:
    """An existing model's (weights, state, records) memory maps, as model.json describes them."""
    if meta.get("state_layout", "files") == RECORDS:
        if meta.get("format_version", 1) < 2 or meta.get("optimizer") != "normalized" or len(shape) != 1:
            raise ModelError(f"{path / META}: state_layout {RECORDS!r} is only defined for format 2 vector models "
                             f"of the normalized optimizer")
        records = _load_array(path / WEIGHTS, mode, shape, RECORD_DTYPE, "weights and optimizer state (records)")
        return (*_record_views(records), records)
    weights = _load_array(path / WEIGHTS, mode, shape, np.dtype(meta.get("dtype", "float32")), "weights")
    state = {name: _load_array(path / f"{name}.npy", mode, shape, np.float32, "optimizer state")
             for name in OPTIMIZER_STATE.get(meta.get("optimizer", "sgd"), ())}
    return weights, state, None


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON under a temporary name, fsync, rename: a reader sees the old or the new file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
        f.flush()
        fsync(f.fileno())
    os.replace(tmp, path)


def uses_records(optimizer: str, loss: str, dtype) -> bool:
    """Whether a new model keeps its weights and state as records (format 2): the normalized
    rule on a vector model of float32 weights. (Softmax keeps separate files: the engine needs
    its (n_features, K) state flat, which a strided field view of a matrix is not.)"""
    return optimizer == "normalized" and loss != "softmax" and np.dtype(dtype) == np.float32


class Model:
    """A linear model in a directory. ``weights`` is a writable or read-only memory map (a
    strided view of the records in format 2's record layout)."""

    def __init__(self, path: Path, meta: dict, weights: np.memmap, state: dict | None = None,
                 records: np.memmap | None = None):
        self.path = Path(path)
        self.meta = meta
        self.weights = weights
        #: The optimizer's per-coordinate state: file stem -> memory map (OPTIMIZER_STATE order).
        self.optimizer_state = state or {}
        #: The record memory map (RECORD_DTYPE) behind ``weights`` and the state, or None.
        self.records = records
        #: What the loss makes of the weights: margins, predictions, metrics (model/heads.py).
        self.head = head_for(meta["loss"], meta.get("n_classes"))

    # -- creating and opening ----------------------------------------------------------------
    @classmethod
    def create(cls, path, *, n_features: int, loss: str, optimizer: str = "sgd", hash_bits: int | None = None,
               n_classes: int | None = None, hyper_parameters: dict | None = None, data: dict | None = None,
               dtype: str = "float32") -> "Model":
        """A new model of zero weights (and zero optimizer state) in the directory ``path``:
        a vector of n_features, or for ``loss="softmax"`` an (n_features, n_classes) matrix."""
        if loss not in LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
        if not 1 <= n_features <= MAX_FEATURES:
            raise ConfigError(f"n_features must be between 1 and 2^34, got {n_features}")
        try:
            head = head_for(loss, n_classes)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        shape = head.weights_shape(n_features)
        path = Path(path)
        path.mkdir(exist_ok=True)
        weights, state, records = _create_arrays(path, shape, optimizer, loss, dtype)
        meta = {
            "format_version": MODEL_FORMAT_VERSION,
            # "records": weights.npy holds RECORD_DTYPE records; "files": one file per array
            "state_layout": RECORDS if records is not None else "files",
            "kind": "linear",
            "n_features": int(n_features),
            "dtype": str(np.dtype(dtype)),
            "loss": loss,
            "optimizer": optimizer,
            # Training-time feature hashing: data ids are hashed into 2^hash_bits slots
            # (streamhog/hashing.py) before they meet the weights, when scoring too.
            "hash_bits": hash_bits,
            "n_classes": n_classes,
            # softmax: a list of K intercepts, one per class
            "intercept": head.initial_intercept(),
            "hyper_parameters": hyper_parameters or {},
            "data": data or {},
            "history": [],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "streamhog_version": __version__,
        }
        model = cls(path, meta, weights, state, records)
        model.save_meta()
        return model

    @classmethod
    def open(cls, path, mode: str = "r") -> "Model":
        """Open a model directory; ``mode="r+"`` maps the weights writable (training)."""
        from ..io.formats.storage import local_model_dir

        path = local_model_dir(path)  # a URL is refused: the weights are memory-mapped
        meta_path = path / META
        if not meta_path.is_file():
            raise ModelError(f"{path}: not a streamhog model (no {META})")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{meta_path}: unreadable ({exc})") from exc
        if not isinstance(meta, dict):
            raise ModelError(f"{meta_path}: not a streamhog model description (a {type(meta).__name__}, not an object)")
        version = meta.get("format_version")
        if version not in READABLE_FORMAT_VERSIONS:
            raise ModelError(f"{meta_path}: model format_version {version!r} is not supported by this streamhog")
        try:
            shape = head_for(meta["loss"], meta.get("n_classes")).weights_shape(int(meta["n_features"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{meta_path}: not a usable model description ({type(exc).__name__}: {exc})") from None
        return cls(path, meta, *_open_arrays(path, meta, mode, shape))

    # -- properties ---------------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        return int(self.meta["n_features"])

    @property
    def loss(self) -> str:
        return self.meta["loss"]

    @property
    def intercept(self):
        """float; for a softmax model a float64 array of K intercepts."""
        return self.head.intercept_value(self.meta["intercept"])

    @property
    def n_classes(self) -> int | None:
        """K for a softmax model, else None."""
        return self.meta.get("n_classes")

    @property
    def optimizer(self) -> str:
        return self.meta.get("optimizer", "sgd")

    @property
    def hash_bits(self) -> int | None:
        return self.meta.get("hash_bits")

    def files(self) -> list[Path]:
        """The arrays of the model: weights.npy, then the optimizer's state files (none in the
        record layout: weights.npy holds the state)."""
        return [f for f, _ in self.file_maps()]

    def file_maps(self) -> list[tuple[Path, np.memmap]]:
        """Each file of :meth:`files` with the memory map of its whole content."""
        if self.records is not None:
            return [(self.path / WEIGHTS, self.records)]
        return [(self.path / WEIGHTS, self.weights)] + [(self.path / f"{name}.npy", arr)
                                                        for name, arr in self.optimizer_state.items()]

    @property
    def unfinished(self) -> str | None:
        """Why this model is not a finished one (its training running, stopped, failed,
        diverged...), or None: evaluate, predict and info say it loudly."""
        training = self.meta.get("training") or {}
        status = training.get("status", "complete")
        if status == "complete":
            return None
        from .lock import holder

        pid = holder(self.path)
        if status == "running" and pid:
            return f"{self.path}: being trained by process {pid}; its weights change as you read them"
        why = {"running": "its training was killed before it finished",
               "interrupted": "its training was stopped before its last epoch",
               "restoring-best": "its training was killed while restoring its best epoch",
               "failed": f"its training failed ({training.get('error', 'no reason recorded')})",
               "diverged": "its training diverged: the weights are not usable",
               "rolled-back": "its training diverged and was rolled back to a snapshot"}.get(status, f"status {status}")
        return (f"{self.path}: not a finished model: {why} (after {training.get('epochs_done', '?')} epoch(s)); "
                "resume it with streamhog train DATA --model MODEL --resume")

    def warn_if_unfinished(self) -> None:
        """``warnings.warn`` when the model is not a finished one (see :attr:`unfinished`)."""
        if (why := self.unfinished) is not None:
            import warnings

            warnings.warn(UnfinishedModelWarning(why), stacklevel=3)

    @property
    def is_classifier(self) -> bool:
        return self.head.loss.classifies

    def save_meta(self) -> None:
        write_json_atomic(self.path / META, self.meta)

    def flush(self) -> None:
        """Write dirty weight and state pages to disk (the memory maps are file-backed); not
        inside ``_fs.atomic.scratch_writes`` (the page cache already shows them to readers)."""
        if not durable():
            return
        for _, arr in self.file_maps():
            if isinstance(arr, np.memmap) and arr.mode != "r":
                arr.flush()

    # -- using it -----------------------------------------------------------------------------
    def decision_function(self, batch) -> np.ndarray:
        """Margins ``x·w + b`` (float64) of a SparseBatch's rows ((n_rows, K) for softmax)."""
        from .inference import scorer

        return scorer(self)(batch)

    def predict(self, data, *, threads: int | None = None) -> np.ndarray:
        """Predictions for every row of ``data`` (a dataset path or object), in dataset order:
        the probability of the positive class (logistic), the score (hinge, squared), or the
        (n_rows, K) class probabilities (softmax)."""
        from .inference import predict

        self.warn_if_unfinished()
        return predict(self, data, threads=threads)

    def evaluate(self, data, *, threads: int | None = None) -> dict:
        """Metrics on ``data``: logloss, auc, accuracy (binary classification), logloss and
        accuracy (softmax), or rmse, mae (squared); and n_examples."""
        from .inference import evaluate

        self.warn_if_unfinished()
        return evaluate(self, data, threads=threads)

    def __repr__(self) -> str:
        return f"Model({str(self.path)!r}, loss={self.loss!r}, n_features={self.n_features:,})"
