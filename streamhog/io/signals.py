"""SIGTERM during a job that writes an output: unwind like Ctrl-C, so its temporary goes.

(A training run answers signals its own way: training/signals.py stops it at a block
boundary with a checkpoint.)
"""
from __future__ import annotations

import signal
import threading

from ..errors import Interrupted


class sigterm_raises:
    """SIGTERM raises :class:`~streamhog.errors.Interrupted` in the main thread, as Ctrl-C
    raises KeyboardInterrupt, so that a job writing an output (convert) unwinds and removes
    its temporary instead of dying with it on disk. Further SIGTERMs are ignored while it
    unwinds (cleanup takes moments; SIGKILL still works). Only installed from the main
    thread and over the default handler: an application's own handler is left alone."""

    def __init__(self, what: str):
        self.what = what
        self.previous = None

    def _handler(self, signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Interrupted(f"terminated (SIGTERM); {self.what}", signum)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            self.previous = signal.signal(signal.SIGTERM, self._handler)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
