"""Outputs written whole or not at all, on local disk (_fs/atomic.py) or at a URL.

A remote destination (``predict --out s3://...``) is written as a hidden temporary object
beside it and moved into place at the end (on S3 a server-side copy); on any error the
temporary object is removed. A ``file://`` URL is a local path.
"""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager

from .._fs.atomic import atomic_output
from .._fs.atomic import check_destination as _check_local
from ..errors import OutputExistsError
from .formats.storage import Remote, is_remote, local_path


def check_destination(dst, *, overwrite: bool):
    """Fail early (before any work) when ``dst`` exists and may not be replaced."""
    return _check_local(local_path(dst), overwrite=overwrite)


@contextmanager
def output(dst, *, overwrite: bool = False):
    """Yield where to write ``dst``: a temporary local path, or for a remote ``dst`` a binary
    file object; on success it becomes ``dst``, on any error it is removed."""
    if is_remote(str(dst)):
        with _remote_output(str(dst), overwrite) as f:
            yield f
        return
    with atomic_output(local_path(dst), overwrite=overwrite) as tmp:
        yield tmp


@contextmanager
def _remote_output(url: str, overwrite: bool):
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
