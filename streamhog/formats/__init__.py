"""Sparse datasets on disk: Parquet and Zarr (columnar, streamed by block) and LIBSVM text (input).

``open_dataset(path)`` gives a dataset whose blocks reader threads fetch; ``create_writer``
writes either columnar format. docs/formats.md is the specification.
"""
from __future__ import annotations

from pathlib import Path

from .parquet import ParquetDataset, ParquetSparseWriter, list_parquet_files
from .zarr import ZarrDataset, ZarrSparseWriter

COLUMNAR_FORMATS = ("parquet", "zarr")


def is_zarr_store(path: Path) -> bool:
    return path.is_dir() and (path / "zarr.json").is_file()


def detect_format(path) -> str:
    """'parquet', 'zarr' or 'libsvm' (any other file, ``-`` for standard input)."""
    if str(path) == "-":
        return "libsvm"
    p = Path(path)
    if is_zarr_store(p) or p.suffix == ".zarr":
        return "zarr"
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
    fmt = detect_format(path)
    if fmt == "parquet":
        return ParquetDataset(path)
    if fmt == "zarr":
        return ZarrDataset(path)
    raise ValueError(f"{path}: not a Parquet or Zarr dataset; convert it first with 'streamhog convert'")


def create_writer(fmt: str, path, **options):
    if fmt == "parquet":
        return ParquetSparseWriter(path, **options)
    if fmt == "zarr":
        return ZarrSparseWriter(path, **options)
    raise ValueError(f"unknown output format {fmt!r}; choose one of {COLUMNAR_FORMATS}")


__all__ = ["ParquetDataset", "ZarrDataset", "open_dataset", "create_writer", "detect_format",
           "format_from_suffix", "COLUMNAR_FORMATS"]
