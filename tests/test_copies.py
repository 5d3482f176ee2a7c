"""The crash-safe copy protocol (training/copies.py): whole copies of a model — the best
epoch's, rollback snapshots — saved, restored and removed so that a kill at any step leaves
each copy whole under its name or absent."""
from __future__ import annotations

import numpy as np
import pytest

from streamhog._fs.sparse_files import allocated_bytes
from streamhog.training.copies import ModelCopies, finish_interrupted_copies, remove_copy
from streamhog.training.state import RunState


def _record(**kw):
    """A whole checkpoint record, as a run writes it."""
    return dict(RunState(**kw).to_record(), config={}, data={}, status="running")


def test_save_restore_round_trip_keeps_holes(tmp_path):
    live = tmp_path / "model"
    live.mkdir()
    files = []
    for name in ("weights.npy", "accum.npy"):
        arr = np.lib.format.open_memmap(live / name, mode="w+", dtype=np.float32, shape=(1 << 22,))
        arr[[3, 1 << 21]] = (1.5, -2.0)
        arr.flush()
        files.append(live / name)
    copies = ModelCopies(live)
    copies.save(copies.best, files, _record(epoch=1, step=7, bstate=[0.5]))
    for f in files:
        assert (copies.best / f.name).read_bytes() == f.read_bytes()
        assert allocated_bytes(copies.best / f.name) < (1 << 22)  # sparse: not 16 MiB of zeros
    weights = np.load(files[0], mmap_mode="r+")
    weights[:] = 9.0  # training went on
    weights.flush()
    record = copies.restore(copies.best, files)
    assert record["step"] == 7 and record["bstate"] == [0.5]
    assert weights[3] == 1.5 and weights[4] == 0.0  # restored in place: the open map sees it
    copies.remove(copies.best)
    assert not copies.best.exists() and not list(live.glob(".*"))


def test_snapshots_keep_the_newest(tmp_path):
    live = tmp_path / "model"
    live.mkdir()
    (live / "weights.npy").write_bytes(b"w")
    copies = ModelCopies(live)
    for step in (10, 20, 30):
        copies.snapshot([live / "weights.npy"], _record(epoch=1, step=step), keep=2)
    assert [p.name for p in copies.snapshots()] == ["epoch-00001-step-000000000020", "epoch-00001-step-000000000030"]


def _copy_dir(path, content):
    path.mkdir()
    (path / "weights.npy").write_text(content)


@pytest.mark.parametrize("killed", ["writing the copy", "between the renames", "removing the replaced copy",
                                    "deleting a copy"])
def test_a_copy_interrupted_at_any_step_is_finished_or_undone(tmp_path, killed):
    """ModelCopies.save writes .NAME.tmp, moves NAME to .NAME.old, renames the copy in;
    remove_copy hides NAME as .NAME.deleted before deleting it: whatever step a kill falls
    on, the resume leaves NAME whole (old or new) or absent, and no temporaries."""
    name, tmp, old = tmp_path / "best-epoch", tmp_path / ".best-epoch.tmp", tmp_path / ".best-epoch.old"
    if killed == "writing the copy":
        _copy_dir(name, "previous")
        _copy_dir(tmp, "partial")
        expected = "previous"
    elif killed == "between the renames":
        _copy_dir(old, "previous")
        _copy_dir(tmp, "new")
        expected = "new"
    elif killed == "removing the replaced copy":
        _copy_dir(name, "new")
        _copy_dir(old, "previous")
        expected = "new"
    else:
        _copy_dir(tmp_path / ".best-epoch.deleted", "partly deleted")
        expected = None
    finish_interrupted_copies(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if expected is None else ["best-epoch"])
    if expected is not None:
        assert (name / "weights.npy").read_text() == expected
        remove_copy(name)
        assert not list(tmp_path.iterdir())
