"""Write-then-rename, so a failed or interrupted job never leaves a partial output.

Outputs (a Parquet file, a Zarr directory, later a model) are written under a hidden
temporary name beside the destination and renamed into place only on success.
An existing destination is replaced only when the caller asked for it.
"""
from __future__ import annotations

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


def fsync_directory(path: Path) -> None:
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
