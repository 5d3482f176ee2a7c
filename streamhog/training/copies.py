"""Whole copies of a model beside it — the best epoch's, rollback snapshots — made and used
so that a kill at any moment leaves each copy whole under its name, or absent.

:meth:`ModelCopies.save` writes ``.NAME.tmp``, then moves an existing NAME aside to
``.NAME.old`` and renames the copy into place; :meth:`ModelCopies.remove` hides NAME as
``.NAME.deleted`` before deleting it. :func:`finish_interrupted_copies` reads what a kill
left: a ``.NAME.old`` means the new copy was whole (put it in place if NAME is missing: the
kill fell between the two renames), a ``.NAME.tmp`` without it may be partial (dropped), as
any ``.NAME.deleted``. Copies are sparse-aware (_fs/sparse_files.py): a 2^33-feature model
copies in the time its written pages take.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from .._fs import sparse_files
from .checkpoint import read_checkpoint, write_checkpoint

SNAPSHOTS = "snapshots"
BEST = "best-epoch"  # a copy of the model of the best epoch so far (early stopping)


def finish_interrupted_copies(root: Path) -> None:
    """Complete or undo the copies that a killed run left in ``root`` (see the module docstring)."""
    if not root.is_dir():
        return
    for gone in root.glob(".*.deleted"):
        shutil.rmtree(gone, ignore_errors=True)
    for old in root.glob(".*.old"):
        dest, tmp = root / old.name[1:-4], root / (old.name[:-4] + ".tmp")
        if not dest.exists():
            (tmp if tmp.is_dir() else old).rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    for tmp in root.glob(".*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)


class ModelCopies:
    """The copies of one model directory: its best epoch (``BEST``) and its snapshots."""

    def __init__(self, model_dir: Path):
        self.root = Path(model_dir)

    @property
    def best(self) -> Path:
        return self.root / BEST

    def finish_interrupted(self) -> None:
        """After a kill: finish or undo the copies it interrupted (best epoch and snapshots)."""
        for root in (self.root, self.root / SNAPSHOTS):
            finish_interrupted_copies(root)

    @staticmethod
    def save(dest: Path, files: list[Path], record: dict) -> None:
        """Copy ``files`` and the checkpoint ``record`` into ``dest``, replacing it only once
        the copy is whole."""
        tmp = dest.parent / f".{dest.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for f in files:
            sparse_files.copy_sparse(f, tmp / f.name)
        write_checkpoint(tmp, record)
        old = dest.parent / f".{dest.name}.old"
        if dest.exists():
            shutil.rmtree(old, ignore_errors=True)  # a stale one would make the rename fail
            dest.rename(old)  # from here until old is gone, tmp is whole: see finish_interrupted_copies
        tmp.rename(dest)
        shutil.rmtree(old, ignore_errors=True)

    @staticmethod
    def restore(src: Path, files: list[Path]) -> dict:
        """Make ``files`` those of the copy in ``src`` (in place: memory maps of them stay
        valid); returns the copy's checkpoint record."""
        record, _ = read_checkpoint(src)
        for f in files:
            sparse_files.restore_sparse(src / f.name, f)  # looked up here: tests replace it
        return record

    @staticmethod
    def remove(path: Path) -> None:
        """Remove a copy so that a kill midway never leaves a partial one under its name."""
        if path.exists():
            gone = path.with_name(f".{path.name}.deleted")
            shutil.rmtree(gone, ignore_errors=True)
            path.rename(gone)
            shutil.rmtree(gone, ignore_errors=True)

    # -- snapshots: rollback points ---------------------------------------------------------
    def snapshots(self) -> list[Path]:
        """Complete snapshots, oldest first (names sort by epoch and step; hidden = being written)."""
        root = self.root / SNAPSHOTS
        return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []

    def snapshot(self, files: list[Path], record: dict, keep: int) -> None:
        """Add a snapshot of ``files`` at ``record``'s epoch and step; keep the newest ``keep``."""
        root = self.root / SNAPSHOTS
        root.mkdir(exist_ok=True)
        self.save(root / f"epoch-{record['epoch']:05d}-step-{record['step']:012d}", files, record)
        for old in self.snapshots()[:-keep]:
            self.remove(old)


remove_copy = ModelCopies.remove
