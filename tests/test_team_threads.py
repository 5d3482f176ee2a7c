"""Threads that work together across a run: the nogil barrier of kernels/atomics.py
(barrier_wait), io/threads.py's StandingThreads, and factorization/strata.py's StrataTeam
when one of its threads fails. Every threaded case runs more threads than the machine's cores
(2 here): an oversubscribed barrier must still let each round through."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from numba import njit

from streamhog.factorization import strata as S
from streamhog.io.threads import StandingThreads
from streamhog.kernels.atomics import BARRIER_BROKEN, BARRIER_THREADS, barrier_wait


@njit(nogil=True)
def _rounds(j, cells, arrived, seen, rounds):
    """Each round: count this thread in, wait, then record how many the round saw."""
    t = cells[BARRIER_THREADS]
    for r in range(rounds):
        # a plain += from many threads loses counts; each thread owns its own slot instead
        arrived[r, j] = 1
        if not barrier_wait(cells):
            return False
        seen[r, j] = arrived[r].sum()
        if not barrier_wait(cells):  # nobody starts round r + 1 while another still reads round r
            return False
    return True


@njit(nogil=True)
def _wait(cells):
    return barrier_wait(cells)


def _barrier(t):
    cells = np.zeros(4, np.int32)
    cells[BARRIER_THREADS] = t
    return cells


@pytest.mark.parametrize("t", [1, 2, 8])
def test_no_thread_leaves_a_round_before_all_have_arrived(t):
    rounds = 300
    cells, arrived, seen = _barrier(t), np.zeros((rounds, t), np.int64), np.zeros((rounds, t), np.int64)
    ok = [None] * t

    def run(j):
        ok[j] = _rounds(j, cells, arrived, seen, rounds)

    threads = [threading.Thread(target=run, args=(j,)) for j in range(t)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not any(th.is_alive() for th in threads), "a barrier round never completed"
    assert all(ok)
    np.testing.assert_array_equal(seen, t)  # every thread saw all t arrivals, in every round
    assert cells[1] == 2 * rounds and cells[0] == 0  # the round counter moved once a round


def test_a_broken_barrier_releases_its_waiters():
    cells = _barrier(3)
    got = []
    threads = [threading.Thread(target=lambda: got.append(_wait(cells))) for _ in range(2)]
    for th in threads:
        th.start()
    time.sleep(0.2)
    assert not got  # two of three arrived: they wait
    cells[BARRIER_BROKEN] = 1
    for th in threads:
        th.join(10)
    assert got == [False, False]
    assert _wait(cells) is False  # and a later wait returns at once


def test_standing_threads_run_each_job_once_per_thread_and_close():
    calls = []
    lock = threading.Lock()
    gate = threading.Event()

    def job(k):
        gate.wait(10)
        with lock:
            calls.append((threading.current_thread().name, k))

    pool = StandingThreads(5, name="test-standing")
    names = {t.name for t in threading.enumerate() if t.name.startswith("test-standing-")}
    assert len(names) == 5
    for k in range(3):
        pool.start(job, (k,))
        if k == 0:
            assert not pool.wait(0.05)  # held at the gate: not done
            with pytest.raises(RuntimeError, match="still running"):
                pool.start(job, (99,))
            gate.set()
        assert pool.wait(10)
        assert sorted(c for c in calls if c[1] == k) == sorted((n, k) for n in names)  # same threads, once each
    pool.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("test-standing-")]


def test_an_error_escaping_a_standing_job_is_raised_by_wait_and_the_threads_stay():
    def job(fail):
        if fail and threading.current_thread().name.endswith("-1"):
            raise KeyError("thread 1")

    pool = StandingThreads(3, name="test-escape")
    pool.start(job, (True,))
    with pytest.raises(KeyError, match="thread 1"):
        pool.wait(10)
    pool.start(job, (False,))  # every thread still takes the next job
    assert pool.wait(10)
    pool.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("test-escape-")]


def test_a_failing_strata_thread_neither_hangs_the_team_nor_goes_unreported(monkeypatch):
    def kernel(opt, j, t, barrier, *args):
        if j == 2:
            raise ValueError("thread 2 failed")
        return _wait(barrier)  # the others wait for thread 2 at the round's end

    monkeypatch.setattr(S, "train_cells", kernel)
    team = S.StrataTeam(4, 0, name="test-strata")
    start = time.monotonic()
    with pytest.raises(ValueError, match="thread 2 failed"):
        team.run(())
    assert time.monotonic() - start < 30
    team.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("test-strata")]
