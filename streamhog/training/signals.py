"""Ctrl-C and SIGTERM during training: finish the blocks in flight, checkpoint, exit.

The first signal asks the trainer to stop at a block boundary (it writes a checkpoint and
raises TrainingInterrupted); a second one exits at once, which is safe because checkpoint
records are written atomically: the last one stays usable.
"""
from __future__ import annotations

import os
import signal
import sys
import threading


class stop_gracefully_on_signals:
    """SIGINT/SIGTERM ask the trainer to stop at a block boundary and checkpoint; a second
    one exits at once (the last checkpoint stays usable: records are written atomically)."""

    def __init__(self, trainer, enabled: bool):
        self.trainer = trainer
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.previous = {}

    def _handler(self, signum, frame):
        if self.trainer.signal_received is not None:
            sys.stderr.write(f"\nsecond {signal.Signals(signum).name}: exiting now; the last checkpoint in "
                             f"{self.trainer.model.path} is intact\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        self.trainer.signal_received = signum
        sys.stderr.write(f"\n{signal.Signals(signum).name}: finishing the blocks in flight and writing a "
                         "checkpoint (again to exit at once)\n")
        sys.stderr.flush()

    def __enter__(self):
        if self.enabled:
            for s in (signal.SIGINT, signal.SIGTERM):
                self.previous[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc):
        for s, h in self.previous.items():
            signal.signal(s, h)

