"""One writer per model directory: an advisory lock held while a run trains it.

Two runs writing one model's memory maps at once corrupt it (a second ``train --model
SAME`` died of a bus error while the other reported success; two ``--resume`` applied the
updates twice). A run takes ``fcntl.flock`` on the directory's ``.lock`` file, exclusive
and non-blocking, and keeps it until it ends; the kernel releases it when the holder dies,
so a crash never leaves a stale lock behind. The holder's pid is written into the file for
the message another process gets: "model M is in use by process P".
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..errors import ModelError

LOCK = ".lock"


class ModelInUseError(ModelError):
    """Another process holds the model directory."""


class ModelLock:
    """The exclusive lock of a model directory (a context manager; also ``acquire``/``release``)."""

    def __init__(self, model_dir):
        self.path = Path(model_dir) / LOCK
        self._fd: int | None = None

    def acquire(self) -> "ModelLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ModelInUseError(f"{self.path.parent}: model is in use by process {holder} (one run at a time "
                                  "trains a model; wait for it, or stop it)") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> "ModelLock":
        return self.acquire() if self._fd is None else self

    def __exit__(self, *exc) -> None:
        self.release()


def holder(model_dir) -> int | None:
    """The pid of the process training ``model_dir`` now, or None (nobody holds its lock)."""
    path = Path(model_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
