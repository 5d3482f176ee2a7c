"""nogil numba kernel of recommendation: each user's ``k`` best-scored items among candidates.

For user u (a row of P, or none: an id the model never saw) and candidate item i the key
is s(u, i) = b_i + p_u·q_i, the predicted rating less μ + b_u (the same for all of u's
items, added back by the caller). Every candidate is scored against every user of the
batch: a dense product, bound by the arithmetic once the rows are cached. So candidates
come in chunks of CHUNK_ITEMS (their rows stay in cache while the users pass over them),
the dot products in tiles of 4 users x 4 candidates (16 sums sharing each load), and the
heap pass runs apart from that loop. Measured here (2-core Intel Xeon VM, rank 32, one
thread, 20,000 users x 20,000 items): 37M scores a second with one dot product per
candidate inside the heap loop, 249M with the tiles (benchmarks/mf_recommend.md: 260M, and
511M on two threads, for 100,000 users).

Each user keeps a min-heap of its k best so far (the root the worst): a candidate enters
when the heap is not full or it beats the root. "Beats": a higher key, or an equal key
and a smaller item id, so the result is a pure function of the model and the candidates
(no thread or chunk order shows). Excluded pairs (the items a user already rated, say)
come per user as sorted ids; candidates come sorted too, so one merge pointer per user
skips them.
"""
from __future__ import annotations

import numpy as np
from numba import njit, types

from .kernels import FAST

#: Candidates scored per pass over a batch's users: 1,024 rows of rank 100 are 400 KiB,
#: within a core's L2.
CHUNK_ITEMS = 1024
#: Users and candidates per step of the score loop: 4 x 4 dot products share their loads.
TILE = 4

_ro = lambda dt, nd=1: types.Array(dt, nd, "C", readonly=True)  # noqa: E731
_rw = lambda dt, nd=1: types.Array(dt, nd, "C")  # noqa: E731
_f32, _f64, _i64, _u64 = types.float32, types.float64, types.int64, types.uint64


@njit(inline="always", cache=True, error_model="numpy")
def _worse(s1, i1, s2, i2):
    """Whether (score s1, item i1) ranks below (s2, i2): lower score, or tied and a larger id."""
    return s1 < s2 or (s1 == s2 and i1 > i2)


@njit(inline="always", cache=True, error_model="numpy")
def _sift_down(hs, hi, n, j):
    """Restore the min-heap (root: the worst kept) of hs/hi[:n] below position j."""
    while True:
        c = 2 * j + 1
        if c >= n:
            return
        if c + 1 < n and _worse(hs[c + 1], hi[c + 1], hs[c], hi[c]):
            c += 1
        if not _worse(hs[c], hi[c], hs[j], hi[j]):
            return
        hs[j], hs[c] = hs[c], hs[j]
        hi[j], hi[c] = hi[c], hi[j]
        j = c


@njit(inline="always", cache=True, error_model="numpy")
def _push(hs, hi, n, k, s, i):
    """Offer (s, i) to the heap of n <= k entries; returns its new size."""
    if n < k:
        j = n
        hs[j] = s
        hi[j] = i
        while j > 0:  # sift up
            p = (j - 1) // 2
            if not _worse(hs[j], hi[j], hs[p], hi[p]):
                break
            hs[j], hs[p] = hs[p], hs[j]
            hi[j], hi[p] = hi[p], hi[j]
            j = p
        return n + 1
    if _worse(hs[0], hi[0], s, i):
        hs[0] = s
        hi[0] = i
        _sift_down(hs, hi, n, 0)
    return n


@njit(inline="always", cache=True, fastmath=FAST, error_model="numpy")
def _tile_scores(P, Q, user_rows, j0, hi, candidates, c, c1, out, o):
    """The 4 x 4 dot products of users j0..j0+3 and candidates c..c+3 into out[0:4, o:o+4].
    Past a slice's end the last user (candidate) is repeated: every score comes from this one
    code, in one summation order, wherever its pair sits in a tile (so threads and batches
    cannot change a bit of it). A user beyond the model (row -1) reads row 0: the caller
    ignores its products."""
    p0 = P[max(user_rows[j0], 0)]
    p1 = P[max(user_rows[min(j0 + 1, hi - 1)], 0)]
    p2 = P[max(user_rows[min(j0 + 2, hi - 1)], 0)]
    p3 = P[max(user_rows[min(j0 + 3, hi - 1)], 0)]
    q0 = Q[candidates[c]]
    q1 = Q[candidates[min(c + 1, c1 - 1)]]
    q2 = Q[candidates[min(c + 2, c1 - 1)]]
    q3 = Q[candidates[min(c + 3, c1 - 1)]]
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = np.float32(0.0)
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = np.float32(0.0)
    for t in range(P.shape[1]):
        a0, a1, a2, a3 = p0[t], p1[t], p2[t], p3[t]
        b0, b1, b2, b3 = q0[t], q1[t], q2[t], q3[t]
        s00 += a0 * b0
        s01 += a0 * b1
        s02 += a0 * b2
        s03 += a0 * b3
        s10 += a1 * b0
        s11 += a1 * b1
        s12 += a1 * b2
        s13 += a1 * b3
        s20 += a2 * b0
        s21 += a2 * b1
        s22 += a2 * b2
        s23 += a2 * b3
        s30 += a3 * b0
        s31 += a3 * b1
        s32 += a3 * b2
        s33 += a3 * b3
    out[0, o], out[0, o + 1], out[0, o + 2], out[0, o + 3] = s00, s01, s02, s03
    out[1, o], out[1, o + 1], out[1, o + 2], out[1, o + 3] = s10, s11, s12, s13
    out[2, o], out[2, o + 1], out[2, o + 2], out[2, o + 3] = s20, s21, s22, s23
    out[3, o], out[3, o + 1], out[3, o + 2], out[3, o + 3] = s30, s31, s32, s33


# Compiled without numba's reference counting (it allocates nothing): else every row view
# costs an atomic increment and decrement of its array's count.
@njit([types.void(_ro(_i64), _ro(_f32, 2), _ro(_f32, 2), _ro(_f32), _ro(_u64), _ro(_i64), _ro(_u64),
                  _rw(_i64), _rw(_f32, 2), _rw(_f64, 2), _rw(_u64, 2), _rw(_i64), _i64, _i64)],
      nogil=True, cache=True, fastmath=FAST, error_model="numpy", _nrt=False)
def top_scored_items(user_rows, P, Q, bi, candidates, excl_ptr, excl_items, cursor, dots, heap_scores, heap_items,
                     counts, lo, hi):
    """Users ``lo..hi`` of the batch: their best ``k = heap_scores.shape[1]`` candidates.

    ``user_rows[j]``: user j's row of P, -1 for an id beyond it (no factor term then; a row
    never trained is zeros and gives the same). ``candidates``: item rows of Q, ascending.
    ``excl_items[excl_ptr[j]:excl_ptr[j + 1]]``: user j's excluded items, ascending. Scratch:
    ``cursor`` (the batch's length: the merge pointers) and ``dots`` (TILE x CHUNK_ITEMS + TILE,
    one per thread). On return ``heap_*[j, :counts[j]]`` hold user j's best in descending
    order (ties: smaller item first), keys b_i + p_u·q_i. Threads call it on disjoint
    [lo, hi): no shared writes.
    """
    k = heap_scores.shape[1]
    n_cand = candidates.shape[0]
    for j in range(lo, hi):
        counts[j] = 0
        cursor[j] = excl_ptr[j]
    for c0 in range(0, n_cand, CHUNK_ITEMS):
        c1 = min(c0 + CHUNK_ITEMS, n_cand)
        for j0 in range(lo, hi, TILE):
            for c in range(c0, c1, TILE):
                _tile_scores(P, Q, user_rows, j0, hi, candidates, c, c1, dots, c - c0)
            for jj in range(min(TILE, hi - j0)):  # the heap pass, apart: the score loop stays branch-free
                j = j0 + jj
                factors = user_rows[j] >= 0
                hs, hx = heap_scores[j], heap_items[j]
                n = counts[j]
                e, e_end = cursor[j], excl_ptr[j + 1]
                for c in range(c0, c1):
                    i = candidates[c]
                    while e < e_end and excl_items[e] < i:
                        e += 1
                    if e < e_end and excl_items[e] == i:
                        continue
                    s = np.float64(bi[i])
                    if factors:
                        s += np.float64(dots[jj, c - c0])
                    n = _push(hs, hx, n, k, s, i)
                counts[j] = n
                cursor[j] = e
    for j in range(lo, hi):  # heap sort: the worst to the end, one at a time
        hs, hx = heap_scores[j], heap_items[j]
        n = counts[j]
        for m in range(n - 1, 0, -1):
            hs[0], hs[m] = hs[m], hs[0]
            hx[0], hx[m] = hx[m], hx[0]
            _sift_down(hs, hx, m, 0)


@njit([types.void(_ro(_u64), _ro(_u64), _ro(_i64), _ro(_i64), _ro(_u64), _i64, _rw(_f64, 2))],
      nogil=True, cache=True, error_model="numpy")
def ranking_sums(users, items, user_index, rel_ptr, rel_items, top, out):
    """Per user of a batch, the hits of its recommendations (rows ``users``/``items``, each
    user's best first, ``user_index``: its row of the batch) among its relevant items
    (``rel_items[rel_ptr[j]:rel_ptr[j + 1]]``, ascending): out[j] = (hits, DCG, sum over the
    hits of precision at their rank). Binary relevance: a hit at rank r adds 1 / log2(r + 1)."""
    r = 0
    n = users.shape[0]
    while r < n:
        j = user_index[r]
        lo, hi = rel_ptr[j], rel_ptr[j + 1]
        hits = 0
        rank = 0
        while r < n and user_index[r] == j:
            rank += 1
            i = items[r]
            a, b = lo, hi  # binary search among the user's relevant items
            while a < b:
                m = (a + b) // 2
                if rel_items[m] < i:
                    a = m + 1
                else:
                    b = m
            if a < hi and rel_items[a] == i and rank <= top:
                hits += 1
                out[j, 1] += 1.0 / np.log2(rank + 1.0)
                out[j, 2] += hits / rank
            r += 1
        out[j, 0] = hits
