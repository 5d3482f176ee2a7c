"""Every dataset class streamhog has passes the dataset contract (tests/dataset_contract.py)."""
from __future__ import annotations

from streamhog.io.block_cache import BlockCache
from streamhog.io.formats import create_writer, open_dataset

from dataset_contract import DatasetContract


def _write(fmt, path, batches, n_features, **kw):
    w = create_writer(fmt, path, has_weights=any(b.weights is not None for b in batches), **kw)
    for b in batches:
        w.write(b)
    w.close(n_features)
    return open_dataset(path)


class TestParquetPacked(DatasetContract):
    def make(self, tmp_path, batches, n_features):
        return _write("parquet", tmp_path / "d.parquet", batches, n_features, rows_per_group=60)


class TestParquetList(DatasetContract):
    def make(self, tmp_path, batches, n_features):
        return _write("parquet", tmp_path / "d.parquet", batches, n_features, rows_per_group=50, layout="list")


class TestParquetDirectoryBinary(DatasetContract):
    with_values = False
    with_weights = False

    def make(self, tmp_path, batches, n_features):
        d = tmp_path / "d"
        d.mkdir()
        for i, part in enumerate((batches[:2], batches[2:])):
            _write("parquet", d / f"part-{i}.parquet", part, n_features, rows_per_group=45)
        return open_dataset(d)


class TestZarr(DatasetContract):
    def make(self, tmp_path, batches, n_features):
        return _write("zarr", tmp_path / "d.zarr", batches, n_features, rows_per_group=64)


class TestBlockCacheHalfFilled(DatasetContract):
    def make(self, tmp_path, batches, n_features):
        base = _write("parquet", tmp_path / "d.parquet", batches, n_features, rows_per_group=40)
        cache = BlockCache(tmp_path / "cache", base)
        reader = base.open_reader()
        for k in range(0, base.n_blocks, 2):  # cached and decoded blocks mixed
            cache.put(reader.read(k))
        reader.close()
        return cache.as_dataset()
