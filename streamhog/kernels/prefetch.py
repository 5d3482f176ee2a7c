"""A software prefetch usable in numba code (LLVM ``llvm.prefetch``).

The SGD kernel is bound by memory latency, not arithmetic: each example gathers ~40
weights at random from a vector far larger than the L2 cache, and rows are visited in a
shuffled order. Asking for the next row's weights (and the data of rows a few steps
ahead) while the current row is computed overlaps those misses: measured 51 → 116 M nnz/s
on shuffled 16K-row blocks of the benchmark data.
"""
from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, array, index):
    """Hint the CPU to load ``array[index]`` into the caches; no effect on results."""
    if not isinstance(array, types.Array):
        return None
    sig = types.void(array, index)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        # As an intp: a strided array's address is index × stride (an intp).
        index = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [index])
        i8p = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        builder.call(fn, [i8p, i32(0), i32(3), i32(1)])  # read, keep in all cache levels, data
        return context.get_dummy_value()

    return sig, codegen


# Compiled without numba's reference counting and called, not inlined at numba's level: as an
# inlined function its array arguments each cost an atomic increment and decrement per row
# (perf: 6% of the normalized kernel's samples in NRT_decref); LLVM still inlines the call.
# Kernels' AdaGrad 102 -> 114-118M nnz/s, normalized on records 65 -> 70-74
# (benchmarks/normalized_layouts.py, one thread). It allocates nothing: nothing to count.
@njit(cache=True, _nrt=False)
def prefetch_rows_ahead(indptr, indices, values, has_values, rows, k, n):
    """The training kernels' look-ahead on the data: the first 48 entries (3 cache lines) of
    row ``rows[k + 4]`` and the offsets of ``rows[k + 8]``, so that they are in cache when
    the row's weights are prefetched (one row ahead) and then read."""
    if k + 4 < n:
        ahead = indptr[rows[k + 4]]
        for off in range(0, 48, 16):
            prefetch(indices, ahead + off)
            if has_values:
                prefetch(values, ahead + off)
        if k + 8 < n:
            prefetch(indptr, rows[k + 8])
