"""Synthetic sparse classification data shaped like RCV1/url, with a known true model.

Feature ids follow a Zipf law (a few very frequent features, a long tail), rows hold about
``nnz_per_row`` distinct ids, values are positive and each row has unit L2 norm (like
tf-idf rows), or are all 1.0 with ``binary=True``. Labels are drawn from a logistic model
with known weights, so the best achievable test logloss is known: :func:`bayes_logloss`.

Generation is block by block (bounded memory) and reproducible from ``seed``.

>>> from streamhog.datasets.synthetic import SyntheticSpec, synthetic_batches
>>> spec = SyntheticSpec(n_rows=1000, n_features=5000, nnz_per_row=20, seed=1)
>>> sum(b.n_rows for b in synthetic_batches(spec, rows_per_block=300))
1000
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..io.batch import SparseBatch


@dataclass(frozen=True)
class SyntheticSpec:
    n_rows: int = 100_000
    n_features: int = 1_000_000
    nnz_per_row: int = 39
    zipf_exponent: float = 1.1
    binary: bool = False
    seed: int = 0
    #: scale of the true weights: larger = more separable (lower Bayes logloss)
    weight_scale: float = 4.0


def true_weights(spec: SyntheticSpec) -> tuple[np.ndarray, float]:
    """The generating model: (weights float64 (n_features,), intercept)."""
    rng = np.random.default_rng([spec.seed, 1])
    w = rng.normal(0.0, spec.weight_scale, spec.n_features)
    # Rare features carry larger weights than frequent ones, as in real text/click data.
    return w / np.sqrt(np.log2(np.arange(spec.n_features) + 2.0)), -0.5


def _feature_cdf(spec: SyntheticSpec) -> np.ndarray:
    ranks = np.arange(1, spec.n_features + 1, dtype=np.float64)
    p = ranks ** -spec.zipf_exponent
    cdf = np.cumsum(p)
    return cdf / cdf[-1]


def synthetic_batches(spec: SyntheticSpec, rows_per_block: int = 65_536, start_row: int = 0, stop_row: int | None = None):
    """Yield SparseBatch blocks of the dataset; block ``k`` depends only on (seed, k)."""
    stop_row = spec.n_rows if stop_row is None else stop_row
    cdf = _feature_cdf(spec)
    # A fixed random relabelling so that frequent features are spread over the id space.
    perm = np.random.default_rng([spec.seed, 2]).permutation(spec.n_features).astype(np.uint32)
    w, b0 = true_weights(spec)
    first_block = start_row // rows_per_block
    for k in range(first_block, -(-stop_row // rows_per_block)):
        r0, r1 = max(k * rows_per_block, start_row), min((k + 1) * rows_per_block, stop_row)
        rng = np.random.default_rng([spec.seed, 3, k])
        n = r1 - r0
        # Zipf draws repeat frequent ids; over-draw so that about nnz_per_row stay distinct.
        draws = rng.poisson(max(spec.nnz_per_row * 1.3 - 1, 0), n) + 1
        ids = perm[np.searchsorted(cdf, rng.random(int(draws.sum())))]
        rows = np.repeat(np.arange(n, dtype=np.int64), draws)
        # Sort by (row, id) through one int64 key, then drop repeats of an id within a row.
        key = np.unique(rows * spec.n_features + ids)
        rows, ids = np.divmod(key, spec.n_features)
        ids = ids.astype(np.uint32)
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
        if spec.binary:
            values = None
            x = np.ones(len(ids))
        else:
            x = rng.lognormal(0.0, 0.7, len(ids))
            norms = np.sqrt(np.add.reduceat(x * x, indptr[:-1])) if len(ids) else np.zeros(n)
            norms[np.diff(indptr) == 0] = 1.0
            x /= np.repeat(norms, np.diff(indptr))
            values = x.astype(np.float32)
        margin = np.add.reduceat(x * w[ids], indptr[:-1]) if len(ids) else np.zeros(n)
        margin[np.diff(indptr) == 0] = 0.0
        margin += b0
        p = 1.0 / (1.0 + np.exp(-margin))
        labels = np.where(rng.random(n) < p, 1.0, -1.0).astype(np.float32)
        yield SparseBatch(indptr, ids, values, labels, source=f"synthetic block {k}", row_start=r0)


def bayes_logloss(spec: SyntheticSpec, batches) -> float:
    """Expected logloss of the true model on the given rows: the best any learner can reach."""
    w, b0 = true_weights(spec)
    total, n = 0.0, 0
    for b in batches:
        x = b.values_or_ones().astype(np.float64)
        margin = np.add.reduceat(x * w[b.indices], b.indptr[:-1]) if b.nnz else np.zeros(b.n_rows)
        margin[np.diff(b.indptr) == 0] = 0.0
        margin += b0
        p = 1.0 / (1.0 + np.exp(-margin))
        eps = 1e-15
        total += float(-(p * np.log(np.clip(p, eps, 1)) + (1 - p) * np.log(np.clip(1 - p, eps, 1))).sum())
        n += b.n_rows
    return total / max(n, 1)
