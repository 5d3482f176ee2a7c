"""Shared pieces of the factorization tests: interaction files (train and test draws of one
low-rank truth, real-valued ratings around 3; MovieLens' split) and a stopped-and-resumed run."""
from __future__ import annotations

import numpy as np
import pytest

from streamhog.datasets import movielens_small
from streamhog.errors import TrainingInterrupted
from streamhog.factorization import train_mf, write_interactions
from streamhog.factorization.parse import RatingsReader
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


def write_movielens_split(d):
    """The issue's split of ml-latest-small (rng(0).permutation, the first fifth is test) as
    ``d/train.parquet`` and ``d/test.parquet``; returns d and the (users, items, ratings) of
    both."""
    parts = list(RatingsReader(movielens_small()))
    u, i, r = (np.concatenate([p[k] for p in parts]) for k in range(3))
    perm = np.random.default_rng(0).permutation(len(r))
    test, train = perm[: len(r) // 5], perm[len(r) // 5:]
    write_interactions(d / "train.parquet", u[train], i[train], r[train])
    write_interactions(d / "test.parquet", u[test], i[test], r[test])
    return d, (u[train], i[train], r[train]), (u[test], i[test], r[test])


def stopped_and_resumed(train, tmp_path, stops, **opts):
    """(an uninterrupted run, the same run stopped after ``stops`` blocks each time and then
    resumed to its end), both trained on ``train`` with ``opts``."""
    ref = train_mf(train, tmp_path / "ref", **opts)
    for k, n in enumerate(stops):
        with pytest.raises(TrainingInterrupted):
            train_mf(train, tmp_path / "run", resume=k > 0, stop_after_blocks=n, **opts)
    return ref, train_mf(train, tmp_path / "run", resume=True, **opts)
