"""The trainer's watchdog on its own: a dead learner thread and a stalled run each stop the main
thread with one message naming what happened (no Ray needed)."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from rmc_agents.rl.trainer import _Stalled, _Watchdog


def _wait_inside(watchdog: _Watchdog, seconds: float) -> None:
    """Sleep in the main thread as ``algo.train()`` would block, up to ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)


def _raise_in_thread(name: str) -> None:
    def boom() -> None:
        raise RuntimeError("deliberately broken loss")

    thread = threading.Thread(target=boom, name=name)
    thread.start()
    thread.join()


def test_a_run_that_never_finished_an_iteration_says_so():
    with pytest.raises(_Stalled, match=r"^no training iteration finished in 1 s: the EnvRunners"):
        with _Watchdog(stall_seconds=1.0) as watchdog:
            _wait_inside(watchdog, 10)


def test_a_learner_that_stopped_training_after_iterations_says_so():
    with pytest.raises(_Stalled, match=r"^the learner made no progress for 1 s \("):
        with _Watchdog(stall_seconds=1.0) as watchdog:
            watchdog.iterations = 3
            _wait_inside(watchdog, 10)


def test_progress_keeps_the_stall_away():
    with _Watchdog(stall_seconds=1.5) as watchdog:
        for _ in range(30):  # 3 s in all, progress every 0.1 s
            time.sleep(0.1)
            watchdog.progress()
        watchdog.check()
    assert watchdog.error is None


def test_a_dead_learner_thread_stops_the_main_thread_with_its_error(monkeypatch):
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # keep pytest's quiet
    with pytest.raises(
        _Stalled, match=r"^the learner thread failed: RuntimeError: deliberately broken loss$"
    ):
        with _Watchdog(stall_seconds=60.0) as watchdog:
            _raise_in_thread("_LearnerThread")
            _wait_inside(watchdog, 10)


def test_the_learner_error_is_not_replaced_by_a_later_stall(monkeypatch):
    """RLlib or Ray may swallow the first signal; the run must still report the loss's error,
    not a stall that follows from it."""
    monkeypatch.setattr(threading, "excepthook", lambda args: None)
    with _Watchdog(stall_seconds=1.0) as watchdog:
        try:
            _raise_in_thread("_LearnerThread")
            _wait_inside(watchdog, 10)
        except _Stalled:
            pass  # swallowed, as a library in between might
        _wait_inside(watchdog, 2.5)  # past the stall limit
        with pytest.raises(_Stalled, match="^the learner thread failed: RuntimeError"):
            watchdog.check()


def test_a_swallowed_signal_is_sent_again_until_the_loop_stops(monkeypatch):
    """A wait that RLlib keeps up after swallowing the first signal (a blocked ``update``) is
    broken by the next one, with the learner's error."""
    from rmc_agents.rl import trainer

    monkeypatch.setattr(threading, "excepthook", lambda args: None)
    monkeypatch.setattr(trainer, "REFIRE_S", 1.0)
    swallowed = 0
    with pytest.raises(_Stalled, match="^the learner thread failed: RuntimeError"):
        with _Watchdog(stall_seconds=60.0) as watchdog:
            try:
                _raise_in_thread("_LearnerThread")
                _wait_inside(watchdog, 10)
            except _Stalled:
                swallowed += 1  # as a library in between might
            _wait_inside(watchdog, 10)  # still blocked: the watchdog must come again
    assert swallowed == 1


def test_other_threads_failing_do_not_stop_the_run(monkeypatch):
    seen = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.thread.name))
    with _Watchdog(stall_seconds=60.0) as watchdog:
        _raise_in_thread("EnvRunnerStateServer")
        _wait_inside(watchdog, 0.3)
        watchdog.check()
    assert watchdog.error is None
    assert seen == ["EnvRunnerStateServer"]  # the previous hook still sees it


def test_leaving_restores_the_hook_and_the_signal_handler():
    hook, handler = threading.excepthook, signal.getsignal(signal.SIGUSR1)
    with _Watchdog(stall_seconds=60.0):
        assert threading.excepthook is not hook
        assert signal.getsignal(signal.SIGUSR1) is not handler
    assert threading.excepthook is hook
    assert signal.getsignal(signal.SIGUSR1) is handler


def _in_thread(body) -> BaseException | None:
    """Run ``body`` in a thread that is not the main thread (as Ray Tune runs a trial's function);
    return what it raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            body()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            raised.append(exc)

    thread = threading.Thread(target=run, name="tune-trial")
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    return raised[0] if raised else None


def test_outside_the_main_thread_a_stall_stops_that_thread_without_a_signal_handler():
    handler = signal.getsignal(signal.SIGUSR1)
    seen = []

    def body() -> None:
        with _Watchdog(stall_seconds=1.0) as watchdog:
            seen.append(signal.getsignal(signal.SIGUSR1))
            _wait_inside(watchdog, 10)  # a blocked algo.train(), interrupted in its thread

    start = time.monotonic()
    exc = _in_thread(body)
    assert isinstance(exc, _Stalled), exc
    assert str(exc).startswith("no training iteration finished in 1 s: the EnvRunners")
    assert time.monotonic() - start < 5
    assert seen == [handler] and signal.getsignal(signal.SIGUSR1) is handler


def test_outside_the_main_thread_a_dead_learner_stops_the_loop_and_check_raises(monkeypatch):
    monkeypatch.setattr(threading, "excepthook", lambda args: None)
    checked = []

    def body() -> None:
        with _Watchdog(stall_seconds=60.0) as watchdog:
            try:
                _raise_in_thread("_LearnerThread")
                _wait_inside(watchdog, 10)
            except _Stalled:
                pass  # swallowed on the way, as a library in between might
            try:
                watchdog.check()  # the loop's check after the iteration still raises it
            except _Stalled as exc:
                checked.append(str(exc))
                raise

    exc = _in_thread(body)
    assert isinstance(exc, _Stalled)
    assert checked == ["the learner thread failed: RuntimeError: deliberately broken loss"]


def test_outside_the_main_thread_nothing_lands_after_the_loop_left():
    def body() -> None:
        with _Watchdog(stall_seconds=1.0):
            pass
        _wait_inside(None, 2.5)  # past the stall limit, outside the watchdog

    assert _in_thread(body) is None
