"""What a dataset is to the rest of streamhog: the :class:`Dataset` protocol.

Parquet files (formats/parquet.py), Zarr stores (formats/zarr.py), the block cache
(block_cache.py) and every dataset to come implement it; tests/dataset_contract.py is the
suite each must pass (as zarr's ``StoreTests`` is for stores). A dataset is a sequence of
blocks — row groups, row blocks — that reader threads fetch independently: each thread opens
its own :class:`BlockReader`.
"""
from __future__ import annotations

from typing import Iterator, Protocol, runtime_checkable

import numpy as np

from .batch import SparseBatch


@runtime_checkable
class BlockReader(Protocol):
    """One thread's reader of a dataset's blocks."""

    def read(self, block: int) -> SparseBatch:
        """Block ``block`` (0 <= block < n_blocks), decoded and validated: its ``block`` and
        ``row_start`` set, its ``source`` naming the file and the block."""

    def close(self) -> None:
        """Release the reader's files; safe to call twice."""


@runtime_checkable
class Dataset(Protocol):
    """A sparse dataset as blocks of rows (see the module docstring)."""

    path: object              # where it lives (a path, or a description for data in memory)
    format: str               # "parquet", "zarr", ...
    n_rows: int
    n_features: int           # ids are below it
    has_values: bool          # False: every value is 1.0 (binary features)
    has_weights: bool         # importance weights present
    hash_bits: int | None     # ids were hashed into 2^hash_bits slots at conversion
    block_rows: np.ndarray    # rows of each block (int64)
    block_row_start: np.ndarray  # first row of each block in the dataset (int64)

    @property
    def n_blocks(self) -> int: ...

    def open_reader(self) -> BlockReader: ...

    def describe_block(self, block: int) -> str:
        """Where block ``block`` is, for messages ("a.parquet: row group 3")."""

    def iter_labels(self) -> Iterator[np.ndarray]:
        """The labels, block by block, in order (reading nothing else where the format allows)."""

    def info(self) -> dict:
        """What ``streamhog info`` prints: format, path, n_rows, n_features, blocks, ..."""
