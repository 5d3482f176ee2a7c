"""Outputs written whole or not at all, on local disk (_fs/atomic.py) or at a URL, and
what ``--overwrite`` may replace.

A remote destination (``predict --out s3://...``) is written as a hidden temporary object
beside it and moved into place at the end (on S3 a server-side copy); on any error the
temporary object is removed. A ``file://`` URL is a local path.

``--overwrite`` replaces only the kind of output the command itself writes: ``convert`` a
streamhog dataset (a sparse Parquet file, a directory of them, or a sparse Zarr store),
``predict`` a predictions Parquet file; anything else — an unrelated file, a directory
holding other files, a model — is refused by name (issue 16, item 6). Each check reads only
a footer or a ``zarr.json`` and returns None (replaceable) or the reason it is not.
"""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager

import json
from pathlib import Path
from typing import Callable

from .._fs.atomic import atomic_output
from .._fs.atomic import check_destination as _check_local
from ..errors import OutputExistsError, UsageError
from .formats import spec
from .formats.storage import Remote, is_remote, local_path


def check_destination(dst, *, overwrite: bool, replaceable: Callable[[Path], str | None] | None = None):
    """Fail early (before any work) when ``dst`` exists and may not be replaced."""
    return _check_local(local_path(dst), overwrite=overwrite, replaceable=replaceable)


@contextmanager
def output(dst, *, overwrite: bool = False, replaceable: Callable[[Path], str | None] | None = None):
    """Yield where to write ``dst``: a temporary local path, or for a remote ``dst`` a binary
    file object; on success it becomes ``dst``, on any error it is removed. An existing
    local ``dst`` is replaced only with ``overwrite`` and when ``replaceable`` says so."""
    if is_remote(str(dst)):
        with _remote_output(str(dst), overwrite) as f:
            yield f
        return
    with atomic_output(local_path(dst), overwrite=overwrite, replaceable=replaceable) as tmp:
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


#: The top-level entries of a streamhog Zarr store.
_ZARR_MEMBERS = {"zarr.json", spec.INDPTR, spec.INDICES, spec.VALUES, spec.LABELS, spec.WEIGHTS}


def _parquet_metadata(path: Path) -> dict | None:
    import pyarrow.parquet as pq

    try:
        md = pq.read_metadata(path).metadata or {}
    except Exception:  # not Parquet at all
        return None
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in md.items()}


def _streamhog_parquet(path: Path) -> bool:
    meta = _parquet_metadata(path)
    return meta is not None and spec.META_FORMAT_VERSION in meta and spec.META_N_FEATURES in meta


def _streamhog_zarr(path: Path) -> str | None:
    try:
        group = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return "it is a directory but not a streamhog dataset"
    attrs = group.get("attributes", {}) if isinstance(group, dict) else {}
    if group.get("node_type") != "group" or spec.META_FORMAT_VERSION not in attrs:
        return "it is a Zarr store but not a streamhog dataset (no 'format_version' attribute)"
    others = sorted(p.name for p in path.iterdir() if p.name not in _ZARR_MEMBERS)
    if others:
        return f"the Zarr store also holds {others[0]!r}, which streamhog did not write"
    return None


def dataset_problem(path: Path) -> str | None:
    """None when ``path`` is a streamhog dataset that ``convert --overwrite`` may replace."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        return "it is a broken symbolic link"
    if path.is_file():
        return None if _streamhog_parquet(path) else "it is not a streamhog Parquet dataset"
    if not path.is_dir():
        return "it is not a regular file or directory"
    if (path / "zarr.json").exists():
        return _streamhog_zarr(path)
    entries = sorted(path.iterdir())
    if not entries:
        return None  # an empty directory holds nothing to lose
    for entry in entries:
        if not (entry.is_file() and entry.suffix == ".parquet" and _streamhog_parquet(entry)):
            return f"the directory holds {entry.name!r}, which is not a streamhog Parquet file"
    return None


def predictions_problem(path: Path) -> str | None:
    """None when ``path`` is a predictions file that ``predict --overwrite`` may replace."""
    path = Path(path)
    if not path.is_file():
        return "it is not a file" if path.exists() else "it is a broken symbolic link"
    meta = _parquet_metadata(path)
    if meta is None or "streamhog_model" not in meta:
        return "it is not a streamhog predictions file"
    return None


def check_predictions_path(path) -> Path:
    """Predictions are Parquet: refuse another suffix rather than write Parquet under it."""
    path = Path(path)
    if path.suffix != ".parquet":
        raise UsageError(f"{path}: predictions are written as Parquet; name the output NAME.parquet")
    return path
