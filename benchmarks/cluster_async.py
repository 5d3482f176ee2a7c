#!/usr/bin/env python3
"""Downpour (``--sync-mode async``) at the default rule and lr against one machine (issue 17).

    python benchmarks/cluster_async.py --seeds 0 1 2 3 4 --workers 2 4 --controls > benchmarks/cluster_async.txt

The tests' softmax set (tests/test_cluster.py: 4,000 rows, 30 dense-ish features, 3
classes, 1,000-row blocks; the seed makes the data), 3 epochs, one machine (2 threads)
against async with 2 and 4 workers of one thread, for each ``stale_scaling``: ``every``
(every push scaled by 1/(1 + staleness), the default) and ``beyond-bound`` (the old rule:
full steps within --max-staleness). ``--controls``: a9a and the synthetic benchmark set
(the tests' sizes), async with 2 and 4 workers, and with one worker slowed (0.15 s a block)
and a bound of 1, scale and drop. Losses are logloss on the test set (softmax: on the
training set, as the test does). The pushes' order, hence each result, depends on timing:
run several seeds.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np

SCALINGS = ("every", "beyond-bound")


def softmax_data(tmp: Path, seed: int) -> str:
    import scipy.sparse as sp

    from streamhog.io.batch import SparseBatch
    from streamhog.io.formats import create_writer

    rng = np.random.default_rng(seed)
    W = rng.normal(size=(30, 3))
    path = tmp / f"mc{seed}.parquet"
    w = create_writer("parquet", path, rows_per_group=1000)
    for k in range(4):
        X = sp.csr_matrix((rng.random((1000, 30)) < 0.2).astype(np.float32))
        y = np.argmax(X @ W + rng.gumbel(size=(1000, 3)), axis=1).astype(np.float32)
        w.write(SparseBatch(X.indptr.astype(np.int64), X.indices.astype(np.uint32), None, y, row_start=k * 1000))
    w.close(30)
    return str(path)


def sparse_sets(tmp: Path) -> None:
    import streamhog
    from streamhog.datasets import a9a
    from streamhog.datasets.synthetic import SyntheticSpec, synthetic_batches
    from streamhog.io.formats import create_writer

    streamhog.convert(a9a("train"), tmp / "a9a.parquet", rows_per_group=4096, progress=False)
    streamhog.convert(a9a("test"), tmp / "a9a_test.parquet", progress=False)
    spec = SyntheticSpec(n_rows=48_000, n_features=50_000, nnz_per_row=39, seed=3)
    for name, lo, hi in (("syn", 0, 40_000), ("syn_test", 40_000, 48_000)):
        w = create_writer("parquet", tmp / f"{name}.parquet", rows_per_group=4000)
        for b in synthetic_batches(spec, rows_per_block=4000, start_row=lo, stop_row=hi):
            w.write(b)
        w.close(spec.n_features)


def _report(m) -> str:
    r = [h["cluster"] for h in m.meta["history"]]
    return (f"staleness mean {[x['staleness_mean'] for x in r]} max {max(x['staleness_max'] for x in r)}, "
            f"pushes {sum(x['pushes'] for x in r)}: scaled {sum(x['pushes_scaled'] for x in r)}, "
            f"beyond the bound {sum(x['pushes_beyond_bound'] for x in r)}, "
            f"dropped {sum(x['pushes_dropped'] for x in r)}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    p.add_argument("--controls", action="store_true")
    args = p.parse_args()
    import distributed

    import streamhog
    from streamhog.cluster import train_on_cluster

    tmp = Path(tempfile.mkdtemp(prefix="streamhog-cluster-async-"))
    n = max(args.workers)
    with distributed.LocalCluster(n_workers=n, threads_per_worker=2, processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as lc, distributed.Client(lc) as client:
        client.wait_for_workers(n)
        print("| set | seed | workers | stale_scaling | one machine | async | ratio | staleness |")
        print("|---|---:|---:|---|---:|---:|---:|---|")
        for seed in args.seeds:
            data = softmax_data(tmp, seed)
            one = streamhog.train(data, tmp / f"one{seed}", epochs=3, loss="softmax", threads=2, quiet=True)
            single = one.evaluate(data)["logloss"]
            for k in args.workers:
                for scaling in SCALINGS:
                    m = train_on_cluster(data, tmp / f"{scaling}{seed}-{k}", cluster=client, epochs=3, loss="softmax",
                                         threads=1, quiet=True, sync_mode="async",
                                         cluster_options={"n_workers": k, "stale_scaling": scaling})
                    loss = m.evaluate(data)["logloss"]
                    print(f"| softmax | {seed} | {k} | {scaling} | {single:.4f} | {loss:.4f} | {loss / single:.4f} "
                          f"| {_report(m)} |", flush=True)
        if not args.controls:
            return 0
        sparse_sets(tmp)
        runs = [(f"{k} workers", {"n_workers": k}) for k in args.workers]
        runs += [(f"2 workers, one slowed, bound 1, {pol}", {"n_workers": 2, "delays": {0: 0.15}, "max_staleness": 1,
                                                           "stale_policy": pol}) for pol in ("scale", "drop")]
        print("\n| set | run | stale_scaling | one machine | async | ratio | staleness |")
        print("|---|---|---|---:|---:|---:|---|")
        for name in ("syn", "a9a"):
            test = str(tmp / f"{name}_test.parquet")
            one = streamhog.train(str(tmp / f"{name}.parquet"), tmp / f"one-{name}", epochs=3, threads=2, quiet=True)
            single = one.evaluate(test)["logloss"]
            for label, opts in runs:
                for scaling in SCALINGS:
                    m = train_on_cluster(str(tmp / f"{name}.parquet"), tmp / f"{name}-{label}-{scaling}",
                                         cluster=client, epochs=3, threads=1, quiet=True, sync_mode="async",
                                         cluster_options=dict(opts, stale_scaling=scaling))
                    loss = m.evaluate(test)["logloss"]
                    print(f"| {name} | {label} | {scaling} | {single:.5f} | {loss:.5f} | {loss / single:.4f} "
                          f"| {_report(m)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
