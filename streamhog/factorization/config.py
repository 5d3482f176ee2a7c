"""Hyper-parameters and checkpointable progress of a factorization run (small typed dataclasses).

Hyper-parameters are given for ratings standardized to unit variance, so that one set of
defaults fits 1-5 stars, 1-10 scores and 0/1 interactions alike; the model itself is kept
in rating units (r̂ = μ + b_u + b_i + p_u·q_i). Training in rating units with the values of
:func:`kernel_hyper` is exactly (in real arithmetic) training on (r - μ) / σ with the
given ones, then scaling biases by σ and factors by √σ (σ: the standard deviation of the
training ratings): for factors the loss gradient scales as σ^1.5, the L2 term as σ^0.5.

The defaults were chosen by a sweep over a panel of rating sets, by the worst case over the
panel, never by one dataset: see benchmarks/mf_defaults.md (the panel, the grid, the
choice) and benchmarks/mf_sweep.py (the commands).
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields

from ..errors import ConfigError
from .model import OPTIMIZERS

#: lr, init_scale and initial accumulator of each optimizer when not given
#: (benchmarks/mf_defaults.md: AdaGrad beat sgd on every panel set, and sgd's best start is
#: larger; rowwise-adagrad's best settings took the default's place: on the panel with its
#: fifth, high-rank set a worst regret of 0.50% against adagrad's 0.81%, in fewer epochs, each
#: about 1.4x faster, with 1/rank of the state).
DEFAULT_LR = {"adagrad": 0.1, "rowwise-adagrad": 0.1, "sgd": 0.02}
DEFAULT_INIT_SCALE = {"adagrad": 0.003, "rowwise-adagrad": 0.003, "sgd": 0.03}
DEFAULT_INITIAL_ACCUMULATOR = {"adagrad": 1.0, "rowwise-adagrad": 0.3}
#: The optimizers whose factor steps are AdaGrad's (rowwise-adagrad: one sum per row).
ADAPTIVE = ("adagrad", "rowwise-adagrad")
SCHEDULES = ("hogwild", "strata")
#: The schedule of each optimizer when not given (benchmarks/mf_schedule.md, 2 threads on 2
#: cores): with AdaGrad strata trained faster than Hogwild! in every run, end to end on both
#: sets (MovieLens 1.25-1.36x one thread against 1.07-1.18x, synthetic 1.43-1.46x against
#: 1.28-1.33x), at the same RMSE; sgd's cheaper updates gain nothing from it (a block's
#: barriers weigh more), so it stays Hogwild!. Hogwild! is the better choice on a machine
#: other work shares: a preempted thread stalls strata's round. rowwise-adagrad's update is
#: cheap too: the two tied on MovieLens and on 1M ratings (mf_schedule.md, Run D), and at
#: the issue's scale (50M ratings, benchmarks/factorization.md) Hogwild! trained 1.22x faster
#: end to end (12.0 against 9.9M ratings/s; the kernel 15.3 against 11.8), so it is Hogwild!.
#: Since strata's round barrier moved into the kernel (Run E) strata leads on the small sets
#: (MovieLens 1.16x with rowwise-adagrad, 1.09x with sgd) but Hogwild! still wins at 50M
#: (1.09x), so the defaults stand.
DEFAULT_SCHEDULE = {"adagrad": "strata", "rowwise-adagrad": "hogwild", "sgd": "hogwild"}
DEFAULT_HOLDOUT = 0.1  # as the linear models: with more than one epoch and no validation data
FEEDBACKS = ("explicit", "implicit")
#: Implicit feedback's sampled negatives per positive and each feedback's L2, when not given:
#: the best worst case over benchmarks/mf_implicit.md's panel (MovieLens and three synthetic
#: sets of known preferences, ndcg@10): 16 negatives, lr 0.1, l2 0.01 within 1.5% and 4.5% of
#: each set's best in two sweeps, where 4 negatives at l2 0.02 were 17% behind and 32
#: negatives gained nothing for twice the work.
DEFAULT_NEGATIVES = 16
DEFAULT_L2 = {"explicit": 0.02, "implicit": 0.01}


@dataclass
class MFConfig:
    """Every hyper-parameter of a run (stored in model.json and in every checkpoint)."""

    rank: int = 64
    epochs: int = 40                 # at most: early stopping ends most runs far sooner
    optimizer: str = "rowwise-adagrad"
    lr: float | None = None          # None: DEFAULT_LR[optimizer]
    lr_decay: float = 1.0            # lr * lr_decay^epoch
    l2: float | None = None          # on the touched factor rows, per observation; None: DEFAULT_L2[feedback]
    l2_bias: float = 0.02            # on the touched biases, per observation
    # adagrad, rowwise-adagrad: every sum of squared gradients starts here; None:
    # DEFAULT_INITIAL_ACCUMULATOR[optimizer] (sgd: unused, 0).
    initial_accumulator: float | None = None
    # The standard deviation of a factor row's seeded start; None: DEFAULT_INIT_SCALE. A small
    # start lets the biases settle before the factors grow (0.1, Surprise's, was worse on
    # every panel set: benchmarks/mf_defaults.md).
    init_scale: float | None = None
    holdout: float | None = None     # None: DEFAULT_HOLDOUT with more than one epoch and no --valid, else 0
    early_stopping: int = 2          # epochs without improvement before stopping; 0: never
    clip: bool = True                # clip predictions to the training ratings' range
    seed: int = 0
    threads: int = 0                 # 0: one per core
    # How the threads share the work: "hogwild", each trains whole blocks against the shared
    # rows without locks; "strata", they train each block together on cells that share no
    # user and no item (strata.py: no contention, deterministic for a seed and thread count).
    # None: DEFAULT_SCHEDULE[optimizer].
    schedule: str | None = None
    readers: int = 0                 # 0: one per core
    capacity: int = 0                # blocks buffered between readers and consumers; 0: 2 per reader
    # "explicit": ratings, squared loss; "implicit": every row an interaction (a positive),
    # against ``negatives`` sampled items, logistic loss (implicit_kernels.py).
    feedback: str = "explicit"
    negatives: int | None = None     # implicit: None: DEFAULT_NEGATIVES; explicit: none (0)

    def resolved(self) -> "MFConfig":
        cfg = MFConfig(**asdict(self))
        if cfg.lr is None and cfg.optimizer in DEFAULT_LR:
            cfg.lr = DEFAULT_LR[cfg.optimizer]
        if cfg.init_scale is None and cfg.optimizer in DEFAULT_INIT_SCALE:
            cfg.init_scale = DEFAULT_INIT_SCALE[cfg.optimizer]
        if cfg.initial_accumulator is None:
            cfg.initial_accumulator = DEFAULT_INITIAL_ACCUMULATOR.get(cfg.optimizer, 0.0)
        if cfg.schedule is None and cfg.optimizer in DEFAULT_SCHEDULE:
            # Implicit feedback: Hogwild! (a negative can be any item: no grid keeps threads apart).
            cfg.schedule = "hogwild" if cfg.feedback == "implicit" else DEFAULT_SCHEDULE[cfg.optimizer]
        if cfg.l2 is None:
            cfg.l2 = DEFAULT_L2.get(cfg.feedback, DEFAULT_L2["explicit"])
        if cfg.negatives is None:
            cfg.negatives = DEFAULT_NEGATIVES if cfg.feedback == "implicit" else 0
        if cfg.holdout is None:
            cfg.holdout = DEFAULT_HOLDOUT if cfg.epochs > 1 else 0.0
        cores = os.cpu_count() or 1
        cfg.threads = cfg.threads or cores
        cfg.readers = cfg.readers or cores
        cfg.capacity = cfg.capacity or 2 * cfg.readers
        cfg.check()
        return cfg

    def check(self) -> None:
        def positive(name, value):
            if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number, got {value!r}")

        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)} for factorization, "
                             f"got {self.optimizer!r}")
        if not isinstance(self.rank, int) or not 1 <= self.rank <= 4096:
            raise ConfigError(f"--rank must be an integer from 1 to 4096, got {self.rank!r}")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs}")
        positive("lr", self.lr)
        positive("init_scale", self.init_scale)  # zero factors never move: p·q has zero gradient there
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"--lr-decay must be in (0, 1], got {self.lr_decay}")
        for name in ("l2", "l2_bias", "initial_accumulator"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
        if self.optimizer == "sgd" and max(self.l2, self.l2_bias) * self.lr >= 1:
            raise ConfigError(f"sgd needs l2 * lr < 1 (l2 {self.l2}, l2-bias {self.l2_bias}, lr {self.lr})")
        if self.holdout is not None and not 0 <= self.holdout < 1:
            raise ConfigError(f"--holdout must be in [0, 1), got {self.holdout}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.early_stopping < 0:
            raise ConfigError(f"--early-stopping must be >= 0 epochs, got {self.early_stopping}")
        if self.feedback not in FEEDBACKS:
            raise ConfigError(f"--feedback must be one of {', '.join(FEEDBACKS)}, got {self.feedback!r}")
        if self.feedback == "implicit":
            if isinstance(self.negatives, bool) or not isinstance(self.negatives, int) or not 1 <= self.negatives <= 1000:
                raise ConfigError(f"--negatives must be an integer from 1 to 1000, got {self.negatives!r}")
            if self.schedule == "strata":
                raise ConfigError("--schedule strata keeps threads on cells that share no item, and implicit "
                                  "feedback's negatives can be any item: use --schedule hogwild")
        elif self.negatives:
            raise ConfigError("--negatives applies to --feedback implicit only")
        if self.threads < 1 or self.readers < 1 or self.capacity < 1:
            raise ConfigError("--threads, --readers and the capacity must be >= 1")

    def epoch_lr(self, epoch: int) -> float:
        return self.lr * self.lr_decay ** epoch

    @property
    def implicit(self) -> bool:
        return self.feedback == "implicit"

    @property
    def beta(self) -> float:
        """The kernels' ``beta``: AdaGrad's initial accumulator (unused by sgd)."""
        return self.initial_accumulator if self.optimizer in ADAPTIVE else 0.0


def kernel_hyper(cfg: MFConfig, sigma: float) -> dict:
    """The kernels' (lr, lr_bias, l2, l2_bias, beta, beta_bias, init_scale) in rating units
    for ratings of standard deviation ``sigma`` (see the module docstring)."""
    s = sigma if sigma > 0 and math.isfinite(sigma) else 1.0
    if cfg.optimizer in ADAPTIVE:  # AdaGrad's steps do not scale with the gradient: lr in parameter units
        lr, lr_bias = cfg.lr * math.sqrt(s), cfg.lr * s
    else:  # sgd's do: a factor's gradient grows as s^1.5 while the factor grows as s^0.5
        lr, lr_bias = cfg.lr / s, cfg.lr
    return {"lr": lr, "lr_bias": lr_bias, "l2": cfg.l2 * s, "l2_bias": cfg.l2_bias,
            "beta": cfg.beta * s ** 3, "beta_bias": cfg.beta * s ** 2, "init_scale": cfg.init_scale * math.sqrt(s)}


#: What may change when a run is resumed (the rest is the run's identity).
RESUMABLE = ("lr", "lr_decay", "l2", "l2_bias", "early_stopping", "clip", "threads", "readers", "capacity",
             "schedule")


@dataclass
class MFState:
    """The progress of a run: everything a checkpoint needs beside the array files.

    Block order and row order are pure functions of (seed, epoch, block), so the seed is
    the whole shuffling state; ``done_blocks`` are the blocks of the current epoch already
    trained. JSON floats round-trip exactly, so a resumed run continues bit for bit."""

    epoch: int = 0
    done_blocks: list = field(default_factory=list)
    step: int = 0                    # observations trained, all epochs
    mu: float = 0.0                  # the global mean of the training ratings (fixed)
    sigma: float = 1.0               # their standard deviation (the hyper-parameters' unit)
    rating_range: list | None = None  # [min, max] of the training ratings
    epoch_loss: float = 0.0          # sum of s e² of the epoch so far (each before its update)
    epoch_weight: float = 0.0
    epoch_rows: int = 0
    epoch_seconds: float = 0.0
    history: list = field(default_factory=list)
    best_epoch: int | None = None
    best_score: float | None = None
    best_slot: int | None = None     # which best-epoch/N copy holds the best epoch's arrays
    stopped_early: bool = False
    restoring: bool = False

    def record(self, config: MFConfig, data: dict, status: str) -> dict:
        """A checkpoint record (streamhog.training.checkpoint's required keys included)."""
        return dict(asdict(self), kind="mf", intercept=self.mu, epoch_nnz=self.epoch_rows, config=asdict(config),
                    data=data, status=status)

    @classmethod
    def from_record(cls, record: dict) -> "MFState":
        return cls(**{f.name: record[f.name] for f in fields(cls) if f.name in record})

    def start_epoch(self) -> None:
        self.epoch += 1
        self.done_blocks = []
        self.epoch_loss = self.epoch_weight = self.epoch_seconds = 0.0
        self.epoch_rows = 0
