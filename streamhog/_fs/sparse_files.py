"""Copy and restore sparse files (model weights) without filling in their holes.

A streamhog model's ``weights.npy`` is created with ``np.lib.format.open_memmap`` at the
full size of the hashed feature space, which can be far larger than RAM (32 GiB, say), but
training touches only the features it sees, so most of its pages are never written: the
file is *sparse* and uses a few MiB of disk. A naive copy (``shutil.copyfile``) reads the
holes back as zeros and writes them out, turning every checkpoint into 32 GiB of disk writes
and 32 GiB of disk space. The functions here copy only the regions that hold data (found
with ``SEEK_DATA``/``SEEK_HOLE``), skip all-zero stretches inside them too (a page can be
allocated yet zero), and leave holes everywhere else, so a checkpoint or a rollback costs
about as much as the model's real, non-zero content. Memory stays bounded: data moves in
1 MiB chunks.

Callers should flush a memory-mapped array (``arr.flush()``) before snapshotting it and
must not write to it while it is being copied: what a concurrent writer changes mid-copy
may or may not be in the copy.
"""
from __future__ import annotations

import ctypes
import errno
import os
import secrets
import stat
import sys
from pathlib import Path
from typing import Iterator

from .atomic import durable, fsync_directory

__all__ = ["allocated_bytes", "apparent_size", "data_extents", "copy_sparse", "restore_sparse", "digest", "CHUNK"]

#: Granularity of reads/writes and of the all-zero check; chunks are aligned to multiples of
#: it in the file, so the same stretch is judged the same way in every file.
CHUNK = 1 << 20

_ZEROS = bytes(CHUNK)

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_NOT_SUPPORTED = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL}
_fallocate = None
_fallocate_loaded = False


def apparent_size(path) -> int:
    """Bytes of a file, or of every file under a directory (a Zarr store), as listed by ``ls``."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def allocated_bytes(path) -> int:
    """Bytes the file really occupies on disk (``st_blocks * 512``), holes excluded.

    ``st_size`` counts holes, so it says nothing about what a sparse file costs; this does.
    ``path`` may also be an open file descriptor.
    """
    return os.stat(path).st_blocks * 512


def data_extents(fd_or_path, size=None) -> Iterator[tuple[int, int]]:
    """Yield ``(offset, length)`` of each region of the file that may hold data, in order.

    Regions between them are holes and read as zeros. Found with ``lseek(SEEK_DATA)`` and
    ``lseek(SEEK_HOLE)``; where the platform or filesystem does not support these, the rest
    of the file is reported as one data region (correct, only not sparse). Extents end at
    ``size`` (default: the file's current size). Given a descriptor, this moves its file
    offset (harmless with ``pread``/``pwrite``) and leaves it open.
    """
    if isinstance(fd_or_path, int):
        if size is None:
            size = os.fstat(fd_or_path).st_size
        yield from _extents(fd_or_path, 0, size)
        return
    fd = os.open(fd_or_path, os.O_RDONLY)
    try:
        if size is None:
            size = os.fstat(fd).st_size
        yield from _extents(fd, 0, size)
    finally:
        os.close(fd)


def _extents(fd: int, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Data regions of ``fd`` clipped to ``[start, end)``."""
    seek_data = getattr(os, "SEEK_DATA", None)
    seek_hole = getattr(os, "SEEK_HOLE", None)
    pos = start
    while pos < end:
        if seek_data is None or seek_hole is None:
            yield pos, end - pos
            return
        try:
            data = os.lseek(fd, pos, seek_data)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data at or after pos (or pos is past EOF)
                return
            yield pos, end - pos  # SEEK_DATA unsupported here: treat the rest as data
            return
        if data >= end:
            return
        try:
            hole = os.lseek(fd, data, seek_hole)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # the file shrank under us
                return
            hole = end
        hole = min(hole, end)
        if hole <= data:  # defensive: never loop forever on a confused filesystem
            hole = end
        yield data, hole - data
        pos = hole


def _pread_full(fd: int, length: int, offset: int) -> bytes:
    """``pread`` that retries short reads; returns less only at end of file."""
    buf = os.pread(fd, length, offset)
    if len(buf) == length or not buf:
        return buf
    parts = [buf]
    got = len(buf)
    while got < length:
        more = os.pread(fd, length - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _pwrite_full(fd: int, data, offset: int) -> None:
    """``pwrite`` that retries short writes."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def _is_zero(buf: bytes) -> bool:
    return buf == (_ZEROS if len(buf) == CHUNK else bytes(len(buf)))


def _chunks(fd: int, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset, data)`` for every chunk of the data regions in ``[start, end)``.

    Chunks are cut at multiples of ``CHUNK`` so all-zero checks line up across files.
    """
    for off, length in _extents(fd, start, end):
        pos, stop = off, off + length
        while pos < stop:
            n = min(stop, (pos // CHUNK + 1) * CHUNK) - pos
            buf = _pread_full(fd, n, pos)
            if buf:
                yield pos, buf
            if len(buf) < n:  # end of file came early (the file shrank)
                return
            pos += n


def _nonzero_chunks(fd: int, size: int) -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset, data)`` for the chunks of ``[0, size)`` that hold a non-zero byte."""
    for pos, buf in _chunks(fd, 0, size):
        if not _is_zero(buf):
            yield pos, buf


#: What a digest reads at most: larger files are read one chunk in ``stride`` (a whole
#: model is read up to 256 MiB; beyond, enough of it to catch damage that spans chunks).
DIGEST_BUDGET = 256 << 20


def digest(path, stride: int | None = None) -> dict:
    """A cheap fingerprint of a (sparse) file's content: its size and a CRC-32 of its
    non-zero chunks with their offsets — holes and allocated zeros alike count as zeros, so
    it does not depend on how the file is laid out on disk. ``stride`` (chosen from the
    allocated size when None, and recorded) reads one chunk in ``stride``."""
    import zlib

    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if stride is None:
            stride = max(1, -(-allocated_bytes(fd) // DIGEST_BUDGET))
        crc = 0
        for pos, buf in _nonzero_chunks(fd, size):
            if (pos // CHUNK) % stride == 0:
                crc = zlib.crc32(buf, zlib.crc32(pos.to_bytes(8, "little"), crc))
    finally:
        os.close(fd)
    return {"size": size, "crc32": crc, "stride": stride}




def copy_sparse(src, dst, *, fsync: bool = True) -> int:
    """Copy ``src`` to ``dst`` writing only the non-zero data; return the bytes written.

    ``dst`` is replaced atomically: the copy is written to a temporary file beside it,
    fsynced, renamed over ``dst`` and the directory fsynced, so a crash or error leaves
    either the old ``dst`` or the complete new one, never a partial file, and no temporary.
    Holes and all-zero chunks of ``src`` become holes in ``dst``. The permission bits are
    copied. ``fsync=False`` skips both fsyncs (faster; not crash-safe).
    """
    dst = Path(dst)
    src_fd = os.open(src, os.O_RDONLY)  # fails (e.g. missing src) before anything is created
    try:
        st = os.fstat(src_fd)
        size = st.st_size
        tmp = dst.parent / f".{dst.name}.sparse-tmp-{os.getpid()}-{secrets.token_hex(4)}"
        tmp_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                os.fchmod(tmp_fd, stat.S_IMODE(st.st_mode))
                os.ftruncate(tmp_fd, size)  # final size up front: everything unwritten is a hole
                written = 0
                for pos, buf in _nonzero_chunks(src_fd, size):
                    _pwrite_full(tmp_fd, buf, pos)
                    written += len(buf)
                if fsync and durable():
                    os.fsync(tmp_fd)
            finally:
                os.close(tmp_fd)
            os.replace(tmp, dst)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
    finally:
        os.close(src_fd)
    if fsync:
        fsync_directory(dst.parent)
    return written


def _load_fallocate():
    global _fallocate, _fallocate_loaded
    if not _fallocate_loaded:
        _fallocate_loaded = True
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fn = getattr(libc, "fallocate64", None) or getattr(libc, "fallocate", None)
            except OSError:
                fn = None
            if fn is not None:
                fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
                fn.restype = ctypes.c_int
                _fallocate = fn
    return _fallocate


def _punch_hole(fd: int, offset: int, length: int) -> bool:
    """Deallocate ``[offset, offset+length)`` so it reads as zeros, keeping the file size.

    Returns False where hole punching is not available (the caller writes zeros instead).
    Partial blocks at the ends are zeroed by the filesystem. The page cache, and so any
    memory map of the range, is invalidated by the kernel and reads zeros afterwards.
    """
    fn = _load_fallocate()
    if fn is None:
        return False
    if fn(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) == 0:
        return True
    err = ctypes.get_errno()
    if err in _NOT_SUPPORTED:
        return False
    raise OSError(err, f"fallocate(PUNCH_HOLE) failed: {os.strerror(err)}")


def restore_sparse(snapshot, live, *, fsync: bool = True) -> int:
    """Make ``live`` byte-identical to ``snapshot`` in place; return the bytes written.

    ``live`` keeps its inode (it may be memory-mapped by the caller, e.g. the model's open
    weights, and a rename would leave that map pointing at the old data): chunks where the
    snapshot has non-zero data are written only where ``live`` differs, and regions where
    ``live`` holds data but the snapshot is a hole or zero are punched out
    (``fallocate(PUNCH_HOLE)``) or, where that is unsupported, overwritten with zeros.
    Both files must have the same size (``ValueError`` otherwise). Not atomic: if it fails
    midway ``live`` is a mix, and running it again completes the restore.
    """
    snap_fd = os.open(snapshot, os.O_RDONLY)
    try:
        live_fd = os.open(live, os.O_RDWR)
        try:
            size = os.fstat(snap_fd).st_size
            live_size = os.fstat(live_fd).st_size
            if size != live_size:
                raise ValueError(
                    f"{live}: size {live_size} differs from the snapshot {snapshot} ({size}); "
                    "restore_sparse does not resize"
                )
            state = {"punch": True, "written": 0}
            cursor = 0  # everything before it is already restored
            for pos, buf in _nonzero_chunks(snap_fd, size):
                if pos > cursor:
                    _zero_range(live_fd, cursor, pos, state)
                current = _pread_full(live_fd, len(buf), pos)
                if current != buf:
                    _pwrite_full(live_fd, buf, pos)
                    state["written"] += len(buf)
                cursor = pos + len(buf)
            if cursor < size:
                _zero_range(live_fd, cursor, size, state)
            if fsync and durable():
                os.fsync(live_fd)
            return state["written"]
        finally:
            os.close(live_fd)
    finally:
        os.close(snap_fd)


def zero_data(path, start: int = 0, *, fsync: bool = True) -> int:
    """Make bytes ``[start, size)`` of ``path`` read as zeros in place (holes punched over its
    data regions, or zeros written where punching is unsupported); returns the bytes written.
    Memory maps of the file read zeros afterwards."""
    fd = os.open(path, os.O_RDWR)
    try:
        state = {"punch": True, "written": 0}
        _zero_range(fd, start, os.fstat(fd).st_size, state)
        if fsync and durable():
            os.fsync(fd)
        return state["written"]
    finally:
        os.close(fd)


def _zero_range(fd: int, start: int, end: int, state: dict) -> None:
    """Make ``[start, end)`` of ``fd`` read as zeros, touching only its data regions."""
    # Lazy is safe: each punch lies before the position the next SEEK_DATA starts from.
    for off, length in _extents(fd, start, end):
        if state["punch"]:
            if _punch_hole(fd, off, length):
                continue
            state["punch"] = False  # unsupported on this filesystem: write zeros from now on
        for pos, buf in _chunks(fd, off, off + length):
            if not _is_zero(buf):
                _pwrite_full(fd, memoryview(_ZEROS)[: len(buf)], pos)
                state["written"] += len(buf)
