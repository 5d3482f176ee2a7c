"""Implicit feedback (--feedback implicit): the kernel against a NumPy implementation of its
documented rule (positive, then negatives drawn uniformly from the pool by an independent
rewrite of the hash), scoring against NumPy, recovery of a known model's preferences,
resume, threads beyond the cores, and the command line."""
from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from streamhog.cli import main
from streamhog.factorization import kernels as K
from streamhog.factorization import implicit_kernels as I
from streamhog.factorization import MFModel, evaluate, train_mf, write_interactions
from streamhog.factorization.ranking import ranking_metrics
from test_mf_kernels import GOLDEN, MASK, arrays, mix, numpy_step, problem, ro, start_row

STREAM = 0x6A09E667F3BCC909


def key_of(seed: int, epoch: int, block: int) -> int:
    return mix(mix((seed * GOLDEN + epoch + STREAM) & MASK) + block * GOLDEN)


def draw(key: int, r: int, t: int, n: int) -> int:
    return mix(mix((key + r * GOLDEN) & MASK) + t * GOLDEN) % n


def softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def numpy_implicit(users, items, weights, rows, arrs, opt, mu, hyper, scale, seed, pool, negatives, key):
    """Each row's positive then its negatives (the pool item of each draw, skipped when it is
    the positive's), one logistic-loss observation at a time."""
    P, Q, bu, bi, *_ = arrs
    loss = wsum = 0.0
    for r in rows:
        u, i = int(users[r]), int(items[r])
        s = 1.0 if weights is None else float(weights[r])
        for t in range(negatives + 1):
            j, y = i, 1.0
            if t:
                j, y = int(pool[draw(key, int(r), t, len(pool))]), 0.0
                if j == i:
                    continue
            for X, which, row in ((P, 0, u), (Q, 1, j)):
                if not X[row].any():
                    X[row] = start_row(seed, which, row, X.shape[1], scale)
            z = mu + float(bu[u]) + float(bi[j]) + float(np.dot(P[u].astype(np.float64), Q[j].astype(np.float64)))
            loss += s * softplus(-z if y else z)
            wsum += s
            numpy_step(*arrs, opt, u, j, s * (1 / (1 + math.exp(-z)) - y), *hyper)
    return loss, wsum


@pytest.mark.parametrize("opt", ["sgd", "adagrad", "rowwise-adagrad"])
@pytest.mark.parametrize("weights", [False, True])
def test_kernel_matches_numpy_reference(rng, opt, weights):
    users, items, _, w = problem(rng, weights=weights)
    rank, mu, scale, seed, negatives = 6, -math.log(3), 0.1, 7, 3
    hyper = ((0.05 if opt == "sgd" else 0.1), 0.07, 0.02, 0.01, 0.5, 1.0)  # lr, lr_b, l2, l2_b, beta, beta_b
    pool = ro(np.unique(items).astype(np.int64))
    got_arrays = arrays(23, 17, rank, opt)
    ref = [a.copy() for a in got_arrays]
    if opt == "sgd":
        ref[4:] = [np.zeros((23, rank), np.float32), np.zeros((17, rank), np.float32), np.zeros(23, np.float32),
                   np.zeros(17, np.float32)]
    empty = ro(np.zeros(0, np.float32))
    for epoch in range(3):
        rows = ro(np.random.default_rng(epoch).permutation(len(users)).astype(np.int64))
        key = I.negatives_key(np.uint64(seed), np.uint64(epoch), np.uint64(5))
        assert int(key) == key_of(seed, epoch, 5)  # the documented key, rewritten independently
        got = I.IMPLICIT_KERNELS[K.OPTIMIZER_IDS[opt]](users, items, w if weights else empty, weights, rows,
                                                       *got_arrays, mu, *hyper, scale, np.uint64(seed), pool,
                                                       negatives, key)
        want = numpy_implicit(users, items, w, rows, ref, opt, mu, hyper, scale, seed, pool, negatives, int(key))
        assert got[2] == 0 and got[3] == 0
        np.testing.assert_allclose(got[:2], want, rtol=1e-5)
    for name, a, b in zip(["P", "Q", "bu", "bi", "Pa", "Qa", "bua", "bia"], got_arrays, ref):
        if opt != "sgd" or name in ("P", "Q", "bu", "bi"):
            np.testing.assert_allclose(a, b, rtol=5e-5, atol=5e-6, err_msg=name)


def test_an_id_beyond_the_model_stops_the_block(rng):
    users, items, _, _ = problem(rng, n=50)
    arrs = arrays(23, 17, 4, "sgd")
    pool = ro(np.array([0, 3, 40], np.int64))  # item 40 is beyond the 17 rows
    rows = ro(np.arange(50, dtype=np.int64))
    got = I.train_implicit_sgd(users, items, ro(np.zeros(0, np.float32)), False, rows, *arrs, -1.0, 0.05, 0.05, 0.0,
                               0.0, 0.0, 0.0, 0.1, np.uint64(1), pool, 8, np.uint64(3))
    assert got[3] == 1.0  # stopped: item 40 was never read or written (Q has 17 rows)


def test_scoring_matches_numpy(tmp_path, rng):
    """evaluate's logloss and sampled AUC of an implicit model, from NumPy over the same draws."""
    n_users, n_items, rank = 30, 25, 4
    m = MFModel.create(tmp_path / "m", n_users=n_users, n_items=n_items, rank=rank, optimizer="sgd",
                       feedback="implicit", negatives=5)
    P = rng.normal(0, 0.7, (n_users, rank)).astype(np.float32)
    Q = rng.normal(0, 0.7, (n_items, rank)).astype(np.float32)
    Q[[2, 9]] = 0  # items the model never saw: not drawn
    m.arrays["user_factors"][:], m.arrays["item_factors"][:] = P, Q
    m.arrays["user_bias"][:] = rng.normal(0, 0.3, n_users)
    m.arrays["item_bias"][:] = rng.normal(0, 0.3, n_items)
    m.meta["mu"] = -math.log(5)
    m.flush()
    m.save_meta()
    m = MFModel.open(tmp_path / "m")
    users, items = rng.integers(0, n_users, 300), rng.integers(0, n_items, 300)
    write_interactions(tmp_path / "t.parquet", users.astype(np.uint32), items.astype(np.uint32))
    got = evaluate(m, tmp_path / "t.parquet", threads=3)
    pool = np.flatnonzero(Q.any(axis=1))
    bu, bi = (np.asarray(m.arrays[n], np.float64) for n in ("user_bias", "item_bias"))

    def z(u, i):
        return m.mu + bu[u] + bi[i] + float(P[u].astype(np.float64) @ Q[i].astype(np.float64))

    key = key_of(0, I.SCORING_EPOCH, 0)
    loss = ws = wins = pairs = 0.0
    for r, (u, i) in enumerate(zip(users.tolist(), items.tolist())):
        zp = z(u, i)
        loss, ws = loss + softplus(-zp), ws + 1
        for t in range(1, 6):
            j = int(pool[draw(key, r, t, len(pool))])
            if j == i:
                continue
            zn = z(u, j)
            loss, ws, pairs = loss + softplus(zn), ws + 1, pairs + 1
            wins += 1.0 if zp > zn else (0.5 if zp == zn else 0.0)
    assert got["n_examples"] == 300
    assert got["logloss"] == pytest.approx(loss / ws, rel=1e-6)
    assert got["auc"] == pytest.approx(wins / pairs, rel=1e-6)
    np.testing.assert_allclose(m.predict(users[:5], items[:5]),
                               [1 / (1 + math.exp(-z(u, i))) for u, i in zip(users[:5], items[:5])], rtol=1e-6)


def preference_data(tmp_path, seed=0, n_users=400, n_items=150, rank=3, per_user=25):
    """Interactions from a known model: each user picks items with probability proportional to
    exp(its true preference); the next picks of each user (the same draw) are the test set."""
    rng = np.random.default_rng(seed)
    U, V = rng.normal(0, 1.2, (n_users, rank)), rng.normal(0, 1.2, (n_items, rank))
    pop = rng.normal(0, 0.8, n_items)
    truth = U @ V.T + pop
    train, test = [], []
    for u in range(n_users):
        p = np.exp(truth[u] - truth[u].max())
        picks = rng.choice(n_items, per_user + 5, replace=False, p=p / p.sum())
        train += [(u, i) for i in picks[:per_user]]
        test += [(u, i) for i in picks[per_user:]]
    paths = []
    for name, pairs in (("train", train), ("test", test)):
        a = np.array(pairs, np.uint32)
        write_interactions(tmp_path / f"{name}.parquet", a[:, 0], a[:, 1])
        paths.append(tmp_path / f"{name}.parquet")
    return (*paths, truth, np.array(train))


def test_recovers_a_known_models_preferences(tmp_path):
    """Trained on interactions alone, the model's top 10 (training pairs excluded) hold the
    held-out picks far more often than the most-picked items do."""
    train, test, truth, pairs = preference_data(tmp_path)
    m = train_mf(train, tmp_path / "m", feedback="implicit", rank=8, threads=2, seed=3)
    got = ranking_metrics(m, test, top=10, exclude=train)
    counts = np.bincount(pairs[:, 1], minlength=truth.shape[1])
    seen = {(int(u), int(i)) for u, i in pairs}
    test_pairs = {}
    t = pq.read_table(test)
    for u, i in zip(t.column("user").to_numpy().tolist(), t.column("item").to_numpy().tolist()):
        test_pairs.setdefault(u, set()).add(i)
    order = np.argsort(-counts, kind="stable")
    hits = 0
    for u, want in test_pairs.items():
        top = [int(i) for i in order if (u, int(i)) not in seen][:10]
        hits += len(set(top) & want)
    popular_precision = hits / (10 * len(test_pairs))
    assert got["precision@10"] > 1.3 * popular_precision, (got, popular_precision)
    assert m.history[-1]["holdout"]["auc"] > 0.75


def test_resume_after_a_stop_is_bit_identical(tmp_path):
    train, *_ = preference_data(tmp_path, n_users=120, per_user=20)
    opts = dict(feedback="implicit", rank=4, epochs=3, threads=1, holdout=0.1, seed=5)
    whole = train_mf(train, tmp_path / "whole", **opts)
    from streamhog.errors import TrainingInterrupted

    with pytest.raises(TrainingInterrupted):
        train_mf(train, tmp_path / "part", stop_after_blocks=1, **opts)
    part = train_mf(train, tmp_path / "part", resume=True, **opts)
    for name in ("user_factors", "item_factors", "user_bias", "item_bias"):
        np.testing.assert_array_equal(np.asarray(part.arrays[name]), np.asarray(whole.arrays[name]), err_msg=name)
    for key in ("train_logloss", "holdout", "examples"):
        assert [h[key] for h in part.history] == [h[key] for h in whole.history], key


def test_eight_threads_on_two_cores_train_as_well_as_one(tmp_path):
    train, test, *_ = preference_data(tmp_path, seed=1)
    one = train_mf(train, tmp_path / "one", feedback="implicit", rank=8, threads=1, epochs=8, early_stopping=0)
    many = train_mf(train, tmp_path / "many", feedback="implicit", rank=8, threads=8, epochs=8, early_stopping=0)
    a = evaluate(one, test)
    b = evaluate(many, test)
    assert b["auc"] > a["auc"] - 0.02 and b["logloss"] < a["logloss"] * 1.03, (a, b)


def test_command_line(tmp_path, capsys):
    train, test, *_ = preference_data(tmp_path, n_users=100, per_user=15)
    m = tmp_path / "m"
    assert main(["train", str(train), "--loss", "mf", "--feedback", "implicit", "--negatives", "3", "--model", str(m),
                 "--rank", "4", "--epochs", "3", "--quiet"]) == 0
    info = MFModel.open(m)
    assert info.implicit and info.negatives == 3 and info.meta["format_version"] == 3
    assert info.mu == pytest.approx(-math.log(3))
    capsys.readouterr()
    assert main(["evaluate", str(test), "--model", str(m), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert set(got) == {"logloss", "auc", "n_examples"} and 0 < got["auc"] < 1
    assert main(["predict", str(test), "--model", str(m), "--out", str(tmp_path / "p.parquet")]) == 0
    p = pq.read_table(tmp_path / "p.parquet").column("prediction").to_numpy()
    assert ((p > 0) & (p < 1)).all()
    # recommend reports preferences too, best first, and leaves the training pairs out.
    assert main(["recommend", str(m), "--out", str(tmp_path / "r.parquet"), "--exclude", str(train), "--top", "5"]) == 0
    r = pq.read_table(tmp_path / "r.parquet").to_pydict()
    assert all(0 < x < 1 for x in r["score"])
    seen = set(zip(*(pq.read_table(train).column(c).to_pylist() for c in ("user", "item"))))
    assert not seen & set(zip(r["user"], r["item"]))
    for u in set(r["user"]):
        mine = [x for v, x in zip(r["user"], r["score"]) if v == u]
        assert mine == sorted(mine, reverse=True)
    # Resume needs no --feedback; a different one is refused.
    assert main(["train", str(train), "--model", str(m), "--resume", "--epochs", "4", "--quiet"]) == 0
    assert main(["train", str(train), "--model", str(m), "--resume", "--epochs", "5", "--feedback", "explicit"]) == 1
    assert "--feedback implicit" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--negatives", "3"], "--negatives applies to --feedback implicit only"),
    (["--feedback", "implicit", "--schedule", "strata"], "use --schedule hogwild"),
    (["--feedback", "implicit", "--negatives", "5000"], "--negatives must be an integer from 1 to 1000"),
])
def test_command_line_refuses(tmp_path, capsys, argv, message):
    train, *_ = preference_data(tmp_path, n_users=20, per_user=5)
    assert main(["train", str(train), "--loss", "mf", "--model", str(tmp_path / "m")] + argv) != 0
    err = capsys.readouterr().err
    assert message in err and err.count("\n") <= 2
    assert not (tmp_path / "m").exists()


def test_explicit_training_still_needs_ratings(tmp_path, capsys):
    train, *_ = preference_data(tmp_path, n_users=20, per_user=5)
    assert main(["train", str(train), "--loss", "mf", "--model", str(tmp_path / "m")]) == 1
    assert "needs ratings" in capsys.readouterr().err
