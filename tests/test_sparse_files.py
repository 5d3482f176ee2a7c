from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from streamhog._fs import sparse_files
from streamhog._fs.sparse_files import (
    CHUNK,
    allocated_bytes,
    copy_sparse,
    data_extents,
    restore_sparse,
)

GiB = 1 << 30
MiB = 1 << 20


def make_sparse(path, size, writes):
    """A file of ``size`` bytes (all holes) with ``writes`` = [(offset, bytes)] written."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, size)
        for off, data in writes:
            os.pwrite(fd, data, off)
    finally:
        os.close(fd)
    return path


def read_at(path, off, n):
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(n)


def assert_identical(a, b):
    """Byte-compare two (sparse) files: every region that is data in either is compared,
    the rest is a hole in both and so zero in both."""
    assert os.path.getsize(a) == os.path.getsize(b)
    regions = sorted(list(data_extents(a)) + list(data_extents(b)))
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for off, length in regions:
            for pos in range(off, off + length, 4 * MiB):
                n = min(4 * MiB, off + length - pos)
                fa.seek(pos)
                fb.seek(pos)
                assert fa.read(n) == fb.read(n), f"differ in [{pos}, {pos + n})"


def pattern(n, seed):
    return np.random.default_rng(seed).integers(1, 256, n, dtype=np.uint8).tobytes()


@pytest.fixture
def scattered(tmp_path):
    writes = [
        (0, b"header" * 10),
        (123_456_789, pattern(10_000, 1)),  # unaligned
        (300 * MiB, pattern(3 * MiB, 2)),  # spans several chunks
        (GiB - 4096 + 17, pattern(4096 - 17, 3)),  # up to the very last byte
    ]
    return make_sparse(tmp_path / "src.bin", GiB, writes), writes


def test_data_extents_cover_the_writes(scattered):
    src, writes = scattered
    extents = list(data_extents(src))
    assert extents == sorted(extents)
    assert sum(length for _, length in extents) < 16 * MiB
    for off, data in writes:
        assert any(o <= off and off + len(data) <= o + n for o, n in extents)
    fd = os.open(src, os.O_RDONLY)
    try:
        assert list(data_extents(fd)) == extents
        assert list(data_extents(fd, size=200 * MiB)) == [e for e in extents if e[0] < 200 * MiB]
    finally:
        os.close(fd)


def test_copy_sparse_scattered_regions(tmp_path, scattered):
    src, writes = scattered
    dst = tmp_path / "dst.bin"
    written = copy_sparse(src, dst)
    assert os.path.getsize(dst) == GiB
    for off, data in writes:
        assert read_at(dst, off, len(data)) == data
    assert_identical(src, dst)
    assert allocated_bytes(dst) < 12 * MiB
    assert written < 12 * MiB
    assert read_at(dst, GiB - 1, 10) == writes[-1][1][-1:]
    assert not [p for p in os.listdir(tmp_path) if "tmp" in p]


def test_copy_small_file_fully_compared(tmp_path):
    size = 9 * MiB + 12345
    writes = [(5, b"x"), (2 * MiB - 3, pattern(10, 4)), (size - 1, b"\x01")]
    src = make_sparse(tmp_path / "s", size, writes)
    dst = tmp_path / "d"
    dst.write_bytes(b"old content that is longer than nothing" * 1000)
    copy_sparse(src, dst, fsync=False)
    assert dst.read_bytes() == src.read_bytes()
    # Empty file.
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert copy_sparse(empty, tmp_path / "empty2") == 0
    assert (tmp_path / "empty2").read_bytes() == b""


def test_allocated_zero_region_is_not_copied(tmp_path):
    src = tmp_path / "src.bin"
    data = pattern(1000, 5)
    make_sparse(src, 64 * MiB, [(8 * MiB, bytes(4 * MiB)), (20 * MiB, data)])
    assert allocated_bytes(src) >= 4 * MiB  # really allocated, not a hole
    dst = tmp_path / "dst.bin"
    written = copy_sparse(src, dst)
    assert 1000 <= written <= CHUNK  # only (the data extent within) the chunk with the 1000 bytes
    assert allocated_bytes(dst) <= 2 * MiB
    assert all(o + n <= 8 * MiB or o >= 12 * MiB for o, n in data_extents(dst))
    assert_identical(src, dst)
    assert dst.read_bytes() == src.read_bytes()


def test_data_extents_fallback_without_seek_data(tmp_path, monkeypatch):
    src = make_sparse(tmp_path / "s", 10 * MiB, [(3 * MiB, b"abc")])
    real_lseek = os.lseek

    def lseek(fd, pos, how):
        if how in (os.SEEK_DATA, os.SEEK_HOLE):
            raise OSError(errno.EINVAL, "not supported")
        return real_lseek(fd, pos, how)

    monkeypatch.setattr(os, "lseek", lseek)
    assert list(data_extents(src)) == [(0, 10 * MiB)]
    dst = tmp_path / "d"
    assert copy_sparse(src, dst) == CHUNK  # zero-skip still keeps the copy sparse
    assert dst.read_bytes() == src.read_bytes()
    assert allocated_bytes(dst) <= 2 * MiB


def make_restore_case(tmp_path):
    size = 256 * MiB
    snap_writes = [
        (0, pattern(5000, 10)),
        (50 * MiB + 7, pattern(3 * MiB, 11)),
        (size - 100, pattern(100, 12)),
    ]
    snap = make_sparse(tmp_path / "snap.bin", size, snap_writes)
    live = tmp_path / "live.bin"
    copy_sparse(snap, live)
    # Diverge: new regions (holes in the snapshot), changes to old ones, a zeroed old region.
    fd = os.open(live, os.O_RDWR)
    try:
        os.pwrite(fd, pattern(2 * MiB, 13), 100 * MiB + 3)  # new, in a snapshot hole
        os.pwrite(fd, pattern(10, 14), 7 * MiB)  # new, small
        os.pwrite(fd, pattern(4096, 15), 51 * MiB)  # modifies old data
        os.pwrite(fd, bytes(100), 0)  # zeroes part of old data
        os.pwrite(fd, pattern(50, 16), size - 50)  # modifies the very end
    finally:
        os.close(fd)
    return snap, live


def test_restore_sparse_in_place(tmp_path):
    snap, live = make_restore_case(tmp_path)
    ino = os.stat(live).st_ino
    mm = np.memmap(live, dtype=np.uint8, mode="r+")
    assert mm[100 * MiB + 3] != 0 or mm[100 * MiB + 4] != 0  # touch the pages before restoring
    written = restore_sparse(snap, live)
    assert os.stat(live).st_ino == ino
    assert_identical(snap, live)
    assert written <= 4 * MiB  # only the chunks that differ and hold snapshot data
    snap_mm = np.memmap(snap, dtype=np.uint8, mode="r")
    for off, n in [(0, 6000), (7 * MiB, 10), (50 * MiB, 5 * MiB), (100 * MiB, 3 * MiB), (len(mm) - 200, 200)]:
        np.testing.assert_array_equal(mm[off : off + n], snap_mm[off : off + n])
    del mm, snap_mm
    assert allocated_bytes(live) < allocated_bytes(snap) + 2 * MiB  # new regions were punched out
    # Idempotent: nothing left to write.
    assert restore_sparse(snap, live) == 0


def test_restore_sparse_without_hole_punching(tmp_path, monkeypatch):
    monkeypatch.setattr(sparse_files, "_punch_hole", lambda fd, off, length: False)
    snap, live = make_restore_case(tmp_path)
    ino = os.stat(live).st_ino
    mm = np.memmap(live, dtype=np.uint8, mode="r")
    restore_sparse(snap, live, fsync=False)
    assert os.stat(live).st_ino == ino
    assert_identical(snap, live)
    assert mm[100 * MiB + 3 : 102 * MiB + 3].max() == 0
    del mm


def test_restore_sparse_size_mismatch(tmp_path):
    a = make_sparse(tmp_path / "a", 10 * MiB, [(0, b"a")])
    b = make_sparse(tmp_path / "b", 11 * MiB, [(0, b"b")])
    with pytest.raises(ValueError):
        restore_sparse(a, b)
    assert read_at(b, 0, 1) == b"b"


def test_npy_memmap_copy(tmp_path):
    src = tmp_path / "weights.npy"
    w = np.lib.format.open_memmap(src, mode="w+", dtype=np.float32, shape=(2**28,))
    idx = np.array([0, 1, 17, 123_456, 2**27 + 5, 2**28 - 1])
    w[idx] = np.arange(1, len(idx) + 1, dtype=np.float32) * 0.5
    w.flush()
    del w
    dst = tmp_path / "snapshot" / "weights.npy"
    dst.parent.mkdir()
    assert copy_sparse(src, dst) <= 8 * MiB
    assert allocated_bytes(dst) <= 8 * MiB
    a = np.load(src, mmap_mode="r")
    b = np.load(dst, mmap_mode="r")
    assert a.shape == b.shape == (2**28,) and a.dtype == b.dtype == np.float32
    np.testing.assert_array_equal(b[idx], a[idx])
    assert_identical(src, dst)  # every data region of either file, header included
    del a, b


def test_missing_src_leaves_dst_untouched(tmp_path):
    dst = tmp_path / "dst.bin"
    dst.write_bytes(b"previous snapshot")
    with pytest.raises(FileNotFoundError):
        copy_sparse(tmp_path / "missing.bin", dst)
    assert dst.read_bytes() == b"previous snapshot"
    assert sorted(os.listdir(tmp_path)) == ["dst.bin"]


def test_failure_midway_leaves_dst_untouched(tmp_path, monkeypatch):
    src = make_sparse(tmp_path / "src.bin", 16 * MiB, [(0, b"a"), (5 * MiB, b"b"), (9 * MiB, b"c")])
    dst = tmp_path / "dst.bin"
    dst.write_bytes(b"previous snapshot")
    real_pwrite = os.pwrite
    calls = []

    def failing_pwrite(fd, data, off):
        calls.append(off)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, off)

    monkeypatch.setattr(os, "pwrite", failing_pwrite)
    with pytest.raises(OSError):
        copy_sparse(src, dst)
    monkeypatch.undo()
    assert dst.read_bytes() == b"previous snapshot"
    assert sorted(os.listdir(tmp_path)) == ["dst.bin", "src.bin"]
