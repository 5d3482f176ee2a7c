#!/usr/bin/env python3
"""First writes scattered over a large sparse model file: what readahead costs, and what
``MADV_RANDOM`` (streamhog/_fs/access.py, on the maps of model files that are mostly holes)
saves.

Four parts, each in its own process so one's page cache state does not favour another:

- ``maps``: a fresh sparse .npy file of ``--rows`` x 16 float32 (2^31 rows: 128 GiB
  apparent), ``--pages`` rows written at random far apart (each its own page), through a
  memory map as the models map their files: with the kernel's default advice and with
  ``advise_random_if_sparse``. Seconds, microseconds a page, the process's system CPU seconds, and the
  file's pages in the page cache afterwards (mincore).
- ``cold``: why a file that is mostly data keeps the kernel's default: a dense 1 GiB float32
  file dropped from the page cache (POSIX_FADV_DONTNEED), then 3M reads at random through a
  memory map, with the default advice and with MADV_RANDOM.
- ``linear``: ``streamhog train`` (1 epoch, 2 threads, the defaults) on the Criteo sample of
  ../shared/data (8,000 rows), hashed into 2^20, 2^26 and 2^30 weights.
- ``mf``: ``train_mf`` of 20,000 ratings whose 10,000 users are scattered over 2^31 user
  rows (rank 16, 1 epoch, 2 threads, no holdout), and the user factor file's pages in the
  page cache afterwards.

``--against TREE`` runs ``linear`` and ``mf`` with another checkout's code too (on
PYTHONPATH, and the CLI started from that tree: ``python -m`` puts its working directory
first on sys.path), interleaved with this one's: e.g. a ``git worktree`` of the
commit before the advice. The kernel's readahead heuristics (it gives up after many misses
and starts again on hits) make the unadvised cost vary from run to run: see min-max.

    python benchmarks/sparse_touch.py [--parts maps,cold,linear,mf] [--repeats 3] [--pages 30000] [--against TREE]

Prints a Markdown report; ``--publish`` writes it to benchmarks/sparse_touch.md.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import mmap
import os
import resource
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
from common.metering import machine_info  # noqa: E402
from common.paths import OUTPUT, ROOT  # noqa: E402

#: the mf part's users (each rated twice, on average), one to a page of the 2^31-row file
MF_USERS = 10_000
CRITEO = ROOT.parent / "shared" / "data" / "criteo_sample" / "train.txt"


def resident_pages(arr) -> int:
    """Pages of ``arr``'s file range in the page cache (mincore on its memory map)."""
    libc = ctypes.CDLL(None, use_errno=True)
    page = mmap.PAGESIZE
    start = arr.ctypes.data - arr.ctypes.data % page
    length = arr.ctypes.data + arr.nbytes - start
    vec = (ctypes.c_ubyte * (-(-length // page)))()
    if libc.mincore(ctypes.c_void_p(start), ctypes.c_size_t(length), vec) != 0:
        raise OSError(ctypes.get_errno(), "mincore")
    return int(np.count_nonzero(np.frombuffer(vec, np.uint8) & 1))


def _sys_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_stime


def one_maps_run(work: Path, rows: int, pages: int, advised: bool, seed: int) -> dict:
    """(in a child process) the scattered first writes, with or without the advice."""
    from streamhog._fs.access import advise_random_if_sparse

    f = work / "factors.npy"
    m = np.lib.format.open_memmap(f, mode="w+", dtype=np.float32, shape=(rows, 16))
    if advised:
        advise_random_if_sparse(m)  # a new file: all holes
    ids = np.unique(np.random.default_rng(seed).choice(rows // 256, pages, replace=False) * 256 + 7)
    s0, t0 = _sys_seconds(), time.perf_counter()
    m[ids] = 1.0
    seconds, sys_s = time.perf_counter() - t0, _sys_seconds() - s0
    out = {"seconds": seconds, "sys_seconds": sys_s, "pages": int(len(ids)), "resident": resident_pages(m)}
    del m
    f.unlink()
    return out


def _env(tree: Path | None) -> dict:
    """The environment that runs ``tree``'s streamhog (None: this one's)."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    return env


def one_cold_run(work: Path, advised: bool) -> dict:
    """(in a child process) random reads over a cold dense file."""
    f = work / "dense.npy"
    if not f.exists():
        m = np.lib.format.open_memmap(f, mode="w+", dtype=np.float32, shape=(2**28,))
        m[:] = 1.0
        m.flush()
        del m
        fd = os.open(f, os.O_RDONLY)
        os.fsync(fd)  # written back: DONTNEED drops only clean pages
        os.close(fd)
    fd = os.open(f, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    m = np.load(f, mmap_mode="r")
    if advised:
        m._mmap.madvise(mmap.MADV_RANDOM)
    idx = np.random.default_rng(0).integers(0, m.shape[0], 3_000_000)
    s0, t0 = _sys_seconds(), time.perf_counter()
    total = float(m[idx].sum())
    out = {"seconds": time.perf_counter() - t0, "sys_seconds": _sys_seconds() - s0, "sum": total}
    del m
    return out


def _child(args: list[str], tree: Path | None = None) -> dict:
    r = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=_env(tree))
    if r.returncode:
        raise SystemExit(f"child {args} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _timed_cli(argv: list[str], tree: Path | None = None) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # run from the tree itself: ``python -m`` puts the working directory first on sys.path
    r = subprocess.run(argv, capture_output=True, text=True, env=_env(tree), cwd=tree or ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode:
        raise SystemExit(f"{' '.join(map(str, argv))} failed:\n{r.stderr[-2000:]}")
    return {"seconds": wall, "sys_seconds": after.ru_stime - before.ru_stime, "user_seconds": after.ru_utime - before.ru_utime}


def linear_runs(work: Path, repeats: int, trees: dict) -> list[dict]:
    data = OUTPUT / "sparse-touch" / "criteo-2p30.parquet"
    if not data.exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "streamhog", "convert", CRITEO, data, "--input-format", "criteo",
                        "--hash-bits", "30", "--quiet"], check=True)
    out = []
    for bits in (20, 26, 30):
        runs = {name: [] for name in trees}
        for r in range(repeats):
            for name, tree in trees.items():  # interleaved
                model = work / f"linear-{bits}-{r}"
                runs[name].append(_timed_cli([sys.executable, "-m", "streamhog", "train", data, "--model", model,
                                              "--hash-bits", str(bits), "--epochs", "1", "--threads", "2", "--quiet"],
                                             tree))
                shutil.rmtree(model)
        out.append({"bits": bits, "runs": runs})
    return out


def one_mf_run(work: Path, seed: int) -> dict:
    """(in a child process) train_mf on ratings of users scattered over 2^31 rows."""
    from streamhog.factorization import train_mf, write_interactions

    data = work / "scattered.parquet"
    if not data.exists():
        rng = np.random.default_rng(0)
        users = rng.choice(2**31 // 4096, MF_USERS, replace=False).astype(np.uint64) * 4096 + 5
        u = users[rng.integers(0, len(users), 2 * MF_USERS)]
        i = rng.integers(0, 5_000, 2 * MF_USERS).astype(np.uint64)
        write_interactions(data, u, i, rng.integers(1, 6, 2 * MF_USERS).astype(np.float32))
    s0, t0 = _sys_seconds(), time.perf_counter()
    model = train_mf(data, work / f"mf-{seed}", rank=16, epochs=1, threads=2, holdout=0.0, early_stopping=0,
                     n_users=2**31, seed=seed)
    seconds, sys_s = time.perf_counter() - t0, _sys_seconds() - s0
    P = np.load(work / f"mf-{seed}" / "user_factors.npy", mmap_mode="r")
    out = {"seconds": seconds, "sys_seconds": sys_s, "ratings": model.history[-1]["examples"],
           "resident": resident_pages(P), "file_pages": P.nbytes // mmap.PAGESIZE}
    del P, model
    shutil.rmtree(work / f"mf-{seed}")
    return out


def _commit(tree: Path) -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True)
    return r.stdout.strip() or str(tree)


def _median(runs, key):
    return statistics.median(r[key] for r in runs)


def _spread(runs, key, fmt="{:.2f}"):
    """'median (min-max)'."""
    v = [r[key] for r in runs]
    return f"{fmt.format(statistics.median(v))} ({fmt.format(min(v))}-{fmt.format(max(v))})"


def report(results: dict, a) -> str:
    m = results["machine"]
    lines = [f"# First writes scattered over a sparse model file: readahead against MADV_RANDOM", "",
             f"`python benchmarks/sparse_touch.py {' '.join(a.argv)}` at streamhog {m['git']['commit']}"
             f"{' (uncommitted engine changes)' if m['git']['uncommitted_engine_changes'] else ''}, {m['date']}, "
             f"{m['nproc']} cores ({m['cpu']}), {m['ram_bytes'] / 2**30:.1f} GiB, ext4 ({results['fs']}); medians of "
             f"{a.repeats} (interleaved where two variants compare).", ""]
    if "maps" in results:
        lines += [f"## A memory map of a fresh sparse file, {a.rows:,} x 16 float32 ({a.rows * 64 / 2**30:,.0f} GiB "
                  f"apparent), {a.pages:,} rows written far apart", "",
                  "| advice | seconds | us a page | system CPU s | pages in the page cache after |", "|---|---:|---:|---:|---:|"]
        for name, runs in results["maps"].items():
            lines.append(f"| {name} | {_median(runs, 'seconds'):.2f} | {_median(runs, 'seconds') / runs[0]['pages'] * 1e6:.1f} | "
                         f"{_median(runs, 'sys_seconds'):.2f} | {_median(runs, 'resident'):,.0f} |")
        lines.append("")
    if "cold" in results:
        lines += ["## 3,000,000 reads at random over a dense 1 GiB file not in the page cache", "",
                  "| advice | seconds (min-max) | system CPU s |", "|---|---:|---:|"]
        for name, runs in results["cold"].items():
            lines.append(f"| {name} | {_spread(runs, 'seconds')} | {_spread(runs, 'sys_seconds')} |")
        lines.append("")
    if "linear" in results:
        lines += ["## `streamhog train` on the Criteo sample (8,000 rows, 1 epoch, 2 threads, defaults)", "",
                  "| --hash-bits | code | seconds (min-max) | system CPU s | user CPU s |", "|---:|---|---:|---:|---:|"]
        for row in results["linear"]:
            for name, runs in row["runs"].items():
                lines.append(f"| {row['bits']} | {name} | {_spread(runs, 'seconds')} | {_spread(runs, 'sys_seconds')} | "
                             f"{_median(runs, 'user_seconds'):.2f} |")
        lines.append("")
    if "mf" in results:
        lines += [f"## `train_mf`: {2 * MF_USERS:,} ratings of {MF_USERS:,} users scattered over 2^31 user rows "
                  f"(rank 16, 1 epoch, 2 threads)", "",
                  "| code | seconds (min-max) | system CPU s | user factor pages in the page cache after |",
                  "|---|---:|---:|---:|"]
        for name, runs in results["mf"].items():
            lines.append(f"| {name} | {_spread(runs, 'seconds')} | {_spread(runs, 'sys_seconds')} | "
                         f"{_median(runs, 'resident'):,.0f} of {runs[0]['file_pages']:,} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", default="maps,cold,linear,mf")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rows", type=int, default=2**31)
    p.add_argument("--pages", type=int, default=30_000)
    p.add_argument("--workdir", type=Path, default=OUTPUT / "sparse-touch")
    p.add_argument("--against", type=Path, help="another checkout to time beside this one (linear, mf)")
    p.add_argument("--publish", action="store_true")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.argv = [x for x in (argv if argv is not None else sys.argv[1:]) if x != "--publish"]
    a.workdir = a.workdir.resolve()
    a.workdir.mkdir(parents=True, exist_ok=True)
    if a.child:
        kind, work, seed = a.child[0], Path(a.child[1]), int(a.child[2])
        if kind == "mf":
            print(json.dumps(one_mf_run(work, seed)))
        elif kind in ("cold-default", "cold-random"):
            print(json.dumps(one_cold_run(work, kind == "cold-random")))
        else:
            print(json.dumps(one_maps_run(work, a.rows, a.pages, kind == "advised", seed)))
        return 0
    parts = a.parts.split(",")
    results = {"machine": machine_info(), "fs": subprocess.run(["df", "--output=source", str(a.workdir)],
                                                               capture_output=True, text=True).stdout.split()[-1]}
    with tempfile.TemporaryDirectory(dir=a.workdir) as tmp:
        work = Path(tmp)
        if "maps" in parts:
            results["maps"] = {"default (readahead)": [], "MADV_RANDOM": []}
            for r in range(a.repeats):
                results["maps"]["default (readahead)"].append(_child(["--rows", str(a.rows), "--pages", str(a.pages),
                                                                      "--child", "default", str(work), str(r)]))
                results["maps"]["MADV_RANDOM"].append(_child(["--rows", str(a.rows), "--pages", str(a.pages),
                                                              "--child", "advised", str(work), str(r)]))
        if "cold" in parts:
            results["cold"] = {"default (readahead)": [], "MADV_RANDOM": []}
            for r in range(a.repeats):
                results["cold"]["default (readahead)"].append(_child(["--child", "cold-default", str(work), "0"]))
                results["cold"]["MADV_RANDOM"].append(_child(["--child", "cold-random", str(work), "0"]))
        trees = {"this tree": None}
        if a.against:
            trees[f"{_commit(a.against)} (--against)"] = a.against
        results["trees"] = list(trees)
        if "linear" in parts:
            results["linear"] = linear_runs(work, a.repeats, trees)
        if "mf" in parts:
            results["mf"] = {name: [] for name in trees}
            for r in range(a.repeats):
                for name, tree in trees.items():
                    results["mf"][name].append(_child(["--child", "mf", str(work), str(r)], tree))
    text = report(results, a)
    print(text)
    if a.publish:
        (HERE / "sparse_touch.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
