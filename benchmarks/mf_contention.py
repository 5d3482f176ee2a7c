#!/usr/bin/env python3
"""Where the 2-thread factorization kernel loses its speed-up: Hogwild! contention or the machine.

The kernel alone (streamhog.factorization.kernels, AdaGrad), in memory, on an interaction
file, one epoch at a time, alternating schedules:

- ``1 thread``: every row, one thread (the reference);
- ``shared, random halves``: two threads on the same arrays, each half of a shuffled epoch
  (what training does: Hogwild!);
- ``shared, users split``: the same, each thread the rows of its own users (user rows are
  never written by both; item rows are);
- ``shared, items split``: each thread the rows of its own items (odd, even);
- ``shared, items split by lines of 16 biases``: the same with items in runs of 16, so that
  no cache line of the item biases (16 float32) is written by both threads either;
- ``strata``: the stratified schedule (streamhog/factorization/strata.py): the ratings cut
  into 2 x 2 cells by user group and item group (runs of 16 ids), thread j on cell (j, j) then
  (j, 1 - j), a barrier between the two rounds: shared arrays, but no row or line written
  by both;
- ``private``: each thread the whole epoch on its own copy of the arrays (no sharing at all:
  what two cores give when nothing is shared; its per-thread CPU time should equal one
  thread's).

Per schedule: thread CPU time per epoch (both threads together, so 1.0x one thread's means no
contention), and wall time. On a shared machine two threads may not run at once; an epoch
counts only when they did (their CPU time over its wall time > 1.8; the table says how many
did). CPU time per rating rising with two concurrent threads on shared arrays, but not on
private ones, is contention: cache lines of rows (and of the 4-byte biases, 16 to a line)
written by both cores.

    python benchmarks/mf_contention.py TRAIN.parquet --rank 100 --epochs 40
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import numpy as np


def main(argv=None) -> int:
    from streamhog.factorization import InteractionDataset, MFConfig
    from streamhog.factorization import kernels as K
    from streamhog.factorization import strata as S
    from streamhog.factorization.config import kernel_hyper

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("train")
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--epochs", type=int, default=30, help="epochs per schedule")
    a = p.parse_args(argv)

    ds = InteractionDataset(a.train)
    reader = ds.open_reader()
    blocks = [reader.read(b) for b in range(ds.n_blocks)]
    reader.close()

    def ro(x):
        x = np.ascontiguousarray(x)
        x.flags.writeable = False
        return x

    U, I = (ro(np.concatenate([getattr(b, k) for b in blocks])) for k in ("users", "items"))
    R = ro(np.concatenate([b.ratings for b in blocks]))
    cfg = MFConfig(rank=a.rank, optimizer="adagrad", holdout=0.0).resolved()
    h = kernel_hyper(cfg, float(R.std()))
    mu = float(R.mean())
    empty = ro(np.zeros(0, np.float32))

    from mf_workers import zeros64  # aligned on cache lines, as the trainer's memory maps

    def arrays():
        base = [zeros64((ds.n_users, a.rank)), zeros64((ds.n_items, a.rank)), zeros64((ds.n_users,)),
                zeros64((ds.n_items,))]
        return base + [zeros64(x.shape) for x in base]

    cells, starts = np.empty(len(R), np.int64), np.empty(5, np.int64)
    S.strata_cells(U, I, np.uint64(0), 0.0, 0, 2, cells, starts)
    rank_of = np.empty(len(R), np.int64)

    def parts(kind, perm):
        if kind == "strata":  # the cells' rows in the epoch's order: perm's order inside each cell
            rank_of[perm] = np.arange(len(perm))
            cell = [cells[starts[c]:starts[c + 1]] for c in range(4)]
            cell = [c[np.argsort(rank_of[c], kind="stable")] for c in cell]
            return [(cell[0], cell[1]), (cell[3], cell[2])]  # thread j: round 0 cell (j, j), round 1 (j, 1 - j)
        if kind == "one":
            return [perm]
        if kind in ("random", "private"):
            return [perm[0::2], perm[1::2]] if kind == "random" else [perm, perm]
        ids = U if kind == "users" else I
        # items16: blocks of 16 items (a cache line of their float32 biases) to each thread
        odd = ((ids[perm] // (16 if kind == "items16" else 1)) % 2).astype(bool)
        return [perm[~odd], perm[odd]]

    kinds = {"one": "1 thread", "random": "shared, random halves", "users": "shared, users split",
             "items": "shared, items split", "items16": "shared, items split by lines of 16 biases",
             "strata": "strata: 2 x 2 cells, 2 rounds", "private": "private arrays, a whole epoch each"}
    state = {k: [arrays()] for k in kinds}
    state["private"] = [arrays(), arrays()]
    results = {k: [] for k in kinds}
    for epoch in range(a.epochs):
        perm = np.random.default_rng(epoch).permutation(len(R)).astype(np.int64)
        for kind in kinds:
            work = [tuple(ro(y) for y in x) if isinstance(x, tuple) else (ro(x),) for x in parts(kind, perm)]
            arrs = state[kind]
            cpu = [0.0] * len(work)
            barrier = threading.Barrier(len(work))

            def run(t, work=work, arrs=arrs, cpu=cpu, barrier=barrier):
                c = time.thread_time()
                A = arrs[t] if len(arrs) > 1 else arrs[0]
                for rows in work[t]:  # strata: its two rounds, the others: one
                    K.train_block_adagrad(U, I, R, empty, False, rows, *A, mu, h["lr"], h["lr_bias"], h["l2"],
                                          h["l2_bias"], h["beta"], h["beta_bias"], h["init_scale"], np.uint64(0))
                    if len(work[t]) > 1:
                        cpu[t] += time.thread_time() - c
                        barrier.wait()
                        c = time.thread_time()
                if len(work[t]) == 1:
                    cpu[t] = time.thread_time() - c

            threads = [threading.Thread(target=run, args=(t,)) for t in range(len(work))]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - start
            if epoch >= 2:  # the first epochs start the rows (page faults, lazy starts)
                results[kind].append((sum(cpu), wall, len(work) == 1 or sum(cpu) / wall > 1.8))

    one = np.median([c for c, w, ok in results["one"]])
    lines = [f"# Hogwild! contention of the factorization kernel: {a.train}", "",
             f"rank {a.rank}, AdaGrad, {len(R):,} ratings, {ds.n_users:,} user ids, {ds.n_items:,} item ids; "
             f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end; epochs 3-{a.epochs} of each "
             "schedule, interleaved", "",
             "| schedule | epochs kept (both threads ran at once) | CPU ms per epoch, both threads | vs 1 thread | "
             "wall ms | speed-up |", "|---|---:|---:|---:|---:|---:|"]
    wall_one = np.median([w for c, w, ok in results["one"]])
    for kind, label in kinds.items():
        kept = [(c, w) for c, w, ok in results[kind] if ok]
        if not kept:
            lines.append(f"| {label} | 0 of {len(results[kind])} | | | | |")
            continue
        c = np.median([x[0] for x in kept]) / (2 if kind == "private" else 1)  # private: two whole epochs
        w = np.median([x[1] for x in kept])
        speed = wall_one / w * (2 if kind == "private" else 1)
        lines.append(f"| {label} | {len(kept)} of {len(results[kind])} | {c * 1e3:.1f} | {c / one:.2f} | "
                     f"{w * 1e3:.1f} | {speed:.2f} |")
    lines += ["", "private: CPU per epoch of work (half the two threads' total) and the speed-up of two epochs "
                  "done at once."]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
