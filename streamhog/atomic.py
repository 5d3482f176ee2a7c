"""Write-then-rename, so a failed or interrupted job never leaves a partial output.

Outputs (a Parquet file, a Zarr directory, later a model) are written under a hidden
temporary name beside the destination and renamed into place only on success.
An existing destination is replaced only when the caller asked for it. A remote
destination (a URL: ``predict --out s3://...``) is written the same way, as a hidden
temporary object moved into place at the end (on S3 a server-side copy).
"""
from __future__ import annotations

import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputExistsError


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
    from .formats.storage import local_path

    dst = local_path(dst)  # a file:// URL is a local path; another URL is refused here
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
    """Yield a temporary path to write; on success it becomes ``dst``, on any error it is removed.

    For a remote ``dst`` (a URL other than file://) it yields a binary file object instead.
    """
    from .formats.storage import is_remote

    if is_remote(str(dst)):
        with _atomic_remote(str(dst), overwrite) as f:
            yield f
        return
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


@contextmanager
def _atomic_remote(url: str, overwrite: bool):
    """A writable file object on the store of ``url``: a hidden temporary object beside it,
    moved onto ``url`` on success and removed on any error."""
    from .formats.storage import Remote

    remote = Remote(url)
    if remote.exists() and not overwrite:
        raise OutputExistsError(f"{url}: already exists; pass --overwrite to replace it")
    parent, _, name = remote.root.rpartition("/")
    tmp = f"{parent}/.{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    f = remote.open(tmp, "wb")
    try:
        yield f
        f.close()
    except BaseException:
        try:
            f.close()
        finally:
            try:
                remote.fs.rm(tmp)
            except Exception:  # noqa: BLE001 - never hide the error that stopped the write
                pass
        raise
    remote._guard("move the finished output into place", remote.fs.mv, tmp, remote.root)
