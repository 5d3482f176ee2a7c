"""Write-then-rename, so a failed or interrupted job never leaves a partial output.

Outputs (a Parquet file, a Zarr directory, later a model) are written under a hidden
temporary name beside the destination and renamed into place only on success.
An existing destination is replaced only when the caller asked for it.

Durability (fsync, msync) is what makes a checkpoint survive a power loss; it costs about
10 ms a call. Inside :func:`scratch_writes` (this thread and what it calls) the syncs are
skipped and the writes stay atomic: for model directories that do not outlive the process
(a scikit-learn estimator's temporary directory, removed at exit, which a crash loses
whatever was synced), where they took most of the time of a small ``fit``.
"""
from __future__ import annotations

import contextvars
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path

from ..errors import OutputExistsError


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def check_destination(dst, *, overwrite: bool) -> Path:
    """Fail early (before any work) when ``dst`` exists and may not be replaced."""
    dst = Path(dst)
    if (dst.exists() or dst.is_symlink()) and not overwrite:
        raise OutputExistsError(f"{dst}: already exists; pass --overwrite to replace it")
    if not dst.parent.exists():
        raise FileNotFoundError(f"{dst}: the directory {dst.parent} does not exist")
    return dst


_DURABLE = contextvars.ContextVar("streamhog_durable_writes", default=True)


@contextmanager
def scratch_writes():
    """Within this block (in this thread), skip fsync and msync: see the module docstring."""
    token = _DURABLE.set(False)
    try:
        yield
    finally:
        _DURABLE.reset(token)


def durable() -> bool:
    """False inside :func:`scratch_writes`."""
    return _DURABLE.get()


def fsync(fd: int) -> None:
    """``os.fsync(fd)``, unless inside :func:`scratch_writes`."""
    if _DURABLE.get():
        os.fsync(fd)


def fsync_directory(path: Path) -> None:
    if not _DURABLE.get():
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_output(dst, *, overwrite: bool = False):
    """Yield a temporary path to write; on success it becomes ``dst``, on any error it is removed."""
    dst = check_destination(dst, overwrite=overwrite)
    tmp = dst.parent / f".{dst.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        yield tmp
    except BaseException:
        remove_path(tmp)
        raise
    if not tmp.exists():
        raise RuntimeError(f"{dst}: nothing was written")
    check_destination(dst, overwrite=overwrite)  # someone may have created it meanwhile
    if dst.exists() or dst.is_symlink():
        # Move the old output aside first so that at every moment one complete version exists.
        old = dst.parent / f".{dst.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
        os.rename(dst, old)
        os.rename(tmp, dst)
        remove_path(old)
    else:
        os.rename(tmp, dst)
    fsync_directory(dst.parent)
