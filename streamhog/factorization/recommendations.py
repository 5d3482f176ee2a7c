"""Recommendation: each user's ``top`` best-scored items from a factorization model.

The candidates are the items the model saw in training (rows of the item factors that
training started: found from the file's data extents, so a sparse 2^31-row file costs
what its written pages do); an item never seen has no factors, and ranking it by a zero
bias would be a guess. A user never seen (or beyond the model) gets the items with the
highest bias. Pairs in ``exclude`` (interaction files, typically the training data: what
the user already rated) are never recommended.

Users are scored in batches of ``batch_users``; ``threads`` threads take disjoint slices of
a batch and run the nogil kernel (topk.top_scored_items) over every candidate, so memory
holds one batch's results and exclusions, not the whole output (the users themselves are
read batch by batch from the factor file by default; an interaction file's distinct users,
and the candidate ids, are held whole: 8 bytes each). With more than one batch, the
exclusion files are streamed once per batch.

The order is a pure function of the model, the candidates and the exclusions: score
descending, ties by item id ascending, whatever the threads or batches. ``score`` is the
predicted rating μ + b_u + b_i + p_u·q_i, unclipped (clipping to the rating range would
tie the top items at the maximum and hide the order it was ranked by); under implicit
feedback the preference σ(μ + b_u + b_i + p_u·q_i) (MFModel.outputs).
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .._fs.atomic import atomic_output
from ..errors import ConfigError
from ..io.outputs import check_predictions_path, predictions_problem
from . import DEFAULT_TOP
from .format import InteractionDataset
from .model import MFModel, _ids, _readonly, started_row_chunks, started_rows
from .score import n_threads
from .topk import CHUNK_ITEMS, TILE, top_scored_items

#: Users scored together: their heaps (top x 16 bytes each) and exclusions stay in memory.
BATCH_USERS = 1 << 14
RECOMMEND_COLUMNS = ("user", "rank", "item", "score")


def _dataset(data) -> InteractionDataset:
    return data if isinstance(data, InteractionDataset) else InteractionDataset(data)


def requested_users(model: MFModel, users=None):
    """The users to recommend for, ascending and distinct (uint64), as a sequence of arrays:
    every user the model saw when ``users`` is None (read chunk by chunk from the factor
    file); the users of an interaction file when it is a path; else the ids."""
    if users is None:
        return started_row_chunks(model.path / "user_factors.npy")
    if isinstance(users, (str, Path, InteractionDataset)):
        return [_dataset(users).distinct_ids("user")]
    return [np.unique(_ids(np.atleast_1d(np.asarray(users)), "users"))]


def _batches(chunks, size: int):
    """Arrays of ``size`` (the last shorter) from a sequence of arrays."""
    held, n = [], 0
    for c in chunks:
        held.append(c)
        n += len(c)
        while n >= size:
            flat = np.concatenate(held)
            yield flat[:size]
            held, n = [flat[size:]], n - size
    if n:
        yield np.concatenate(held)


def _pair_lists(datasets: list, batch: np.ndarray, min_rating: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The items paired with each user of ``batch`` in ``datasets`` (only pairs rated at least
    ``min_rating`` when given), as sorted lists: (ptr, items) with user j's items at
    items[ptr[j]:ptr[j + 1]], ascending and distinct. The files are streamed."""
    idx, items = [np.zeros(0, np.int64)], [np.zeros(0, np.uint64)]
    for ds in datasets:
        reader = ds.open_reader()
        try:
            for b in range(ds.n_blocks):
                blk = reader.read(b)
                u = blk.users.astype(np.uint64)
                j = np.minimum(np.searchsorted(batch, u), len(batch) - 1)
                hit = batch[j] == u
                if min_rating is not None:
                    hit &= blk.ratings >= min_rating
                idx.append(j[hit])
                items.append(blk.items[hit].astype(np.uint64))
        finally:
            reader.close()
    idx, items = np.concatenate(idx), np.concatenate(items)
    order = np.lexsort((items, idx))
    idx, items = idx[order], items[order]
    keep = np.ones(len(idx), bool)
    keep[1:] = (idx[1:] != idx[:-1]) | (items[1:] != items[:-1])
    idx, items = idx[keep], items[keep]
    ptr = np.zeros(len(batch) + 1, np.int64)
    np.cumsum(np.bincount(idx, minlength=len(batch)), out=ptr[1:])
    return _readonly(ptr), _readonly(np.ascontiguousarray(items))


def _check(model: MFModel, top: int) -> None:
    if not isinstance(model, MFModel):
        raise ConfigError("recommend ranks the items of a factorization model (MFModel; train one with --loss mf)")
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ConfigError(f"top must be a positive integer, got {top!r}")


def recommend_batches(model: MFModel, users=None, *, top: int = DEFAULT_TOP, exclude=(), threads: int | None = None,
                      batch_users: int = BATCH_USERS):
    """Yield, per batch of users, the columns of :data:`RECOMMEND_COLUMNS` (user uint64, rank
    uint32 from 1, item uint64, score float32), users ascending, each user's items best
    first; a user with fewer than ``top`` candidates left gets fewer rows."""
    for _, columns in user_batches(model, users, top=top, exclude=exclude, threads=threads,
                                   batch_users=batch_users):
        yield columns


def user_batches(model: MFModel, users=None, *, top: int = DEFAULT_TOP, exclude=(), threads: int | None = None,
                 batch_users: int = BATCH_USERS):
    """:func:`recommend_batches`, each batch's columns with its users (uint64, ascending: those
    left without a candidate have no rows)."""
    _check(model, top)
    excluded = [_dataset(d) for d in ([exclude] if isinstance(exclude, (str, Path, InteractionDataset)) else exclude)]
    candidates = _readonly(started_rows(model.path / "item_factors.npy"))
    P, Q = _readonly(model.arrays["user_factors"]), _readonly(model.arrays["item_factors"])
    bu, bi = model.arrays["user_bias"], _readonly(model.arrays["item_bias"])
    n_users, threads = P.shape[0], n_threads(threads)
    for batch in _batches(requested_users(model, users), batch_users):
        rows = np.full(len(batch), -1, np.int64)  # -1: beyond the model (no factors)
        inside = batch < n_users
        rows[inside] = batch[inside].astype(np.int64)
        rows = _readonly(rows)
        ptr, items = _pair_lists(excluded, batch)
        scores = np.empty((len(batch), top), np.float64)
        best = np.empty((len(batch), top), np.uint64)
        counts, cursor = np.empty(len(batch), np.int64), np.empty(len(batch), np.int64)

        def work(lo, hi):
            dots = np.empty((TILE, CHUNK_ITEMS + TILE), np.float32)  # this thread's scratch
            top_scored_items(rows, P, Q, bi, candidates, ptr, items, cursor, dots, scores, best, counts, lo, hi)

        _run(threads, len(batch), work)
        keep = np.arange(top) < counts[:, None]  # row-major: users in order, each one's items best first
        offset = model.mu + np.where(rows >= 0, bu[np.maximum(rows, 0)], 0.0)
        yield batch, {"user": np.repeat(batch, counts),
                      "rank": np.tile(np.arange(1, top + 1, dtype=np.uint32), len(batch))[keep.ravel()],
                      "item": best[keep], "score": model.outputs((scores + offset[:, None])[keep]).astype(np.float32)}


def _run(threads: int, n: int, work) -> None:
    """``work(lo, hi)`` on ``threads`` disjoint slices of range(n), in threads (nogil kernel);
    the first error is raised here."""
    bounds = np.linspace(0, n, min(threads, max(n, 1)) + 1).astype(np.int64)
    if len(bounds) == 2:
        work(0, n)
        return
    errors = []

    def slice_(lo, hi):
        try:
            work(lo, hi)
        except BaseException as e:  # noqa: BLE001 - raised in the caller's thread
            errors.append(e)

    ts = [threading.Thread(target=slice_, args=(int(lo), int(hi)), name=f"streamhog-recommend-{t}", daemon=True)
          for t, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


def recommend(model: MFModel, users=None, *, top: int = DEFAULT_TOP, exclude=(), threads: int | None = None) -> dict:
    """Each user's ``top`` best items, as columns (numpy arrays) of one table: ``user``,
    ``rank`` (1 = best), ``item``, ``score`` (the predicted rating, unclipped).

    ``users``: None (every user the model saw), ids, or an interaction file (its users).
    ``exclude``: interaction files (or one) whose (user, item) pairs are never recommended.

    >>> import os, tempfile, numpy as np
    >>> from streamhog.factorization import recommend, train_mf, write_interactions
    >>> tmp = tempfile.mkdtemp()
    >>> rng = np.random.default_rng(0)
    >>> u, i = rng.integers(0, 50, 1500), rng.integers(0, 40, 1500)
    >>> train = os.path.join(tmp, "r.parquet")
    >>> _ = write_interactions(train, u, i, (1 + (u + i) % 5).astype(np.float32))
    >>> model = train_mf(train, os.path.join(tmp, "m"), rank=4, epochs=3, threads=1)
    >>> recs = recommend(model, [3, 7], top=5, exclude=train)
    >>> recs["user"].tolist(), recs["rank"].tolist()
    ([3, 3, 3, 3, 3, 7, 7, 7, 7, 7], [1, 2, 3, 4, 5, 1, 2, 3, 4, 5])
    >>> bool(np.all(np.diff(recs["score"][:5]) <= 0))  # best first
    True
    >>> rated = set(zip(u.tolist(), i.tolist()))
    >>> any((a, b) in rated for a, b in zip(recs["user"].tolist(), recs["item"].tolist()))
    False
    """
    parts = list(recommend_batches(model, users, top=top, exclude=exclude, threads=threads))
    if not parts:
        return {"user": np.zeros(0, np.uint64), "rank": np.zeros(0, np.uint32), "item": np.zeros(0, np.uint64),
                "score": np.zeros(0, np.float32)}
    return {c: np.concatenate([p[c] for p in parts]) for c in RECOMMEND_COLUMNS}


def recommend_to_parquet(model: MFModel, out_path, users=None, *, top: int = DEFAULT_TOP, exclude=(),
                         threads: int | None = None, overwrite: bool = False) -> int:
    """Write :func:`recommend`'s table to ``out_path`` batch by batch (memory bounded by one
    batch); the file appears only when complete. Returns its number of rows."""
    schema = pa.schema([pa.field("user", pa.uint64(), nullable=False), pa.field("rank", pa.uint32(), nullable=False),
                        pa.field("item", pa.uint64(), nullable=False), pa.field("score", pa.float32(), nullable=False)],
                       # What --overwrite recognises as streamhog's own output (io/outputs.py).
                       metadata={"streamhog_model": str(model.path), "loss": "mf", "prediction": "recommendations",
                                 "top": str(top)})
    out_path = check_predictions_path(out_path)
    n = 0
    with atomic_output(out_path, overwrite=overwrite, replaceable=predictions_problem) as tmp:
        with pq.ParquetWriter(tmp, schema) as writer:
            for cols in recommend_batches(model, users, top=top, exclude=exclude, threads=threads):
                writer.write_table(pa.Table.from_arrays([pa.array(cols[c]) for c in RECOMMEND_COLUMNS], schema=schema))
                n += len(cols["user"])
            if n == 0:
                writer.write_table(schema.empty_table())
    return n
