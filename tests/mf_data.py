"""Synthetic interaction files for the factorization tests: train and test draws of one
low-rank truth (streamhog.factorization.synthetic), real-valued ratings around 3."""
from __future__ import annotations

from streamhog.factorization import write_interactions
from streamhog.factorization.synthetic import low_rank_ratings, make_truth


def write_low_rank_split(d, n_users: int, n_items: int, rank: int, n_train: int, n_test: int, *, seed: int,
                         rows_per_group: int):
    """``d/train.parquet`` and ``d/test.parquet``: independent draws of the same truth."""
    truth = make_truth(n_users, n_items, rank, seed=seed)
    for name, stream, n in (("train", 0, n_train), ("test", 1, n_test)):
        u, i, r = next(low_rank_ratings(n_users, n_items, n, rank=rank, scale="real", noise=0.2, seed=seed,
                                        stream=stream, truth=truth))
        write_interactions(d / f"{name}.parquet", u, i, 3.0 + r, rows_per_group=rows_per_group)
    return d
