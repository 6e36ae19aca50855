"""PeriodicThread: the loop every background job of the server runs in."""

from __future__ import annotations

import threading

from labelvault.periodic import PeriodicThread


def test_work_that_returns_true_runs_again_at_once_and_anything_else_waits_the_interval() -> None:
    results = iter([True, True, True, 7, True])  # 7 (say, a count of tasks done) is not "again"
    calls: list[int] = []
    fourth = threading.Event()

    def work() -> object:
        calls.append(1)
        if len(calls) == 4:
            fourth.set()
        return next(results)

    thread = PeriodicThread("test-periodic", work, interval=3600)
    thread.start()
    assert fourth.wait(30)
    thread.stop()
    assert len(calls) == 4  # the fourth result waited the hour, until stop() ended the wait


def test_a_failing_round_is_logged_and_the_thread_goes_on(caplog) -> None:  # type: ignore[no-untyped-def]
    calls: list[int] = []
    second = threading.Event()

    def work() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database away")
        second.set()

    thread = PeriodicThread("test-failing", work, interval=0.01)
    thread.start()
    assert second.wait(30)
    thread.stop()
    assert "background work test-failing failed" in caplog.text


def test_a_round_that_found_nothing_waits_the_idle_interval() -> None:
    results = iter([5, 0, 5])
    calls: list[int] = []
    second, third = threading.Event(), threading.Event()

    def work() -> object:
        calls.append(1)
        (second if len(calls) == 2 else third if len(calls) == 3 else threading.Event()).set()
        return next(results, 0)

    thread = PeriodicThread("test-idle", work, interval=0.01, idle_interval=3600)
    thread.start()
    assert second.wait(30)  # after a round that did work: the short interval
    assert not third.wait(0.5)  # after one that found nothing: the idle hour, until stop()
    thread.stop()
    assert len(calls) == 2
