"""A dataset restricted to some of its blocks: what one cluster worker trains.

:class:`BlockSubset` is a dataset (io/dataset.py; it passes tests/dataset_contract.py)
whose block k is block ``blocks[k]`` of the base dataset, read by the base's own readers
(a Parquet row group is still fetched alone, never the file). Its blocks are numbered and
its rows counted as its own, as the contract wants; :meth:`base_block` and
:meth:`base_row_start` give a block's place in the whole dataset, which is what the
shuffling and the holdout are functions of, so that a worker trains a block exactly as one
machine would.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import ConfigError


class BlockSubset:
    """Blocks ``blocks`` (base block ids, in this order) of ``base``, as a dataset."""

    def __init__(self, base, blocks):
        blocks = np.asarray(blocks, dtype=np.int64).reshape(-1)
        if len(blocks) and (blocks.min() < 0 or blocks.max() >= base.n_blocks):
            raise ConfigError(f"{base.path}: blocks outside [0, {base.n_blocks}) requested")
        self.base = base
        self.blocks = blocks
        self.path = base.path
        self.format = base.format
        for name in ("n_features", "has_values", "has_weights"):
            setattr(self, name, getattr(base, name))
        self.hash_bits = getattr(base, "hash_bits", None)
        self.has_labels = getattr(base, "has_labels", True)
        self.block_rows = np.asarray(base.block_rows, dtype=np.int64)[blocks]
        self.block_row_start = np.concatenate([[0], np.cumsum(self.block_rows)[:-1]]).astype(np.int64)
        self.n_rows = int(self.block_rows.sum())

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    def base_block(self, k: int) -> int:
        return int(self.blocks[k])

    def base_row_start(self, k: int) -> int:
        return int(self.base.block_row_start[self.blocks[k]])

    def open_reader(self) -> "_SubsetReader":
        return _SubsetReader(self)

    def describe_block(self, block: int) -> str:
        return self.base.describe_block(self.base_block(block))

    def iter_labels(self):
        reader = self.open_reader()
        try:
            for k in range(self.n_blocks):
                yield np.asarray(reader.read(k).labels)
        finally:
            reader.close()

    def info(self) -> dict:
        return dict(self.base.info(), n_rows=self.n_rows, n_blocks=self.n_blocks,
                    blocks_of=str(self.base.path))


class _SubsetReader:
    def __init__(self, view: BlockSubset):
        self.view = view
        self._reader = None

    def read(self, block: int):
        if not 0 <= block < self.view.n_blocks:
            raise IndexError(f"{self.view.path}: block {block} outside this worker's {self.view.n_blocks} blocks")
        if self._reader is None:
            self._reader = self.view.base.open_reader()
        batch = self._reader.read(self.view.base_block(block))
        return replace(batch, block=block, row_start=int(self.view.block_row_start[block]))

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
