"""Throughput of the LIBSVM reader against scikit-learn's load_svmlight_file.

    python benchmarks/parse_libsvm.py                  # synthetic ~200 MB + a9a replicated ~100 MB
    python benchmarks/parse_libsvm.py --file data.svm  # your file

Each measurement runs in a fresh subprocess (so peak RSS growth is its own), three times;
the medians are printed: MB/s of input text, nnz/s, and peak RSS growth over the process's
RSS just before parsing.  Generated files are cached in benchmarks/output/.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "output"
A9A = HERE.parents[1] / "shared" / "data" / "a9a" / "a9a"


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------------------------
# data


_FMT = None


def _format_rows(indptr, indices, mant, point, neg, labels):
    """LIBSVM text for the given CSR rows; values are ``mant`` (6 digits) with a decimal point
    after ``point`` digits (0: "0.dddddd") and an optional minus sign.  (A numba formatter:
    Python string formatting would take minutes for 200 MB.)"""
    global _FMT
    if _FMT is None:
        from numba import njit

        @njit
        def fmt(indptr, indices, mant, point, neg, labels, out):
            p = 0
            digits = np.empty(20, np.uint8)
            for r in range(len(labels)):
                if labels[r] < 0:
                    out[p] = 45
                    p += 1
                out[p] = 49
                p += 1
                for k in range(indptr[r], indptr[r + 1]):
                    out[p] = 32
                    p += 1
                    v = indices[k]
                    n = 0
                    while True:
                        digits[n] = 48 + v % 10
                        v //= 10
                        n += 1
                        if v == 0:
                            break
                    for j in range(n - 1, -1, -1):
                        out[p] = digits[j]
                        p += 1
                    out[p] = 58
                    p += 1
                    if neg[k]:
                        out[p] = 45
                        p += 1
                    m = mant[k]
                    for j in range(6):
                        digits[j] = 48 + m % 10
                        m //= 10
                    if point[k] == 0:
                        out[p] = 48
                        out[p + 1] = 46
                        p += 2
                    for j in range(6):
                        if j == point[k] and j > 0:
                            out[p] = 46
                            p += 1
                        out[p] = digits[5 - j]
                        p += 1
                out[p] = 10
                p += 1
            return p

        _FMT = fmt
    out = np.empty(len(labels) * 8 + len(indices) * 24, np.uint8)
    n = _FMT(indptr, indices, mant, point, neg, labels, out)
    return out[:n].tobytes()


def make_synthetic(path: Path, size_mb: float, *, nnz_per_row=40, n_features=1_000_000, seed=0) -> Path:
    """~size_mb of LIBSVM text: ~40 ascending 1-based ids per row out of 1M, values with 6
    significant digits (0.dddddd, d.ddddd, dd.dddd, ddd.ddd, some negative), labels +1/-1."""
    rng = np.random.default_rng(seed)
    target = int(size_mb * 1e6)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    written = 0
    with open(tmp, "wb") as f:
        while written < target:
            rows = 20_000
            counts = rng.poisson(nnz_per_row, rows).clip(1, None)
            row_of = np.repeat(np.arange(rows), counts)
            idx = rng.integers(1, n_features + 1, size=len(row_of))
            order = np.lexsort((idx, row_of))
            row_of, idx = row_of[order], idx[order]
            keep = np.ones(len(idx), bool)
            keep[1:] = (idx[1:] != idx[:-1]) | (row_of[1:] != row_of[:-1])
            row_of, idx = row_of[keep], idx[keep]
            indptr = np.zeros(rows + 1, np.int64)
            np.cumsum(np.bincount(row_of, minlength=rows), out=indptr[1:])
            nnz = len(idx)
            text = _format_rows(indptr, idx.astype(np.int64), rng.integers(100000, 1000000, nnz),
                                rng.integers(0, 4, nnz), rng.random(nnz) < 0.3,
                                np.where(rng.random(rows) < 0.5, -1, 1))
            f.write(text)
            written += len(text)
    tmp.replace(path)
    return path


def make_a9a_replicated(path: Path, size_mb: float) -> Path:
    data = A9A.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    reps = max(1, round(size_mb * 1e6 / len(data)))
    with open(path.with_suffix(".tmp"), "wb") as f:
        for _ in range(reps):
            f.write(data)
    path.with_suffix(".tmp").replace(path)
    return path


# ---------------------------------------------------------------------------------------------
# one measurement (in a subprocess)


def _worker(method: str, file: str, threads: int, index_base: str) -> None:
    if method == "streamhog":
        from streamhog.io.formats.libsvm import LibsvmReader

        base = index_base if index_base == "auto" else int(index_base)
        rss0 = _rss_kib()
        t = time.perf_counter()
        nnz = 0
        with LibsvmReader(file, threads=threads, index_base=base) as reader:
            for batch in reader:
                nnz += batch.nnz
        seconds = time.perf_counter() - t
    else:
        from sklearn.datasets import load_svmlight_file

        zero_based = "auto" if index_base == "auto" else index_base == "0"
        rss0 = _rss_kib()
        t = time.perf_counter()
        X, _ = load_svmlight_file(file, dtype=np.float32, zero_based=zero_based)
        seconds = time.perf_counter() - t
        nnz = X.nnz
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"seconds": seconds, "nnz": int(nnz), "rss_growth_mib": (peak - rss0) / 1024}))


def _measure(method: str, file: Path, threads: int, repeats: int, index_base: str) -> dict:
    runs = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, __file__, "--worker", method, "--file", str(file), "--threads", str(threads),
             "--index-base", index_base],
            check=True, capture_output=True, text=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    size = file.stat().st_size
    sec = statistics.median(r["seconds"] for r in runs)
    return {
        "seconds": sec,
        "mb_s": size / 1e6 / sec,
        "mnnz_s": runs[0]["nnz"] / 1e6 / sec,
        "rss_growth_mib": statistics.median(r["rss_growth_mib"] for r in runs),
    }


def _report(label: str, file: Path, repeats: int, index_base: str, skip_sklearn: bool) -> None:
    size = file.stat().st_size
    print(f"\n{label}: {file} ({size / 1e6:.0f} MB), median of {repeats}")
    print(f"  {'method':<24} {'seconds':>8} {'MB/s':>8} {'Mnnz/s':>8} {'peak RSS +MiB':>14}")
    methods = [("streamhog", 1), ("streamhog", 2)] + ([] if skip_sklearn else [("sklearn", 1)])
    for method, threads in methods:
        r = _measure(method, file, threads, repeats, index_base)
        name = f"LibsvmReader threads={threads}" if method == "streamhog" else "sklearn load_svmlight_file"
        print(f"  {name:<24} {r['seconds']:>8.2f} {r['mb_s']:>8.1f} {r['mnnz_s']:>8.2f} {r['rss_growth_mib']:>14.0f}",
              flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", help="benchmark this LIBSVM file instead of the generated ones")
    ap.add_argument("--size-mb", type=float, default=200, help="synthetic file size (default 200)")
    ap.add_argument("--a9a-mb", type=float, default=100, help="a9a replicated to this size (default 100; 0: skip)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--index-base", choices=("0", "1", "auto"), default="1")
    ap.add_argument("--no-sklearn", action="store_true", help="skip the scikit-learn runs (slow)")
    ap.add_argument("--worker", choices=("streamhog", "sklearn"), help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.file, args.threads, args.index_base)
        return
    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}")
    if args.file:
        _report("file", Path(args.file), args.repeats, args.index_base, args.no_sklearn)
        return
    synth = OUTPUT / f"synthetic-{args.size_mb:g}MB.svm"
    if not synth.exists():
        t = time.perf_counter()
        make_synthetic(synth, args.size_mb)
        print(f"generated {synth} in {time.perf_counter() - t:.1f} s")
    _report("synthetic (~40 nnz/row, 6-digit values, 1M features)", synth, args.repeats, args.index_base,
            args.no_sklearn)
    if args.a9a_mb > 0 and A9A.exists():
        rep = OUTPUT / f"a9a-x{args.a9a_mb:g}MB.svm"
        if not rep.exists():
            make_a9a_replicated(rep, args.a9a_mb)
        _report("a9a replicated (binary features, 14 nnz/row)", rep, args.repeats, args.index_base,
                args.no_sklearn)


if __name__ == "__main__":
    main()
