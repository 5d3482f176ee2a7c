"""Hyper-parameters of a training run (light: no numba import, so the CLI starts fast)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ConfigError
from ..io.threads import cpu_count, default_readers
from ..losses import LOSSES
from ..model.directory import OPTIMIZERS

LR_SCHEDULES = ("constant", "decay", "invscaling")
DEFAULT_HOLDOUT = 0.1  # VW's: every 10th example when it makes several passes
#: lr and schedule of each optimizer when not given. normalized's (the default rule) was chosen
#: by its worst case over the quality panel (benchmarks/defaults_sweep.md; benchmarks/
#: quality.md compares the defaults with VW, an exact solver and the constant); the others'
#: by one-pass sweeps on a9a and the synthetic benchmark data.
OPTIMIZER_DEFAULTS = {
    "sgd": (1.0, "invscaling"),
    "adagrad": (0.1, "constant"),
    "normalized": (0.7, "constant"),
    "ftrl": (0.1, "constant"),
}
#: --initial-accumulator of the rules that take one (adagrad: in squared-gradient units;
#: normalized: in normalized units, whatever the features' scales).
INITIAL_ACCUMULATOR_DEFAULTS = {"adagrad": 1.0, "normalized": 1.0}


@dataclass
class TrainConfig:
    """Every hyper-parameter of a run (stored in model.json)."""

    loss: str = "logistic"
    epochs: int = 5
    # normalized (scale-free, importance-invariant adaptive steps), lr 0.7, initial accumulator
    # 1: the worst case over the panel of benchmarks/quality.py is a tie with Vowpal Wabbit
    # (a9a), every other dataset a win. AdaGrad, the default before, loses to VW by up to 6x on
    # features of mixed scales and 1.6x on tf-idf text; plain SGD needs 3-5 passes.
    optimizer: str = "normalized"
    # None: the optimizer's default (OPTIMIZER_DEFAULTS). sgd's were measured on a9a (test
    # logloss 0.324, the exact solver's 0.3237) and on the synthetic benchmark data, where
    # per-epoch decay from lr >= 1 oscillated.
    lr: float | None = None
    lr_schedule: str | None = None
    lr_decay: float = 0.8     # used by lr_schedule="decay"
    power_t: float = 0.5
    l2: float = 1e-6          # sgd/adagrad/normalized: per example; ftrl: on the summed loss
    l1: float = 0.0           # ftrl only, on the summed loss (McMahan et al.)
    ftrl_beta: float = 1.0
    # adagrad: the accumulator's starting value. 0 (plain AdaGrad) lets a feature seen once
    # take a full lr-sized step: the rare values of hashed click data overfit (Criteo sample,
    # one pass: 0.490 with 0, 0.468 with 1; a9a and the synthetic data barely move).
    # normalized: the same, in normalized units. None: the optimizer's default
    # (INITIAL_ACCUMULATOR_DEFAULTS).
    initial_accumulator: float | None = None
    # Early stopping, as VW does with several passes: a fixed fraction of the rows (chosen by
    # a hash of the row number and the seed, the same rows every epoch) is never trained on;
    # after each epoch the model is scored on it, and when the holdout loss has not improved
    # for `early_stopping` epochs the run stops and the best epoch's model is restored.
    # None: 0.1 with more than one epoch, else 0 (and 0 when --valid is given: training.train;
    # early stopping then watches the validation data). early_stopping 0: train every epoch.
    holdout: float | None = None
    early_stopping: int = 2
    # After a run whose epochs the holdout chose, retrain on every row for that many epochs
    # (training/refit.py). None: when the data has at most refit.REFIT_MAX_ROWS rows (set
    # for a new run).
    refit: bool | None = None
    hash_bits: int | None = None  # hash feature ids into 2^hash_bits slots at training time
    seed: int = 0
    threads: int | None = None   # None: one per core
    readers: int | None = None   # None: the measured default, see io/threads.default_readers()
    sync: str = "none"        # "lock": a lock around each update (the paper's baseline)
    capacity: int | None = None  # blocks buffered between readers and consumers; None: 2 per reader
    # Features most rows hold, kept per thread and published like the intercept (issue 14:
    # their cache lines bounced between the cores): "auto" (training/hot.py: with 4 or more
    # threads running at once, sgd, adagrad or normalized), 0 (none) or how many at most.
    hot_features: int | str = "auto"
    # normalized with a real-valued target (squared, huber): the labels' standard deviation,
    # the unit of the steps (training/targets.py; set by training.job from a pass over the
    # labels), else 1.
    target_scale: float = 1.0

    def resolved(self) -> "TrainConfig":
        """The config with every default filled in (per optimizer, per core), checked."""
        self._check_types()
        cfg = TrainConfig(**asdict(self))
        if cfg.optimizer in OPTIMIZER_DEFAULTS:
            lr, schedule = OPTIMIZER_DEFAULTS[cfg.optimizer]
            cfg.lr = lr if cfg.lr is None else cfg.lr
            cfg.lr_schedule = schedule if cfg.lr_schedule is None else cfg.lr_schedule
        if cfg.initial_accumulator is None:
            cfg.initial_accumulator = INITIAL_ACCUMULATOR_DEFAULTS.get(cfg.optimizer, 0.0)
        if cfg.holdout is None:
            cfg.holdout = DEFAULT_HOLDOUT if cfg.epochs > 1 else 0.0
        cores = cpu_count()
        cfg.threads = cores if cfg.threads is None else cfg.threads
        cfg.readers = default_readers(cores) if cfg.readers is None else cfg.readers
        cfg.capacity = 2 * cfg.readers if cfg.capacity is None else cfg.capacity
        cfg.check()
        return cfg

    def _check_types(self) -> None:
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
                raise ConfigError(f"{_flag(name)} must be a whole number, got {value!r}")
        for name in _REAL_FIELDS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float, np.number))):
                raise ConfigError(f"{_flag(name)} must be a number, got {value!r}")

    def check(self) -> None:
        """Refuse values no run can use (ConfigError naming the option), the same from the
        command line and from Python."""
        self._check_types()
        if self.loss not in LOSSES:
            raise ConfigError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
                              + (" (a factorization's: --loss mf)" if self.optimizer == "rowwise-adagrad" else ""))
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.sync not in ("none", "lock"):
            raise ConfigError(f"--sync must be none or lock, got {self.sync!r}")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs}")
        if not (self.lr > 0 and np.isfinite(self.lr)):
            raise ConfigError(f"--lr must be a positive number, got {self.lr}")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"--lr-decay must be in (0, 1], got {self.lr_decay}")
        if not self.l2 >= 0 or (self.optimizer == "sgd" and self.l2 * self.lr >= 1):
            raise ConfigError(f"--l2 must be >= 0 (and l2 * lr < 1 for sgd), got l2={self.l2}, lr={self.lr}")
        if not self.l1 >= 0:
            raise ConfigError(f"--l1 must be >= 0, got {self.l1}")
        if self.l1 and self.optimizer != "ftrl":
            raise ConfigError("--l1 is FTRL-Proximal's: use it with --optimizer ftrl")
        if not (self.ftrl_beta > 0 and np.isfinite(self.ftrl_beta)):
            raise ConfigError(f"--ftrl-beta must be a positive number, got {self.ftrl_beta}")
        if not (self.target_scale > 0 and np.isfinite(self.target_scale)):
            raise ConfigError(f"the target scale must be a positive number, got {self.target_scale}")
        if self.refit not in (None, True, False):
            raise ConfigError(f"--refit must be true or false, got {self.refit!r}")
        if not (self.initial_accumulator >= 0 and np.isfinite(self.initial_accumulator)):
            raise ConfigError(f"--initial-accumulator must be >= 0, got {self.initial_accumulator}")
        if self.holdout is not None and not 0 <= self.holdout < 1:
            raise ConfigError(f"--holdout must be in [0, 1), got {self.holdout}")
        if self.early_stopping < 0:
            raise ConfigError(f"--early-stopping must be >= 0 epochs, got {self.early_stopping}")
        if self.hash_bits is not None and not 1 <= self.hash_bits <= 32:
            raise ConfigError(f"--hash-bits must be between 1 and 32, got {self.hash_bits}")
        if self.hot_features != "auto":
            if isinstance(self.hot_features, bool) or not isinstance(self.hot_features, (int, np.integer)) \
                    or not 0 <= self.hot_features <= 65_536:
                raise ConfigError(f"--hot-features must be auto or a whole number from 0 to 65536, "
                                  f"got {self.hot_features!r}")
            if self.hot_features and (self.optimizer not in ("sgd", "adagrad", "normalized") or self.sync == "lock"
                                      or self.loss == "softmax"):
                raise ConfigError(f"--hot-features applies to --optimizer sgd, adagrad or normalized, without --sync lock, "
                                  f"and not to softmax (got --optimizer {self.optimizer}, --sync {self.sync}, "
                                  f"--loss {self.loss})")
        if self.threads < 1 or self.readers < 1 or self.capacity < 1:
            raise ConfigError("--threads, --readers and the capacity must be >= 1")

    @property
    def smoothing(self) -> float:
        """The kernels' ``beta``: FTRL's beta, the initial accumulator of adagrad and
        normalized (the latter in the target's units: times target_scale^2)."""
        if self.optimizer == "normalized":
            return self.initial_accumulator * self.target_scale ** 2
        return {"ftrl": self.ftrl_beta, "adagrad": self.initial_accumulator}.get(self.optimizer, 0.0)

    def epoch_lr(self, epoch: int) -> float:
        return self.lr * self.lr_decay ** epoch if self.lr_schedule == "decay" else self.lr

    def kernel_lr(self, epoch: int) -> float:
        """The step size the kernels get: epoch_lr, in the target's units for normalized."""
        return self.epoch_lr(epoch) * (self.target_scale if self.optimizer == "normalized" else 1.0)


_INT_FIELDS = ("epochs", "early_stopping", "hash_bits", "seed", "threads", "readers", "capacity")
_REAL_FIELDS = ("lr", "lr_decay", "power_t", "l2", "l1", "ftrl_beta", "initial_accumulator", "holdout",
                "target_scale")


def _flag(field_name: str) -> str:
    """The command-line option of a TrainConfig field."""
    return "--" + field_name.replace("_", "-")
