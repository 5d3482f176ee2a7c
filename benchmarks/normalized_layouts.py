#!/usr/bin/env python3
"""The normalized rule's kernel cost by state layout, against AdaGrad's kernel (issue 15, item 2).

The normalized rule reads three float32 values per non-zero: the weight w_j, the
accumulator acc_j and the scale s_j (written: w_j and acc_j every time, s_j when it grows).
Kept in three arrays (the model files today: weights.npy, accum.npy, scale.npy) that is three
cache lines per non-zero, where AdaGrad reads two. Variants, one epoch over in-memory blocks
(the trainer's block and row orders):

  adagrad         the package's AdaGrad kernel (two arrays): today's default's kernel
  normalized      the package's normalized kernel (three arrays: format-1 model files)
  normalized-records  the package's normalized kernel on the strided fields of one record
                  array (w, acc, scale, pad): format 2's weights.npy, what a new model trains
  record          the same arithmetic on one (n_features, 4) float32 array of records
                  (w, acc, s, pad): one cache line per non-zero
  record-fast     records holding 1 / s (no division per non-zero) and 1/sqrt by the CPU's
                  estimate + one Newton step (x86 only; kernel_layouts.py's)
  record-plain    "record" with the plain step s g in place of the importance-invariant one
                  (no per-row Newton solve): what that solve costs (not the rule: a bound)

    python benchmarks/normalized_layouts.py benchmarks/output/data-200000/train.parquet [--repeats 7]

Times are the thread's CPU time (one thread: other load on a shared machine moves them far
less than wall time); prints the median, each variant's speed relative to adagrad and its
progressive training loss (the normalized variants but record-plain do the same work: the same loss).
A measurement to decide the layout on, not used by the product.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from kernel_layouts import _rsqrt  # noqa: E402
from common.kernel import load_blocks  # noqa: E402

from streamhog.kernels.invariant import invariant_gradient  # noqa: E402
from streamhog.kernels.losses import LOGISTIC, loss_and_dloss  # noqa: E402
from streamhog.kernels.optimizers import OPTIMIZER_IDS  # noqa: E402
from streamhog.kernels.prefetch import prefetch, prefetch_rows_ahead  # noqa: E402
from streamhog.kernels.block import ModelArrays, UpdateRule, train_block  # noqa: E402
from streamhog.kernels.linear import CONSTANT  # noqa: E402
from streamhog.model.directory import RECORD_DTYPE  # noqa: E402

LR = {"adagrad": 0.1, "normalized": 0.7}
E = np.zeros(0, np.float32)


@njit(nogil=True)
def record_kernel(indptr, indices, values, labels, rows, rec, bstate, lr, beta, inverse, fast, plain):
    """The normalized rule (logistic loss, unit weights, no L2) on records rec[4j:4j+4] =
    (w, acc, s or 1/s, pad); ``plain``: the plain step in place of the invariant one."""
    n = rows.shape[0]
    longest = 0
    for k in range(n):
        longest = max(longest, indptr[rows[k] + 1] - indptr[rows[k]])
    xs, qs = np.empty(longest), np.empty(longest)
    b, b_acc, norm_n, norm_t = bstate[0], bstate[1], bstate[3], bstate[4]
    loss_sum = 0.0
    for k in range(n):
        if k + 1 < n:
            nxt = rows[k + 1]
            for p in range(indptr[nxt], indptr[nxt + 1]):
                prefetch(rec, 4 * np.int64(indices[p]))
            prefetch_rows_ahead(indptr, indices, values, True, rows, k, n)
        i = rows[k]
        lo, hi = indptr[i], indptr[i + 1]
        y = 1.0 if labels[i] > 0 else -1.0
        z, nx = b, 0.0
        for p in range(lo, hi):
            base = 4 * np.int64(indices[p])
            x = np.float64(values[p])
            ax = abs(x)
            held = np.float64(rec[base + 2])
            if inverse:  # 1 / s: a product per non-zero, a division only when the scale grows
                if ax * held > 1.0 or held == 0.0:
                    new = 1.0 / ax
                    if held > 0.0:
                        ratio = new / held
                        rec[base] = rec[base] * ratio
                        rec[base + 1] = rec[base + 1] * ratio * ratio
                    rec[base + 2] = new
                    held = np.float64(np.float32(new))
                inv = held
            else:
                if ax > held:
                    if held > 0.0:
                        ratio = held / ax
                        rec[base] = rec[base] * ratio
                        rec[base + 1] = rec[base + 1] * ratio * ratio
                    rec[base + 2] = ax
                    held = ax
                inv = 1.0 / held
            xn = x * inv
            xs[p - lo], qs[p - lo] = xn, xn * inv
            nx += xn * xn
            z += rec[base] * x
        loss, d = loss_and_dloss(LOGISTIC, z, y)
        loss_sum += loss
        norm_n += nx + 1.0
        norm_t += 1.0
        mult = lr * math.sqrt(norm_t / norm_n)
        h = 0.0
        for p in range(lo, hi):
            base = 4 * np.int64(indices[p])
            xn = xs[p - lo]
            a = rec[base + 1] + (d * xn) ** 2
            rec[base + 1] = a
            r = _rsqrt(beta + a) if fast else 1.0 / math.sqrt(beta + a)
            xs[p - lo] = r
            h += r * xn * xn
        b_acc += d * d
        rb = 1.0 / math.sqrt(beta + b_acc)
        step = mult * (d if plain else invariant_gradient(LOGISTIC, z, y, d, 1.0, mult * (h + rb)))
        for p in range(lo, hi):
            base = 4 * np.int64(indices[p])
            rec[base] = rec[base] - step * xs[p - lo] * qs[p - lo]
        b -= step * rb
    bstate[0], bstate[1], bstate[3], bstate[4] = b, b_acc, norm_n, norm_t
    return loss_sum


def epoch(variant: str, ds, blocks, perms) -> tuple[float, float]:
    nf = ds.n_features
    w, acc, aux = (np.zeros(nf, np.float32) for _ in range(3))
    rec, bstate = np.zeros(4 * nf, np.float32), np.zeros(5)
    if variant == "normalized-records":  # the model file's records, as the trainer passes them
        records = np.zeros(nf, RECORD_DTYPE)
        w, acc, aux = records["w"], records["acc"], records["scale"]
    lock = np.zeros(1, np.int32)
    total = 0.0
    start = time.thread_time()
    for b, rows in zip(blocks, perms):
        if variant in ("adagrad", "normalized", "normalized-records"):
            total += train_block(b, rows, ModelArrays(w, acc, aux, bstate, cells=lock),
                                 UpdateRule(OPTIMIZER_IDS[variant.split("-")[0]], LOGISTIC, CONSTANT, l2=0.0, beta=1.0),
                                 lr=LR[variant.split("-")[0]], t0=0).loss_sum
        else:
            fast = variant == "record-fast"
            total += record_kernel(b.indptr, b.indices, b.values, b.labels, rows, rec, bstate, LR["normalized"], 1.0,
                                   fast, fast, variant == "record-plain")
    return time.thread_time() - start, total / ds.n_rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    ds, blocks = load_blocks(args.data)
    if any(b.values is None for b in blocks):
        raise SystemExit("this measurement needs a values column (real-valued data)")
    perms = [np.random.default_rng([0, 0, k]).permutation(b.n_rows).astype(np.int64) for k, b in enumerate(blocks)]
    nnz = sum(b.nnz for b in blocks)
    variants = ("adagrad", "normalized", "normalized-records", "record", "record-fast", "record-plain")
    for v in variants:
        epoch(v, ds, blocks, perms)  # compile / load the cache
    runs = {v: [] for v in variants}
    for _ in range(args.repeats):
        for v in variants:
            runs[v].append(epoch(v, ds, blocks, perms))
    base = statistics.median(t for t, _ in runs["adagrad"])
    print(f"{args.data}: {nnz:,} nnz, one thread, CPU time, median of {args.repeats}")
    print("| variant | s | M nnz/s | speed / adagrad's | train loss |\n|---|---:|---:|---:|---:|")
    for v, r in runs.items():
        t = statistics.median(x for x, _ in r)
        print(f"| {v} | {t:.3f} | {nnz / t / 1e6:.1f} | {base / t:.2f} | {r[0][1]:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
