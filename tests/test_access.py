"""The memory maps of sparse model files carry MADV_RANDOM (streamhog/_fs/access.py): a page
fault brings in that page only, not its neighbours; a file that is mostly data keeps the
kernel's readahead. Read back from /proc/self/smaps (the mapping's VmFlags, "rr") and
mincore (the file's pages in the page cache)."""
from __future__ import annotations

import ctypes
import mmap
import sys

import numpy as np
import pytest

from streamhog.factorization.model import MFModel
from streamhog.model.directory import Model

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or not hasattr(mmap, "MADV_RANDOM"),
                                reason="madvise advice and /proc/self/smaps are Linux's")


def _mappings(path) -> list[set]:
    """The VmFlags of each mapping of ``path`` in this process (/proc/self/smaps)."""
    out, mine = [], False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and not head[0].endswith(":"):  # a mapping's header line
                mine = len(head) >= 6 and " ".join(head[5:]) == str(path)
            elif mine and head[0] == "VmFlags:":
                out.append(set(head[1:]))
    return out


def _assert_random(paths, random=True):
    for p in paths:
        maps = _mappings(p.resolve())
        assert maps, f"{p} is not mapped"
        assert all(("rr" in flags) == random for flags in maps), (p, random, maps)


@pytest.mark.parametrize("optimizer", ["normalized", "adagrad", "sgd"])  # records; a file per array; weights only
def test_linear_model_maps_are_random_access(tmp_path, optimizer):
    # 2^27 features: above the size whose blocks a new model allocates up front (_reserve)
    model = Model.create(tmp_path / "m", n_features=1 << 27, loss="logistic", optimizer=optimizer)
    _assert_random(model.files())
    model.save_meta()
    del model
    for mode in ("r", "r+"):
        opened = Model.open(tmp_path / "m", mode=mode)
        _assert_random(opened.files())
        del opened


def test_factor_model_maps_are_random_access(tmp_path):
    model = MFModel.create(tmp_path / "mf", n_users=1 << 20, n_items=1 << 18, rank=8, optimizer="rowwise-adagrad")
    _assert_random(model.files())
    del model
    for mode in ("r", "r+"):
        opened = MFModel.open(tmp_path / "mf", mode=mode)
        _assert_random(opened.files())
        del opened


def test_a_model_file_mostly_data_keeps_readahead(tmp_path):
    """Filled, the factor files are mostly data: a cold read of one is fastest with readahead."""
    model = MFModel.create(tmp_path / "mf", n_users=20_000, n_items=100_000, rank=16, optimizer="sgd")
    model.arrays["user_factors"][:] = 0.5
    model.arrays["user_bias"][:] = 0.5
    model.flush()
    del model
    opened = MFModel.open(tmp_path / "mf")
    _assert_random([tmp_path / "mf" / "user_factors.npy", tmp_path / "mf" / "user_bias.npy"], random=False)
    _assert_random([tmp_path / "mf" / "item_factors.npy", tmp_path / "mf" / "item_bias.npy"])  # never written
    assert np.all(opened.arrays["user_factors"] == 0.5)


def _resident_pages(arr) -> int:
    """Pages of ``arr``'s file range in the page cache (mincore), whether this process maps them or not."""
    libc = ctypes.CDLL(None, use_errno=True)
    page = mmap.PAGESIZE
    start = arr.ctypes.data - arr.ctypes.data % page
    length = arr.ctypes.data + arr.nbytes - start
    vec = (ctypes.c_ubyte * (-(-length // page)))()
    if libc.mincore(ctypes.c_void_p(start), ctypes.c_size_t(length), vec) != 0:
        raise OSError(ctypes.get_errno(), "mincore")
    return int(np.count_nonzero(np.frombuffer(vec, np.uint8) & 1))


def test_scattered_first_writes_bring_in_their_pages_only(tmp_path):
    """2,000 rows far apart in a 2^26 x 16 factor file (4 GiB, sparse): with readahead each
    first write would also read in (zero-fill) tens of neighbouring hole pages."""
    model = MFModel.create(tmp_path / "mf", n_users=1 << 26, n_items=1, rank=16, optimizer="sgd")
    P = model.arrays["user_factors"]
    rows = np.unique(np.random.default_rng(0).integers(0, P.shape[0], 2000))
    P[rows] = 1.0
    resident = _resident_pages(P)
    assert resident <= len(rows) + 16, f"{resident} pages in the page cache for {len(rows)} written"
    assert np.all(P[rows] == 1.0) and P.sum() == 16 * len(rows)
