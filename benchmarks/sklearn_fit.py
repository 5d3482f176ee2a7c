#!/usr/bin/env python3
"""What the scikit-learn estimators cost over the engine: a small fit's overhead, a9a end to
end against ``streamhog.train`` and scikit-learn's SGDClassifier, and a pickle round trip.

    python benchmarks/sklearn_fit.py [--repeats 5] [--threads 1]

Rows (medians of ``--repeats``, interleaved; seconds of wall time in this process):

- small fit: 100 x 5 dense rows, one epoch, one thread — the overhead scikit-learn's tools
  (check_estimator, GridSearchCV, cross_val_score) pay per fit: a temporary model directory
  (no syncs) and a ``model_dir=`` one (durable: fsync/msync at every checkpoint);
- a9a (32,561 x 123, scipy CSR in memory), the default 5 epochs with holdout and early
  stopping: HogwildClassifier, ``streamhog.train`` on the same matrix, ``streamhog.train`` on
  the converted Parquet file, and SGDClassifier(loss="log_loss") with the same epoch count;
  with the test logloss of each;
- pickle: ``pickle.dumps``/``loads`` of the fitted a9a estimator (the arrays travel by value).
"""
from __future__ import annotations

import argparse
import pickle
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="training threads of streamhog (default 1)")
    args = ap.parse_args(argv)

    import streamhog
    from sklearn.datasets import load_svmlight_file
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import log_loss
    from streamhog.datasets import a9a
    from streamhog.sklearn import HogwildClassifier

    tmp = Path(tempfile.mkdtemp(prefix="sklearn-fit-bench-"))
    import scipy.sparse as sp

    X, y = load_svmlight_file(a9a("train"), n_features=123)
    Xt, yt = load_svmlight_file(a9a("test"), n_features=123)
    # scipy's usual int32 ids (SGDClassifier refuses int64 ones; streamhog then views them as uint32)
    X = sp.csr_matrix((X.data, X.indices.astype(np.int32), X.indptr.astype(np.int32)), shape=X.shape)
    streamhog.convert(a9a("train"), tmp / "a9a.parquet")
    rng = np.random.default_rng(0)
    Xs, ys = rng.normal(size=(100, 5)), rng.integers(0, 2, 100)
    th = args.threads
    HogwildClassifier(threads=th, epochs=1).fit(Xs, ys)  # compile / warm the kernels first

    runs = {
        "small fit, temporary model directory": lambda i: HogwildClassifier(threads=th, epochs=1).fit(Xs, ys),
        "small fit, model_dir= (durable)": lambda i: HogwildClassifier(
            threads=th, epochs=1, model_dir=tmp / f"small-{i}").fit(Xs, ys),
        "small fit, SGDClassifier": lambda i: SGDClassifier(loss="log_loss", max_iter=1, tol=None).fit(Xs, ys),
        "a9a, HogwildClassifier (in memory)": lambda i: HogwildClassifier(threads=th).fit(X, y),
        "a9a, streamhog.train (in memory)": lambda i: streamhog.train(
            streamhog.InMemoryData(X, y), tmp / f"mem-{i}", threads=th, quiet=True),
        "a9a, streamhog.train (Parquet)": lambda i: streamhog.train(
            tmp / "a9a.parquet", tmp / f"pq-{i}", threads=th, quiet=True),
        "a9a, SGDClassifier (5 epochs)": lambda i: SGDClassifier(loss="log_loss", max_iter=5, tol=None,
                                                                 random_state=0).fit(X, y),
    }
    times = {name: [] for name in runs}
    fitted = {}
    import warnings

    warnings.filterwarnings("ignore", category=Warning, module="sklearn")
    for i in range(args.repeats):
        for name, run in runs.items():
            seconds, fitted[name] = timed(lambda: run(i))
            times[name].append(seconds)

    def test_logloss(name):
        m = fitted[name]
        if isinstance(m, streamhog.Model):
            return log_loss(yt, m.predict(Xt))
        return log_loss(yt, m.predict_proba(Xt)) if name.startswith("a9a") else None

    print(f"| what | seconds (median of {args.repeats}) | test logloss |\n|---|---:|---:|")
    for name in runs:
        loss = test_logloss(name)
        print(f"| {name} | {statistics.median(times[name]):.4f} | {'' if loss is None else f'{loss:.4f}'} |")
    est = fitted["a9a, HogwildClassifier (in memory)"]
    dump = [timed(lambda: pickle.dumps(est)) for _ in range(args.repeats)]
    load = [timed(lambda: pickle.loads(dump[0][1]))[0] for _ in range(args.repeats)]
    print(f"| pickle.dumps of the a9a estimator ({len(dump[0][1]):,} bytes) | "
          f"{statistics.median(t for t, _ in dump):.4f} | |")
    print(f"| pickle.loads of it | {statistics.median(load):.4f} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
