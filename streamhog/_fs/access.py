"""Tell the kernel that a model's memory maps are read and written at random.

Training and scoring touch a model's rows in the order of hashed ids or shuffled examples,
never in file order. By default Linux answers a page fault on a file mapping with
*readahead*: it reads in the pages around the faulting one as well (zero-filling those that
are holes). In a sparse model file that is almost all waste, and it grows with the file: on
this project's ext4 VM, 100,000 rows scattered over a 2^31 x 16 factor file (128 GiB
apparent) took 41 s to write for the first time, 412 us a page, nearly all of it the
kernel zeroing read-ahead hole pages; with ``MADV_RANDOM`` 0.5-1.0 s. A Criteo sample of
8,000 rows trained at ``--hash-bits 30`` in 35 s against 1 s at 20 bits
(benchmarks/sparse_touch.md has the commands and figures).

Readahead only pays when pages are touched in file order; the copies and the scans over
data extents that do so read the files themselves, not these maps.
"""
from __future__ import annotations

import mmap

import numpy as np

_MADV_RANDOM = getattr(mmap, "MADV_RANDOM", None)


def advise_random(*arrays) -> None:
    """Advise ``MADV_RANDOM`` on the memory maps behind ``arrays`` (np.memmap objects, or
    views of one); anything else, or a platform without madvise, is left as it is. The advice
    changes only how pages are brought in, never what the arrays hold."""
    if _MADV_RANDOM is None:
        return
    for arr in arrays:
        m = getattr(arr, "_mmap", None)  # np.memmap (and its views) keep their mmap.mmap here
        if m is None or not isinstance(arr, np.ndarray):
            continue
        try:
            m.madvise(_MADV_RANDOM)
        except (OSError, ValueError):  # a closed map, or a kernel that refuses the advice
            pass
