"""The prefetch hint compiles for every array the kernels might hand it and changes nothing."""
from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from streamhog.kernels.prefetch import prefetch


@njit(cache=False)
def _gather_with_hints(a, idx):
    s = 0.0
    for k in range(idx.shape[0]):
        if k + 1 < idx.shape[0]:
            prefetch(a, idx[k + 1])
        s += a[idx[k]]
    return s


@pytest.mark.parametrize("index_dtype", [np.uint32, np.int64])
def test_prefetch_on_contiguous_and_strided_arrays(index_dtype):
    rng = np.random.default_rng(0)
    pairs = rng.random(2_000).astype(np.float32)
    idx = rng.integers(0, 1_000, 500).astype(index_dtype)
    for a in (pairs[:1_000], pairs[0::2], pairs[1::2]):  # C layout; strided views (an index × stride address)
        assert _gather_with_hints(a, idx) == pytest.approx(float(a.astype(np.float64)[idx].sum()), rel=1e-12)
