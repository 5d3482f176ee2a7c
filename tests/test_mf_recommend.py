"""Recommendation (streamhog recommend, factorization.recommend) against a NumPy reference:
the full score matrix μ + b_u + b_i + P Qᵀ over the items training saw, excluded pairs
masked, sorted by (score desc, item asc). Threads beyond the cores, and batches of users,
give the same table."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from streamhog.cli import main
from streamhog.factorization import MFModel, recommend, recommend_to_parquet, train_mf, write_interactions
from streamhog.factorization.recommendations import recommend_batches

N_USERS, N_ITEMS, RANK = 60, 300, 8


@pytest.fixture
def model(tmp_path):
    """A hand-made model: random factors and biases, some items and users never started."""
    rng = np.random.default_rng(5)
    m = MFModel.create(tmp_path / "m", n_users=N_USERS, n_items=N_ITEMS, rank=RANK, optimizer="sgd")
    P = rng.normal(0, 0.5, (N_USERS, RANK)).astype(np.float32)
    Q = rng.normal(0, 0.5, (N_ITEMS, RANK)).astype(np.float32)
    P[rng.random(N_USERS) < 0.2] = 0  # users training never touched
    Q[rng.random(N_ITEMS) < 0.3] = 0  # items it never touched: not candidates
    bi = rng.normal(0, 0.3, N_ITEMS).astype(np.float32)
    bi[~Q.any(axis=1)] = 0
    m.arrays["user_factors"][:] = P
    m.arrays["item_factors"][:] = Q
    m.arrays["user_bias"][:] = rng.normal(0, 0.3, N_USERS).astype(np.float32)
    m.arrays["item_bias"][:] = bi
    m.meta["mu"] = 3.5
    m.flush()
    m.save_meta()
    return MFModel.open(tmp_path / "m")


def reference(model: MFModel, users, top: int, excluded: set) -> dict:
    P, Q = (np.asarray(model.arrays[n], np.float64) for n in ("user_factors", "item_factors"))
    bu, bi = (np.asarray(model.arrays[n], np.float64) for n in ("user_bias", "item_bias"))
    cand = np.flatnonzero(Q.any(axis=1))
    out = {"user": [], "rank": [], "item": [], "score": []}
    for u in users:
        inside = u < P.shape[0]
        s = model.mu + (bu[u] if inside else 0.0) + bi[cand] + ((Q[cand] @ P[u]) if inside else 0.0)
        keep = np.array([(u, int(i)) not in excluded for i in cand], bool)
        items, s = cand[keep], s[keep]
        order = np.lexsort((items, -s))[:top]
        out["user"] += [u] * len(order)
        out["rank"] += list(range(1, len(order) + 1))
        out["item"] += items[order].tolist()
        out["score"] += s[order].tolist()
    return {k: np.asarray(v) for k, v in out.items()}


def assert_same(got: dict, want: dict) -> None:
    np.testing.assert_array_equal(got["user"], want["user"])
    np.testing.assert_array_equal(got["rank"], want["rank"])
    np.testing.assert_array_equal(got["item"], want["item"])
    np.testing.assert_allclose(got["score"], want["score"], rtol=0, atol=2e-5)


def write_pairs(path, pairs):
    u = np.array([p[0] for p in pairs], np.uint32)
    i = np.array([p[1] for p in pairs], np.uint32)
    write_interactions(path, u, i, np.ones(len(pairs), np.float32))
    return path


def test_every_user_seen_matches_numpy(model):
    seen = np.flatnonzero(np.asarray(model.arrays["user_factors"]).any(axis=1))
    got = recommend(model, top=7, threads=1)
    assert set(got["user"].tolist()) == set(seen.tolist())  # default: the users training touched
    assert_same(got, reference(model, seen.tolist(), 7, set()))
    assert got["user"].dtype == np.uint64 and got["item"].dtype == np.uint64 and got["rank"].dtype == np.uint32


def test_exclusions_unseen_users_and_short_lists(model, tmp_path):
    rng = np.random.default_rng(1)
    cand = np.flatnonzero(np.asarray(model.arrays["item_factors"]).any(axis=1))
    users = [0, 3, 17, 59, 500, 2**40]  # 500 and 2^40: beyond the model, ranked by the item biases
    pairs = {(u, int(i)) for u in users[:4] for i in rng.choice(cand, 40, replace=False)}
    pairs |= {(3, int(i)) for i in cand[:-4]}  # user 3: only 4 candidates left
    pairs |= {(1, int(i)) for i in cand}  # a user not asked for: no effect
    pairs |= {(0, N_ITEMS + 5)}  # an item beyond the model: nothing to exclude
    halves = sorted(pairs)
    ex = [write_pairs(tmp_path / "a.parquet", halves[::2] + [(500, int(cand[0]))]),
          write_pairs(tmp_path / "b.parquet", halves[1::2] + halves[:50])]  # duplicates across files
    excluded = pairs | {(500, int(cand[0]))}
    want = reference(model, [u for u in users if u < 2**32], 12, excluded)
    small = [u for u in users if u < 2**32]
    got = recommend(model, small, top=12, exclude=ex, threads=1)
    assert_same(got, want)
    assert (got["user"] == 3).sum() == 4
    assert not {(int(u), int(i)) for u, i in zip(got["user"], got["item"])} & excluded
    far = recommend(model, [2**40], top=5)
    near = recommend(model, [500], top=5)
    np.testing.assert_array_equal(far["item"], near["item"])  # both: the item biases' order


@pytest.mark.parametrize("threads", [1, 3, 8])  # 8: more threads than this machine's cores
def test_threads_and_batches_give_the_same_table(model, tmp_path, threads):
    users = np.arange(0, 80)  # 60..79 beyond the model
    ex = [write_pairs(tmp_path / "x.parquet", [(u, i) for u in range(0, 80, 3) for i in range(0, N_ITEMS, 7)])]
    serial = recommend(model, users, top=9, exclude=ex, threads=1)
    batched = [b for b in recommend_batches(model, users, top=9, exclude=ex, threads=threads, batch_users=7)]
    got = {c: np.concatenate([b[c] for b in batched]) for c in serial}
    for c in serial:
        np.testing.assert_array_equal(got[c], serial[c])


def test_trained_model_recommends_what_the_true_model_ranks_high(tmp_path):
    """On ratings from a known low-rank model, the recommended items (with the training pairs
    excluded) have far higher true ratings than the items left unrecommended."""
    rng = np.random.default_rng(0)
    nu, ni, k = 300, 200, 3
    Pt, Qt = rng.normal(0, 1, (nu, k)), rng.normal(0, 1, (ni, k))
    bt = rng.normal(0, 0.5, ni)
    truth = Pt @ Qt.T + bt
    n = 24_000
    u, i = rng.integers(0, nu, n), rng.integers(0, ni, n)
    r = (truth[u, i] + rng.normal(0, 0.3, n)).astype(np.float32)
    train = tmp_path / "r.parquet"
    write_interactions(train, u.astype(np.uint32), i.astype(np.uint32), r)
    m = train_mf(train, tmp_path / "m", rank=8, epochs=30, threads=2, holdout=0.0, seed=1)
    recs = recommend(m, top=10, exclude=train)
    rated = np.zeros((nu, ni), bool)
    rated[u, i] = True
    got = truth[recs["user"].astype(np.int64), recs["item"].astype(np.int64)].mean()
    unrated = truth[~rated].mean()
    best = np.mean([np.sort(truth[v][~rated[v]])[-10:].mean() for v in range(nu)])
    assert got > unrated + 0.8 * (best - unrated), (got, unrated, best)


def test_command_line(model, tmp_path, capsys):
    ex = write_pairs(tmp_path / "seen.parquet", [(u, i) for u in range(N_USERS) for i in range(0, N_ITEMS, 2)])
    asked = write_pairs(tmp_path / "asked.parquet", [(4, 1), (9, 2), (4, 3), (70, 0)])
    out = tmp_path / "recs.parquet"
    assert main(["recommend", str(model.path), "--out", str(out), "--users", str(asked), "--exclude", str(ex),
                 "--top", "5", "--threads", "4"]) == 0
    t = pq.read_table(out)
    assert t.column_names == ["user", "rank", "item", "score"]
    excluded = {(u, i) for u in range(N_USERS) for i in range(0, N_ITEMS, 2)}
    assert_same({c: t.column(c).to_numpy() for c in t.column_names}, reference(model, [4, 9, 70], 5, excluded))
    assert "wrote" in capsys.readouterr().out
    # The file is ours: --overwrite replaces it; without, it is refused and left as it was.
    assert main(["recommend", str(model.path), "--out", str(out), "--user", "4"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert pq.read_table(out).num_rows == 15
    assert main(["recommend", str(model.path), "--out", str(out), "--user", "4", "--overwrite"]) == 0
    assert pq.read_table(out).num_rows == 10


@pytest.mark.parametrize("argv, message", [
    (["--user", "-3"], "--user: ids are non-negative integers, got -3"),
    (["--exclude", "MODEL"], "not interaction data"),
    (["--users", "NOFILE"], "not interaction data"),
])
def test_command_line_refuses_bad_input(model, tmp_path, capsys, argv, message):
    out = tmp_path / "recs.parquet"
    argv = [a.replace("MODEL", str(model.path)).replace("NOFILE", str(tmp_path / "missing.parquet")) for a in argv]
    assert main(["recommend", str(model.path), "--out", str(out)] + argv) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_command_line_refuses_a_linear_model_and_keeps_foreign_files(model, tmp_path, capsys):
    data = write_pairs(tmp_path / "d.parquet", [(1, 1)])
    assert main(["recommend", str(data), "--out", str(tmp_path / "o.parquet")]) == 1
    assert "not a factorization model" in capsys.readouterr().err
    foreign = tmp_path / "theirs.parquet"
    foreign.write_bytes(b"not ours")
    assert main(["recommend", str(model.path), "--out", str(foreign), "--overwrite"]) == 1
    assert "not a streamhog predictions file" in capsys.readouterr().err
    assert foreign.read_bytes() == b"not ours"


def test_to_parquet_equals_in_memory(model, tmp_path):
    n = recommend_to_parquet(model, tmp_path / "r.parquet", list(range(N_USERS)), top=4, threads=2)
    t = pq.read_table(tmp_path / "r.parquet")
    want = recommend(model, list(range(N_USERS)), top=4, threads=1)
    assert n == t.num_rows == len(want["user"])
    for c in want:
        np.testing.assert_array_equal(t.column(c).to_numpy(), want[c])


def test_bad_top_is_refused(model):
    from streamhog.errors import ConfigError

    for top in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="top must be a positive integer"):
            recommend(model, [1], top=top)


def test_ties_go_to_the_smaller_item_id(model):
    """A user the model never saw ranks by the item biases alone: with biases in 3 levels the
    order within a level is the item ids', whatever the threads or the heap's history."""
    cand = np.flatnonzero(np.asarray(model.arrays["item_factors"]).any(axis=1))
    levels = np.array([0.5, -0.25, 0.125], np.float32)
    reopened = MFModel.open(model.path, mode="r+")
    reopened.arrays["item_bias"][cand] = levels[cand % 3]
    reopened.flush()
    model = MFModel.open(model.path)
    for threads in (1, 5):
        got = recommend(model, [1000, 1001], top=len(cand), threads=threads)
        first = got["item"][got["user"] == 1000]
        want = np.concatenate([np.sort(cand[cand % 3 == 0]), np.sort(cand[cand % 3 == 2]), np.sort(cand[cand % 3 == 1])])
        np.testing.assert_array_equal(first, want)


def test_every_user_in_small_batches(model):
    """The default users come from the factor file chunk by chunk, re-cut into batches."""
    whole = recommend(model, top=3, threads=2)
    parts = list(recommend_batches(model, top=3, threads=2, batch_users=5))
    assert len(parts) > 5
    for c in whole:
        np.testing.assert_array_equal(np.concatenate([p[c] for p in parts]), whole[c])


def test_batches_recut_any_chunks():
    from streamhog.factorization.recommendations import _batches

    chunks = [np.arange(0, 3), np.arange(3, 3), np.arange(3, 14), np.arange(14, 15)]
    got = list(_batches(iter(chunks), 4))
    assert [len(b) for b in got] == [4, 4, 4, 3]
    np.testing.assert_array_equal(np.concatenate(got), np.arange(15))
    assert list(_batches(iter([]), 4)) == []
