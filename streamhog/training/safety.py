"""What keeps a run from losing or corrupting a model: its files are those its checkpoint
recorded, its directory can be written, and the disk keeps room for its checkpoints.

Each checkpoint records every model file's size and a CRC of its content
(_fs/sparse_files.digest). A run that stopped cleanly (a signal, ``stop()``, the end, a
rollback, a failure) left its files exactly as recorded: a resume refuses any difference
(a truncated, replaced or damaged file). A run that was killed (status ``running``) went on
writing its memory maps after its last checkpoint, as it is meant to (the blocks since are
replayed): only the sizes are checked then.

A full disk must never catch a run writing: a write into a hole of a sparse memory-mapped
file that cannot be allocated kills the process (SIGBUS), mid-update. So a run needs room
for its copies (the best epoch's, the snapshots) and a margin before it starts, and a
:class:`SpaceWatch` looks every fraction of a second: when the free space falls under the
margin the run stops at a block boundary with a checkpoint, while there is still room to
write it, and says to free space and resume. The block cache is optional: it stops caching
well before (io/block_cache.py).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .._fs.sparse_files import allocated_bytes, digest
from ..errors import CheckpointError

#: Statuses after which the files are exactly what the record says.
CLEAN = ("interrupted", "complete", "rolled-back", "failed", "diverged")


def verify_files(model, record: dict) -> None:
    """Refuse model files that are not the ones ``record`` was written with."""
    recorded = record.get("files")
    if not recorded:  # a record of an older streamhog: nothing to compare with
        return
    clean = record.get("status") in CLEAN
    for path in model.files():
        want = recorded.get(path.name)
        if want is None:
            continue
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise CheckpointError(f"{path}: missing or unreadable ({exc.strerror}); the checkpoint records "
                                  f"{want['size']:,} bytes") from None
        if size != want["size"]:
            raise CheckpointError(f"{path}: {size:,} bytes, the checkpoint records {want['size']:,}: the file was "
                                  "truncated or replaced; this model cannot be resumed")
        if clean and digest(path, want["stride"])["crc32"] != want["crc32"]:
            raise CheckpointError(f"{path}: its content differs from what the checkpoint recorded (the run "
                                  f"stopped cleanly, status {record['status']}): the file was changed or damaged; "
                                  "this model cannot be resumed")


def check_writable(model_dir: Path, files) -> None:
    """Refuse a directory or model files that cannot be written, before training touches them."""
    for path in [model_dir, *files]:
        if not os.access(path, os.W_OK):
            raise CheckpointError(f"{path}: not writable; a resume writes the model in place (check its permissions)")


def free_bytes(path: Path) -> int:
    """Free space for this process on the filesystem holding ``path``."""
    return shutil.disk_usage(path).free


#: Room a run keeps free beyond its copies: checkpoint records, model.json, and the pages
#: its sparse files still allocate as training touches new features.
MARGIN_BYTES = 64 << 20


def required_bytes(files, copies: int) -> int:
    """Free space a run needs: ``copies`` whole copies of its files as they are now, plus the margin."""
    return copies * sum(allocated_bytes(f) for f in files if f.exists()) + MARGIN_BYTES


class SpaceWatch:
    """Whether the disk holding a model directory still has the room a run needs."""

    def __init__(self, model_dir: Path, files, copies: int):
        self.dir = Path(model_dir)
        self.files = list(files)
        self.copies = copies

    def shortfall(self, extra: int = 0) -> tuple[int, int] | None:
        """(free, needed) bytes when there is not enough room (for ``extra`` bytes more), else None."""
        need = required_bytes(self.files, self.copies) + extra
        free = free_bytes(self.dir)
        return (free, need) if free < need else None

    def message(self, free: int, need: int) -> str:
        return (f"{self.dir}: the disk is almost full ({free / 2**20:,.0f} MiB free, {need / 2**20:,.0f} MiB "
                "needed for the run's checkpoints and copies)")
