"""Hyper-parameters of a training run (light: no numba import, so the CLI starts fast)."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from .model import LOSSES

LR_SCHEDULES = ("constant", "decay", "invscaling")


@dataclass
class TrainConfig:
    """Every hyper-parameter of a run (stored in model.json)."""

    loss: str = "logistic"
    epochs: int = 5
    # Defaults measured on a9a (test logloss 0.324, the exact solver's 0.3237) and on the
    # synthetic benchmark data, where per-epoch decay from lr >= 1 oscillated.
    lr: float = 1.0
    lr_schedule: str = "invscaling"
    lr_decay: float = 0.8     # used by lr_schedule="decay"
    power_t: float = 0.5
    l2: float = 1e-6
    seed: int = 0
    threads: int = 0          # 0: one per core
    readers: int = 0          # 0: the measured default, see default_readers()
    sync: str = "none"        # "lock": a lock around each update (the paper's baseline)
    capacity: int = 0         # blocks buffered between readers and consumers; 0: 2 per reader

    def resolved(self) -> "TrainConfig":
        cfg = TrainConfig(**asdict(self))
        cores = os.cpu_count() or 1
        cfg.threads = cfg.threads or cores
        cfg.readers = cfg.readers or default_readers(cores)
        cfg.capacity = cfg.capacity or 2 * cfg.readers
        cfg.check()
        return cfg

    def check(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.sync not in ("none", "lock"):
            raise ValueError(f"--sync must be none or lock, got {self.sync!r}")
        if self.epochs < 1:
            raise ValueError(f"--epochs must be >= 1, got {self.epochs}")
        if not (self.lr > 0 and np.isfinite(self.lr)):
            raise ValueError(f"--lr must be a positive number, got {self.lr}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"--lr-decay must be in (0, 1], got {self.lr_decay}")
        if not (self.l2 >= 0 and self.l2 * self.lr < 1):
            raise ValueError(f"--l2 must be >= 0 and l2 * lr < 1, got l2={self.l2}, lr={self.lr}")
        if self.threads < 1 or self.readers < 1 or self.capacity < 1:
            raise ValueError("--threads, --readers and the capacity must be >= 1")

    def epoch_lr(self, epoch: int) -> float:
        return self.lr * self.lr_decay ** epoch if self.lr_schedule == "decay" else self.lr


def default_readers(cores: int) -> int:
    """Decoding, not the kernel, bounds throughput: as many readers as cores (measured in
    benchmarks/); consumers mostly wait for blocks, so they share the cores."""
    return max(1, cores)
