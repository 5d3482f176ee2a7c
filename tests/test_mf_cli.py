"""The command line of matrix factorization: ``convert --input-format ratings``, ``train
--loss mf``, ``evaluate``, ``predict`` and ``info`` dispatching on the model's and the
file's kind, checked against the library calls and NumPy; bad input gets one line and a
non-zero exit, as for the linear models."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from streamhog.cli import main
from streamhog.factorization import MFModel, evaluate, write_interactions
from streamhog.factorization.synthetic import low_rank_ratings, make_truth


@pytest.fixture(scope="module")
def ratings(tmp_path_factory):
    """A low-rank truth as MovieLens-style CSV text (train) and whitespace text (test)."""
    d = tmp_path_factory.mktemp("mfcli")
    truth = make_truth(300, 200, 3, seed=5)
    out = {}
    for name, stream, n in (("train", 0, 20_000), ("test", 1, 2_000)):
        u, i, r = next(low_rank_ratings(300, 200, n, rank=3, scale="half5", noise=0.3, seed=5, stream=stream,
                                        truth=truth))
        out[name] = (u, i, r)
    with open(d / "ratings.csv", "w", newline="") as f:
        f.write("userId,movieId,rating,timestamp\r\n")
        f.writelines(f"{a},{b},{c:g},{k}\r\n" for k, (a, b, c) in enumerate(zip(*out["train"])))
    with open(d / "test.data", "w") as f:
        f.writelines(f"{a}\t{b}\t{c:g}\t{k}\n" for k, (a, b, c) in enumerate(zip(*out["test"])))
    return d, out


def cli(capsys, *args):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_line_error(capsys, command, *args, match):
    rc, _, err = cli(capsys, command, *args)
    assert rc == 1, err
    assert err.startswith(f"streamhog {command}: error: ") and match in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


@pytest.fixture(scope="module")
def converted(ratings, tmp_path_factory):
    d, _ = ratings
    out = tmp_path_factory.mktemp("conv")
    assert main(["convert", str(d / "ratings.csv"), str(out / "train.parquet"), "--input-format", "ratings",
                 "--quiet"]) == 0
    assert main(["convert", str(d / "test.data"), str(out / "test.parquet"), "--input-format", "ratings",
                 "--quiet"]) == 0
    return out


def test_convert_writes_the_ratings_as_read(ratings, converted, tmp_path, capsys):
    d, data = ratings
    for name in ("train", "test"):
        t = pq.read_table(converted / f"{name}.parquet")
        for col, want in zip(("user", "item", "rating"), data[name]):
            np.testing.assert_array_equal(t.column(col).to_numpy(), want)
    # Other column names, given by option; the summary names what was written.
    src = tmp_path / "r.csv"
    src.write_text("who,what,stars\n3,4,4.5\n1,2,1\n")
    rc, out, _ = cli(capsys, "convert", src, tmp_path / "r.parquet", "--input-format", "ratings", "--user-column",
                     "who", "--item-column", "what", "--rating-column", "stars")
    assert rc == 0 and out.startswith(f"wrote {tmp_path / 'r.parquet'}: 2 ratings, user ids < 4, item ids < 5")
    t = pq.read_table(tmp_path / "r.parquet")
    assert t.column("user").to_pylist() == [3, 1] and t.column("rating").to_pylist() == [4.5, 1.0]


def test_train_evaluate_predict_info(converted, tmp_path, capsys):
    m = tmp_path / "m"
    rc, out, err = cli(capsys, "train", converted / "train.parquet", "--model", m, "--loss", "mf", "--rank", 6,
                       "--epochs", 8, "--threads", 2, "--holdout", 0.1, "--early-stopping", 2, "--seed", 3)
    assert rc == 0, err
    assert out.startswith(f"saved {m}: mf model, rank 6, 300 users x 200 items")
    assert "holdout rmse" in err  # the per-epoch lines
    model = MFModel.open(m)
    assert model.rank == 6 and model.meta["hyper_parameters"]["seed"] == 3
    assert all("holdout" in h for h in model.history)

    rc, out, _ = cli(capsys, "evaluate", converted / "test.parquet", "--model", m, "--json")
    assert rc == 0
    metrics = json.loads(out)
    assert set(metrics) == {"rmse", "mae", "n_examples"} and metrics["n_examples"] == 2_000
    assert metrics == evaluate(model, converted / "test.parquet")

    preds = tmp_path / "p.parquet"
    rc, out, _ = cli(capsys, "predict", converted / "test.parquet", "--model", m, "--out", preds)
    assert rc == 0 and out.strip() == f"wrote {preds}: 2,000 predictions"
    t = pq.read_table(preds)
    users, items, rating = (t.column(c).to_numpy() for c in ("user", "item", "rating"))
    pred = t.column("prediction").to_numpy().astype(np.float64)
    np.testing.assert_allclose(pred, model.predict(users, items), rtol=1e-6)
    # The metrics of evaluate are those of the predictions (NumPy), up to their float32 rounding.
    np.testing.assert_allclose(np.sqrt(np.mean((pred - rating) ** 2)), metrics["rmse"], rtol=1e-5)
    np.testing.assert_allclose(np.mean(np.abs(pred - rating)), metrics["mae"], rtol=1e-5)
    # The factors beat the global mean on held-out data: it learned something.
    assert metrics["rmse"] < np.sqrt(np.mean((rating - model.mu) ** 2)) - 0.05
    # A predictions file is replaced only when asked.
    one_line_error(capsys, "predict", converted / "test.parquet", "--model", m, "--out", preds, match="already exists")
    assert cli(capsys, "predict", converted / "test.parquet", "--model", m, "--out", preds, "--overwrite")[0] == 0

    rc, out, _ = cli(capsys, "info", m, "--json")
    info = json.loads(out)
    assert rc == 0 and info["kind"] == "mf" and info["rank"] == 6 and info["epochs_trained"] == len(model.history)
    assert info["users_seen"] <= 300 and info["items_seen"] <= 200 and info["users_seen"] > 250
    rc, out, _ = cli(capsys, "info", converted / "test.parquet", "--json")
    info = json.loads(out)
    assert info["format"] == "interactions" and info["n_rows"] == 2_000 and info["n_users"] <= 300
    rc, out, _ = cli(capsys, "info", m)
    assert rc == 0 and "rank" in out and "users_seen" in out


def test_unseen_ids_get_the_biases_they_have(converted, tmp_path, capsys):
    m = tmp_path / "m"
    assert cli(capsys, "train", converted / "train.parquet", "--model", m, "--loss", "mf", "--rank", 4, "--epochs",
               2, "--threads", 1, "--quiet")[0] == 0
    model = MFModel.open(m)
    pairs = tmp_path / "pairs.parquet"
    write_interactions(pairs, np.array([5, 10**6, 10**6], np.int64), np.array([10**7, 3, 10**7], np.int64),
                       np.zeros(3, np.float32))
    preds = tmp_path / "p.parquet"
    assert cli(capsys, "predict", pairs, "--model", m, "--out", preds)[0] == 0
    got = pq.read_table(preds).column("prediction").to_numpy()
    ub, ib = np.asarray(model.arrays["user_bias"]), np.asarray(model.arrays["item_bias"])
    lo, hi = model.meta["rating_range"]
    want = np.clip([model.mu + ub[5], model.mu + ib[3], model.mu], lo, hi)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_resume_through_the_cli_equals_one_run(converted, tmp_path, capsys):
    common = ["--rank", 5, "--threads", 1, "--holdout", 0, "--seed", 1, "--quiet"]
    assert cli(capsys, "train", converted / "train.parquet", "--model", tmp_path / "once", "--loss", "mf",
               "--epochs", 4, *common)[0] == 0
    assert cli(capsys, "train", converted / "train.parquet", "--model", tmp_path / "twice", "--loss", "mf",
               "--epochs", 2, *common)[0] == 0
    # --resume needs no --loss: the model says what it is.
    assert cli(capsys, "train", converted / "train.parquet", "--model", tmp_path / "twice", "--resume", "--epochs", 4,
               "--threads", 1, "--quiet")[0] == 0
    a, b = MFModel.open(tmp_path / "once"), MFModel.open(tmp_path / "twice")
    assert len(b.history) == 4
    for name in a.arrays:
        np.testing.assert_array_equal(np.asarray(a.arrays[name]), np.asarray(b.arrays[name]), err_msg=name)


def test_bad_input_is_one_line_and_a_non_zero_exit(converted, ratings, tmp_path, capsys):
    train = converted / "train.parquet"
    d, _ = ratings
    # A bad line: file, line, problem; no output.
    bad = tmp_path / "bad.csv"
    bad.write_text("userId,movieId,rating\n1,2,3\n1,-2,4\n")
    one_line_error(capsys, "convert", bad, tmp_path / "o.parquet", "--input-format", "ratings",
                   match=f"{bad}: line 3: ")
    assert not (tmp_path / "o.parquet").exists()
    # Sparse-feature data is not interaction data, and the reverse.
    sparse = tmp_path / "sparse.parquet"
    svm = tmp_path / "a.svm"
    svm.write_text("1 1:1 3:2\n-1 2:1\n")
    assert cli(capsys, "convert", svm, sparse, "--quiet")[0] == 0
    one_line_error(capsys, "train", sparse, "--model", tmp_path / "m1", "--loss", "mf", match="not an interaction file")
    one_line_error(capsys, "train", train, "--model", tmp_path / "m2", "--loss", "logistic",
                   match=f"{train}: interaction data (user, item, rating): train a factorization with --loss mf, "
                         "not --loss logistic")
    one_line_error(capsys, "train", train, "--model", tmp_path / "m2", match="train a factorization with --loss mf")
    # Options of one kind of model on the other.
    one_line_error(capsys, "train", train, "--model", tmp_path / "m3", "--loss", "mf", "--hash-bits", 10,
                   match="--hash-bits: linear-model options")
    one_line_error(capsys, "train", train, "--model", tmp_path / "m4", "--loss", "mf", "--optimizer", "ftrl",
                   match="--optimizer must be one of")
    one_line_error(capsys, "train", sparse, "--model", tmp_path / "m5", "--loss", "logistic", "--rank", 4,
                   match="--rank apply to --loss mf only")
    one_line_error(capsys, "train", sparse, "--model", tmp_path / "m5", "--optimizer", "rowwise-adagrad",
                   match="got 'rowwise-adagrad' (a factorization's: --loss mf)")
    one_line_error(capsys, "train", train, "--model", tmp_path / "m6", "--loss", "mf", "--lr", -1,
                   match="--lr must be a positive number")
    assert not any((tmp_path / f"m{k}").exists() for k in range(1, 7))
    # A model and data of different kinds when scoring.
    m = tmp_path / "m"
    assert cli(capsys, "train", train, "--model", m, "--loss", "mf", "--rank", 2, "--epochs", 1, "--quiet")[0] == 0
    one_line_error(capsys, "evaluate", sparse, "--model", m, match="not an interaction file")
    one_line_error(capsys, "predict", sparse, "--model", m, "--out", tmp_path / "p.parquet",
                   match="not an interaction file")
    one_line_error(capsys, "predict", train, "--model", m, "--out", tmp_path / "p.csv", match="NAME.parquet")
    one_line_error(capsys, "train", train, "--model", m, "--loss", "mf", "--rank", 2, match="already exists")
    one_line_error(capsys, "train", train, "--model", m, "--resume", "--rank", 3, "--epochs", 2,
                   match="cannot resume with --rank 3")
    # One run at a time trains a model (model/lock.py): another holder is named.
    from streamhog.model.lock import ModelLock

    with ModelLock(m):
        one_line_error(capsys, "train", train, "--model", m, "--resume", "--epochs", 2, match="model is in use by process")
        one_line_error(capsys, "train", train, "--model", m, "--loss", "mf", "--overwrite", match="in use")
    assert MFModel.open(m).history and len(MFModel.open(m).history) == 1
    # A linear model and interaction data.
    linear = tmp_path / "linear"
    assert cli(capsys, "train", sparse, "--model", linear, "--epochs", 1, "--quiet")[0] == 0
    one_line_error(capsys, "evaluate", train, "--model", linear, match="is not a factorization model")
    one_line_error(capsys, "predict", train, "--model", linear, "--out", tmp_path / "p.parquet",
                   match="is not a factorization model")
    one_line_error(capsys, "convert", bad, tmp_path / "o.parquet", "--input-format", "ratings", "--fix-rows",
                   match="--fix-rows: sparse-feature options")


def test_predict_on_pairs_without_ratings(converted, ratings, tmp_path, capsys):
    """A user supplies just (user, item) pairs (CSV with a userId,movieId header, no rating):
    convert writes them without a rating column, predict scores them exactly as the same
    pairs with ratings (the model's own predict, NumPy's formula) and writes no rating
    column; train, evaluate and --valid refuse them in one line."""
    m = tmp_path / "m"
    assert cli(capsys, "train", converted / "train.parquet", "--model", m, "--loss", "mf", "--rank", 4, "--epochs",
               2, "--threads", 1, "--quiet")[0] == 0
    model = MFModel.open(m)
    u, i, _ = ratings[1]["test"]
    with open(tmp_path / "pairs.csv", "w") as f:
        f.write("userId,movieId\n")
        f.writelines(f"{a},{b}\n" for a, b in zip(u, i))
    pairs = tmp_path / "pairs.parquet"
    rc, out, err = cli(capsys, "convert", tmp_path / "pairs.csv", pairs, "--input-format", "ratings")
    assert rc == 0 and "2,000 (user, item) pairs, no ratings" in out + err, err
    preds = tmp_path / "p.parquet"
    rc, out, err = cli(capsys, "predict", pairs, "--model", m, "--out", preds)
    assert rc == 0 and out.strip() == f"wrote {preds}: 2,000 predictions", err
    t = pq.read_table(preds)
    assert t.column_names == ["user", "item", "prediction"]
    np.testing.assert_array_equal(t.column("user").to_numpy(), u)
    np.testing.assert_array_equal(t.column("item").to_numpy(), i)
    P, Q = np.asarray(model.arrays["user_factors"], np.float64), np.asarray(model.arrays["item_factors"], np.float64)
    ub, ib = np.asarray(model.arrays["user_bias"]), np.asarray(model.arrays["item_bias"])
    lo, hi = model.meta["rating_range"]
    want = np.clip(model.mu + ub[u] + ib[i] + np.einsum("ij,ij->i", P[u], Q[i]), lo, hi)
    np.testing.assert_allclose(t.column("prediction").to_numpy(), want, rtol=1e-5)
    rated = tmp_path / "rated.parquet"
    assert cli(capsys, "predict", converted / "test.parquet", "--model", m, "--out", rated)[0] == 0
    np.testing.assert_array_equal(t.column("prediction").to_numpy(), pq.read_table(rated).column("prediction").to_numpy())
    for command, args in (("train", ("--model", tmp_path / "m2", "--loss", "mf")), ("evaluate", ("--model", m))):
        one_line_error(capsys, command, pairs, *args, match=f"{pairs}: no 'rating' column: (user, item) pairs to "
                                                            f"score with 'streamhog predict'; ")
    assert not (tmp_path / "m2").exists()
    one_line_error(capsys, "train", converted / "train.parquet", "--model", tmp_path / "m3", "--loss", "mf",
                   "--valid", pairs, match="validation needs ratings")
