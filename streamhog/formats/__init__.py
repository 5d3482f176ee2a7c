"""Sparse datasets on disk: Parquet and Zarr (columnar, streamed by block) and LIBSVM text (input).

``open_dataset(path)`` gives a dataset whose blocks reader threads fetch; ``create_writer``
writes either columnar format. docs/formats.md is the specification.
"""
from __future__ import annotations

from pathlib import Path

COLUMNAR_FORMATS = ("parquet", "zarr")

# The format modules load on first use: the Parquet reader pulls in numba (its validation
# kernels) and zarr costs about 0.3 s to import (its async API), so that `--help`, the
# constants in .spec and Parquet-only commands do not pay for what they do not use
# (issue 5: start-up).
_LAZY = {"ParquetDataset": "parquet", "ParquetSparseWriter": "parquet", "list_parquet_files": "parquet",
         "ZarrDataset": "zarr", "ZarrSparseWriter": "zarr"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_zarr_store(path: Path) -> bool:
    return path.is_dir() and (path / "zarr.json").is_file()


def detect_format(path) -> str:
    """'parquet', 'zarr' or 'libsvm' (any other file, ``-`` for standard input)."""
    if str(path) == "-":
        return "libsvm"
    p = Path(path)
    if is_zarr_store(p) or p.suffix == ".zarr":
        return "zarr"
    from .parquet import list_parquet_files
    if p.suffix == ".parquet" or (p.is_dir() and list_parquet_files(p)):
        return "parquet"
    if p.is_dir():
        raise ValueError(f"{p}: a directory that is neither a Zarr store nor holds .parquet files")
    return "libsvm"


def format_from_suffix(path) -> str | None:
    suffix = Path(path).suffix
    return {".parquet": "parquet", ".zarr": "zarr"}.get(suffix)


def open_dataset(path):
    """Open a Parquet file, a directory of Parquet files, or a Zarr store (footers/attributes only)."""
    if str(path) != "-" and not (Path(path).exists() or Path(path).is_symlink()):
        raise FileNotFoundError(f"{path}: no such file or directory")
    fmt = detect_format(path)
    if fmt == "parquet":
        from .parquet import ParquetDataset
        return ParquetDataset(path)
    if fmt == "zarr":
        from .zarr import ZarrDataset
        return ZarrDataset(path)
    raise ValueError(f"{path}: not a Parquet or Zarr dataset; convert it first with 'streamhog convert'")


def create_writer(fmt: str, path, **options):
    if fmt == "parquet":
        from .parquet import ParquetSparseWriter
        return ParquetSparseWriter(path, **options)
    if fmt == "zarr":
        from .zarr import ZarrSparseWriter
        return ZarrSparseWriter(path, **options)
    raise ValueError(f"unknown output format {fmt!r}; choose one of {COLUMNAR_FORMATS}")


__all__ = ["ParquetDataset", "ZarrDataset", "open_dataset", "create_writer", "detect_format",
           "format_from_suffix", "COLUMNAR_FORMATS"]
