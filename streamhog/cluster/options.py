"""The options of a cluster run (``--sync-mode``, ``--sync-every``, ``--polish``, ...), checked.

Light (no Dask, no numba): the command line builds its parser from these names.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError

SYNC_MODES = ("average", "async", "lbfgs")
COMBINES = ("average", "sum")
STALE_POLICIES = ("scale", "drop")
#: async: which pushes are scaled by their staleness (shards.py): every one (the default), or,
#: as before, only those beyond --max-staleness (a control for benchmarks/cluster.md).
STALE_SCALINGS = ("every", "beyond-bound")
POLISHES = ("none", "lbfgs")
#: Rows each worker trains between two synchronisations when --sync-every is not given:
#: a few blocks of the default Parquet row group (16,384 rows), so that a round's compute
#: dwarfs the few milliseconds a reduction costs (benchmarks/cluster.md).
DEFAULT_SYNC_ROWS = 65_536


def parse_sync_every(text) -> tuple[int | None, float | None]:
    """``"50000"`` -> (50000 rows, None); ``"2s"`` -> (None, 2.0 seconds)."""
    if text is None:
        return DEFAULT_SYNC_ROWS, None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str):
        raise ConfigError(f"--sync-every must be rows (50000) or seconds (2s), got {text!r}")
    t = text.strip().lower()
    try:
        if t.endswith("s"):
            seconds = float(t[:-1])
            if seconds > 0:
                return None, seconds
        elif int(t) >= 1:
            return int(t), None
    except ValueError:
        pass
    raise ConfigError(f"--sync-every must be a number of rows >= 1 (50000) or of seconds > 0 (2s), got {text!r}")


@dataclass
class ClusterOptions:
    """How the workers synchronise (streamhog/cluster/__init__.py describes the modes)."""

    sync_mode: str = "average"
    sync_every: str | int | None = None    # rows per worker and round, or "Ns" seconds
    combine: str = "average"               # average or sum: how the workers' changes combine (changes.py)
    worker_lr: str | float = "auto"        # the workers' lr factor: auto = sqrt(workers) averaging, 1 summing
    polish: str = "none"                   # lbfgs: full-batch L-BFGS after the SGD epochs
    polish_iterations: int = 30
    lbfgs_tol: float = 1e-7                # stop when max |gradient| of the objective is below
    lbfgs_memory: int = 10                 # L-BFGS correction pairs
    push_every: int = 1                    # async: blocks between two pushes of a worker's changes
    fetch_every: int = 1                   # async: blocks between two fetches of the model
    max_staleness: int | None = None       # async: pushes by others since the worker's fetch (None: 2 x workers)
    stale_policy: str = "scale"            # async: beyond the bound, scale the update (1/(1+staleness)) or drop it
    stale_scaling: str = "every"           # async: scale every push by 1/(1+staleness), or beyond-bound (the old rule)
    max_restarts: int = 3                  # lost workers tolerated before the run gives up
    n_workers: int | None = None           # use at most this many of the cluster's workers (None: all)
    delays: dict = field(default_factory=dict)  # test hook: {worker index: seconds of sleep per block}

    def check(self) -> "ClusterOptions":
        for name, value, allowed in (("--sync-mode", self.sync_mode, SYNC_MODES),
                                     ("--sync-combine", self.combine, COMBINES),
                                     ("--stale-policy", self.stale_policy, STALE_POLICIES),
                                     ("stale_scaling", self.stale_scaling, STALE_SCALINGS),
                                     ("--polish", self.polish, POLISHES)):
            if value not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        parse_sync_every(self.sync_every)
        if self.worker_lr != "auto":
            try:
                ok = float(self.worker_lr) > 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ConfigError(f"--worker-lr must be auto or a factor > 0, got {self.worker_lr!r}")
        for name in ("polish_iterations", "lbfgs_memory", "push_every", "fetch_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a whole number >= 1, got {value!r}")
        if self.n_workers is not None and (not isinstance(self.n_workers, int) or self.n_workers < 1):
            raise ConfigError(f"--workers must be a whole number >= 1, got {self.n_workers!r}")
        if self.max_staleness is not None and (not isinstance(self.max_staleness, int) or self.max_staleness < 0):
            raise ConfigError(f"--max-staleness must be a whole number >= 0, got {self.max_staleness!r}")
        if not self.lbfgs_tol > 0:
            raise ConfigError(f"the L-BFGS tolerance must be > 0, got {self.lbfgs_tol}")
        if self.polish != "none" and self.sync_mode == "lbfgs":
            raise ConfigError("--polish lbfgs follows SGD epochs; --sync-mode lbfgs is L-BFGS from the start")
        return self

    def worker_lr_factor(self, n_workers: int) -> float:
        """What the workers multiply the run's lr by: averaging K models divides the step of a
        direction they share by K and the noise variance by K; sqrt(K) restores both to one
        machine's (measured in benchmarks/cluster.md)."""
        if self.worker_lr == "auto":
            return float(n_workers) ** 0.5 if self.combine == "average" else 1.0
        return float(self.worker_lr)

    @property
    def sync_rows(self) -> int | None:
        return parse_sync_every(self.sync_every)[0]

    @property
    def sync_seconds(self) -> float | None:
        return parse_sync_every(self.sync_every)[1]
