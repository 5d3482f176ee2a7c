"""Sparse model changes: what workers send, how they are combined, how they are applied.

A :class:`Change` holds, for the flat coordinates ``index`` (ascending; a softmax entry j
is j * K + k), one float32 array per model array (``w`` and the optimizer's ``acc``/``aux``,
kernels/block.ModelArrays) and the intercept state ``bstate`` (float64). It comes in two
forms:

``values``  new values: what a worker holds after its round (a leaf of the reduction), and
            the combined result every node applies (the root's). Applying is assignment,
            so one worker's values reach the client bit for bit (1 worker = one machine).
``delta``   a partial reduction: per coordinate the sum of the leaves' changes from the
            round's base model, and how many leaves touched it (``count``).

Arrays combine by their nature (``ARRAY_RULES``: weights and FTRL's z are values, squared
gradient sums are sums, the normalized rule's scale is a max) and by ``--sync-combine``:

``average`` (the default) the mean of the workers' models, per coordinate over the workers
            that touched it (a rare feature seen by one worker keeps its full step), the
            optimizer state too: local SGD with periodic averaging (Lin et al. 2020), VW's
            AllReduce averaging. The workers step with lr sqrt(K) (run.py), which keeps the
            progress and the noise of one machine's epoch: K models each moved sqrt(K)
            times as far, averaged, have the variance of one.
``sum``     every change adds up (squared-gradient sums included), as if the workers' steps
            had been taken one after another on the same model (Hogwild! with a round's
            staleness); unstable when K workers all move a saturated coordinate
            (benchmarks/cluster.md).

The scale is a max either way; FTRL's weight is recomputed from the combined (z, n). The
intercept state follows the same rules (its average is over the workers that trained rows).

The normalized rule (the default) needs more: each worker widens its own per-feature scales
s_j (a running max of |x_j|), and its w_j is in units of its s_j (w_j s_j = v_j, the weight
in normalized units, is what widening keeps) and its acc_j in units of its s_j^2 (acc_j s_j^2
is the raw sum of s (g x_j)^2). Two workers that saw different maxima hold numbers in
different units: averaging w (or adding its deltas) as they are would mix them. So the
normalized arrays combine in scale-free units (``SCALED``, ``SCALED_SUM``): a leaf's delta is
taken in v = w s and a = acc s^2, against the base's v and a at the base's scale; deltas add
(and average) in those units; the root puts the result at the common scale, the largest
any worker saw (s_max = the MAX of the scales), as w = v / s_max and acc = a / s_max^2 —
exactly what bringing every replica to s_max (w s / s_max, acc (s / s_max)^2) and then
averaging gives. The intercept's state (scale 1) and N, T (sums of the examples' squared
normalized norms and weights: their ratio is the rule's global step) combine as any
intercept state: averaged increments keep the ratio, summed ones too.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

VALUE, SUM, MAX = "value", "sum", "max"
#: The normalized rule's weight and accumulator: a value and a sum in units of the array of
#: rule MAX (the scale) to the power 1 and 2 (see the module docstring).
SCALED, SCALED_SUM = "scaled value", "scaled sum"
_POWER = {SCALED: 1, SCALED_SUM: 2}
#: How each of (w, acc, aux) combines, per optimizer.
ARRAY_RULES = {"sgd": (VALUE,), "adagrad": (VALUE, SUM), "normalized": (SCALED, SCALED_SUM, MAX),
               "ftrl": (VALUE, SUM, VALUE)}
COMBINES = ("average", "sum")


def scale_free(a, scale, rule) -> np.ndarray:
    """An array of rule SCALED / SCALED_SUM in scale-free units (float64): a s, a s^2."""
    return np.asarray(a, np.float64) * np.asarray(scale, np.float64) ** _POWER[rule]


def at_scale(units, scale, rule) -> np.ndarray:
    """Scale-free units back at ``scale`` (0 where the scale is 0: a feature never seen non-zero)."""
    s = np.asarray(scale, np.float64) ** _POWER[rule]
    return np.divide(units, s, out=np.zeros(len(s)), where=s > 0)


def _scale_index(rules) -> int | None:
    return rules.index(MAX) if SCALED in rules else None


@dataclass
class Change:
    """A sparse change of a model (see the module docstring)."""

    kind: str                      # "values" or "delta"
    index: np.ndarray              # uint32 (or int64 past 2^32 entries), ascending, unique
    arrays: list                   # float32 arrays aligned with index, one per model array
    bstate: np.ndarray             # float64: values, or the summed deltas
    count: np.ndarray | None = None  # delta: leaves that touched each coordinate (uint16)
    leaves: int = 1                # leaves combined
    trained: int = 0               # of them, leaves that trained rows (the intercept's average)
    stats: dict = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """What moving it costs (its arrays; the few bytes of pickling overhead aside)."""
        n = self.index.nbytes + self.bstate.nbytes + sum(a.nbytes for a in self.arrays)
        return int(n + (self.count.nbytes if self.count is not None else 0))

    @property
    def n_coordinates(self) -> int:
        return len(self.index)


def index_dtype(n_entries: int):
    return np.uint32 if n_entries <= 2**32 else np.int64


def values_of(arrays, bstate, index: np.ndarray, trained: bool) -> Change:
    """The ``values`` change of the coordinates ``index`` of a worker's arrays."""
    return Change("values", index, [np.ascontiguousarray(a[index]) for a in arrays], np.array(bstate, np.float64),
                  leaves=1, trained=int(trained))


def to_delta(change: Change, base_arrays, base_bstate, rules) -> Change:
    """A leaf's values as a partial reduction, against the round's base model."""
    if change.kind == "delta":
        return change
    idx = change.index
    out = []
    k = _scale_index(rules)
    for a, base, rule in zip(change.arrays, base_arrays, rules):
        if rule in _POWER:  # the leaf's v (a) at its scale against the base's at the base's
            d = scale_free(a, change.arrays[k], rule) - scale_free(base[idx], base_arrays[k][idx], rule)
            out.append(d.astype(np.float32))
        else:
            out.append(a if rule == MAX else (a.astype(np.float64) - base[idx]).astype(np.float32))
    db = change.bstate - base_bstate if change.trained else np.zeros_like(change.bstate)
    return Change("delta", idx, out, db, np.ones(len(idx), np.uint16), change.leaves, change.trained,
                  dict(change.stats))


def merge(a: Change, b: Change, rules) -> Change:
    """Two partial reductions as one (``delta`` form)."""
    from ..kernels.sparse_sets import union_positions

    union, pa, pb = union_positions(a.index.astype(np.int64), b.index.astype(np.int64))
    idx = union.astype(a.index.dtype, copy=False)
    out = []
    for xa, xb, rule in zip(a.arrays, b.arrays, rules):
        if rule == MAX:
            m = np.zeros(len(idx), np.float32)
            m[pa] = xa
            np.maximum.at(m, pb, xb)
        else:
            m = np.zeros(len(idx), np.float64)
            m[pa] += xa
            m[pb] += xb
        out.append(m.astype(np.float32))
    count = np.zeros(len(idx), np.uint16)
    count[pa] += a.count
    count[pb] += b.count
    return Change("delta", idx, out, a.bstate + b.bstate, count, a.leaves + b.leaves, a.trained + b.trained,
                  merge_stats(a.stats, b.stats))


def merge_stats(a: dict, b: dict) -> dict:
    """Per-round statistics travel up the tree with the changes: lists concatenate, numbers add."""
    out = dict(a)
    for k, v in b.items():
        out[k] = out[k] + v if k in out else v
    return out


def finalize(delta: Change, base_arrays, base_bstate, rules, combine: str, ftrl=None) -> Change:
    """The root's step: the combined ``values`` every node assigns. ``ftrl`` = (alpha, l1, l2,
    beta) recomputes FTRL's weights from the combined (z, n)."""
    idx = delta.index
    out = []
    k = _scale_index(rules)
    top = None if k is None else np.maximum(base_arrays[k][idx], delta.arrays[k])  # the common scale
    for d, base, rule in zip(delta.arrays, base_arrays, rules):
        b = base[idx].astype(np.float64)
        if rule in _POWER:
            b = scale_free(b, base_arrays[k][idx], rule)
        if rule == MAX:
            r = np.maximum(b, d)
        elif combine == "average":
            r = b + d / np.maximum(delta.count, 1)
        else:
            r = b + d
        out.append((at_scale(r, top, rule) if rule in _POWER else r).astype(np.float32))
    bstate = np.array(base_bstate, np.float64)
    bstate += delta.bstate / max(delta.trained, 1) if combine == "average" else delta.bstate
    if ftrl is not None:
        out[0] = ftrl_weights(out[2], out[1], *ftrl).astype(np.float32)
        k = (len(bstate) - 2) // 3
        bstate[:k] = ftrl_weights(bstate[2 * k:3 * k], bstate[k:2 * k], ftrl[0], 0.0, 0.0, ftrl[3])
    return Change("values", idx, out, bstate, leaves=delta.leaves, trained=delta.trained, stats=delta.stats)


def ftrl_weights(z, n, alpha, l1, l2, beta) -> np.ndarray:
    """FTRL-Proximal's closed-form weights (kernels/optimizers.ftrl_weight), vectorised."""
    z, n = np.asarray(z, np.float64), np.asarray(n, np.float64)
    w = -(z - np.sign(z) * l1) / ((beta + np.sqrt(n)) / alpha + l2)
    return np.where(np.abs(z) <= l1, 0.0, w)


def assign(change: Change, arrays, bstate) -> None:
    """Apply a ``values`` change in place (a worker's model, or the client's memory maps)."""
    for target, values in zip(arrays, change.arrays):
        target[change.index] = values
    bstate[:] = change.bstate


def nonzero_export(arrays, bstate) -> Change:
    """Every coordinate where some array is non-zero, as values: a whole model, sparsely
    (initialising a worker from the client's model or from another worker)."""
    n = len(arrays[0])
    nz = np.zeros(0, np.int64)
    chunk = 1 << 24  # bounded temporaries for models larger than memory
    for lo in range(0, n, chunk):
        hit = np.zeros(min(chunk, n - lo), bool)
        for a in arrays:
            hit |= np.asarray(a[lo:lo + chunk]) != 0
        nz = np.concatenate([nz, np.flatnonzero(hit) + lo])
    index = nz.astype(index_dtype(n))
    return Change("values", index, [np.ascontiguousarray(a[index]) for a in arrays], np.array(bstate, np.float64))
