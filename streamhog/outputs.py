"""What ``--overwrite`` may replace: only the kind of output the command itself writes.

``convert`` replaces a streamhog dataset (a sparse Parquet file, a directory of them, or a
sparse Zarr store), ``predict`` a predictions Parquet file; anything else — an unrelated
file, a directory holding other files, a model — is refused by name (issue 16, item 6).
Each check reads only a footer or a ``zarr.json`` and returns None (replaceable) or the
reason it is not.
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import UsageError
from .formats import spec

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
