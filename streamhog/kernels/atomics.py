"""Atomic operations usable inside nogil numba code (LLVM ``cmpxchg`` and atomic loads).

numba has no locks or atomics in nopython mode. The training kernels need three things:

* ``spin_acquire``/``spin_release``: a spin lock around each example's update, the locking
  baseline of ``--sync lock`` that the Hogwild! paper compares against;
* ``publish``: a thread adds its change of a small shared array (the intercept and the
  optimizer's scalars, kept locally between publications) to the shared values, entry by
  entry with a compare-and-swap, so that no thread's change is lost;
* ``publish_max_entry``: the same for an entry that is a running maximum (the normalized
  rule's feature scales): the shared value becomes the larger of the two, never a sum;
* ``gate_wait``: a test hook that holds every block of a call at a rendezvous right after it
  read the shared values, which makes T blocks overlap deterministically;
* ``barrier_wait``: a barrier between the rounds of threads that train together inside
  their nogil calls (factorization/strata.py), with no trip through Python and the GIL:
  on MovieLens a round lasts about 0.2 ms, and a ``threading.Barrier`` took a large part
  of that. Waiters spin, then yield the core (sched_yield), so threads that outnumber the
  cores still make progress.
"""
from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


def _item_pointer(context, builder, aryty, arr, idx, idxty):
    ary = context.make_array(aryty)(context, builder, arr)
    index = context.cast(builder, idx, idxty, types.intp)
    return cgutils.get_item_pointer(context, builder, aryty, ary, [index])


@intrinsic
def _compare_and_swap_int32(typingctx, cells, index, expected, desired):
    """Atomically: old = cells[index]; if old == expected: cells[index] = desired; return old."""
    if not (isinstance(cells, types.Array) and cells.dtype == types.int32):
        return None
    sig = types.int32(cells, index, types.int32, types.int32)

    def codegen(context, builder, signature, args):
        arr, idx, exp, des = args
        ptr = _item_pointer(context, builder, signature.args[0], arr, idx, signature.args[1])
        pair = builder.cmpxchg(ptr, exp, des, "seq_cst", "seq_cst")
        return builder.extract_value(pair, 0)

    return sig, codegen


@intrinsic
def compare_and_swap_f64(typingctx, cells, index, expected, desired):
    """Atomically: if cells[index] has the bits of ``expected``, store ``desired``; True if
    it did. Compares bits, so a NaN matches itself."""
    if not (isinstance(cells, types.Array) and cells.dtype == types.float64):
        return None
    sig = types.boolean(cells, index, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        arr, idx, exp, des = args
        ptr = _item_pointer(context, builder, signature.args[0], arr, idx, signature.args[1])
        i64 = ir.IntType(64)
        iptr = builder.bitcast(ptr, i64.as_pointer())
        pair = builder.cmpxchg(iptr, builder.bitcast(exp, i64), builder.bitcast(des, i64), "seq_cst", "seq_cst")
        return builder.extract_value(pair, 1)

    return sig, codegen


@intrinsic
def atomic_load(typingctx, cells, index):
    """cells[index], read atomically: never cached in a register, never torn."""
    if not isinstance(cells, types.Array) or cells.dtype not in (types.float64, types.int32):
        return None
    sig = cells.dtype(cells, index)

    def codegen(context, builder, signature, args):
        arr, idx = args
        ptr = _item_pointer(context, builder, signature.args[0], arr, idx, signature.args[1])
        width = 8 if signature.args[0].dtype == types.float64 else 4
        return builder.load_atomic(ptr, "acquire", width)

    return sig, codegen


@njit(inline="always", cache=True)
def _increment_int32(cells, index):
    """cells[index] += 1, atomically (a compare-and-swap loop); returns the value before."""
    while True:
        cur = atomic_load(cells, index)
        if _compare_and_swap_int32(cells, index, cur, types.int32(cur + 1)) == cur:
            return cur


@intrinsic
def yield_cpu(typingctx):
    """sched_yield(2): give the core to another runnable thread."""
    sig = types.int32()

    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
        return builder.call(fn, [])

    return sig, codegen


#: The cells of a barrier_wait barrier (an int32 array): threads arrived in this round, the
#: round's number, the number of threads, broken (non-zero: every wait returns False).
BARRIER_ARRIVED, BARRIER_ROUND, BARRIER_THREADS, BARRIER_BROKEN = 0, 1, 2, 3
#: Loads of the round's number a waiter makes between two sched_yield calls.
SPINS_BEFORE_YIELD = 64


@njit(inline="always", cache=True)
def barrier_wait(cells):
    """Wait until ``cells[BARRIER_THREADS]`` threads have called this (a round of the
    barrier); False (at once, or while waiting) once the barrier is broken. The last to
    arrive resets the count before it moves the round on, so a thread that leaves and
    arrives again counts in the next round."""
    round_ = atomic_load(cells, BARRIER_ROUND)
    cur = _increment_int32(cells, BARRIER_ARRIVED)
    if cur + 1 == cells[BARRIER_THREADS]:
        _compare_and_swap_int32(cells, BARRIER_ARRIVED, types.int32(cur + 1), types.int32(0))
        _compare_and_swap_int32(cells, BARRIER_ROUND, round_, types.int32(round_ + 1))
    else:
        spins = 0
        while atomic_load(cells, BARRIER_ROUND) == round_:
            if atomic_load(cells, BARRIER_BROKEN) != 0:
                return False
            spins += 1
            if spins == SPINS_BEFORE_YIELD:
                spins = 0
                yield_cpu()
    return atomic_load(cells, BARRIER_BROKEN) == 0


@njit(inline="always", cache=True)
def spin_acquire(cells):
    while _compare_and_swap_int32(cells, 0, types.int32(0), types.int32(1)) != 0:
        pass


@njit(inline="always", cache=True)
def spin_release(cells):
    _compare_and_swap_int32(cells, 0, types.int32(1), types.int32(0))


@njit(inline="always", cache=True)
def read_shared(shared, local, base):
    """local[:] = base[:] = shared[:], entry by entry with atomic loads."""
    for q in range(shared.shape[0]):
        v = atomic_load(shared, q)
        local[q] = v
        base[q] = v


@njit(inline="always", cache=True)
def publish_entry(shared, local, base, q):
    """Add this thread's change of entry ``q`` since it read ``base[q]`` to ``shared[q]``,
    then refresh ``local[q]`` and ``base[q]`` with the shared value, which now holds the
    other threads' changes too. When nobody else changed the entry meanwhile, the CAS stores
    ``local[q]`` itself, so one thread gets bit for bit the values it computed; otherwise it
    adds its delta to theirs."""
    mine = local[q]
    seen = base[q]
    if mine != seen or mine != mine:  # changed here (NaN: let it show)
        if not compare_and_swap_f64(shared, q, seen, mine):
            delta = mine - seen
            while True:
                cur = atomic_load(shared, q)
                if compare_and_swap_f64(shared, q, cur, cur + delta):
                    break
    v = atomic_load(shared, q)
    local[q] = v
    base[q] = v


@njit(inline="always", cache=True)
def publish_max_entry(shared, local, base, q):
    """Raise ``shared[q]`` to ``local[q]`` if it is below (a compare-and-swap loop: a larger
    value another thread stored stays), then refresh ``local[q]`` and ``base[q]`` with it."""
    mine = local[q]
    while True:
        cur = atomic_load(shared, q)
        if not mine > cur or compare_and_swap_f64(shared, q, cur, mine):
            break
    v = atomic_load(shared, q)
    local[q] = v
    base[q] = v


@njit(inline="always", cache=True)
def publish_hot_slot(shared, local, base, sl, n_hot):
    """Publish hot slot ``sl`` of a [w, acc, aux] array of ``n_hot`` slots (kernels/hot.py):
    the weight and the accumulator are sums of the threads' changes, aux a maximum (the
    normalized rule's scale; zero and unchanged for sgd and adagrad)."""
    publish_entry(shared, local, base, sl)
    publish_entry(shared, local, base, n_hot + sl)
    publish_max_entry(shared, local, base, 2 * n_hot + sl)


@njit(inline="always", cache=True)
def publish_hot(shared, local, base, n_hot):
    """:func:`publish_hot_slot` for every slot."""
    for sl in range(n_hot):
        publish_hot_slot(shared, local, base, sl, n_hot)


@njit(inline="always", cache=True)
def publish(shared, local, base):
    """:func:`publish_entry` for every entry of ``shared``."""
    for q in range(shared.shape[0]):
        publish_entry(shared, local, base, q)


@njit(inline="always", cache=True)
def gate_wait(cells):
    """Test hook: with ``cells = [lock, 0, T]`` (int32), each caller arrives and waits until
    T have; with the lock cell alone it returns at once."""
    if cells.shape[0] < 3:
        return
    _increment_int32(cells, 1)  # arrive
    target = cells[2]
    while atomic_load(cells, 1) < target:
        pass
