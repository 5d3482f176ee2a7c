"""The block cache: exact round trip, mixed cached/decoded reads, damaged files refused,
and training through it equals training without it (one thread: bit for bit)."""
from __future__ import annotations

import numpy as np
import pytest

import streamhog
from streamhog.io.batch import concat_batches
from streamhog.errors import DataFormatError
from streamhog.io.formats import create_writer, open_dataset
from streamhog.io.block_cache import BlockCache

from conftest import random_batch


@pytest.fixture
def dataset(tmp_path, rng):
    w = create_writer("parquet", tmp_path / "d.parquet", rows_per_group=100, has_weights=True)
    for _ in range(5):
        w.write(random_batch(rng, 97, 300, weights=True, max_nnz=12))
    w.close(300)
    return open_dataset(tmp_path / "d.parquet")


def read_all(ds):
    r = ds.open_reader()
    out = [r.read(k) for k in range(ds.n_blocks)]
    r.close()
    return out


def test_round_trip_and_mixed_reads(dataset, tmp_path):
    cache = BlockCache(tmp_path / "cache", dataset)
    originals = read_all(dataset)
    for b in originals[::2]:  # half the blocks cached: the rest must still be read (decoded)
        cache.put(b)
    assert not cache.complete()
    mixed = read_all(cache.as_dataset())
    for a, b in zip(originals, mixed):
        for name in ("indptr", "indices", "values", "labels", "weights"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert (a.row_start, a.block) == (b.row_start, b.block)
    for b in originals[1::2]:
        cache.offer(b)  # the background writer
    cache.close()
    assert cache.complete()
    cached = read_all(cache.as_dataset())
    assert all("cached" in b.source and not b.indices.flags.writeable for b in cached)
    np.testing.assert_array_equal(concat_batches(cached).indices, concat_batches(originals).indices)


def test_damaged_cache_file_is_refused(dataset, tmp_path):
    cache = BlockCache(tmp_path / "cache", dataset)
    b = read_all(dataset)[1]
    cache.put(b)
    path = cache.path(1)
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(DataFormatError, match="block-cache file is damaged"):
        cache.as_dataset().open_reader().read(1)


def test_training_through_the_cache_is_bit_identical(tmp_path):
    from streamhog.datasets import a9a

    streamhog.convert(a9a("train"), tmp_path / "a.parquet", rows_per_group=2000)
    kw = dict(epochs=3, threads=1, seed=2, quiet=True)
    with_cache = streamhog.train(tmp_path / "a.parquet", tmp_path / "c", cache=True, keep_cache=True, **kw)
    without = streamhog.train(tmp_path / "a.parquet", tmp_path / "n", cache=False, **kw)
    assert (tmp_path / "c" / "weights.npy").read_bytes() == (tmp_path / "n" / "weights.npy").read_bytes()
    assert with_cache.intercept == without.intercept
    # kept on request (the writer may drop a block when its queue is full: a later epoch caches it)
    assert 0 < len(list((tmp_path / "c" / "cache").glob("block-*.bin"))) <= 17
    assert not (tmp_path / "n" / "cache").exists()
    streamhog.train(tmp_path / "a.parquet", tmp_path / "d", cache=True, **kw)
    assert not (tmp_path / "d" / "cache").exists()  # removed at the end by default


def test_concurrent_first_offers_start_one_writer_and_close_returns(dataset, tmp_path):
    """Issue 20: offer() checked for a writer and started one without a lock, so consumers
    offering their first blocks at once started several (and close() joined only the last:
    it could block forever). The writer is started once; close() returns."""
    import sys
    import threading

    blocks = read_all(dataset)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: widen any race
    try:
        for trial in range(100):
            cache = BlockCache(tmp_path / f"cache{trial}", dataset, queue_size=8)
            go = threading.Barrier(4)

            def offer(b):
                go.wait()
                cache.offer(b)

            threads = [threading.Thread(target=offer, args=(b,)) for b in blocks[:4]]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            writers = [t for t in threading.enumerate() if t.name == "streamhog-cache-writer"]
            assert len(writers) == 1, f"trial {trial}: {len(writers)} writer threads"
            closer = threading.Thread(target=cache.close, daemon=True)
            closer.start()
            closer.join(30)
            assert not closer.is_alive(), f"trial {trial}: close() did not return"
            assert not [t for t in threading.enumerate() if t.name == "streamhog-cache-writer"]
            assert all(cache.has(b.block) for b in blocks[:4])  # every offer was written
    finally:
        sys.setswitchinterval(old)
