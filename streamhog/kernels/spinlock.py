"""A spin lock usable inside nogil numba code: the locking baseline of ``--sync lock``.

The Hogwild! paper compares lock-free updates against taking a lock around each update.
numba has no locks in nopython mode, so this is an atomic compare-and-swap on an int32
cell (LLVM ``cmpxchg``), spun on until it succeeds.
"""
from __future__ import annotations

from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def _compare_and_swap_int32(typingctx, cells, index, expected, desired):
    """Atomically: old = cells[index]; if old == expected: cells[index] = desired; return old."""
    if not (isinstance(cells, types.Array) and cells.dtype == types.int32):
        return None
    sig = types.int32(cells, index, types.int32, types.int32)

    def codegen(context, builder, signature, args):
        arr, idx, exp, des = args
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, arr)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [idx])
        pair = builder.cmpxchg(ptr, exp, des, "seq_cst", "seq_cst")
        return builder.extract_value(pair, 0)

    return sig, codegen


@njit(inline="always", cache=True)
def spin_acquire(cells):
    while _compare_and_swap_int32(cells, 0, types.int32(0), types.int32(1)) != 0:
        pass


@njit(inline="always", cache=True)
def spin_release(cells):
    _compare_and_swap_int32(cells, 0, types.int32(1), types.int32(0))
