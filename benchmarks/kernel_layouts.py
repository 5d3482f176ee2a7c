"""What bounds the AdaGrad kernel, and what a different layout would buy (issue 5).

Stripped-down logistic kernels over the train split in memory (CSR), visiting rows in
shuffled 16K-row blocks with the production kernel's look-ahead prefetch, 1 thread and 2
Hogwild! threads (alternate blocks), interleaved and repeated:

  sgd            w only: one weight cache line per non-zero
  adagrad        w and acc in two arrays (streamhog's layout: weights.npy + accum.npy)
  adagrad-rsqrt  the same, 1/sqrt by the CPU's estimate + one Newton step (x86 only)
  interleaved    (w, acc) pairs in one array: one cache line per non-zero
  interleaved-rsqrt
  strided-views  the two-array kernel given w = pairs[0::2], acc = pairs[1::2]: the interleaved
                 memory with the kernel unchanged (numba indexes a strided array by a
                 run-time stride; each line is prefetched twice)
  hot-private    two arrays, the 256 most frequent features kept per thread and merged
                 into the shared arrays every 4096 rows (a hash-set lookup per non-zero)

    python benchmarks/kernel_layouts.py benchmarks/output/data-1800000/train.parquet [--repeats 5]

Prints M nnz/s (median and best) and each variant's progressive training loss (the same
work must give the same loss). Not used by the product: a measurement to decide on.
"""
from __future__ import annotations

import argparse
import math
import platform
import threading
import time

import numpy as np
import pyarrow.parquet as pq
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from streamhog.kernels.losses import LOGISTIC, loss_and_dloss
from streamhog.kernels.prefetch import prefetch, prefetch_rows_ahead
from workers import table_csr  # benchmarks/: either Parquet layout with pyarrow and NumPy alone

X86 = platform.machine().lower() in ("x86_64", "amd64")


@intrinsic
def _rsqrt_estimate(typingctx, x):
    sig = types.float32(types.float32)

    def codegen(context, builder, signature, args):
        vt = ir.VectorType(ir.FloatType(), 4)
        v = builder.insert_element(ir.Constant(vt, ir.Undefined), args[0], ir.IntType(32)(0))
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt]), "llvm.x86.sse.rsqrt.ss")
        return builder.extract_element(builder.call(fn, [v]), ir.IntType(32)(0))

    return sig, codegen


@njit(inline="always")
def _rsqrt(x):
    r = np.float64(_rsqrt_estimate(np.float32(x)))
    return r * (1.5 - 0.5 * x * r * r)  # one Newton step: ~23 bits, float32's precision


def make_kernel(variant: str):
    interleaved = variant.startswith("interleaved")
    fast = variant.endswith("rsqrt")
    sgd = variant == "sgd"

    @njit(nogil=True)
    def kernel(off, idx, val, y, w, acc, pairs, lr, rows):
        n = len(rows)
        loss_sum = 0.0
        for k in range(n):
            if k + 1 < n:
                nxt = rows[k + 1]
                for p in range(off[nxt], off[nxt + 1]):
                    if interleaved:
                        prefetch(pairs, 2 * idx[p])
                    else:
                        prefetch(w, idx[p])
                        if not sgd:
                            prefetch(acc, idx[p])
                prefetch_rows_ahead(off, idx, val, True, rows, k, n)
            i = rows[k]
            z = 0.0
            for p in range(off[i], off[i + 1]):
                z += (pairs[2 * idx[p]] if interleaved else w[idx[p]]) * val[p]
            loss, g = loss_and_dloss(LOGISTIC, z, y[i])
            loss_sum += loss
            for p in range(off[i], off[i + 1]):
                j = idx[p]
                gx = g * val[p]
                if sgd:
                    w[j] = w[j] - lr * gx
                    continue
                a = (pairs[2 * j + 1] if interleaved else acc[j]) + gx * gx
                step = lr * gx * _rsqrt(1.0 + a) if fast else lr * gx / math.sqrt(1.0 + a)
                if interleaved:
                    pairs[2 * j + 1] = a
                    pairs[2 * j] = pairs[2 * j] - step
                else:
                    acc[j] = a
                    w[j] = w[j] - step
        return loss_sum

    return kernel


@njit(inline="always")
def _slot(keys, slots, shift, mask, j):
    h = np.int64((np.uint64(j) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(shift))
    while True:
        key = keys[h]
        if key == j:
            return slots[h]
        if key == -1:
            return -1
        h = (h + 1) & mask


@njit(nogil=True)
def hot_private(off, idx, val, y, w, acc, lr, rows, hot, keys, slots, shift, sync):
    """AdaGrad with thread-private copies of the ``hot`` coordinates, merged every ``sync`` rows."""
    n = len(rows)
    H = hot.shape[0]
    mask = keys.shape[0] - 1
    lw = np.empty(H)
    la = np.empty(H)
    bw = np.empty(H)
    ba = np.empty(H)
    for s in range(H):
        lw[s] = bw[s] = w[hot[s]]
        la[s] = ba[s] = acc[hot[s]]
    row_slots = np.empty(1 << 16, np.int32)
    loss_sum = 0.0
    for k in range(n):
        if k % sync == sync - 1 or k == n - 1:  # merge this thread's change, take the others'
            for s in range(H):
                j = hot[s]
                nw = w[j] + (lw[s] - bw[s])
                na = acc[j] + (la[s] - ba[s])
                w[j] = nw
                acc[j] = na
                lw[s] = bw[s] = nw
                la[s] = ba[s] = na
        if k + 1 < n:
            nxt = rows[k + 1]
            for p in range(off[nxt], off[nxt + 1]):
                prefetch(w, idx[p])
                prefetch(acc, idx[p])
            prefetch_rows_ahead(off, idx, val, True, rows, k, n)
        i = rows[k]
        lo = off[i]
        z = 0.0
        for p in range(lo, off[i + 1]):
            s = _slot(keys, slots, shift, mask, idx[p])
            row_slots[p - lo] = s
            z += (lw[s] if s >= 0 else w[idx[p]]) * val[p]
        loss, g = loss_and_dloss(LOGISTIC, z, y[i])
        loss_sum += loss
        for p in range(lo, off[i + 1]):
            gx = g * val[p]
            s = row_slots[p - lo]
            if s >= 0:
                a = la[s] + gx * gx
                la[s] = a
                lw[s] -= lr * gx / math.sqrt(1.0 + a)
            else:
                j = idx[p]
                a = acc[j] + gx * gx
                acc[j] = a
                w[j] = w[j] - lr * gx / math.sqrt(1.0 + a)
    for s in range(H):  # the last rows' change
        w[hot[s]] += lw[s] - bw[s]
        acc[hot[s]] += la[s] - ba[s]
    return loss_sum


def hash_set(ids: np.ndarray, bits: int):
    keys = np.full(1 << bits, -1, np.int64)
    slots = np.full(1 << bits, -1, np.int32)
    for s, j in enumerate(ids.tolist()):
        h = ((j * 0x9E3779B97F4A7C15) & (2**64 - 1)) >> (64 - bits)
        while keys[h] != -1:
            h = (h + 1) & ((1 << bits) - 1)
        keys[h], slots[h] = j, s
    return keys, slots


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="a .parquet train split (benchmarks/run.py's data-<rows>/train.parquet)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--hot", type=int, default=256, help="hot-private: coordinates kept per thread")
    ap.add_argument("--sync", type=int, default=4096, help="hot-private: rows between merges")
    args = ap.parse_args()

    off, idx, val, labels = table_csr(pq.read_table(args.data))
    y = np.where(labels > 0, 1.0, -1.0)
    nf, n, nnz = int(idx.max()) + 1, len(y), len(idx)
    rng = np.random.default_rng(0)
    blocks = [s + rng.permutation(min(16_384, n - s)) for s in range(0, n, 16_384)]
    order = np.concatenate(blocks)
    halves = [np.concatenate(blocks[0::2]), np.concatenate(blocks[1::2])]

    counts = np.bincount(idx, minlength=nf)
    hot = np.argsort(-counts, kind="stable")[:args.hot].astype(np.int64)
    bits = max(4, int(math.ceil(math.log2(4 * args.hot))))
    keys, slots = hash_set(hot, bits)
    print(f"{n:,} rows, {nnz:,} nnz; the {args.hot} most frequent features hold "
          f"{counts[hot].sum() / nnz:.0%} of the non-zeros", flush=True)

    variants = ["sgd", "adagrad", "interleaved"] + (["adagrad-rsqrt", "interleaved-rsqrt"] if X86 else [])
    runners = {}
    for v in variants:
        k = make_kernel(v)
        runners[v] = (lambda k: lambda rows, w, acc, pairs: k(off, idx, val, y, w, acc, pairs, 0.1, rows))(k)
    two_arrays = make_kernel("adagrad")
    runners["strided-views"] = lambda rows, w, acc, pairs: two_arrays(off, idx, val, y, pairs[0::2], pairs[1::2],
                                                                      pairs, 0.1, rows)
    runners["hot-private"] = lambda rows, w, acc, pairs: hot_private(off, idx, val, y, w, acc, 0.1, rows, hot,
                                                                     keys, slots, 64 - bits, args.sync)
    for f in runners.values():  # compile
        f(order[:100], np.zeros(nf, np.float32), np.zeros(nf, np.float32), np.zeros(2 * nf, np.float32))

    times: dict = {}
    losses: dict = {}
    for _ in range(args.repeats):
        for name, f in runners.items():
            for threads in (1, 2):
                w, acc, pairs = np.zeros(nf, np.float32), np.zeros(nf, np.float32), np.zeros(2 * nf, np.float32)
                out = [0.0, 0.0]
                t0 = time.perf_counter()
                if threads == 1:
                    out[0] = f(order, w, acc, pairs)
                else:
                    def work(q, rows):
                        out[q] = f(rows, w, acc, pairs)
                    ts = [threading.Thread(target=work, args=(q, h)) for q, h in enumerate(halves)]
                    [th.start() for th in ts]
                    [th.join() for th in ts]
                times.setdefault((name, threads), []).append(time.perf_counter() - t0)
                losses[(name, threads)] = sum(out) / n
    print(f"{'variant':18s} {'1 thread':>16s} {'2 threads':>16s} {'2T/1T':>6s}  progressive loss 1T / 2T "
          f"(M nnz/s: median, best of {args.repeats})")
    for name in runners:
        a, b = times[(name, 1)], times[(name, 2)]
        print(f"{name:18s} {nnz / np.median(a) / 1e6:7.1f} {nnz / min(a) / 1e6:7.1f}  "
              f"{nnz / np.median(b) / 1e6:7.1f} {nnz / min(b) / 1e6:7.1f}  {np.median(a) / np.median(b):5.2f}  "
              f"{losses[(name, 1)]:.4f} / {losses[(name, 2)]:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
