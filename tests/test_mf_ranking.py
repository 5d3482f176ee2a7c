"""Ranking metrics (evaluate --top K) against plain Python over a NumPy reference of the
recommendations (test_mf_recommend.reference)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from streamhog.cli import main
from streamhog.factorization import write_interactions
from streamhog.factorization.ranking import ranking_metrics
from test_mf_recommend import N_USERS, model, reference, write_pairs  # noqa: F401 - the fixture


def python_metrics(model, test_pairs, ratings, top, excluded, relevant=None) -> dict:
    rel = {}
    for (u, i), r in zip(test_pairs, ratings):
        if relevant is None or r >= relevant:
            rel.setdefault(u, set()).add(i)
    users = sorted(rel)
    recs = reference(model, users, top, excluded)
    out = dict.fromkeys(("precision", "recall", "hit_rate", "ndcg", "map"), 0.0)
    for u in users:
        mine = recs["item"][recs["user"] == u].tolist()
        hits, dcg, ap = 0, 0.0, 0.0
        for r, i in enumerate(mine, start=1):
            if i in rel[u]:
                hits += 1
                dcg += 1 / math.log2(r + 1)
                ap += hits / r
        ideal = min(top, len(rel[u]))
        out["precision"] += hits / top
        out["recall"] += hits / len(rel[u])
        out["hit_rate"] += hits > 0
        out["ndcg"] += dcg / sum(1 / math.log2(r + 1) for r in range(1, ideal + 1))
        out["map"] += ap / ideal
    result = {f"{k}@{top}": v / len(users) for k, v in out.items()}
    result["n_users"] = len(users)
    return result


def _test_data(tmp_path, model, seed=3):
    """Test pairs that the model ranks high for some users (so that there are hits), others
    at random; ratings 1-5."""
    rng = np.random.default_rng(seed)
    cand = np.flatnonzero(np.asarray(model.arrays["item_factors"]).any(axis=1))
    best = reference(model, list(range(N_USERS)), 15, set())
    pairs = set()
    for u in range(0, N_USERS, 2):
        mine = best["item"][best["user"] == u]
        pairs |= {(u, int(i)) for i in rng.choice(mine, min(len(mine), 6), replace=False)}
        pairs |= {(u, int(i)) for i in rng.choice(cand, 5, replace=False)}
    pairs |= {(70, 3)}  # a user beyond the model
    pairs = sorted(pairs)
    ratings = rng.integers(1, 6, len(pairs)).astype(np.float32)
    path = tmp_path / "test.parquet"
    write_interactions(path, np.array([p[0] for p in pairs], np.uint32), np.array([p[1] for p in pairs], np.uint32),
                       ratings)
    return path, pairs, ratings.tolist(), cand


@pytest.mark.parametrize("relevant", [None, 4.0])
def test_metrics_match_plain_python(model, tmp_path, relevant):
    path, pairs, ratings, cand = _test_data(tmp_path, model)
    rng = np.random.default_rng(9)
    excluded = {(u, int(i)) for u in range(N_USERS) for i in rng.choice(cand, 20, replace=False)}
    ex = write_pairs(tmp_path / "train.parquet", sorted(excluded))
    want = python_metrics(model, pairs, ratings, 10, excluded, relevant)
    for threads, batch in ((1, 1 << 14), (8, 3)):  # 8 threads on 2 cores; batches of 3 users
        got = ranking_metrics(model, path, top=10, exclude=ex, relevant=relevant, threads=threads, batch_users=batch)
        assert got["n_users"] == want["n_users"]
        for k, v in want.items():
            assert got[k] == pytest.approx(v, rel=1e-12, abs=1e-12), k
    assert 0 < want["hit_rate@10"] < 1 and 0 < want["precision@10"]


def test_evaluate_command_line(model, tmp_path, capsys):
    path, pairs, ratings, cand = _test_data(tmp_path, model)
    assert main(["evaluate", str(path), "--model", str(model.path), "--top", "5", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    want = python_metrics(model, pairs, ratings, 5, set())
    assert {"rmse", "mae", "n_examples"} <= set(got)
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-12), k
    # Pairs without ratings: the ranking metrics alone; --relevant needs ratings.
    pairs_only = tmp_path / "pairs.parquet"
    write_interactions(pairs_only, np.array([p[0] for p in pairs], np.uint32), np.array([p[1] for p in pairs], np.uint32))
    assert main(["evaluate", str(pairs_only), "--model", str(model.path), "--top", "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(want, rel=1e-12)
    assert main(["evaluate", str(pairs_only), "--model", str(model.path), "--top", "5", "--relevant", "4"]) == 1
    err = capsys.readouterr().err
    assert "pairs.parquet" in err and "needs ratings" in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["--relevant", "4"], "--relevant needs --top K"),
    (["--exclude", "DATA"], "--exclude needs --top K"),
    (["--top", "3", "--exclude", "MODEL"], "not interaction data"),
    (["--top", "3", "--relevant", "nan"], "relevant must be a finite rating"),
])
def test_evaluate_refuses_bad_options(model, tmp_path, capsys, argv, message):
    path, *_ = _test_data(tmp_path, model)
    argv = [a.replace("MODEL", str(model.path)).replace("DATA", str(path)) for a in argv]
    assert main(["evaluate", str(path), "--model", str(model.path)] + argv) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_evaluate_of_a_linear_model_refuses_the_ranking_options(tmp_path, capsys):
    from conftest import random_batch
    from streamhog.io.formats import create_writer

    data = tmp_path / "train.parquet"
    writer = create_writer("parquet", data)
    writer.write(random_batch(np.random.default_rng(0), 200, 30, binary=True))
    writer.close(30)
    assert main(["train", str(data), "--model", str(tmp_path / "lin"), "--epochs", "1", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(data), "--model", str(tmp_path / "lin"), "--top", "3"]) == 1
    err = capsys.readouterr().err
    assert "--top: ranking metrics of a factorization model" in err and err.count("\n") == 1
