from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamhog.io.batch import SparseBatch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def random_batch(rng, n_rows, n_features, *, binary=False, weights=False, max_nnz=8, row_start=0):
    """Random CSR rows with strictly ascending ids, some rows empty."""
    counts = rng.integers(0, min(max_nnz, n_features) + 1, n_rows)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = np.concatenate([np.sort(rng.choice(n_features, c, replace=False)) for c in counts] or [[]]).astype(np.uint32)
    values = None if binary else rng.normal(size=len(indices)).astype(np.float32)
    labels = rng.choice([-1.0, 1.0], n_rows).astype(np.float32)
    w = rng.uniform(0.5, 2, n_rows).astype(np.float32) if weights else None
    return SparseBatch(indptr, indices, values, labels, w, row_start=row_start)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
