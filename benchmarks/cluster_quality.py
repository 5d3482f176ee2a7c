#!/usr/bin/env python3
"""Test logloss of cluster training against one machine (issue 17), on a LocalCluster here.

    python benchmarks/cluster_quality.py > benchmarks/cluster_quality.txt

a9a and the synthetic benchmark data (48,000 rows of RCV1 shape, 50,000 features; the
tests' sizes), 3 epochs with the defaults (holdout, early stopping): one machine
(2 threads), then 2 and 4 workers of one thread with --sync-combine average and sum
(--sync-every 8192); async with one worker slowed down (0.15 s per block) and a staleness
bound of 1, scale and drop; L-BFGS (l2 1e-4) against scikit-learn's LogisticRegression.
Losses do not depend on the machine's load; the seconds printed do.
"""
from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    import distributed

    import streamhog
    from streamhog.cluster import train_on_cluster
    from streamhog.datasets import a9a
    from streamhog.datasets.synthetic import SyntheticSpec, synthetic_batches
    from streamhog.io.formats import create_writer

    tmp = Path(tempfile.mkdtemp(prefix="streamhog-cluster-quality-"))
    spec = SyntheticSpec(n_rows=48_000, n_features=50_000, nnz_per_row=39, seed=3)
    for name, lo, hi in (("syn", 0, 40_000), ("syn_test", 40_000, 48_000)):
        w = create_writer("parquet", tmp / f"{name}.parquet", rows_per_group=4000)
        for b in synthetic_batches(spec, rows_per_block=4000, start_row=lo, stop_row=hi):
            w.write(b)
        w.close(spec.n_features)
    streamhog.convert(a9a("train"), tmp / "a9a.parquet", rows_per_group=4096, progress=False)
    streamhog.convert(a9a("test"), tmp / "a9a_test.parquet", progress=False)

    def loss(m, name):
        return m.evaluate(str(tmp / f"{name}_test.parquet"))["logloss"]

    with distributed.LocalCluster(n_workers=4, threads_per_worker=2, processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as lc, distributed.Client(lc) as client:
        def fit(name, **kw):
            opts = kw.pop("cluster_options", {})
            opts.setdefault("n_workers", kw.pop("workers"))
            t = time.perf_counter()
            m = train_on_cluster(str(tmp / f"{name}.parquet"), tmp / "m", cluster=client, threads=1, overwrite=True,
                                 quiet=True, cluster_options=opts, **kw)
            return m, time.perf_counter() - t

        print("| data | run | test logloss | vs one machine | s |\n|---|---|---:|---:|---:|")
        for name in ("syn", "a9a"):
            t = time.perf_counter()
            ref = loss(streamhog.train(str(tmp / f"{name}.parquet"), tmp / "one", epochs=3, threads=2, quiet=True,
                                       overwrite=True), name)
            print(f"| {name} | one machine, 2 threads | {ref:.5f} | | {time.perf_counter() - t:.1f} |", flush=True)
            for k in (2, 4):
                for combine in ("average", "sum"):
                    m, secs = fit(name, workers=k, epochs=3, sync_every=8192, combine=combine)
                    got = loss(m, name)
                    print(f"| {name} | {k} workers, {combine} | {got:.5f} | {100 * (got / ref - 1):+.2f}% | {secs:.1f} |",
                          flush=True)
            for policy in ("scale", "drop"):
                m, secs = fit(name, workers=2, epochs=3, sync_mode="async",
                              cluster_options={"delays": {0: 0.15}, "max_staleness": 1, "stale_policy": policy})
                got = loss(m, name)
                st = m.meta["history"][-1]["cluster"]
                print(f"| {name} | async, 2 workers, one slowed, bound 1, {policy} (last epoch: staleness mean "
                      f"{st['staleness_mean']}, max {st['staleness_max']}, scaled {st['pushes_scaled']}, dropped "
                      f"{st['pushes_dropped']} of {st['pushes']}) | {got:.5f} | {100 * (got / ref - 1):+.2f}% | "
                      f"{secs:.1f} |", flush=True)
        from sklearn.datasets import load_svmlight_file
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import log_loss

        X, y = load_svmlight_file(str(a9a("train")), n_features=123)
        Xt, yt = load_svmlight_file(str(a9a("test")), n_features=123)
        sk = LogisticRegression(C=1 / (X.shape[0] * 1e-4), tol=1e-10, max_iter=10_000).fit(X, y)
        want = log_loss(yt, sk.predict_proba(Xt)[:, 1])
        print(f"| a9a | scikit-learn LogisticRegression(C=1/(n 1e-4)) | {want:.6f} | | |")
        for iters in (30, 60, 100):
            m, secs = fit("a9a", workers=2, sync_mode="lbfgs", l2=1e-4, epochs=iters)
            got = loss(m, "a9a")
            print(f"| a9a | lbfgs, 2 workers, {iters} iterations | {got:.6f} | {got - want:+.1e} (absolute) | "
                  f"{secs:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
