"""The progress of a training run: what a checkpoint records and a resumed run continues.

One dataclass instead of a dict read through string keys. Its JSON form (``to_record``) is
the checkpoint record's state part, with the keys records have always had, so runs started
by older streamhogs resume.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass
class RunState:
    """Where a run is: the epoch in progress and its blocks done, the step counter (the
    learning-rate state), the intercept's kernel state, the running sums of the epoch, the
    per-epoch history and early stopping's best epoch."""

    epoch: int = 0                      # epochs completed
    done_blocks: list = field(default_factory=list)  # blocks of the epoch in progress already trained
    step: int = 0                       # examples trained so far (the schedule's t)
    bstate: list = field(default_factory=list)   # intercepts, their optimizer state, N, T (model/heads.py)
    intercept: float | list = 0.0       # the model's intercept(s), as model.json stores them
    epoch_loss: float = 0.0             # sums over the epoch in progress (bit-exact across a resume)
    epoch_weight: float = 0.0
    epoch_rows: int = 0
    epoch_nnz: int = 0
    epoch_seconds: float = 0.0
    history: list = field(default_factory=list)  # one record per completed epoch
    best_epoch: int | None = None       # early stopping: the best epoch so far and its score
    best_score: float | None = None
    stopped_early: bool = False
    restoring: bool = False             # killed while restoring the best epoch: a resume finishes it
    # refit.py: a second phase retraining on every row (what the first phase was), and whether
    # its zeroing of the model files is still to be done (killed as it began)
    refit_of: dict | None = None
    refit_zero_pending: bool = False

    @classmethod
    def fresh(cls, head) -> "RunState":
        """A run that has not trained anything yet, for a model of this head."""
        return cls(bstate=[0.0] * head.bstate_length, intercept=head.initial_intercept())

    @classmethod
    def from_record(cls, record: dict) -> "RunState":
        """The state part of a checkpoint record (older records: no bstate, no best epoch)."""
        known = {f.name for f in fields(cls)}
        state = cls(**{k: v for k, v in record.items() if k in known})
        if not state.bstate:  # a record of streamhog <= 0.1: the intercept alone
            state.bstate = [float(record["intercept"]), 0.0, 0.0, 0.0, 0.0]
        return state

    def to_record(self) -> dict:
        return asdict(self)

    def epoch_done(self, record: dict) -> None:
        """Close the epoch in progress: append its history record and reset the epoch sums."""
        self.history.append(record)
        self.epoch += 1
        self.done_blocks = []
        self.epoch_rows = self.epoch_nnz = 0
        self.epoch_loss = self.epoch_weight = self.epoch_seconds = 0.0

    @property
    def train_loss(self) -> float | None:
        """The epoch's mean training loss so far (importance-weighted), None before any row."""
        return self.epoch_loss / self.epoch_weight if self.epoch_weight else None
