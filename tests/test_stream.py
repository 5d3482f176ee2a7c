"""BatchStream: every block once, order, the memory bound, errors, shutdown."""
from __future__ import annotations

import gc
import random
import threading
import time

import numpy as np
import pytest

from streamhog.io.batch import SparseBatch
from streamhog.errors import DataFormatError, StreamhogError
from streamhog.errors import ReaderError
from streamhog.io.stream import BatchStream, block_order, iter_epoch

DEADLINE = 5.0  # seconds; any wait longer than this is a hang


def reader_threads_alive():
    return [t for t in threading.enumerate() if t.name.startswith("streamhog-reader-") and t.is_alive()]


@pytest.fixture(autouse=True)
def no_leaked_readers():
    yield
    end = time.monotonic() + DEADLINE
    while reader_threads_alive() and time.monotonic() < end:
        time.sleep(0.01)
    assert not reader_threads_alive()


def make_batch(block: int) -> SparseBatch:
    return SparseBatch(
        indptr=np.array([0, 1], np.int64),
        indices=np.array([block], np.uint32),
        values=None,
        labels=np.array([float(block)], np.float32),
        source=f"fake block {block}",
        row_start=block,
        block=block,
    )


class FakeDataset:
    """In-memory dataset; records what its readers do.

    delay: seconds per read, or a callable ``block -> seconds``.
    fail:  ``{block: exception}`` raised when that block is read.
    gate:  an Event every read waits for (to hold readers inside ``read``).
    """

    def __init__(self, n_blocks, *, delay=0.0, fail=None, gate=None, open_error=None):
        self.path = "fake.parquet"
        self.n_blocks = n_blocks
        self.delay = delay
        self.fail = fail or {}
        self.gate = gate
        self.open_error = open_error
        self.lock = threading.Lock()
        self.readers = []
        self.opened_by = []  # thread name per open_reader call
        self.reads_started = 0
        self.stream = None  # set by tests that measure the bound against the stream
        self.max_ahead_of_stream = 0

    def open_reader(self):
        with self.lock:
            self.opened_by.append(threading.current_thread().name)
            if self.open_error is not None:
                raise self.open_error
            r = FakeReader(self)
            self.readers.append(r)
            return r


class FakeReader:
    def __init__(self, ds):
        self.ds = ds
        self.closed = False
        self.thread = threading.current_thread()

    def read(self, block):
        ds = self.ds
        assert threading.current_thread() is self.thread, "a reader is used by one thread only"
        assert not self.closed
        with ds.lock:
            ds.reads_started += 1
            started = ds.reads_started
        if ds.stream is not None:
            # batches_yielded only grows, so this never overstates what was in flight.
            ahead = started - ds.stream.stats.batches_yielded
            with ds.lock:
                ds.max_ahead_of_stream = max(ds.max_ahead_of_stream, ahead)
        if ds.gate is not None:
            ds.gate.wait(DEADLINE)
        d = ds.delay(block) if callable(ds.delay) else ds.delay
        if d:
            time.sleep(d)
        if block in ds.fail:
            raise ds.fail[block]
        return make_batch(block)

    def close(self):
        self.closed = True


def drain(stream):
    return [b.block for b in stream]


def wait_until(cond, timeout=DEADLINE):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition never became true"
        time.sleep(0.001)


def run_with_deadline(fn, timeout=DEADLINE):
    """Run fn in a thread; fail (instead of hanging the suite) if it doesn't finish."""
    box = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as e:  # noqa: BLE001
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "hung"
    if "error" in box:
        raise box["error"]
    return box.get("result")


# -- block_order -------------------------------------------------------------------


def test_block_order_reproducible_permutation_differs_by_epoch():
    a = block_order(50, epoch=0, seed=7)
    assert a.dtype == np.int64
    assert sorted(a.tolist()) == list(range(50))
    assert np.array_equal(a, block_order(50, epoch=0, seed=7))
    assert not np.array_equal(a, block_order(50, epoch=1, seed=7))
    assert not np.array_equal(a, block_order(50, epoch=0, seed=8))
    assert np.array_equal(block_order(50, epoch=3, seed=7, shuffle=False), np.arange(50))
    assert len(block_order(0, epoch=0, seed=0)) == 0


# -- delivery ----------------------------------------------------------------------


@pytest.mark.parametrize("ordered", [False, True])
@pytest.mark.parametrize("readers", [1, 3])
def test_every_block_exactly_once(ordered, readers):
    ds = FakeDataset(40, delay=lambda b: random.random() * 0.002)
    order = block_order(40, epoch=1, seed=3)
    s = BatchStream(ds, order, readers=readers, capacity=4, ordered=ordered)
    got = run_with_deadline(lambda: drain(s))
    assert sorted(got) == list(range(40))
    if ordered:
        assert got == order.tolist()
    # Exhausted: threads gone, one reader per thread, all closed.
    assert s.alive_readers == 0
    assert len(ds.readers) == readers
    assert sorted(ds.opened_by) == [f"streamhog-reader-{i}" for i in range(readers)]
    assert all(r.closed for r in ds.readers)
    assert len({r.thread for r in ds.readers}) == readers
    st = s.stats
    assert st.blocks_read == st.batches_yielded == 40
    assert 1 <= st.max_in_flight <= 4
    with pytest.raises(StopIteration):
        next(s)


def test_ordered_follows_order_despite_random_read_times():
    rng = random.Random(0)
    delays = {b: rng.choice([0.0, 0.0, 0.004, 0.01]) for b in range(30)}
    ds = FakeDataset(30, delay=delays.get)
    order = block_order(30, epoch=0, seed=1)
    got = run_with_deadline(lambda: drain(BatchStream(ds, order, readers=4, capacity=3, ordered=True)))
    assert got == order.tolist()


def test_unordered_does_not_wait_for_a_slow_block():
    # Block 0's read blocks until the consumer got another block: unordered mode must
    # yield the others meanwhile (ordered mode would hang here).
    released = threading.Event()

    def delay(block):
        if block == 0:
            released.wait(DEADLINE)
        return 0.0

    ds = FakeDataset(6, delay=delay)
    s = BatchStream(ds, range(6), readers=2, capacity=6)

    def consume():
        first = next(s).block
        released.set()
        return [first] + drain(s)

    got = run_with_deadline(consume)
    assert sorted(got) == list(range(6)) and got[0] != 0


def test_iter_epoch_and_empty_dataset():
    ds = FakeDataset(10)
    with iter_epoch(ds, epoch=2, seed=5, ordered=True) as s:
        assert run_with_deadline(lambda: drain(s)) == block_order(10, epoch=2, seed=5).tolist()
    with iter_epoch(ds, shuffle=False, ordered=True, readers=1) as s:
        assert run_with_deadline(lambda: drain(s)) == list(range(10))
    empty = FakeDataset(0)
    assert run_with_deadline(lambda: drain(iter_epoch(empty))) == []


def test_rejects_bad_arguments():
    ds = FakeDataset(3)
    with pytest.raises(ValueError):
        BatchStream(ds, [0, 3])
    with pytest.raises(ValueError):
        BatchStream(ds, [0], capacity=0)
    with pytest.raises(ValueError):
        BatchStream(ds, [0], readers=0)


def test_several_consumers_get_every_block_once():
    n = 200
    ds = FakeDataset(n, delay=lambda b: random.random() * 0.0005)
    s = BatchStream(ds, block_order(n, epoch=0, seed=0), readers=3, capacity=4)
    got = [[] for _ in range(4)]

    def consume(i):
        for b in s:
            got[i].append(b.block)
            time.sleep(random.random() * 0.0005)

    consumers = [threading.Thread(target=consume, args=(i,)) for i in range(4)]
    for t in consumers:
        t.start()
    for t in consumers:
        t.join(DEADLINE)
        assert not t.is_alive(), "consumer hung"
    everything = [b for g in got for b in g]
    assert sorted(everything) == list(range(n))
    assert s.stats.max_in_flight <= 4
    assert all(r.closed for r in ds.readers)


# -- the memory bound -------------------------------------------------------------


@pytest.mark.parametrize("ordered", [False, True])
def test_buffer_bounded_under_slow_consumer(ordered):
    capacity = 3
    ds = FakeDataset(30)
    s = BatchStream(ds, range(30), readers=4, capacity=capacity, ordered=ordered)
    ds.stream = s
    consumed = 0
    max_ahead = 0

    def consume():
        nonlocal consumed, max_ahead
        for _ in s:
            time.sleep(0.005)  # slow consumer: readers pile up against the bound
            with ds.lock:
                max_ahead = max(max_ahead, ds.reads_started - consumed)
                consumed += 1

    run_with_deadline(consume)
    assert consumed == 30
    # Counted from outside, the one batch the consumer holds adds one (see module docs).
    assert max_ahead <= capacity + 1
    # Against the stream's own count of yielded batches the bound is exact.
    assert ds.max_ahead_of_stream <= capacity
    assert s.stats.max_in_flight == capacity  # the readers did fill the buffer


def test_ordered_reorder_buffer_is_bounded_by_capacity():
    # The first block in order is very slow: readers must not run ahead past capacity.
    capacity = 4
    ds = FakeDataset(50)
    slow = threading.Event()

    def delay(block):
        if block == 0:
            slow.wait(DEADLINE)
        return 0.0

    ds.delay = delay
    s = BatchStream(ds, range(50), readers=3, capacity=capacity, ordered=True)
    wait_until(lambda: ds.reads_started >= capacity)
    time.sleep(0.05)  # give readers the chance to (wrongly) read further
    assert ds.reads_started == capacity
    assert s.stats.max_in_flight == capacity
    slow.set()
    assert run_with_deadline(lambda: drain(s)) == list(range(50))
    assert s.stats.max_in_flight <= capacity


# -- errors ------------------------------------------------------------------------


def test_data_format_error_is_raised_as_is_and_readers_stop():
    err = DataFormatError("fake.parquet", "labels contain NaN", where="row group 7")
    ds = FakeDataset(20, fail={7: err})
    s = BatchStream(ds, range(20), readers=3, capacity=4, ordered=True)
    with pytest.raises(DataFormatError, match=r"fake\.parquet: row group 7: labels contain NaN") as info:
        run_with_deadline(lambda: drain(s))
    assert info.value is err
    assert s.alive_readers == 0 and not reader_threads_alive()
    assert all(r.closed for r in ds.readers)
    with pytest.raises(DataFormatError):  # every later call (other consumers) sees it too
        next(s)


def test_generic_error_is_wrapped_naming_dataset_and_block():
    ds = FakeDataset(20, fail={11: RuntimeError("disk on fire")})
    s = BatchStream(ds, range(20), readers=2, capacity=3)
    with pytest.raises(ReaderError) as info:
        run_with_deadline(lambda: drain(s))
    e = info.value
    assert isinstance(e, StreamhogError)
    assert "fake.parquet" in str(e) and "block 11" in str(e) and "disk on fire" in str(e)
    assert e.block == 11 and isinstance(e.__cause__, RuntimeError)
    assert not reader_threads_alive()
    assert all(r.closed for r in ds.readers)


def test_open_reader_failure_is_reported():
    ds = FakeDataset(5, open_error=OSError("no such file"))
    s = BatchStream(ds, range(5), readers=2)
    with pytest.raises(ReaderError, match="opening reader.*no such file"):
        run_with_deadline(lambda: drain(s))
    assert not reader_threads_alive()


def test_error_reaches_all_consumers():
    ds = FakeDataset(40, delay=0.001, fail={25: RuntimeError("boom")})
    s = BatchStream(ds, range(40), readers=2, capacity=2)
    outcomes = []

    def consume():
        try:
            for _ in s:
                pass
            outcomes.append("end")
        except ReaderError:
            outcomes.append("error")

    threads = [threading.Thread(target=consume) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
        assert not t.is_alive()
    assert outcomes == ["error"] * 3


# -- shutdown ----------------------------------------------------------------------


def test_close_while_readers_wait_for_capacity():
    ds = FakeDataset(100)
    s = BatchStream(ds, range(100), readers=4, capacity=2)
    assert next(s).block in range(100)
    time.sleep(0.05)  # readers are now blocked on the bound
    run_with_deadline(s.close)
    assert s.alive_readers == 0
    assert len(ds.readers) == 4 and all(r.closed for r in ds.readers)
    assert next(s, None) is None  # a closed stream is over
    s.close()  # idempotent


def test_close_while_readers_are_inside_read():
    gate = threading.Event()
    ds = FakeDataset(10, gate=gate)
    s = BatchStream(ds, range(10), readers=2, capacity=4)
    wait_until(lambda: ds.reads_started == 2)
    t0 = time.monotonic()
    s.close(timeout=0.1)  # readers can't be interrupted mid-read: close gives up waiting
    assert time.monotonic() - t0 < 1.0
    gate.set()  # their reads finish; they exit and close their readers themselves
    for t in s._threads:
        t.join(DEADLINE)
    assert all(r.closed for r in ds.readers)
    assert ds.reads_started == 2


def test_close_wakes_blocked_consumer():
    gate = threading.Event()
    ds = FakeDataset(10, gate=gate)
    s = BatchStream(ds, range(10), readers=1)
    result = {}
    consumer = threading.Thread(target=lambda: result.setdefault("b", s.next_batch()))
    consumer.start()
    time.sleep(0.05)
    s.close(timeout=0.01)
    consumer.join(DEADLINE)
    assert not consumer.is_alive() and result["b"] is None
    gate.set()


def test_next_batch_timeout():
    gate = threading.Event()
    ds = FakeDataset(3, gate=gate)
    with BatchStream(ds, range(3), readers=1) as s:
        with pytest.raises(TimeoutError):
            s.next_batch(timeout=0.05)
        gate.set()
        assert s.next_batch(timeout=DEADLINE).block == 0


def test_context_manager_and_abandoned_iteration_stop_readers():
    ds = FakeDataset(100)
    with BatchStream(ds, range(100), readers=3, capacity=2) as s:
        next(s)
    assert s.alive_readers == 0 and all(r.closed for r in ds.readers)

    ds2 = FakeDataset(100)
    for _ in BatchStream(ds2, range(100), readers=3, capacity=2):
        break  # abandoned: the stream is dropped, its finalizer stops the readers
    gc.collect()
    end = time.monotonic() + DEADLINE
    while reader_threads_alive() and time.monotonic() < end:
        time.sleep(0.01)
    assert not reader_threads_alive()
    assert len(ds2.readers) == 3 and all(r.closed for r in ds2.readers)
