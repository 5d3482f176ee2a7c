"""Sparse datasets: Parquet and Zarr (columnar, streamed by block, local or at a URL), data in
memory (scipy.sparse, NumPy, Arrow), and LIBSVM text (input).

``open_dataset(data)`` gives a dataset whose blocks reader threads fetch; ``create_writer``
writes either columnar format. docs/formats.md is the specification.
"""
from __future__ import annotations

import os
from pathlib import Path

from ...errors import ConfigError, DataFormatError

COLUMNAR_FORMATS = ("parquet", "zarr")

# The format modules load on first use: the Parquet reader pulls in numba (its validation
# kernels) and zarr costs about 0.3 s to import (its async API), so that `--help`, the
# constants in .spec and Parquet-only commands do not pay for what they do not use
# (issue 5: start-up).
_LAZY = {"ParquetDataset": "parquet", "ParquetSparseWriter": "parquet", "list_parquet_files": "parquet",
         "ZarrDataset": "zarr", "ZarrSparseWriter": "zarr", "InMemoryData": "memory"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_zarr_store(path: Path) -> bool:
    return path.is_dir() and (path / "zarr.json").is_file()


def detect_format(path, storage_options: dict | None = None) -> str:
    """'parquet', 'zarr' or 'libsvm' (any other file, ``-`` for standard input); ``path`` may be a URL."""
    from .storage import Remote, is_remote, local_path

    if str(path) == "-":
        return "libsvm"
    if is_remote(path):
        suffix = "." + path.rstrip("/").rsplit(".", 1)[-1] if "." in path.rsplit("/", 1)[-1] else ""
        if suffix in (".zarr", ".parquet"):
            return suffix[1:]
        remote = Remote(path, storage_options)
        if remote.protocol in ("http", "https"):  # no directory listing there: one Parquet file
            return "parquet"
        if remote.isdir():
            names = remote.listdir()
            if "zarr.json" in names:
                return "zarr"
            if any(n.endswith(".parquet") and not n.startswith((".", "_")) for n in names):
                return "parquet"
            raise DataFormatError(path, "a directory that is neither a Zarr store nor holds .parquet files")
        if not remote.exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
        return "libsvm"
    p = local_path(path)
    if is_zarr_store(p) or p.suffix == ".zarr":
        return "zarr"
    from .parquet import list_parquet_files
    if p.suffix == ".parquet" or (p.is_dir() and list_parquet_files(p)):
        return "parquet"
    if p.is_dir():
        raise DataFormatError(p, "a directory that is neither a Zarr store nor holds .parquet files")
    return "libsvm"


def format_from_suffix(path) -> str | None:
    suffix = Path(path).suffix
    return {".parquet": "parquet", ".zarr": "zarr"}.get(suffix)


def is_dataset(obj) -> bool:
    """An already-open dataset (ParquetDataset, ZarrDataset, InMemoryData, a block cache's view)."""
    return hasattr(obj, "open_reader") and hasattr(obj, "n_blocks") and hasattr(obj, "n_rows")


def open_dataset(data, *, labels=None, weights=None, require_labels: bool = False, n_features: int | None = None,
                 label_column: str | None = None, indices_column: str | None = None,
                 values_column: str | None = None, weight_column: str | None = None, index_base: int = 0,
                 fix_rows: bool = False, rows_per_block: int | None = None, storage_options: dict | None = None):
    """A dataset of blocks, from any data streamhog reads.

    ``data`` is a Parquet file or directory of them, or a Zarr store, on local disk or at a
    URL (``file://``, ``s3://``, ``gs://``, ``http(s)://``, ``memory://``; storage.py), whose
    footers/attributes only are read; or data in memory (memory.py): a scipy.sparse matrix,
    a 2-D NumPy array or a pyarrow Table/RecordBatch, with ``labels`` and ``weights`` arrays
    where the data has none; or an already-open dataset, returned as it is.

    Parquet written by other tools (DuckDB, Polars, pandas, Spark: columns.py) is read with
    ``label_column``, ``indices_column``, ``values_column``, ``weight_column`` (its column
    names), ``index_base`` (0, or 1 for 1-based ids) and ``fix_rows`` (sort each row's ids
    and sum duplicates instead of refusing such rows). ``n_features`` is the dimension of
    data that does not record it; else a pass over the ids finds the largest (``ds.notes``
    says so). ``require_labels`` refuses data without labels (training, evaluation).

    >>> import numpy as np, scipy.sparse as sp, streamhog
    >>> ds = streamhog.open_dataset(sp.csr_matrix(np.eye(3)), labels=[1, 0, 1])
    >>> ds.format, ds.n_rows, ds.n_features, ds.has_labels
    ('memory', 3, 3, True)
    """
    from .columns import ColumnOptions

    columns = ColumnOptions.make(label_column, indices_column, values_column, weight_column, index_base, fix_rows)
    if is_dataset(data):
        given = [k for k, v in (("labels", labels), ("weights", weights), ("n_features", n_features),
                                ("rows_per_block", rows_per_block), ("storage_options", storage_options))
                 if v is not None] + ([] if columns.is_default else ["column options"])
        if given:
            raise ConfigError(f"{data.path}: {', '.join(given)} apply when data is opened, not to an open dataset")
        ds = data
    elif isinstance(data, (str, os.PathLike)):
        from .storage import is_remote, local_path

        if not is_remote(os.fspath(data)) and os.fspath(data) != "-" and not (
                local_path(data).exists() or local_path(data).is_symlink()):
            raise FileNotFoundError(f"{data}: no such file or directory")
        if labels is not None or weights is not None:
            raise ConfigError(f"{data}: labels= and weights= are for data in memory; a dataset file has its own "
                             "(label_column=, weight_column=)")
        fmt = detect_format(os.fspath(data), storage_options)
        if fmt == "parquet":
            from .parquet import ParquetDataset
            ds = ParquetDataset(os.fspath(data), columns=columns, n_features=n_features,
                                storage_options=storage_options)
        elif fmt == "zarr":
            if not columns.is_default:
                raise ConfigError(f"{data}: column options (label_column=, index_base=, fix_rows=, ...) apply to "
                                 "Parquet data, not Zarr")
            from .zarr import ZarrDataset
            ds = ZarrDataset(os.fspath(data), storage_options=storage_options)
        else:
            raise DataFormatError(data, "not a Parquet or Zarr dataset; convert it first with 'streamhog convert'")
    else:
        from .memory import InMemoryData
        ds = InMemoryData(data, labels, weights, n_features=n_features, rows_per_block=rows_per_block,
                          columns=columns)
    if require_labels and not getattr(ds, "has_labels", True):
        raise DataFormatError(ds.path, "the data has no labels: pass them with the data "
                                       "(streamhog.InMemoryData(X, y) or open_dataset(X, labels=y))")
    return ds


def create_writer(fmt: str, path, **options):
    if fmt == "parquet":
        from .parquet import ParquetSparseWriter
        return ParquetSparseWriter(path, **options)
    if fmt == "zarr":
        from .zarr import ZarrSparseWriter
        return ZarrSparseWriter(path, **options)
    raise ConfigError(f"unknown output format {fmt!r}; choose one of {COLUMNAR_FORMATS}")


__all__ = ["ParquetDataset", "ZarrDataset", "InMemoryData", "open_dataset", "is_dataset", "create_writer", "detect_format",
           "format_from_suffix", "COLUMNAR_FORMATS"]
