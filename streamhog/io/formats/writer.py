"""What every sparse-dataset writer shares: exact row groups and the values-column decision.

Batches arrive with any number of rows (a LIBSVM byte block, another format's block);
the writer re-cuts them into groups of exactly ``rows_per_group`` rows (the last may be
shorter), so memory is bounded by one group plus one incoming batch.

``values="auto"`` leaves the values column out while every value seen is 1.0 (binary
features: half the bytes, less to decode). If a later group holds other values, the
format adds the column back, filled with ones for the rows already written.
"""
from __future__ import annotations

import numpy as np

from ...errors import ConfigError, DataFormatError
from ..batch import SparseBatch, concat_batches, slice_rows
from ..hashing import META_HASH_BITS
from .spec import FORMAT_VERSION, MAX_INDEX

VALUES_MODES = ("auto", "keep", "drop")


class SparseWriter:
    """Base class: subclasses implement ``_write_group``, ``_add_values_column`` and ``_finish``."""

    def __init__(self, path, *, rows_per_group: int = 16_384, compression: str = "none",
                 values: str = "auto", has_weights: bool = False, n_features: int | None = None,
                 hash_bits: int | None = None):
        if rows_per_group < 1:
            raise ConfigError(f"rows_per_group must be >= 1, got {rows_per_group}")
        if values not in VALUES_MODES:
            raise ConfigError(f"values must be one of {VALUES_MODES}, got {values!r}")
        self.path = path
        self.rows_per_group = int(rows_per_group)
        self.compression = compression
        self.values_mode = values
        self.has_weights = has_weights
        self.n_features = n_features
        self.hash_bits = hash_bits  # recorded in the metadata when the ids are hashed
        self.with_values: bool | None = None  # decided by the first group
        self.n_rows = 0
        self.nnz = 0
        self.n_groups = 0
        self.max_index = -1
        self._pending: list[SparseBatch] = []
        self._pending_rows = 0

    # -- public -----------------------------------------------------------------------------
    def write(self, batch: SparseBatch) -> None:
        if batch.weights is not None and not self.has_weights:
            raise ValueError("batch has weights but the writer was created with has_weights=False")
        if batch.n_rows == 0:
            return
        self._pending.append(batch)
        self._pending_rows += batch.n_rows
        while self._pending_rows >= self.rows_per_group:
            whole = concat_batches(self._pending)
            self._emit(slice_rows(whole, 0, self.rows_per_group))
            rest = slice_rows(whole, self.rows_per_group, whole.n_rows)
            self._pending = [rest] if rest.n_rows else []
            self._pending_rows = rest.n_rows

    def close(self, n_features: int | None = None) -> None:
        """Flush the last group and write the metadata; ``n_features`` defaults to max index + 1."""
        if self._pending_rows:
            self._emit(concat_batches(self._pending))
            self._pending, self._pending_rows = [], 0
        if n_features is None:
            n_features = self.n_features if self.n_features is not None else self.max_index + 1
        if self.max_index >= n_features:
            raise ConfigError(f"n_features {n_features} is not above the largest index written, {self.max_index}")
        if self.with_values is None:  # no rows at all
            self.with_values = self.values_mode == "keep"
            self._start()
        self.n_features = int(n_features)
        self._finish()

    def abort(self) -> None:
        """Release resources after an error; the caller removes the temporary output."""

    def metadata(self) -> dict:
        """Dataset-level keys every format stores (docs/formats.md)."""
        return {"n_features": int(self.n_features), "format_version": FORMAT_VERSION,
                "n_rows": int(self.n_rows), "nnz": int(self.nnz),
                **({META_HASH_BITS: int(self.hash_bits)} if self.hash_bits is not None else {})}

    # -- subclass hooks ---------------------------------------------------------------------
    def _start(self) -> None:
        raise NotImplementedError

    def _write_group(self, group: SparseBatch) -> None:
        raise NotImplementedError

    def _add_values_column(self) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    # -- internals --------------------------------------------------------------------------
    def _emit(self, group: SparseBatch) -> None:
        all_ones = group.values is None or bool(np.all(group.values == 1.0))
        if self.with_values is None:
            self.with_values = self.values_mode == "keep" or (self.values_mode == "auto" and not all_ones)
            self._start()
        if not self.with_values and not all_ones:
            if self.values_mode == "drop":
                raise DataFormatError(group.source, "values other than 1.0 cannot be dropped (values='drop')")
            self._add_values_column()
            self.with_values = True
        if group.nnz:
            top = int(group.indices.max())
            if top > MAX_INDEX:
                raise DataFormatError(group.source, f"index {top} does not fit uint32")
            self.max_index = max(self.max_index, top)
        if self.has_weights and group.weights is None:
            group = _with_unit_weights(group)
        self._write_group(group)
        self.n_rows += group.n_rows
        self.nnz += group.nnz
        self.n_groups += 1


def _with_unit_weights(group: SparseBatch) -> SparseBatch:
    from dataclasses import replace

    return replace(group, weights=np.ones(group.n_rows, np.float32))
