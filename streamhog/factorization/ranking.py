"""Ranking metrics of a factorization model: how many of each user's test items its top
recommendations hold (what ``streamhog evaluate --top K`` reports).

For every user with at least one relevant test pair (every pair of the test data, or those
rated at least ``relevant``), the model's top ``K`` items (recommendations.py: among the
items training saw, the pairs of ``exclude`` left out, typically the training data) are
compared with the user's relevant test items R:

- precision@K = hits / K; recall@K = hits / |R|; hit_rate@K = [hits > 0];
- ndcg@K = DCG / IDCG, DCG the sum over hits at rank r of 1 / log2(r + 1), IDCG the same for
  min(K, |R|) hits at the top;
- map@K = (sum over hits at rank r of the hits up to r, divided by r) / min(K, |R|),

each averaged over those users, unweighted (the test data's weights play no part). Users
come in the recommendations' batches, so memory holds one batch's recommendations and
relevant items (the test file is streamed once per batch).
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError
from .model import MFModel, _readonly
from .recommendations import BATCH_USERS, DEFAULT_TOP, _dataset, _pair_lists, user_batches
from .topk import ranking_sums

METRICS = ("precision", "recall", "hit_rate", "ndcg", "map")


def _batch_sums(batch: np.ndarray, cols: dict, ds, relevant: float | None, top: int) -> np.ndarray:
    """The METRICS summed over the users of one batch."""
    rel_ptr, rel_items = _pair_lists([ds], batch, relevant)
    per_user = np.zeros((len(batch), 3), np.float64)  # hits, DCG, sum of precision at the hits
    index = _readonly(np.searchsorted(batch, cols["user"]).astype(np.int64))
    ranking_sums(_readonly(cols["user"]), _readonly(cols["item"]), index, rel_ptr, rel_items, top, per_user)
    n_rel = np.diff(rel_ptr).astype(np.float64)
    hits, dcg, ap = per_user.T
    ideal = np.minimum(n_rel, top)
    idcg = np.cumsum(1.0 / np.log2(np.arange(2, top + 2)))[ideal.astype(np.int64) - 1]
    return np.array([(hits / top).sum(), (hits / n_rel).sum(), (hits > 0).sum(), (dcg / idcg).sum(),
                     (ap / ideal).sum()])


def ranking_metrics(model: MFModel, test, *, top: int = DEFAULT_TOP, exclude=(), relevant: float | None = None,
                    threads: int | None = None, batch_users: int = BATCH_USERS) -> dict:
    """{"precision@K", "recall@K", "hit_rate@K", "ndcg@K", "map@K", "n_users"} of ``model`` on
    the interaction data ``test`` (see the module docstring). ``relevant``: the lowest rating
    of a relevant pair (None: every pair); it needs a rating column."""
    ds = _dataset(test)
    if relevant is not None:
        if isinstance(relevant, bool) or not isinstance(relevant, (int, float)) or not math.isfinite(relevant):
            raise ConfigError(f"relevant must be a finite rating, got {relevant!r}")
        ds.require_ratings("a relevance threshold (--relevant)")
    users = ds.distinct_ids("user", relevant)
    sums = np.zeros(len(METRICS), np.float64)
    for batch, cols in user_batches(model, users, top=top, exclude=exclude, threads=threads,
                                    batch_users=batch_users):
        sums += _batch_sums(batch, cols, ds, relevant, top)
    n = len(users)
    out = {f"{m}@{top}": float(s / n) if n else math.nan for m, s in zip(METRICS, sums)}
    out["n_users"] = n
    return out
