"""The exceptions a stopped (SIGINT/SIGTERM) command raises, kept light for the CLI."""
from __future__ import annotations

from .errors import StreamhogError


class Interrupted(StreamhogError):
    """A signal stopped the command; the CLI exits with 128 + ``signum``."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class TrainingInterrupted(Interrupted):
    """SIGINT/SIGTERM: the batches in flight were finished and a checkpoint written."""
