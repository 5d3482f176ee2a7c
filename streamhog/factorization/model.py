"""A factorization model directory: memory-mapped ``.npy`` factor and bias files + ``model.json``.

```
MODEL/
  user_factors.npy        float32[n_users, rank]  P: row u is p_u
  item_factors.npy        float32[n_items, rank]  Q: row i is q_i
  user_bias.npy           float32[n_users]        b_u
  item_bias.npy           float32[n_items]        b_i
  *_accum.npy             adagrad: the sums of squared gradients, one per file above, of its
                          shape; rowwise-adagrad: the same, but one sum per factor row
                          (user_factors_accum float32[n_users], item_factors_accum float32[n_items])
  model.json              format_version (FORMAT_VERSIONS: 2 for rowwise-adagrad, else 1), kind
                          "mf", rank, n_users, n_items, optimizer, mu (the global mean),
                          rating_range, hyper_parameters, data, history, training
```

Every file is created with ``numpy.lib.format.open_memmap``, which extends it with a seek:
a fresh model is sparse on disk and creating it reads and zeroes nothing, so 10^8 users x
64 (a 25.6 GB file) starts at once on a small machine. Rows start lazily (kernels.py): a
row no observation touched stays zeros, costing neither RAM nor disk. Anyone can
``np.load(path, mmap_mode="r")`` the factors. Never pickle.

Scoring: r̂ = μ + b_u + b_i + p_u·q_i, clipped to the range of the training ratings
(``clip``, the default, as Surprise does: a prediction beyond every rating seen is never
closer to the truth). An id the model never saw in training (beyond its matrices, or a row
never touched) has bias 0 and factors 0: it gets the biases it has, the global mean when
both are unseen.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np

from .._fs.access import advise_random_if_sparse
from .._fs.atomic import durable
from .._version import __version__
from ..errors import ConfigError, ModelError
from ..model.directory import write_json_atomic

META = "model.json"
KIND = "mf"
#: 2: rowwise-adagrad's one sum per factor row; 3: implicit feedback (the arrays are logits'
#: terms, not ratings'). Explicit models of the other optimizers keep 1, so that the
#: streamhog that wrote them still reads them; one that knows only 1 (or 2) refuses a rowwise
#: (or implicit) model rather than train it without its state (or score it as ratings).
MF_FORMAT_VERSION = 3
FORMAT_VERSIONS = {"adagrad": 1, "sgd": 1, "rowwise-adagrad": 2}
IMPLICIT_FORMAT_VERSION = 3
PARAMETERS = ("user_factors", "item_factors", "user_bias", "item_bias")
OPTIMIZERS = ("adagrad", "rowwise-adagrad", "sgd")
#: ext4's largest file: a factor matrix (rows x rank x 4 bytes) must fit in one.
MAX_FILE_BYTES = 2**44


class MFModelError(ModelError):
    """A factorization model directory that is missing, incomplete or of another version."""


def state_names(optimizer: str) -> tuple[str, ...]:
    """The optimizer's state files (stems), in PARAMETERS' order."""
    return tuple(f"{p}_accum" for p in PARAMETERS) if optimizer in ("adagrad", "rowwise-adagrad") else ()


def model_files(path, optimizer: str) -> list[Path]:
    """Every array file of a model: what a checkpoint flushes and a snapshot or best-epoch
    copy holds (model.json and the checkpoint records aside)."""
    return [Path(path) / f"{name}.npy" for name in PARAMETERS + state_names(optimizer)]


def _shapes(n_users: int, n_items: int, rank: int, optimizer: str) -> dict:
    """Every array file's shape (stem -> shape), the optimizer's state included."""
    shapes = {"user_factors": (n_users, rank), "item_factors": (n_items, rank),
              "user_bias": (n_users,), "item_bias": (n_items,)}
    rowwise = {"user_factors": (n_users,), "item_factors": (n_items,)} if optimizer == "rowwise-adagrad" else {}
    for name in state_names(optimizer):
        base = name.removesuffix("_accum")
        shapes[name] = rowwise.get(base, shapes[base])
    return shapes


def dense_bytes(n_users: int, n_items: int, rank: int, optimizer: str) -> int:
    """Bytes of a model's arrays at their full size (the files are sparse: an upper bound of
    what training writes)."""
    shapes = _shapes(max(int(n_users), 1), max(int(n_items), 1), rank, optimizer)
    return sum(4 * int(np.prod(s)) for s in shapes.values())


class MFModel:
    """The arrays (memory maps) and the metadata of one model directory."""

    def __init__(self, path: Path, meta: dict, arrays: dict):
        self.path = Path(path)
        self.meta = meta
        #: stem -> memory map: PARAMETERS, then the optimizer's state (state_names).
        self.arrays = arrays
        self._lock = threading.Lock()

    # -- creating and opening ---------------------------------------------------------------
    @classmethod
    def create(cls, path, *, n_users: int, n_items: int, rank: int, optimizer: str = "adagrad",
               hyper_parameters: dict | None = None, data: dict | None = None, feedback: str = "explicit",
               negatives: int = 0) -> "MFModel":
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        if rank < 1:
            raise ConfigError(f"rank must be >= 1, got {rank}")
        n_users, n_items = max(int(n_users), 1), max(int(n_items), 1)
        for what, n in (("users", n_users), ("items", n_items)):
            if n * rank * 4 > MAX_FILE_BYTES:
                raise MFModelError(f"{n:,} {what} x rank {rank} is {n * rank * 4 / 2**40:.1f} TiB of factors, above "
                                   f"the largest file this supports ({MAX_FILE_BYTES // 2**40} TiB)")
        path = Path(path)
        path.mkdir(exist_ok=True)
        shapes = _shapes(n_users, n_items, rank, optimizer)
        arrays = {}
        for name in PARAMETERS + state_names(optimizer):
            arrays[name] = np.lib.format.open_memmap(path / f"{name}.npy", mode="w+", dtype=np.float32,
                                                     shape=shapes[name])
        advise_random_if_sparse(*arrays.values())
        implicit = feedback == "implicit"
        meta = {"format_version": IMPLICIT_FORMAT_VERSION if implicit else FORMAT_VERSIONS[optimizer], "kind": KIND,
                "loss": "mf", "rank": int(rank), "n_users": n_users, "n_items": n_items, "optimizer": optimizer,
                **({"feedback": "implicit", "negatives": int(negatives)} if implicit else {}), "mu": 0.0,
                "rating_range": None,
                "hyper_parameters": hyper_parameters or {}, "data": data or {}, "history": [],
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "streamhog_version": __version__}
        model = cls(path, meta, arrays)
        model.save_meta()
        return model

    @classmethod
    def open(cls, path, mode: str = "r") -> "MFModel":
        """Open a model directory; ``mode="r+"`` maps the arrays writable (training)."""
        path = Path(path)
        try:
            meta = json.loads((path / META).read_text())
        except FileNotFoundError:
            raise MFModelError(f"{path}: not a streamhog model (no {META})") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise MFModelError(f"{path / META}: unreadable ({exc})") from exc
        if meta.get("kind") != KIND:
            raise MFModelError(f"{path}: a {meta.get('kind', 'linear')} model, not a factorization model")
        version, optimizer = meta.get("format_version"), meta.get("optimizer")
        if version not in range(1, MF_FORMAT_VERSION + 1):
            raise MFModelError(f"{path}: model format_version {version!r} is not supported")
        if optimizer not in OPTIMIZERS or version < FORMAT_VERSIONS[optimizer]:
            raise MFModelError(f"{path / META}: optimizer {optimizer!r} in a format_version {version} model")
        shapes = _shapes(meta["n_users"], meta["n_items"], meta["rank"], optimizer)
        arrays = {}
        for name in PARAMETERS + state_names(meta["optimizer"]):
            f = path / f"{name}.npy"
            try:
                arr = np.load(f, mmap_mode=mode)
            except (OSError, ValueError) as exc:
                raise MFModelError(f"{f}: missing or unreadable ({exc})") from exc
            if arr.dtype != np.float32 or arr.shape != shapes[name]:
                raise MFModelError(f"{f}: holds {arr.dtype}{list(arr.shape)}, expected float32"
                                   f"{list(shapes[name])} (model.json)")
            arrays[name] = arr
        advise_random_if_sparse(*arrays.values())
        return cls(path, meta, arrays)

    # -- properties -------------------------------------------------------------------------
    @property
    def rank(self) -> int:
        return int(self.meta["rank"])

    @property
    def optimizer(self) -> str:
        return self.meta["optimizer"]

    @property
    def implicit(self) -> bool:
        """Trained on interactions against sampled negatives: scores are logits (model.json
        ``feedback``; absent: explicit ratings)."""
        return self.meta.get("feedback", "explicit") == "implicit"

    @property
    def negatives(self) -> int:
        return int(self.meta.get("negatives", 0))

    @property
    def mu(self) -> float:
        return float(self.meta["mu"])

    @property
    def history(self) -> list:
        return self.meta.get("history", [])

    def files(self) -> list[Path]:
        return model_files(self.path, self.optimizer)

    def kernel_arrays(self) -> tuple:
        """(P, Q, b_u, b_i, and the four AdaGrad sums or empty stand-ins) for the kernels
        (rowwise-adagrad's per-row sums as (n, 1) views)."""
        a = self.arrays
        if self.optimizer == "adagrad":
            state = tuple(a[n] for n in state_names("adagrad"))
        elif self.optimizer == "rowwise-adagrad":
            pa, qa, ba, ia = (a[n] for n in state_names("rowwise-adagrad"))
            state = (pa.reshape(-1, 1), qa.reshape(-1, 1), ba, ia)
        else:
            empty2, empty1 = np.zeros((0, self.rank), np.float32), np.zeros(0, np.float32)
            state = (empty2, empty2, empty1, empty1)
        return (a["user_factors"], a["item_factors"], a["user_bias"], a["item_bias"]) + state

    def flush(self) -> None:
        """msync the arrays, unless inside ``_fs.atomic.scratch_writes`` (a temporary model:
        the page cache already shows the writes to readers)."""
        if not durable():
            return
        for arr in self.arrays.values():
            if isinstance(arr, np.memmap) and arr.flags.writeable:
                arr.flush()

    def save_meta(self) -> None:
        with self._lock:
            write_json_atomic(self.path / META, self.meta)

    def info(self) -> dict:
        """What the model holds (``streamhog info``): sizes, how many rows training touched
        (counted over the files' data extents only: a 128 GiB sparse file is read in the time
        its written pages take), μ, the range, the last epoch's figures."""
        from .._fs.sparse_files import allocated_bytes

        meta = self.meta
        info = {"kind": KIND, "path": str(self.path), "loss": "mf", "feedback": meta.get("feedback", "explicit"),
                **({"negatives": self.negatives} if self.implicit else {}), "rank": self.rank,
                "n_users": meta["n_users"],
                "n_items": meta["n_items"], "users_seen": _count(self.path / "user_factors.npy"),
                "items_seen": _count(self.path / "item_factors.npy"), "optimizer": self.optimizer,
                "mu": self.mu, "sigma": meta.get("sigma"), "rating_range": meta.get("rating_range"),
                "allocated_bytes": sum(allocated_bytes(f) for f in self.files()),
                "epochs_trained": len(self.history), "training": meta.get("training", {}),
                "hyper_parameters": meta.get("hyper_parameters", {}), "data": meta.get("data", {})}
        if self.history:
            info["last_epoch"] = self.history[-1]
        return info

    # -- scoring ----------------------------------------------------------------------------
    def clip_range(self, clip: bool = True) -> tuple[float, float]:
        rng = self.meta.get("rating_range")
        if not clip or not rng:
            return -np.inf, np.inf
        return float(rng[0]), float(rng[1])

    def outputs(self, z: np.ndarray) -> np.ndarray:
        """What scoring reports for the kernels' predictions ``z`` (in place): ratings as they
        are; under implicit feedback the logits become preferences σ(z) in (0, 1), calibrated to
        the training's one positive per ``negatives`` sampled items, not probabilities of an
        interaction."""
        if self.implicit:
            np.negative(z, out=z)
            with np.errstate(over="ignore"):  # e^-z beyond float64: σ = 0
                np.exp(z, out=z)
            z += 1.0
            np.reciprocal(z, out=z)
        return z

    def predict(self, users, items, *, clip: bool = True) -> np.ndarray:
        """Predicted ratings (float64) of the (user, item) pairs given as two arrays of
        non-negative integer ids (an id the model never saw gets bias and factors 0); under
        implicit feedback the preferences σ(z) (:meth:`outputs`)."""
        users, items = _ids(users, "users"), _ids(items, "items")
        if users.shape != items.shape:
            raise ConfigError(f"users and items differ in length ({len(users)} and {len(items)})")
        out = np.empty(len(users), np.float64)
        lo, hi = self.clip_range(clip)
        from .kernels import predict_block

        P, Q, bu, bi = (_readonly(self.arrays[n]) for n in PARAMETERS)
        predict_block(users, items, P, Q, bu, bi, self.mu, lo, hi, out)
        return self.outputs(out)


def started_row_chunks(path: Path, chunk_rows: int = 1 << 16):
    """The rows of a factor file that are not all zeros (the ids training touched), ascending,
    as uint64 arrays of at most ``chunk_rows``, reading only the file's data extents: a 128
    GiB sparse file costs the time its written pages take."""
    from .._fs.sparse_files import data_extents

    arr = np.load(path, mmap_mode="r")
    row_bytes = arr.shape[1] * 4
    header = arr.offset
    done = 0  # rows already looked at: extents may share a row
    for offset, length in data_extents(path):
        lo = max(done, (offset - header) // row_bytes)
        hi = min(arr.shape[0], -(-(offset + length - header) // row_bytes))
        for start in range(lo, hi, chunk_rows):
            rows = np.asarray(arr[start:min(hi, start + chunk_rows)])
            yield np.flatnonzero(rows.any(axis=1)).astype(np.uint64) + np.uint64(start)
        done = max(done, hi)


def started_rows(path: Path) -> np.ndarray:
    """All of :func:`started_row_chunks` in one array (uint64, ascending)."""
    found = list(started_row_chunks(path))
    return np.concatenate(found) if found else np.zeros(0, np.uint64)


def _count(path: Path) -> int:
    return sum(len(c) for c in started_row_chunks(path))


def _readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view (the scoring kernels are compiled for read-only arrays)."""
    v = a.view(np.ndarray) if isinstance(a, np.memmap) else a.view()
    v.flags.writeable = False
    return v


def _ids(a, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind == "u":
        out = a.astype(np.uint64, copy=False)
    elif a.dtype.kind == "i":
        if len(a) and a.min() < 0:
            raise ConfigError(f"{what}: ids must be non-negative, found {int(a.min())}")
        out = a.astype(np.uint64)
    else:
        raise ConfigError(f"{what}: ids must be integers, got {a.dtype}")
    return _readonly(np.ascontiguousarray(out))
