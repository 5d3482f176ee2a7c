"""Synthetic rating data with a known low-rank truth, generated in bounded memory.

A true model r = c + a (b_u + b_i + u·v + noise), with u, v ~ N(0, 1/√rank) per coordinate
(so u·v has unit variance), biases ~ N(0, bias_std²), Gaussian noise, then mapped to a
rating scale: ``stars5`` (1..5), ``half5`` (0.5..5 in half stars), ``stars10`` (1..10)
by rounding and clipping, ``binary`` (implicit-like 0/1: a Bernoulli draw of
sigmoid(2 x signal)), ``real`` (no rounding). Users and items are drawn with Zipf-like
popularity (weights (k+1)^-skew over a random order of the ids), as real rating data is
skewed. Memory: the true factors, O((n_users + n_items) rank), and one chunk of
observations; the stream itself can be any length (the 50M-observation benchmark set).

>>> users, items, ratings = next(low_rank_ratings(100, 50, 1000, rank=3, scale="stars10", seed=1))
>>> len(ratings), float(ratings.min()) >= 1, float(ratings.max()) <= 10
(1000, True, True)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

SCALES = {"stars5": (1.0, 5.0, 1.0), "half5": (0.5, 5.0, 0.5), "stars10": (1.0, 10.0, 1.0), "binary": (0.0, 1.0, 1.0),
          "real": (-np.inf, np.inf, 0.0)}


@dataclass
class Truth:
    """The generating model (kept so that a benchmark can score the truth itself)."""

    U: np.ndarray
    V: np.ndarray
    bu: np.ndarray
    bi: np.ndarray
    p_user: np.ndarray
    p_item: np.ndarray


def make_truth(n_users: int, n_items: int, rank: int, *, bias_std: float = 0.4, user_skew: float = 0.5,
               item_skew: float = 0.9, seed: int = 0) -> Truth:
    rng = np.random.default_rng([seed, 0])
    U = (rng.standard_normal((n_users, rank)) / np.sqrt(rank) ** 0.5).astype(np.float32)
    V = (rng.standard_normal((n_items, rank)) / np.sqrt(rank) ** 0.5).astype(np.float32)

    def popularity(n, skew):
        w = np.empty(n)
        w[rng.permutation(n)] = (np.arange(n) + 1.0) ** -skew  # popular ids spread over the id range
        return w / w.sum()

    return Truth(U, V, rng.normal(0, bias_std, n_users).astype(np.float32),
                 rng.normal(0, bias_std, n_items).astype(np.float32), popularity(n_users, user_skew),
                 popularity(n_items, item_skew))


def _rate(truth: Truth, users, items, scale: str, noise: float, rng) -> np.ndarray:
    signal = (truth.bu[users] + truth.bi[items] + np.einsum("ij,ij->i", truth.U[users], truth.V[items])
              + rng.normal(0, noise, len(users))).astype(np.float64)
    if scale == "binary":
        return (rng.random(len(users)) < 1 / (1 + np.exp(-2 * signal))).astype(np.float32)
    lo, hi, step = SCALES[scale]
    if scale == "real":
        return signal.astype(np.float32)
    mid, spread = (lo + hi) / 2, (hi - lo) / 4  # about 95% of the signal within the scale
    r = mid + spread * signal / np.sqrt(1 + 2 * 0.4**2)
    return np.clip(np.round(r / step) * step, lo, hi).astype(np.float32)


def low_rank_ratings(n_users: int, n_items: int, n_obs: int, *, rank: int = 8, scale: str = "stars5",
                     noise: float = 0.3, seed: int = 0, stream: int = 0, chunk: int = 1 << 20, truth: Truth | None = None):
    """Yield ``(users, items, ratings)`` chunks (int64, int64, float32) of ``n_obs``
    observations in all. ``stream`` picks an independent draw of the same truth (0: train,
    1: test, ...)."""
    if scale not in SCALES:
        raise ConfigError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    truth = truth or make_truth(n_users, n_items, rank, seed=seed)
    rng = np.random.default_rng([seed, 1, stream])
    cu, ci = np.cumsum(truth.p_user), np.cumsum(truth.p_item)
    for start in range(0, n_obs, chunk):
        n = min(chunk, n_obs - start)
        users = np.minimum(np.searchsorted(cu, rng.random(n) * cu[-1]), n_users - 1)
        items = np.minimum(np.searchsorted(ci, rng.random(n) * ci[-1]), n_items - 1)
        yield users, items, _rate(truth, users, items, scale, noise, rng)


def write_low_rank(path, n_users: int, n_items: int, n_obs: int, *, stream: int = 0, rows_per_group: int | None = None,
                   **kwargs) -> int:
    """Write ``n_obs`` observations to an interaction Parquet file; returns the rows written."""
    from .format import DEFAULT_ROWS_PER_GROUP, InteractionWriter

    writer = InteractionWriter(path, rows_per_group=rows_per_group or DEFAULT_ROWS_PER_GROUP)
    try:
        for users, items, ratings in low_rank_ratings(n_users, n_items, n_obs, stream=stream, **kwargs):
            writer.write(users, items, ratings)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return writer.n_rows
