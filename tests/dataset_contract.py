"""The contract every dataset class must meet (streamhog/io/dataset.py), as one suite.

A test module subclasses :class:`DatasetContract` and provides ``make(tmp_path, batches,
n_features)``: a dataset holding exactly those rows (block boundaries are the dataset's
own). Every test then checks that dataset against the rows it was given.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from streamhog.errors import StreamhogError
from streamhog.io.batch import SparseBatch, concat_batches
from streamhog.io.dataset import BlockReader, Dataset

from conftest import random_batch

N_FEATURES = 300


def _rows(batch: SparseBatch, n_features: int):
    """(dense X, labels, weights) of a batch, for exact comparison whatever the blocking."""
    return (batch.to_scipy(n_features).toarray(), np.asarray(batch.labels),
            None if batch.weights is None else np.asarray(batch.weights))


class DatasetContract:
    #: Data the class can hold: values (real) and importance weights.
    with_values = True
    with_weights = True

    def make(self, tmp_path, batches: list[SparseBatch], n_features: int):
        raise NotImplementedError

    @pytest.fixture
    def given(self, rng):
        kw = dict(binary=not self.with_values, weights=self.with_weights, max_nnz=12)
        return [random_batch(rng, n, N_FEATURES, **kw) for n in (97, 40, 1, 130, 64)]

    @pytest.fixture
    def ds(self, tmp_path, given):
        return self.make(tmp_path, given, N_FEATURES)

    @staticmethod
    def read_all(ds):
        reader = ds.open_reader()
        try:
            return [reader.read(k) for k in range(ds.n_blocks)]
        finally:
            reader.close()

    # -- what it says about itself -------------------------------------------------------------
    def test_is_a_dataset(self, ds):
        assert isinstance(ds, Dataset)
        assert isinstance(ds.open_reader(), BlockReader)

    def test_shape_and_flags(self, ds, given):
        assert ds.n_rows == sum(b.n_rows for b in given)
        assert ds.n_features == N_FEATURES
        assert ds.has_values == self.with_values and ds.has_weights == self.with_weights
        assert isinstance(ds.format, str) and ds.format
        assert ds.n_blocks == len(ds.block_rows) == len(ds.block_row_start) >= 1
        assert int(np.sum(ds.block_rows)) == ds.n_rows
        np.testing.assert_array_equal(ds.block_row_start, np.concatenate([[0], np.cumsum(ds.block_rows)[:-1]]))

    def test_info_and_descriptions(self, ds):
        info = ds.info()
        assert info["n_rows"] == ds.n_rows and info["n_features"] == ds.n_features
        for k in (0, ds.n_blocks - 1):
            assert isinstance(ds.describe_block(k), str) and ds.describe_block(k)

    # -- what it holds ---------------------------------------------------------------------------
    def test_blocks_hold_the_rows_in_order(self, ds, given):
        blocks = self.read_all(ds)
        for k, b in enumerate(blocks):
            assert b.block == k and b.row_start == ds.block_row_start[k] and b.n_rows == ds.block_rows[k]
            assert b.indices.dtype == np.uint32 and b.indptr.dtype == np.int64 and b.labels.dtype == np.float32
            assert (b.values is not None) == self.with_values and (b.weights is not None) == self.with_weights
            assert b.source
        got, want = _rows(concat_batches(blocks), N_FEATURES), _rows(concat_batches(given), N_FEATURES)
        for a, e in zip(got, want):
            np.testing.assert_array_equal(a, e)

    def test_labels_alone(self, ds, given):
        np.testing.assert_array_equal(np.concatenate(list(ds.iter_labels())),
                                      np.concatenate([b.labels for b in given]))

    def test_blocks_in_any_order_from_concurrent_readers(self, ds):
        expected = self.read_all(ds)
        results, errors = {}, []

        def read(order):
            try:
                reader = ds.open_reader()
                for k in order:
                    results.setdefault(k, []).append(reader.read(k))
                reader.close()
                reader.close()  # twice is safe
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        orders = [np.random.default_rng(s).permutation(ds.n_blocks).tolist() for s in range(4)]
        threads = [threading.Thread(target=read, args=(o,)) for o in orders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        for k, copies in results.items():
            assert len(copies) == 4
            for b in copies:
                np.testing.assert_array_equal(b.indices, expected[k].indices)
                np.testing.assert_array_equal(b.labels, expected[k].labels)

    def test_a_block_out_of_range_is_refused(self, ds):
        reader = ds.open_reader()
        try:
            with pytest.raises((IndexError, StreamhogError)):
                reader.read(ds.n_blocks)
        finally:
            reader.close()
