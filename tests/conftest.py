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


def pytest_collection_modifyitems(config, items):
    """scikit-learn's check_array_api_input skips itself unless SCIPY_ARRAY_API=1 was set
    before scipy was imported, which cannot happen inside this process: it runs in a fresh
    interpreter instead (test_sklearn_checks.test_array_api_dispatch_changes_nothing), and
    its in-process copies are deselected rather than reported as skipped."""
    keep = [item for item in items if "check_array_api_input" not in item.nodeid]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in keep])
        items[:] = keep


@pytest.fixture(scope="session")
def a9a_train_test(tmp_path_factory):
    """a9a's train and test sets as Parquet (4,096-row groups): (train path, test path)."""
    import streamhog
    from streamhog.datasets import a9a

    d = tmp_path_factory.mktemp("a9a-train-test")
    streamhog.convert(a9a("train"), d / "train.parquet", rows_per_group=4096)
    streamhog.convert(a9a("test"), d / "test.parquet", n_features=123)
    return d / "train.parquet", d / "test.parquet"
