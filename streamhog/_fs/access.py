"""Tell the kernel that a sparse model file's memory map is read and written at random.

Training and scoring touch a model's rows in the order of hashed ids or shuffled examples,
never in file order. By default Linux answers a page fault on a file mapping with
*readahead*: it also reads in the pages around the faulting one, zero-filling those that
are holes. In a sparse model file that is almost all waste, and it grew with the file: on
this project's ext4 VM, 8,000 Criteo rows trained at ``--hash-bits 30`` in 29.3 s against
2.3 s with ``MADV_RANDOM``, and 20,000 ratings of 10,000 users scattered over a 2^31-row
factor file in 62 s against 0.8 s, 1.8M zeroed pages filling the page cache
(benchmarks/sparse_touch.md).

In a file that is mostly data, readahead is what makes a cold read fast: 3M random reads
over a dense 1 GiB file not in the page cache took 0.84 s with it and 22 s without (one
4 KiB read a page). So the advice goes to files that are mostly holes (allocated
below half their size: every new model, and any a stream touched in a small part), and a
file that training filled keeps the kernel's default when it is next opened.
"""
from __future__ import annotations

import mmap
import os

import numpy as np

_MADV_RANDOM = getattr(mmap, "MADV_RANDOM", None)


def mostly_holes(path) -> bool:
    """Whether the file at ``path`` has less than half its size allocated on disk."""
    st = os.stat(path)
    return st.st_blocks * 512 < st.st_size / 2


def advise_random_if_sparse(*arrays) -> None:
    """Advise ``MADV_RANDOM`` on the memory map behind each of ``arrays`` (np.memmap
    objects, or views of one) whose file is mostly holes; anything else, or a platform
    without madvise, is left as it is. The advice changes only how pages are brought in,
    never what the arrays hold."""
    if _MADV_RANDOM is None:
        return
    for arr in arrays:
        m = getattr(arr, "_mmap", None)  # np.memmap (and its views) keep their mmap.mmap here
        filename = getattr(arr, "filename", None)
        if m is None or filename is None or not isinstance(arr, np.ndarray):
            continue
        try:
            if mostly_holes(filename):
                m.madvise(_MADV_RANDOM)
        except (OSError, ValueError):  # a closed map, or a kernel that refuses the advice
            pass
