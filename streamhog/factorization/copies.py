"""The best epoch's arrays, kept aside while early stopping watches a holdout or --valid.

Factor files are large, and epochs on small sets take milliseconds: writing a new copy and
unlinking the old one after every improving epoch cost more than the epochs on a loaded
disk. So the copy alternates between two slots, ``best-epoch/0`` and ``best-epoch/1``,
rewritten in place, and a slot is flushed to disk just before a checkpoint record names it
(the record also holds the best epoch's number and score). A copy is always written into
the slot the newest record does not name, so a kill at any moment leaves the named one
whole.

Copies follow the data extents (SEEK_DATA / SEEK_HOLE): ranges with data are copied by the
kernel (``copy_file_range``), neighbouring ones merged when less than MERGE_GAP apart, and
ranges with data only in the target are punched out. A 128 GiB factor file that training
touched in a few places copies in the time those places take, and the copy stays sparse.

MERGE_GAP trades system calls for zeros written into the copy. It was 256 KiB: MovieLens's
item factors under implicit feedback (13.9 MB of data in 1,683 extents over a 49.6 MB file)
then copied as 43.6 MB, and rows scattered over a 2^31-row file at gaps under 256 KiB would
have filled the copy with the file's whole size in zeros. Copied extent by extent (no
merging) the copy is exactly as sparse (13.9 MB, 7.9 ms against 14.9 ms alone), but a
Python call and a system call or two per extent made the MovieLens defaults' training call
slower (0.33-0.46 s against 0.23-0.27 s). At 16 KiB: 21.2 MB in 8.5 ms, the call as before
(0.28-0.30 s against 0.25-0.30 s in the same runs), and a copy holds at most 16 KiB of
zeros per data extent.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .._fs.atomic import fsync, fsync_directory
from .._fs.sparse_files import _zero_range, data_extents

BEST = "best-epoch"
#: Data extents closer than this are copied as one range (the gap as zeros).
MERGE_GAP = 16 << 10


class BestEpochCopies:
    """The two slots under ``root``; ``durable`` is the slot the newest record names."""

    def __init__(self, root: Path, files, durable: int | None):
        self.root = Path(root)
        self.files = files  # a callable: the model's array files
        self.durable = durable

    def save(self) -> int:
        """Copy the arrays into the slot no record names; returns it."""
        slot = 0 if self.durable is None else 1 - self.durable
        dest = self.root / str(slot)
        dest.mkdir(parents=True, exist_ok=True)
        for f in self.files():
            sync_file(f, dest / f.name)
        return slot

    def before_record(self, slot: int | None) -> None:
        """Make ``slot`` durable before a checkpoint record names it."""
        if slot is not None and slot != self.durable:
            fsync_files(self.root / str(slot))

    def after_record(self, slot: int | None) -> None:
        self.durable = slot

    def restore(self, slot: int) -> None:
        """Put the slot's arrays in place of the model's, in place (the maps stay valid; the
        caller's next checkpoint flushes them)."""
        for f in self.files():
            sync_file(self.root / str(slot) / f.name, f)

    def remove(self) -> None:
        remove_copy(self.root)


def merged_extents(fd: int, size: int, gap: int = MERGE_GAP) -> list[tuple[int, int]]:
    """The file's data extents as (start, end), those less than ``gap`` apart merged."""
    out: list[list[int]] = []
    for off, length in data_extents(fd, size):
        if out and off - out[-1][1] < gap:
            out[-1][1] = off + length
        else:
            out.append([off, off + length])
    return [(a, b) for a, b in out]


def sync_file(src: Path, dst: Path) -> None:
    """Make ``dst`` read exactly as ``src``, in place (same inode: a memory map of it stays
    valid and sees the new content), copying only ``src``'s data extents, in the kernel, and
    punching out what ``dst`` holds elsewhere. No fsync: the caller makes it durable. A
    missing ``dst`` is created (sparse, at ``src``'s size)."""
    s_fd = os.open(src, os.O_RDONLY)
    try:
        d_fd = os.open(dst, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            size = os.fstat(s_fd).st_size
            if os.fstat(d_fd).st_size != size:
                os.ftruncate(d_fd, size)  # a new slot file: all hole until copied into
            ranges = merged_extents(s_fd, size)
            state = {"punch": True, "written": 0}
            cursor = 0
            for a, b in ranges:
                if a > cursor:
                    _zero_range(d_fd, cursor, a, state)  # only where dst has data
                pos = a
                while pos < b:
                    n = os.copy_file_range(s_fd, d_fd, b - pos, pos, pos)
                    if n <= 0:
                        raise OSError(f"{src}: copy_file_range copied nothing at offset {pos}")
                    pos += n
                cursor = b
            if cursor < size:
                _zero_range(d_fd, cursor, size, state)
        finally:
            os.close(d_fd)
    finally:
        os.close(s_fd)


def fsync_files(directory: Path) -> None:
    """Flush every file of ``directory`` and the directory itself to disk."""
    for f in directory.iterdir():
        fd = os.open(f, os.O_RDONLY)
        try:
            fsync(fd)
        finally:
            os.close(fd)
    fsync_directory(directory)


def remove_copy(path: Path) -> None:
    """Hide, then delete: a kill midway never leaves a partial copy under its name."""
    if path.exists():
        gone = path.with_name(f".{path.name}.deleted")
        shutil.rmtree(gone, ignore_errors=True)
        path.rename(gone)
        shutil.rmtree(gone, ignore_errors=True)
