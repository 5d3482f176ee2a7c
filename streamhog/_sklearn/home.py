"""Where a fitted estimator's model lives, and how it travels in a pickle.

The model is a streamhog model directory (memory-mapped ``weights.npy`` and the optimizer's
state files, ``model.json``, the checkpoint record), so that ``fit`` streams data larger
than memory and ``partial_fit`` continues the run in place. It lives in the directory the
user names (``model_dir=``) or in a temporary one (under ``$TMPDIR``) that belongs to the
estimator: removed when the estimator is garbage-collected, or when the process ends. The
writes of a temporary model skip fsync/msync (``_fs.atomic.scratch_writes``): a crash loses
such a directory whatever was synced, and the syncs were most of a small fit's time.

A temporary home whose caller gives its size (the factorization estimator: its arrays'
full, dense size) goes to memory (:data:`MEMORY_DIR`, a tmpfs) when that size is at most
:data:`MEMORY_SHARE` of the memory available and of the tmpfs' free space, and ``$TMPDIR``
is not set: on ext4, a fresh sparse file's first write to a page costs about 7 us (the
block's allocation), and on MovieLens those first writes and the final msync took about 45
ms of a 127 ms training call (benchmarks/mf_breakdown.md). Its name carries the process id and its pid namespace: a
process killed before it removed its home leaves it in memory, and the next temporary home
made on the machine removes those of this user's processes no longer running in the same
pid namespace (never a live one's, nor one a process of another namespace, such as another
container sharing the tmpfs, may still use).

Pickling (``pickle``, ``joblib.dump``, ``copy.deepcopy``, process pools) carries the model's
arrays, ``model.json`` and the checkpoint record by value — never a memory map or a path —
up to the estimator's ``pickle_limit`` bytes of arrays (1 GiB by default); unpickling writes them into a new temporary
directory, so the copy is independent and its ``partial_fit`` continues the same run (its
``model_dir`` parameter is only where a new ``fit`` would go). A larger model raises
``ModelTooLargeError``, which says to keep the model directory (``model_dir=``) and reopen
it with ``load``.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .._fs.atomic import process_alive, scratch_writes
from ..errors import ModelTooLargeError, OutputExistsError
from ..io.formats.storage import local_model_dir
from ..model.directory import META, Model, write_json_atomic
from ..training.checkpoint import has_checkpoint, read_checkpoint, write_checkpoint

#: Where a small temporary model lives (a tmpfs: RAM, no block allocation, msync a no-op).
MEMORY_DIR = Path("/dev/shm")
#: The largest share of the available memory, and of MEMORY_DIR's free space, a temporary
#: model given its size may take there; a larger one goes to $TMPDIR's disk.
MEMORY_SHARE = 0.25
_PREFIX = "streamhog-model-"
_OURS = re.compile(re.escape(_PREFIX) + r"(\d+)-(\d+)-")


def pid_namespace() -> int:
    """The inode of this process's pid namespace (0 where /proc does not say): process ids
    are only comparable within one."""
    try:
        return int(re.sub(r"\D", "", os.readlink("/proc/self/ns/pid")) or 0)
    except (OSError, ValueError):
        return 0


def available_memory() -> int:
    """MemAvailable of /proc/meminfo in bytes (0 where there is none: not Linux)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def memory_home_dir(nbytes: int | None) -> Path | None:
    """MEMORY_DIR when a temporary model of ``nbytes`` belongs there (see the module
    docstring), else None ($TMPDIR)."""
    if nbytes is None or "TMPDIR" in os.environ or not MEMORY_DIR.is_dir():
        return None
    try:
        st = os.statvfs(MEMORY_DIR)
    except OSError:
        return None
    free = st.f_bavail * st.f_frsize
    if nbytes > MEMORY_SHARE * min(free, available_memory()) or not os.access(MEMORY_DIR, os.W_OK | os.X_OK):
        return None
    return MEMORY_DIR


def remove_dead_homes(directory: Path) -> list[Path]:
    """Remove the temporary homes in ``directory`` whose process is no longer running (a
    kill left them); returns them."""
    removed = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return removed
    ns = pid_namespace()
    for entry in entries:
        m = _OURS.match(entry.name)
        # Only this user's directories of our name: a tmpfs is shared by every user.
        if (m and int(m.group(1)) == ns and entry.is_dir() and not entry.is_symlink() and _own(entry)
                and not process_alive(int(m.group(2)))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _own(path: Path) -> bool:
    try:
        return path.stat().st_uid == os.getuid()
    except OSError:
        return False


class ModelHome:
    """A model directory, whether the estimator made it (``created``: a later fit may replace
    it) and whether it owns it (``temporary``: removed with the estimator)."""

    def __init__(self, path: Path, temporary_root: Path | None = None, *, created: bool = True):
        self.path = Path(path)
        self.created = created
        self.temporary = temporary_root is not None
        self._cleanup = (weakref.finalize(self, shutil.rmtree, str(temporary_root), True)
                         if temporary_root is not None else None)

    @classmethod
    def temporary_dir(cls, nbytes: int | None = None) -> "ModelHome":
        """A new temporary home; in memory when its model's ``nbytes`` fit there."""
        where = memory_home_dir(nbytes)
        if where is not None:
            remove_dead_homes(where)
        root = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{pid_namespace()}-{os.getpid()}-", dir=where))
        return cls(root / "model", root)

    @classmethod
    def user_dir(cls, model_dir, *, replace: bool) -> "ModelHome":
        """The user's ``model_dir`` for a new model: an existing one is replaced only when
        ``replace`` (``overwrite=True``, or a model this estimator made), and only if it is
        a streamhog model directory or empty."""
        path = local_model_dir(model_dir)  # a URL is refused: the weights are memory-mapped
        if path.exists() or path.is_symlink():
            if not replace:
                raise OutputExistsError(f"{path}: already exists; pass overwrite=True to replace it, or open the "
                                        f"model in it with load({str(path)!r})")
            if not (path.is_dir() and ((path / META).is_file() or not any(path.iterdir()))):
                raise OutputExistsError(f"{path}: exists and is not a streamhog model directory; refusing to "
                                        "delete it (choose another model_dir)")
            shutil.rmtree(path)
        elif not path.parent.is_dir():
            raise FileNotFoundError(f"{path}: the directory {path.parent} does not exist")
        return cls(path)

    def writes(self):
        """The context of writes into this home: no syncs for a temporary directory."""
        return scratch_writes() if self.temporary else contextlib.nullcontext()

    def release(self) -> None:
        """Remove a temporary directory now (a user's directory stays)."""
        if self._cleanup is not None:
            self._cleanup()

    def __reduce__(self):
        # Pickled by itself (joblib.hash of an estimator's __dict__): a reference, owning nothing.
        return (ModelHome, (str(self.path), None), {"created": False})


def new_home(est, nbytes: int | None = None) -> ModelHome:
    """The home of estimator ``est``'s next fit: its ``model_dir`` (replacing a model this
    estimator made there, or any with ``overwrite``), else a temporary one (``nbytes``: see
    ModelHome.temporary_dir)."""
    if est.model_dir is None:
        return ModelHome.temporary_dir(nbytes)
    old = getattr(est, "_home", None)
    ours = old is not None and old.created and os.path.abspath(old.path) == os.path.abspath(est.model_dir)
    home = ModelHome.user_dir(est.model_dir, replace=est.overwrite or ours)
    if ours:  # its files are gone: nothing fitted until the new fit succeeds
        del est._home, est._model
    return home


def pack(model: Model, owner: str, limit: int) -> dict:
    """The model by value, for a pickle, if its arrays take at most ``limit`` bytes."""
    files = model.files()
    size = sum(f.stat().st_size for f in files)
    if size > limit:
        raise ModelTooLargeError(
            f"{owner}: the model in {model.path} holds {size / 2**20:,.1f} MiB of arrays, more than a pickle carries "
            f"(its pickle_limit, {limit / 2**20:,.1f} MiB); fit with model_dir=DIR to keep the model "
            f"directory, and reopen it with {owner}.load(DIR) instead of pickling the estimator")
    record = read_checkpoint(model.path)[0] if has_checkpoint(model.path) else None
    return {"meta": model.meta, "record": record, "arrays": {f.name: np.load(f) for f in files}}


def unpack(payload: dict, model_type=Model, in_memory: bool = False) -> tuple[ModelHome, Model]:
    """A new temporary home holding the packed model, and the model (``model_type.open``)
    opened there; ``in_memory``: a home given its size (see the module docstring)."""
    size = sum(np.asarray(a).nbytes for a in payload["arrays"].values())
    home = ModelHome.temporary_dir(size if in_memory else None)
    home.path.mkdir()
    with home.writes():
        for name, arr in payload["arrays"].items():
            np.save(home.path / name, np.asarray(arr))
        write_json_atomic(home.path / META, payload["meta"])
        if payload["record"] is not None:
            write_checkpoint(home.path, payload["record"])
    return home, model_type.open(home.path)


class CarriedByValue:
    """Pickling of an estimator whose fitted model is ``_model`` in ``_home``: by value."""

    #: Most bytes of model arrays a pickle of a fitted estimator carries; above it pickling
    #: raises ModelTooLargeError. Set it on the class or on one estimator.
    pickle_limit = 1 << 30
    #: What the fitted model is (its class's ``open`` reopens an unpickled copy), and whether
    #: an unpickled copy's temporary home may go to memory (ModelHome.temporary_dir's size).
    _model_type = Model
    _memory_home = False

    def __getstate__(self):
        state = dict(super().__getstate__())  # object's is the live __dict__: never change it
        state.pop("_home", None)
        model = state.pop("_model", None)
        if model is not None:
            state["_packed_model"] = pack(model, type(self).__name__, self.pickle_limit)
        return state

    def __setstate__(self, state):
        state = dict(state)
        packed = state.pop("_packed_model", None)
        super().__setstate__(state)
        if packed is not None:
            self._home, self._model = unpack(packed, self._model_type, self._memory_home)


class FittedModel:
    """What an estimator whose fitted model is ``_model`` (a model directory) shows of it."""

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "_model")

    @property
    def model_(self):
        """The fitted model (the memory-mapped model directory: streamhog.Model, or MFModel)."""
        check_is_fitted(self)
        return self._model

    @property
    def model_path_(self):
        """Where the fitted model lives (a temporary directory unless ``model_dir``)."""
        return self.model_.path

    @property
    def history_(self) -> list:
        """One record per epoch (or partial_fit pass): train loss, holdout/valid metrics."""
        return list(self.model_.meta.get("history") or [])

    @property
    def best_epoch_(self):
        """The epoch whose model early stopping kept (None: no holdout or valid data watched)."""
        return (self.model_.meta.get("training") or {}).get("best_epoch")
