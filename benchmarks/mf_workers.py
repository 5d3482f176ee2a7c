"""Worker processes of benchmarks/factorization.py: one system, one run, one JSON line.

Each runs in its own process (factorization.py measures its wall time and peak anonymous
memory from outside) and prints one JSON object on its last stdout line: the seconds of
its timed section (the fit, or streamhog's whole train_mf call), the ratings it processed,
and the test RMSE.

    python benchmarks/mf_workers.py streamhog TRAIN TEST --rank 100 --epochs 20 --threads 2 --fixed
    python benchmarks/mf_workers.py estimator TRAIN TEST --rank 100 --epochs 20 --threads 2 --fixed
    python benchmarks/mf_workers.py surprise TRAIN TEST --rank 100 --epochs 20 --seed 0 [--limit N]
    python benchmarks/mf_workers.py libmf TRAIN TEST --rank 100 --epochs 20 --threads 2
    python benchmarks/mf_workers.py kernel TRAIN --rank 32 --epochs 1 --threads 2 [--schedule strata]
    python benchmarks/mf_workers.py bigmodel TRAIN --n-users 2147483648 --rank 16
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def load(path, limit=None):
    """(users, items, ratings) of an interaction file, as int64, int64, float64."""
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=["user", "item", "rating"])
    if limit:
        t = t.slice(0, limit)
    return (t.column("user").to_numpy().astype(np.int64), t.column("item").to_numpy().astype(np.int64),
            t.column("rating").to_numpy().astype(np.float64))


def zeros64(shape) -> np.ndarray:
    """float32 zeros starting on a 64-byte cache line, as the trainer's memory-mapped .npy
    files do (numpy pads their header to 64 bytes): np.zeros' large arrays start 16 or 32
    bytes into a line, so a line of 16 biases would hold two runs of 16 ids."""
    n = int(np.prod(shape))
    raw = np.zeros(n + 16, np.float32)
    skip = (-raw.ctypes.data % 64) // 4
    return raw[skip:skip + n].reshape(shape)


def rmse(pred, truth) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred, np.float64) - truth) ** 2)))


def run_streamhog(a) -> dict:
    from streamhog.factorization import evaluate, train_mf

    work = Path(tempfile.mkdtemp(prefix="mf-bench-", dir=a.workdir))
    opts = {"threads": a.threads}
    if a.rank:
        opts["rank"] = a.rank
    if a.epochs:
        opts["epochs"] = a.epochs
    if a.fixed:  # every epoch, every row: the work Surprise does
        opts.update(holdout=0.0, early_stopping=0)
    if a.optimizer:
        opts["optimizer"] = a.optimizer
    if a.schedule:
        opts["schedule"] = a.schedule
    if a.seed:  # the factors' start (and the order of the rows); 0 is MFConfig's default
        opts["seed"] = a.seed
    try:
        # Start-up excluded, as benchmarks/run.py does for the linear models: a first run on
        # 1,000 ratings loads numba's cached machine code (about 0.1-0.2 s), which a long job
        # pays once and Surprise (a compiled extension) not at all.
        from streamhog.factorization import write_interactions

        rng = np.random.default_rng(0)
        write_interactions(work / "tiny.parquet", rng.integers(0, 50, 1000), rng.integers(0, 50, 1000),
                           rng.integers(1, 6, 1000).astype(np.float32))
        evaluate(train_mf(work / "tiny.parquet", work / "tiny", **{**opts, "epochs": 1}), work / "tiny.parquet")
        start, cpu = time.perf_counter(), time.process_time()
        model = train_mf(a.train, work / "model", **opts)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        m = evaluate(model, a.test, threads=a.threads)
        trained = sum(h["examples"] for h in model.history)
        return {"seconds": seconds, "cpu_seconds": cpu, "ratings": trained, "test_rmse": m["rmse"],
                "epochs": len(model.history),
                "kernel_seconds": sum(h["seconds"] for h in model.history), "rank": model.rank}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_estimator(a) -> dict:
    """streamhog.sklearn.HogwildRecommender: ``fit`` on arrays in memory (the data loaded
    first, as Surprise's Trainset is built before its timed fit), its model temporary."""
    from streamhog.sklearn import HogwildRecommender

    opts = {"threads": a.threads}
    for name in ("rank", "epochs", "optimizer", "schedule", "seed"):
        if getattr(a, name):
            opts[name] = getattr(a, name)
    if a.fixed:
        opts.update(holdout=0.0, early_stopping=0)
    u, i, r = load(a.train)
    X = np.c_[u, i]
    rng = np.random.default_rng(0)  # start-up excluded, as run_streamhog's tiny run
    HogwildRecommender(**{**opts, "epochs": 1}).fit(rng.integers(0, 50, (1000, 2)), rng.integers(1, 6, 1000))
    start, cpu = time.perf_counter(), time.process_time()
    est = HogwildRecommender(**opts).fit(X, r)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    ut, it, rt = load(a.test)
    history = est.history_
    return {"seconds": seconds, "cpu_seconds": cpu, "ratings": sum(h["examples"] for h in history),
            "test_rmse": rmse(est.predict(np.c_[ut, it]), rt), "epochs": len(history),
            "in_memory": str(est.model_path_).startswith("/dev/shm/")}


def run_surprise(a) -> dict:
    from collections import defaultdict

    from surprise import SVD, Trainset

    u, i, r = load(a.train, a.limit)
    start = time.perf_counter()
    # A Trainset built directly (Surprise's own structures) from the same rows; not timed as the fit.
    ur, ir, r2iu, r2ii = defaultdict(list), defaultdict(list), {}, {}
    for uu, ii, rr in zip(u.tolist(), i.tolist(), r.tolist()):
        iu, ii_ = r2iu.setdefault(uu, len(r2iu)), r2ii.setdefault(ii, len(r2ii))
        ur[iu].append((ii_, rr))
        ir[ii_].append((iu, rr))
    ts = Trainset(ur, ir, len(r2iu), len(r2ii), len(r), (float(r.min()), float(r.max())), r2iu, r2ii)
    load_s = time.perf_counter() - start
    algo = SVD(n_factors=a.rank or 100, n_epochs=a.epochs or 20, random_state=a.seed)
    start, cpu = time.perf_counter(), time.process_time()
    algo.fit(ts)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    ut, it, rt = load(a.test)
    pred = [algo.predict(x, y).est for x, y in zip(ut.tolist(), it.tolist())]
    return {"seconds": seconds, "cpu_seconds": cpu, "ratings": len(r) * (a.epochs or 20), "test_rmse": rmse(pred, rt),
            "load_seconds": load_s, "rows": len(r)}


def run_libmf(a) -> dict:
    """LIBMF (Chin, Zhuang, Juan, Lin: fast parallel SGD for matrix factorization) through the
    ``libmf`` Python binding: its fit, then LIBMF's own prediction rule (mf_predict: p_u·q_i,
    the global mean b for an id beyond the matrices), computed here from the model's P and Q
    because the binding's predict returns wrong values (0.9.2: 1.18 train RMSE where P·Q
    gives 0.69)."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        from libmf import mf  # prints where its library is
    u, i, r = load(a.train)
    data = np.column_stack([u, i, r]).astype(np.float32)  # the binding takes float32 triples
    engine = mf.MF(k=a.rank, nr_iters=a.epochs, nr_threads=a.threads, quiet=True)
    start, cpu = time.perf_counter(), time.process_time()
    engine.fit(data)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    m = engine.model
    P = np.ctypeslib.as_array(m.P, shape=(m.m, m.k))
    Q = np.ctypeslib.as_array(m.Q, shape=(m.n, m.k))
    ut, it, rt = load(a.test)
    seen = (ut < m.m) & (it < m.n)
    pred = np.full(len(rt), m.b, np.float64)
    pred[seen] = np.einsum("ij,ij->i", P[ut[seen]], Q[it[seen]])
    pred = np.clip(np.where(np.isnan(pred), m.b, pred), r.min(), r.max())
    return {"seconds": seconds, "cpu_seconds": cpu, "ratings": len(r) * a.epochs, "test_rmse": rmse(pred, rt)}


def run_kernel(a) -> dict:
    """The ceiling: the AdaGrad kernel over blocks already in memory, N threads taking blocks
    from a shared list, as the trainer's consumers do (same row orders, hyper-parameters)."""
    from streamhog.factorization import InteractionDataset, MFConfig
    from streamhog.factorization import kernels as K
    from streamhog.factorization import strata as S
    from streamhog.factorization.config import kernel_hyper
    from streamhog.io.stream import block_order

    ds = InteractionDataset(a.train)
    reader = ds.open_reader()
    blocks = [reader.read(b) for b in range(ds.n_blocks)]
    reader.close()
    cfg = MFConfig(rank=a.rank, optimizer=a.optimizer or MFConfig.optimizer, holdout=0.0).resolved()
    r = np.concatenate([b.ratings for b in blocks]).astype(np.float64)
    h = kernel_hyper(cfg, float(r.std()))
    mu = float(r.mean())
    P = zeros64((ds.n_users, a.rank))
    Q = zeros64((ds.n_items, a.rank))
    bu, bi = zeros64((ds.n_users,)), zeros64((ds.n_items,))
    if cfg.optimizer == "adagrad":
        state = (zeros64(P.shape), zeros64(Q.shape), zeros64(bu.shape), zeros64(bi.shape))
    elif cfg.optimizer == "rowwise-adagrad":  # one sum per row, (n, 1) as MFModel.kernel_arrays gives them
        state = (zeros64((ds.n_users, 1)), zeros64((ds.n_items, 1)), zeros64(bu.shape), zeros64(bi.shape))
    else:
        state = (np.zeros((0, a.rank), np.float32),) * 2 + (np.zeros(0, np.float32),) * 2
    kernel = K.TRAIN_KERNELS[K.OPTIMIZER_IDS[cfg.optimizer]]
    empty = np.zeros(0, np.float32)
    seconds, cpu_seconds, ratings, cuts, team = 0.0, 0.0, 0, {}, None
    for epoch in range(a.epochs):
        order = block_order(ds.n_blocks, epoch=epoch, seed=0).tolist()
        rows = {}
        for b in order:  # row orders drawn before the clock starts: the kernel alone is timed
            held, out = np.empty(blocks[b].n_rows, bool), np.empty(blocks[b].n_rows, np.int64)
            K.shuffled_rows(np.uint64(0), np.uint64(epoch), np.uint64(b), 0.0, blocks[b].row_start, held, out)
            rows[b] = out
        lock = threading.Lock()
        cpu = []

        def train(b, rows):
            x = blocks[b]
            return kernel(x.users, x.items, x.ratings, empty, False, rows, P, Q, bu, bi, *state, mu, h["lr"],
                          h["lr_bias"], h["l2"], h["l2_bias"], h["beta"], h["beta_bias"], h["init_scale"],
                          np.uint64(0))

        def work():
            t0 = time.thread_time()  # this thread's CPU time: a figure the machine's load does not inflate
            while True:
                with lock:
                    if not order:
                        cpu.append(time.thread_time() - t0)
                        return
                    b = order.pop()
                train(b, rows[b])

        if a.schedule == "strata" and a.threads > 1:
            # The trainer's stratified schedule: the blocks one at a time, each cut into the
            # threads' grid of cells (in the first epoch) and each cell shuffled (timed, unlike
            # the Hogwild! row orders above: they are part of the schedule's cost), trained by
            # the team (started once, as the trainer's stands for the run), each thread's
            # rounds in one nogil call. CPU: the process's (the team's threads and this one).
            start, cpu0 = time.perf_counter(), time.process_time()
            if team is None:
                team = S.StrataTeam(a.threads, K.OPTIMIZER_IDS[cfg.optimizer])
            for b in order:
                x = blocks[b]
                if b not in cuts:  # cut in the first epoch, kept: as the trainer does for data in memory
                    cuts[b] = (np.empty(x.n_rows, np.int64), np.empty(a.threads ** 2 + 1, np.int64))
                    S.strata_cells(x.users, x.items, np.uint64(0), 0.0, x.row_start, a.threads, *cuts[b])
                cells, starts = cuts[b]
                team.run((cells, starts, np.empty(x.n_rows, np.int64), team.results, np.uint64(epoch), np.uint64(b),
                          x.users, x.items, x.ratings, empty, False, P, Q, bu, bi, *state, mu, h["lr"], h["lr_bias"],
                          h["l2"], h["l2_bias"], h["beta"], h["beta_bias"], h["init_scale"], np.uint64(0)))
            seconds += time.perf_counter() - start
            cpu_seconds += time.process_time() - cpu0
            ratings += ds.n_rows
            continue
        threads = [threading.Thread(target=work) for _ in range(a.threads)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds += time.perf_counter() - start
        cpu_seconds += sum(cpu)
        ratings += ds.n_rows
    if team is not None:
        team.close()
    return {"seconds": seconds, "ratings": ratings, "cpu_seconds": cpu_seconds}


def run_bigmodel(a) -> dict:
    from streamhog.factorization import train_mf
    from streamhog._fs.sparse_files import allocated_bytes

    work = Path(tempfile.mkdtemp(prefix="mf-big-", dir=a.workdir))
    try:
        start = time.perf_counter()
        model = train_mf(a.train, work / "model", rank=a.rank, epochs=1, threads=a.threads, n_users=a.n_users)
        seconds = time.perf_counter() - start
        files = {f.name: {"apparent": os.path.getsize(f), "allocated": allocated_bytes(f)} for f in model.files()}
        return {"seconds": seconds, "ratings": model.history[-1]["examples"], "files": files,
                "n_users": model.meta["n_users"], "rank": model.rank}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=("streamhog", "estimator", "surprise", "libmf", "kernel", "bigmodel"))
    p.add_argument("train")
    p.add_argument("test", nargs="?")
    p.add_argument("--rank", type=int, default=0)
    p.add_argument("--epochs", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--optimizer")
    p.add_argument("--schedule", choices=("hogwild", "strata"), help="streamhog, kernel: how threads share blocks")
    p.add_argument("--fixed", action="store_true", help="streamhog, estimator: no holdout, no early stopping")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="surprise: the first N training rows only")
    p.add_argument("--n-users", type=int)
    p.add_argument("--workdir", default=None)
    a = p.parse_args(argv)
    result = globals()[f"run_{a.kind}"](a)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
