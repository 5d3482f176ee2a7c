#!/usr/bin/env python3
"""Cluster training (issue 17): per-round compute, bytes and communication, measured on a
LocalCluster here, and projected to 8/32/128 workers at 1 and 10 Gb/s.

    python benchmarks/cluster.py --rows 200000 --features 1000000 --workers 1 2 4 --out benchmarks/cluster.json

On this 2-core machine K worker processes share two cores, so time cannot show a speed-up:
what it measures is what a round costs — the compute of one worker (its training time,
reported by the worker), the bytes each round moves (sparse changes up the tree, the
result down the tree and to the client) and the rest of the round's wall time
(serialisation, Dask's task and transfer latency). The projection combines them with the
data's sparsity (distinct coordinates in K x R rows, counted here) and the link speed:

    round = compute(R rows) + 2 log2(K) (latency + U/B) + log2(K) C p + (latency + U/B + 2 C p)
            + 3K / 3000 tasks/s
            (moves up and down the tree, a merge per level, the result to the client and its
            apply there and on the workers, the scheduler's ~3K tasks)
    epoch = N / (K R) rounds

U: bytes of the combined change of K x R rows (C coordinates); B: bandwidth; p: the
processing of one coordinate of a change (gathering it, applying it on a worker and on the
client: the 1-worker round's itemised times per coordinate, measured here); latency: a
Dask hop, both as
measured here (a loaded 2-core VM: pessimistic) and at 2 ms (the issue's figures for Dask:
1-4 ms per actor call, 0.5-1 ms worker to worker). Timings here are provisional.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_data(path: Path, rows: int, features: int, nnz: int, seed: int = 0) -> None:
    from streamhog.datasets.synthetic import SyntheticSpec, synthetic_batches
    from streamhog.io.formats import create_writer

    spec = SyntheticSpec(n_rows=rows, n_features=features, nnz_per_row=nnz, seed=seed)
    w = create_writer("parquet", path, rows_per_group=16_384)
    for b in synthetic_batches(spec, rows_per_block=16_384):
        w.write(b)
    w.close(features)


def distinct_coordinates(path: Path, rows: int) -> int:
    """Distinct feature ids in the first ``rows`` rows (the union a round of K x R rows touches)."""
    from streamhog.io.formats import open_dataset

    ds = open_dataset(str(path))
    reader = ds.open_reader()
    seen, got = [], 0
    for k in range(ds.n_blocks):
        b = reader.read(k)
        take = min(b.n_rows, rows - got)
        seen.append(np.unique(b.indices[:b.indptr[take]]))
        got += take
        if got >= rows:
            break
    reader.close()
    return int(len(np.unique(np.concatenate(seen))))


def measure(client, data: Path, workers: int, sync_rows: int, tmp: Path) -> dict:
    from streamhog.cluster import train_on_cluster

    t = time.perf_counter()
    m = train_on_cluster(str(data), tmp / f"m{workers}", cluster=client, epochs=1, threads=1, readers=1,
                         sync_every=sync_rows, overwrite=True, quiet=True, holdout=0.0,
                         cluster_options={"n_workers": workers})
    wall = time.perf_counter() - t
    rep = m.meta["history"][0]["cluster"]
    rounds = rep["per_round"][:-1] or rep["per_round"]  # the last round of an epoch may be short
    med = {k: float(np.median([r[k] for r in rounds])) for k in rounds[0]}
    return {"workers": workers, "rounds": rep["rounds"], "wall_s": round(wall, 3), "median_round": med,
            "epoch_compute_s": rep["compute_s"], "epoch_comm_s": rep["comm_s"]}


def _identity(x):
    return x


def dask_hop(client) -> dict:
    """Median latency of a trivial task pinned to a worker (client round trip), and of moving
    a 4 MB array from one worker to another (a tree edge), on this machine."""
    import distributed

    ws = sorted(client.scheduler_info()["workers"])
    for _ in range(3):
        client.submit(_identity, 1, workers=[ws[0]], pure=False).result()
    trip, hop = [], []
    for _ in range(20):
        t = time.perf_counter()
        client.submit(_identity, 1, workers=[ws[0]], pure=False).result()
        trip.append(time.perf_counter() - t)
    for _ in range(10):
        a = client.submit(np.zeros, 500_000, workers=[ws[0]], pure=False)
        distributed.wait([a])
        t = time.perf_counter()
        b = client.submit(_identity, a, workers=[ws[-1]], pure=False)
        distributed.wait([b])
        hop.append(time.perf_counter() - t)
    return {"task_round_trip_s": float(np.median(trip)), "hop_4mb_s": float(np.median(hop))}


def project(per_worker_rows_s: float, coord_bytes: float, union, latency_s: float, n_rows: float,
            sync_rows: int, k: int, gbps: float, per_coord_s: float = 0.0) -> dict:
    bandwidth = gbps * 1e9 / 8
    coords = union(k * sync_rows)
    u = coords * coord_bytes
    levels = math.ceil(math.log2(k)) if k > 1 else 0
    process = coords * per_coord_s
    comm = 2 * levels * (latency_s + u / bandwidth) + levels * process + latency_s + u / bandwidth + 2 * process \
        + 3 * k / 3000
    compute = sync_rows / per_worker_rows_s
    round_s = compute + comm
    epoch_s = n_rows / (k * sync_rows) * round_s
    return {"round_compute_s": compute, "round_comm_s": comm, "epochs_per_hour": 3600 / epoch_s,
            "comm_share": comm / round_s}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--features", type=int, default=1_000_000)
    ap.add_argument("--nnz", type=int, default=39)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--sync-rows", type=int, default=65_536)
    ap.add_argument("--project-rows", type=float, default=1e9, help="rows of the dataset the projection is for")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--project-only", type=Path, metavar="JSON",
                    help="recompute the projections of a saved --out file (with --worker-rows-s)")
    ap.add_argument("--worker-rows-s", type=float, nargs="*", default=[],
                    help="also project at these per-worker training rates (rows/s)")
    args = ap.parse_args(argv)
    if args.project_only:
        saved = json.loads(args.project_only.read_text())
        saved["projection"] = projections(saved, args.worker_rows_s)
        text = json.dumps(saved, indent=1, default=float)
        (args.out or args.project_only).write_text(text + "\n")
        print(text)
        return 0
    import distributed

    tmp = Path(tempfile.mkdtemp(prefix="streamhog-cluster-bench-"))
    data = tmp / "train.parquet"
    make_data(data, args.rows, args.features, args.nnz)
    results = []
    with distributed.LocalCluster(n_workers=max(args.workers), threads_per_worker=2, processes=True,
                                  dashboard_address=":0", silence_logs=logging.ERROR) as lc, \
            distributed.Client(lc) as client:
        measure(client, data, max(args.workers), args.sync_rows, tmp)  # warm-up: imports, numba caches
        hop = dask_hop(client)
        print(json.dumps(hop), flush=True)
        for k in args.workers:
            results.append(measure(client, data, k, args.sync_rows, tmp))
            print(json.dumps(results[-1]), flush=True)
    one = next(r for r in results if r["workers"] == 1)["median_round"]
    per_worker_rows_s = one["rows"] / one["compute_s"]
    # Bytes per coordinate of a change (index + weight + AdaGrad accumulator) and the latency of a
    # Dask hop, from the measured rounds.
    coord_bytes = one["bytes_to_client"] / one["coordinates"]
    cache: dict = {}
    for n in (args.rows // 4, args.rows):
        cache[n] = distinct_coordinates(data, n)
    out = {"args": vars(args) | {"out": str(args.out), "project_only": None}, "measured": results,
           "per_worker_rows_s": per_worker_rows_s, "nnz_per_row": args.nnz, "coord_bytes": coord_bytes,
           "hop_latency_s": hop["task_round_trip_s"], "dask": hop, "distinct_coordinates": cache}
    out["projection"] = projections(out, args.worker_rows_s)
    print(json.dumps(out, indent=1, default=float))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1, default=float) + "\n")
    return 0


def projections(saved: dict, rates: list[float]) -> dict:
    """Epochs per hour of ``project_rows`` rows at 8/32/128 workers, 1 and 10 Gb/s, for the
    measured hop latency and 2 ms, at the measured per-worker rate and at ``rates``."""
    a = saved["args"]
    points = sorted((int(k), v) for k, v in saved["distinct_coordinates"].items())
    (n1, d1), (n2, d2) = points[0], points[-1]
    beta = math.log(d2 / d1) / math.log(n2 / n1)  # Heaps' law: distinct ids grow as rows^beta

    def union(n: int) -> int:
        return min(a["features"], int(d2 * (n / n2) ** beta)) if n > n2 else d2

    one = next(r for r in saved["measured"] if r["workers"] == 1)["median_round"]
    hop = saved["dask"]
    if "gather_s" in one:  # itemised: applying the last result, gathering the change, the client's apply
        per_coord = (one["apply_s"] + one["gather_s"] + one["client_apply_s"]) / one["coordinates"]
    else:
        per_coord = max(0.0, one["comm_s"] - 3 * hop["task_round_trip_s"]
                        - one["bytes_to_client"] * hop["hop_4mb_s"] / 4e6) / one["coordinates"]
    saved["per_coordinate_s"] = per_coord
    out = {}
    for sync in sorted({a["sync_rows"], 1 << 20}):
        for rate in [saved["per_worker_rows_s"]] + list(rates):
            for lat in (saved["hop_latency_s"], 0.002):
                for k in (8, 32, 128):
                    for g in (1, 10):
                        key = f"R {sync:,}, {rate:,.0f} rows/s/worker, hop {lat * 1e3:.0f} ms, {k} workers, {g} Gb/s"
                        out[key] = project(rate, saved["coord_bytes"], union, lat, a["project_rows"], sync, k, g,
                                           per_coord)
    return out


if __name__ == "__main__":
    sys.exit(main())
