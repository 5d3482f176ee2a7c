#!/usr/bin/env python3
"""Where a small factorization run's time goes (issue 19: on MovieLens, 2 threads against
scikit-surprise's SVD at rank 100 and 20 epochs, the >= 5x target is missed).

For ``train_mf(TRAIN, rank R, epochs E, no holdout, no early stopping, T threads)`` (the
benchmark's fixed-settings run; ``--optimizer``, ``--schedule`` as train_mf's), medians over
``--repeats`` runs after a warm-up:

- the whole call, and the trainer's epoch clock: the first epoch, the later ones;
- from a profile of the calling thread (other runs: the profiler slows Python): the
  checkpoints' msync of the factor files, and starting threads (the consumers and strata's
  helpers: once a run since a6b10c1, once an epoch before);
- the kernel alone: the same ratings in memory, one thread, each block's rows shuffled as the
  trainer does, arrays already touched (the steady state), ns per rating;
- the first touch of a page: the factor pages this data writes, in a fresh sparse ``.npy``
  file mapped as the model's are (created in ``--workdir``) against anonymous memory;
- scikit-surprise's ``fit`` on the same ratings (when it is installed), for the budget.

    python benchmarks/mf_breakdown.py [TRAIN.parquet] [--rank 100] [--epochs 20] [--threads 2]
        [--optimizer sgd] [--schedule strata]

TRAIN defaults to benchmarks/factorization.py's MovieLens split. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from mf_workers import zeros64  # noqa: E402

DEFAULT_TRAIN = HERE / "output" / "mf-bench" / "movielens" / "train.parquet"


def _profiled_seconds(stats: pstats.Stats, name: str) -> float:
    """Cumulative seconds of the profiled functions whose name contains ``name``."""
    return sum(v[3] for (file, line, fn), v in stats.stats.items() if name in f"{file}:{fn}")


def whole_runs(train: Path, work: Path, rank: int, epochs: int, threads: int, repeats: int, **hyper) -> dict:
    from streamhog.factorization import train_mf

    opts = dict(rank=rank, epochs=epochs, threads=threads, holdout=0.0, early_stopping=0, **hyper)
    train_mf(train, work / "warm", **{**opts, "epochs": 1})  # numba's cache loaded, files in the page cache
    rows = []
    for r in range(repeats):  # unprofiled: the clocks; then profiled: the parts (the profiler slows Python)
        start = time.perf_counter()
        model = train_mf(train, work / f"run-{r}", **opts)
        total = time.perf_counter() - start
        secs, ratings = [h["seconds"] for h in model.history], sum(h["examples"] for h in model.history)
        # Closed and deleted outside the clock: the last mapping of a deleted sparse file frees
        # its thousands of extents then (about 0.14 s here), inside whatever runs next.
        del model
        shutil.rmtree(work / f"run-{r}")
        prof = cProfile.Profile()
        prof.enable()
        train_mf(train, work / f"prof-{r}", **opts)  # the model it returns is closed at once
        prof.disable()
        shutil.rmtree(work / f"prof-{r}")
        st = pstats.Stats(prof)
        rows.append({"total": total, "epochs": sum(secs), "first": secs[0], "later": statistics.median(secs[1:]),
                     "msync": _profiled_seconds(st, "'flush' of 'mmap.mmap'"),
                     "thread_start": _profiled_seconds(st, "threading.py:start"),
                     "ratings": ratings})
    return {k: statistics.median(x[k] for x in rows) for k in rows[0]}


def kernel_alone(train: Path, rank: int, epochs: int, optimizer: str | None = None) -> float:
    """Steady-state ns per rating of the optimizer's kernel (default: the default's), one
    thread, in memory."""
    from streamhog.factorization import InteractionDataset, MFConfig
    from streamhog.factorization import kernels as K
    from streamhog.factorization.config import kernel_hyper

    ds = InteractionDataset(train)
    reader = ds.open_reader()
    blocks = [reader.read(b) for b in range(ds.n_blocks)]
    reader.close()
    cfg = MFConfig(rank=rank, holdout=0.0, **({"optimizer": optimizer} if optimizer else {})).resolved()
    r = np.concatenate([b.ratings for b in blocks]).astype(np.float64)
    h = kernel_hyper(cfg, float(r.std()))
    P, Q = zeros64((ds.n_users, rank)), zeros64((ds.n_items, rank))
    bu, bi = zeros64((ds.n_users,)), zeros64((ds.n_items,))
    width = rank if cfg.optimizer == "adagrad" else 1  # rowwise-adagrad: one sum per row; sgd reads none
    state = (zeros64((ds.n_users, width)), zeros64((ds.n_items, width)), zeros64(bu.shape), zeros64(bi.shape))
    kernel = K.TRAIN_KERNELS[K.OPTIMIZER_IDS[cfg.optimizer]]
    empty = np.zeros(0, np.float32)
    empty.flags.writeable = False
    per_epoch = []
    for epoch in range(epochs):
        spent = 0.0
        for b in blocks:
            held, rows = np.empty(b.n_rows, bool), np.empty(b.n_rows, np.int64)
            K.shuffled_rows(np.uint64(0), np.uint64(epoch), np.uint64(b.block), 0.0, b.row_start, held, rows)
            start = time.perf_counter()
            kernel(b.users, b.items, b.ratings, empty, False, rows, P, Q, bu, bi, *state, float(r.mean()), h["lr"],
                   h["lr_bias"], h["l2"], h["l2_bias"], h["beta"], h["beta_bias"], h["init_scale"], np.uint64(0))
            spent += time.perf_counter() - start
        per_epoch.append(spent / ds.n_rows * 1e9)
    return statistics.median(per_epoch[1:])  # the first epoch starts every row and faults the pages in


def first_touch(train: Path, work: Path, rank: int, repeats: int) -> dict:
    """Seconds to write one float into each factor page this data's items touch: a fresh
    sparse .npy file mapped read-write (as MFModel creates them) against np.zeros."""
    from numpy.lib.format import open_memmap
    from streamhog.factorization import InteractionDataset

    ds = InteractionDataset(train)
    reader = ds.open_reader()
    items = np.unique(np.concatenate([reader.read(b).items for b in range(ds.n_blocks)]).astype(np.int64))
    reader.close()
    per_page = 4096 // 4
    pages = np.unique(items * rank // per_page)
    n = (int(items.max()) + 1) * rank
    out = {"pages": len(pages), "file": [], "anonymous": []}
    for r in range(repeats):
        path = work / f"touch-{r}.npy"
        m = open_memmap(path, mode="w+", dtype=np.float32, shape=(n,))
        start = time.perf_counter()
        for p in pages:
            m[p * per_page] = 1.0
        out["file"].append(time.perf_counter() - start)
        del m
        path.unlink()
        a = np.zeros(n, np.float32)
        start = time.perf_counter()
        for p in pages:
            a[p * per_page] = 1.0
        out["anonymous"].append(time.perf_counter() - start)
    return {"pages": out["pages"], "file": statistics.median(out["file"]),
            "anonymous": statistics.median(out["anonymous"])}


def surprise_fit(train: Path, rank: int, epochs: int, repeats: int) -> float | None:
    try:
        import surprise  # noqa: F401
    except ImportError:
        return None
    times = []
    for seed in range(repeats):
        test = train.with_name("test.parquet") if train.with_name("test.parquet").exists() else train
        p = subprocess.run([sys.executable, str(HERE / "mf_workers.py"), "surprise", str(train), str(test), "--rank", str(rank),
                            "--epochs", str(epochs), "--seed", str(seed)], capture_output=True, text=True, check=True)
        times.append(json.loads(p.stdout.strip().splitlines()[-1])["seconds"])
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("train", type=Path, nargs="?", default=DEFAULT_TRAIN)
    ap.add_argument("--rank", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--optimizer", help="default: the default optimizer")
    ap.add_argument("--schedule", help="default: the optimizer's default schedule")
    ap.add_argument("--workdir", type=Path, default=HERE / "output")
    a = ap.parse_args(argv)
    hyper = {k: v for k, v in (("optimizer", a.optimizer), ("schedule", a.schedule)) if v}
    a.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="mf-breakdown-", dir=a.workdir))
    try:
        w = whole_runs(a.train, work, a.rank, a.epochs, a.threads, a.repeats, **hyper)
        k = kernel_alone(a.train, a.rank, a.epochs, a.optimizer)
        t = first_touch(a.train, work, a.rank, a.repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    s = surprise_fit(a.train, a.rank, a.epochs, min(a.repeats, 3))
    n = w["ratings"] / a.epochs
    print(f"`python benchmarks/mf_breakdown.py {a.train} --rank {a.rank} --epochs {a.epochs} --threads {a.threads} "
          f"--repeats {a.repeats}{''.join(f' --{k} {v}' for k, v in hyper.items())}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores; "
          f"{n:,.0f} ratings an epoch; medians of {a.repeats}\n")
    print("| part | ms | note |\n|---|---:|---|")
    print(f"| the whole train_mf call, {a.threads} threads | {w['total'] * 1e3:.1f} | "
          f"{w['ratings'] / w['total'] / 1e6:.2f}M ratings/s |")
    print(f"| its epochs (trainer's clock) | {w['epochs'] * 1e3:.1f} | first {w['first'] * 1e3:.1f}, "
          f"later {w['later'] * 1e3:.2f} each ({w['later'] / n * 1e9:.0f} ns a rating) |")
    print(f"| checkpoints' msync of the factor files | {w['msync'] * 1e3:.1f} | profiled |")
    print(f"| starting threads (in the epochs' clock) | {w['thread_start'] * 1e3:.1f} | "
          f"consumers and strata's helpers, once a run; profiled |")
    print(f"| the rest (data, mean pass, files, scoring) | "
          f"{(w['total'] - w['epochs'] - w['msync']) * 1e3:.1f} | |")
    print(f"| kernel alone, 1 thread, in memory, steady state | {k * n * a.epochs / 1e6:.1f} | {k:.0f} ns a rating, "
          f"{a.epochs} epochs |")
    print(f"| first write to each of the {t['pages']:,} item-factor pages: sparse file mapping / anonymous | "
          f"{t['file'] * 1e3:.1f} / {t['anonymous'] * 1e3:.1f} | {t['file'] / t['pages'] * 1e6:.1f} / "
          f"{t['anonymous'] / t['pages'] * 1e6:.1f} us a page |")
    if s is not None:
        print(f"| scikit-surprise SVD fit | {s * 1e3:.1f} | 5x its rate: the whole call in {s / 5 * 1e3:.1f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
