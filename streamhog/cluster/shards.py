"""Parameter-server shards of Downpour SGD (downpour.py), living in the worker processes.

Shard s of S holds the flat coordinates [lo, hi) of the model (weights and optimizer state;
shard 0 also the intercept state) in the registry of the worker it was placed on. Workers
push sparse changes (the delta of their replica since their last push) and fetch the values
of every coordinate changed since their last fetch. A push's **staleness** is the number of
pushes other workers made to this shard since the pushing worker last fetched from it:
the model it computed its change against is that many updates old. Every push's value
arrays (weights, FTRL's z, the intercept) are scaled by 1/(1 + staleness) — Zhang, Gupta,
Lian & Liu (IJCAI 2016) divide every step by its staleness, counted here with the push's
own update: a fresh push (one worker, or one that fetched after the others pushed) is
whole, so one worker is one machine; of two workers stepping from the same model the
second adds half its step, as averaging them would. Beyond ``max_staleness`` it is scaled
so too (``scale``) or ignored whole (``drop``). Scaling only beyond the bound, as before
(``stale_scaling="beyond-bound"``: full steps within, 1/staleness beyond), sums K workers'
full steps from the same model: at the default rule's lr (normalized, 0.7) on 30 dense
features, 2 workers lost 0-11% of logloss against one machine, 4 workers 29-59%;
1/max(1, staleness) (the paper's factor with staleness counted without the push) leaves a
2-worker step whole and lost 0-4%; 1/(1 + staleness) kept 2 workers within 1.4% (4 workers:
1-7%), and a9a and the synthetic set as before (benchmarks/cluster.md). Squared-gradient sums are added unscaled
(they are the gradients' record, not a step), the normalized rule's scale is a max, and its
weight and accumulator are added in scale-free units (w s, acc s^2: changes.py) and put
back at the larger scale. Each push returns its staleness and factor, which the client
reports per epoch.
"""
from __future__ import annotations

import threading

import numpy as np

from . import changes as ch


def stale_factor(staleness: int, max_staleness: int, policy: str, scaling: str = "every") -> float:
    """What a push's step is multiplied by (see the module docstring): 1/(1 + staleness) for
    every push (``every``), 0 beyond the bound under ``drop``; ``beyond-bound`` is the rule
    before issue 17's default-lr fix (full steps within the bound, 1/staleness beyond), kept
    as the measured control."""
    if staleness > max_staleness and policy == "drop":
        return 0.0
    if scaling == "every":
        return 1.0 / (1 + staleness)
    return 1.0 if staleness <= max_staleness else 1.0 / staleness


class Shard:
    """Coordinates [lo, hi) of a model and the bookkeeping of pushes and fetches."""

    def __init__(self, lo: int, hi: int, n_arrays: int, bstate: np.ndarray | None, rules, optimizer: str,
                 ftrl=None):
        self.lo, self.hi = lo, hi
        self.arrays = [np.zeros(hi - lo, np.float32) for _ in range(n_arrays)]
        self.bstate = None if bstate is None else np.array(bstate, np.float64)
        self.rules, self.optimizer, self.ftrl = rules, optimizer, ftrl
        self.lock = threading.Lock()
        self.version = 0                       # pushes applied
        self.by_worker: dict[int, int] = {}    # pushes applied per worker
        self.fetched: dict[int, tuple[int, int]] = {}  # worker -> (version, its pushes) at its last fetch
        self.log: list[tuple[int, np.ndarray]] = []    # (version, coordinates it changed)

    def load(self, model: ch.Change) -> None:
        sel = (model.index >= self.lo) & (model.index < self.hi)
        idx = model.index[sel].astype(np.int64) - self.lo
        for mine, values in zip(self.arrays, model.arrays):
            mine[idx] = values[sel]
        if self.bstate is not None:
            self.bstate[:] = model.bstate

    def push(self, worker: int, delta: ch.Change, max_staleness: int, policy: str,
             scaling: str = "every") -> tuple[int, float]:
        """Apply a worker's change (delta form, global coordinates of this shard); (staleness, factor)."""
        with self.lock:
            version0, own0 = self.fetched.get(worker, (0, 0))
            staleness = (self.version - version0) - (self.by_worker.get(worker, 0) - own0)
            factor = stale_factor(staleness, max_staleness, policy, scaling)
            self.version += 1  # every push counts (a dropped one too: its coordinates are re-fetched)
            self.by_worker[worker] = self.by_worker.get(worker, 0) + 1
            self.log.append((self.version, delta.index.astype(np.int64)))
            if factor > 0.0:
                idx = delta.index.astype(np.int64) - self.lo
                k = self.rules.index(ch.MAX) if ch.SCALED in self.rules else None
                old_scale = None if k is None else self.arrays[k][idx].copy()
                units = {}  # the normalized arrays in scale-free units, put back once the scale is the max
                for a, (mine, d, rule) in enumerate(zip(self.arrays, delta.arrays, self.rules)):
                    if rule == ch.MAX:
                        np.maximum.at(mine, idx, d)
                    elif rule == ch.SUM:
                        mine[idx] += d
                    elif rule in (ch.SCALED, ch.SCALED_SUM):
                        units[a] = ch.scale_free(mine[idx], old_scale, rule) + (factor if rule == ch.SCALED else 1.0) * d
                    else:
                        mine[idx] += factor * d
                for a, u in units.items():
                    self.arrays[a][idx] = ch.at_scale(u, self.arrays[k][idx], self.rules[a])
                if self.ftrl is not None:
                    mine_w, n, z = self.arrays[0], self.arrays[1], self.arrays[2]
                    mine_w[idx] = ch.ftrl_weights(z[idx], n[idx], *self.ftrl)
                if self.bstate is not None and delta.trained:
                    self._push_bstate(delta.bstate, factor)
            return staleness, factor

    def _push_bstate(self, d: np.ndarray, factor: float) -> None:
        k = (len(self.bstate) - 2) // 3
        scaled = d.copy()
        scaled[:k] *= factor
        if self.optimizer == "ftrl":
            scaled[2 * k:3 * k] *= factor
        self.bstate += scaled
        if self.ftrl is not None:
            self.bstate[:k] = ch.ftrl_weights(self.bstate[2 * k:3 * k], self.bstate[k:2 * k], self.ftrl[0], 0.0, 0.0,
                                              self.ftrl[3])

    def fetch(self, worker: int) -> ch.Change:
        """The values of every coordinate changed since ``worker``'s last fetch (and the intercept state)."""
        with self.lock:
            version0, _ = self.fetched.get(worker, (0, 0))
            parts = [idx for v, idx in self.log if v > version0]
            idx = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
            self.fetched[worker] = (self.version, self.by_worker.get(worker, 0))
            oldest = min(v for v, _ in self.fetched.values())
            self.log = [(v, i) for v, i in self.log if v > oldest]  # every worker has fetched the rest
            local = idx - self.lo
            return ch.Change("values", idx, [a[local].copy() for a in self.arrays],
                             np.array(self.bstate if self.bstate is not None else [], np.float64),
                             trained=int(self.bstate is not None))

    def export(self) -> ch.Change:
        with self.lock:
            part = ch.nonzero_export(self.arrays, self.bstate if self.bstate is not None else np.zeros(0))
            part.index = part.index.astype(np.int64) + self.lo
            part.trained = int(self.bstate is not None)
            return part
