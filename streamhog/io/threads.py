"""The thread patterns of streamhog, each written once.

:class:`Workers` — N threads work through the batches of a :class:`~streamhog.io.stream.BatchStream`
(training consumers, scoring consumers). The calling thread starts them, polls (training
checkpoints on a timer and answers signals there), and joins them. The first exception in
any worker stops every worker (the stream is closed, so the others see its end) and is
raised in the caller once all have stopped; Ctrl-C in the caller does the same. No thread
is left running.

:class:`Producer` — one thread produces items (a file's blocks) into a bounded buffer that
the caller iterates (gensim's job queue): the producer waits while the buffer is full and
wakes on room or on close, never polling; its exception is raised in the caller, after the
items produced before it; closing the iterator stops it.

:class:`StandingThreads` — N threads started once for a run that each call the same
function once per job (an epoch's consumers of factorization training), so a run of many
short epochs does not start threads every epoch. The caller starts a job and waits for it
with a timeout (to answer signals and checkpoint timers meanwhile). The function should
report its own errors; one that escapes it is raised by ``wait`` once every thread is done,
and the thread stays for the next job.

Also the default thread counts (one per core).
"""
from __future__ import annotations

import os
import threading
from collections import deque
from typing import Callable, Iterable, Iterator

from ..errors import ConfigError


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask, else the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads(threads: int | None = None) -> int:
    """Consumer threads: the given count (>= 1), else one per core."""
    n = cpu_count() if threads is None else threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"threads must be a whole number >= 1, got {threads!r}")
    return n


def default_readers(cores: int | None = None) -> int:
    """Reader threads: as many as cores (measured in benchmarks/: on 2 cores decoding bounds
    throughput; on 16 cores 2 to 16 readers made no difference); consumers share the cores."""
    return max(1, cpu_count() if cores is None else int(cores))


class Workers:
    """``works[i](batch)`` in thread i over the batches of ``stream`` (see the module docstring).

    A work function that returns False stops its thread without taking another batch.
    ``on_error()`` runs (in the failing thread) when a worker fails, to wake workers that
    wait on something other than the stream; ``on_exit(exc)`` runs in each worker thread as
    it ends (``exc`` None unless it failed).
    """

    def __init__(self, stream, works: list[Callable], *, name: str, on_error: Callable[[], None] | None = None,
                 on_exit: Callable[[BaseException | None], None] | None = None):
        self.stream = stream
        self.works = works
        self.name = name
        self.on_error = on_error
        self.on_exit = on_exit
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()

    def _fail(self, exc: BaseException | None) -> None:
        if exc is not None:
            with self._lock:
                self._errors.append(exc)
        if self.on_error is not None:
            self.on_error()
        self.stream.close()

    def _loop(self, work: Callable) -> None:
        exc = None
        try:
            while (batch := self.stream.next_batch()) is not None:
                if work(batch) is False:
                    break
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            exc = e
            self._fail(e)
        finally:
            if self.on_exit is not None:
                self.on_exit(exc)

    def run(self, *, poll: float | None = None, on_poll: Callable[[], None] | None = None) -> None:
        """Run every worker to the end of the stream; ``on_poll()`` every ``poll`` seconds in
        the calling thread meanwhile. Raises the first worker error."""
        with self.stream:
            if len(self.works) == 1 and on_poll is None:
                self._loop(self.works[0])  # in the caller's thread: nothing to start or join
            else:
                threads = [threading.Thread(target=self._loop, args=(w,), name=f"streamhog-{self.name}-{i}",
                                            daemon=True) for i, w in enumerate(self.works)]
                for t in threads:
                    t.start()
                try:
                    while alive := [t for t in threads if t.is_alive()]:
                        alive[0].join(poll)
                        if on_poll is not None:
                            on_poll()
                except BaseException:  # Ctrl-C (or on_poll failed): stop everyone, then report it
                    self._fail(None)
                    for t in threads:
                        t.join()
                    raise
        if self._errors:
            raise self._errors[0]


_END = object()


class Producer:
    """Iterate the items of ``source`` (any iterable; iterated in a thread of its own) through
    a buffer of at most ``capacity`` items. ``close()`` (or dropping the iterator) stops the
    producer at its next item; a producer blocked inside ``source`` (a stalled pipe) is a
    daemon and ends when that call returns. ``on_error(exc)`` may translate the producer's
    exception before it is raised in the consumer."""

    def __init__(self, source: Iterable, *, capacity: int, name: str,
                 on_error: Callable[[BaseException], BaseException] | None = None):
        if capacity < 1:
            raise ConfigError(f"capacity must be >= 1, got {capacity}")
        self._cond = threading.Condition()
        self._items: deque = deque()
        self._capacity = capacity
        self._closed = False
        self._on_error = on_error
        self._thread = threading.Thread(target=self._run, args=(source,), name=f"streamhog-{name}", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        with self._cond:
            while len(self._items) >= self._capacity and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def _run(self, source: Iterable) -> None:
        try:
            for item in source:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(self._on_error(exc) if self._on_error is not None else exc)

    def __iter__(self) -> Iterator:
        while True:
            with self._cond:
                while not self._items and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                item = self._items.popleft()
                self._cond.notify_all()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self, timeout: float = 10.0) -> bool:
        """Stop the producer and drop what it buffered; True once its thread has ended
        (False: it is blocked inside ``source`` and will end when that call returns)."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()


class StandingThreads:
    """N threads kept for a run; ``start(target, args)`` has each call ``target(*args)``
    once, ``wait(timeout)`` tells whether all have returned (see the module docstring).
    ``close`` ends the threads once the job in hand is done."""

    def __init__(self, n: int, *, name: str):
        self._cond = threading.Condition()
        self._job: tuple | None = None
        self._jobs = 0  # jobs started so far: a thread runs each one once
        self._running = 0
        self._closed = False
        self._error: BaseException | None = None  # the first that escaped the job's function
        self._threads = [threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True) for i in range(n)]
        for t in self._threads:
            t.start()

    def start(self, target: Callable, args: tuple) -> None:
        with self._cond:
            if self._running:
                raise RuntimeError("the previous job is still running")
            self._job, self._jobs, self._running = (target, args), self._jobs + 1, len(self._threads)
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """True once every thread has returned from the job (else False after ``timeout`` s);
        raises what escaped the function in any thread."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._running == 0, timeout):
                return False
            error, self._error = self._error, None
        if error is not None:
            raise error
        return True

    def _loop(self) -> None:
        done = 0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._jobs != done)
                if self._closed:
                    return
                done, (target, args) = self._jobs, self._job
            error = None
            try:
                target(*args)
            except BaseException as e:  # noqa: BLE001 - raised by wait(); the thread stays
                error = e
            target = args = None  # the job's objects (an epoch's stream) are not kept till the next
            with self._cond:
                self._error = self._error or error
                self._running -= 1
                if not self._running:  # every thread has taken and done the job
                    self._job = None
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join()
