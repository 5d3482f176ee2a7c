"""The exception a stopped (SIGINT/SIGTERM) training run raises, kept light for the CLI."""
from __future__ import annotations

from ..errors import StreamhogError


class TrainingInterrupted(StreamhogError):
    """SIGINT/SIGTERM: the batches in flight were finished and a checkpoint written."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
