"""Where a fitted estimator's model lives, and how it travels in a pickle.

The model is a streamhog model directory (memory-mapped ``weights.npy`` and the optimizer's
state files, ``model.json``, the checkpoint record), so that ``fit`` streams data larger
than memory and ``partial_fit`` continues the run in place. It lives in the directory the
user names (``model_dir=``) or in a temporary one (under ``$TMPDIR``) that belongs to the
estimator: removed when the estimator is garbage-collected, or when the process ends. The
writes of a temporary model skip fsync/msync (``_fs.atomic.scratch_writes``): a crash loses
such a directory whatever was synced, and the syncs were most of a small fit's time.

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
import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np

from .._fs.atomic import scratch_writes
from ..errors import ModelTooLargeError, OutputExistsError
from ..io.formats.storage import local_model_dir
from ..model.directory import META, Model, write_json_atomic
from ..training.checkpoint import has_checkpoint, read_checkpoint, write_checkpoint


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
    def temporary_dir(cls) -> "ModelHome":
        root = Path(tempfile.mkdtemp(prefix="streamhog-model-"))
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


def unpack(payload: dict) -> tuple[ModelHome, Model]:
    """A new temporary home holding the packed model, and the model opened there."""
    home = ModelHome.temporary_dir()
    home.path.mkdir()
    with home.writes():
        for name, arr in payload["arrays"].items():
            np.save(home.path / name, np.asarray(arr))
        write_json_atomic(home.path / META, payload["meta"])
        if payload["record"] is not None:
            write_checkpoint(home.path, payload["record"])
    return home, Model.open(home.path)


class CarriedByValue:
    """Pickling of an estimator whose fitted model is ``_model`` in ``_home``: by value."""

    #: Most bytes of model arrays a pickle of a fitted estimator carries; above it pickling
    #: raises ModelTooLargeError. Set it on the class or on one estimator.
    pickle_limit = 1 << 30

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
            self._home, self._model = unpack(packed)
