"""`stop_on_signals`: a signal stops the run even when its KeyboardInterrupt is lost.

The end-to-end stops are tests/reliability/stop_run_test.py; here, in one process, what that
test cannot make happen on purpose: the exception raised inside a finalizer, where CPython
drops it, and a publication that must not become visible after such a lost stop.
"""

from __future__ import annotations

import os
import signal

import pytest

from components import stop
from components.serving_pusher import publish
from pipeline.local.interrupt import Stopped, as_stopped, stop_on_signals


@pytest.fixture(autouse=True)
def ctrl_c_at_its_default():
    """SIGINT as a terminal's foreground job has it: pytest started as a background job
    (`make test &`) inherits it ignored, and an ignored signal stays ignored in a run."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


class _SignalsInItsFinalizer:
    """An object whose `__del__` receives `signum`: the handler's exception is raised there."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    def __del__(self) -> None:
        os.kill(os.getpid(), self.signum)
        sum(range(1000))  # bytecode after the kill: the handler runs here, inside the finalizer


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                         (signal.SIGHUP, 129)])
def test_each_signal_raises_stopped_and_is_remembered_until_the_block_ends(signum, code):
    with pytest.raises(Stopped) as raised, stop_on_signals():
        try:
            os.kill(os.getpid(), signum)
            sum(range(1000))
        finally:
            assert stop.requested() == signum
    assert raised.value.exit_code == code
    assert stop.requested() is None
    stop.raise_if_requested()  # nothing asked for now: no exception


def test_a_stop_lost_in_a_finalizer_is_raised_at_the_next_check(monkeypatch):
    lost = []
    monkeypatch.setattr("sys.unraisablehook", lambda unraisable: lost.append(unraisable.exc_type))
    reached = []
    with pytest.raises(Stopped) as raised, stop_on_signals():
        _SignalsInItsFinalizer(signal.SIGINT)  # dropped at once: __del__ runs, the kill with it
        reached.append("the run went on")  # CPython reported "Exception ignored" and went on
        stop.raise_if_requested()
        reached.append("past the check")
    assert reached == ["the run went on"]
    assert raised.value.signal_name == "SIGINT"
    assert lost == [Stopped]  # the handler's exception was raised in __del__, and dropped
    assert as_stopped(raised.value).note


def test_a_publication_after_a_lost_stop_leaves_no_version(tmp_path, monkeypatch):
    lost = []
    monkeypatch.setattr("sys.unraisablehook", lambda unraisable: lost.append(unraisable.exc_type))
    base = tmp_path / "serving" / "m"

    def write(directory: str) -> None:
        with open(os.path.join(directory, "saved_model.pb"), "wb") as f:
            f.write(b"model")
        _SignalsInItsFinalizer(signal.SIGTERM)  # lost while the version is being written

    with pytest.raises(Stopped), stop_on_signals():
        publish.publish_version(str(base), write, keep_versions=2)
    assert lost == [Stopped]
    assert sorted(p.name for p in base.iterdir()) == []  # staging removed, nothing visible


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT])
def test_a_signal_the_process_was_started_ignoring_stays_ignored(signum):
    # `nohup imgpipe run` ignores SIGHUP; a shell's background job ignores SIGINT.
    previous = signal.signal(signum, signal.SIG_IGN)
    try:
        with stop_on_signals():
            os.kill(os.getpid(), signum)
            sum(range(1000))
            assert stop.requested() is None
        assert signal.getsignal(signum) is signal.SIG_IGN
    finally:
        signal.signal(signum, previous)


def _ended_by(pid: int) -> int:
    """The signal that ended child `pid` (0 when it exited instead)."""
    _, status = os.waitpid(pid, 0)
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0


def test_a_process_pool_forked_during_a_run_ends_as_its_pool_ends_it():
    # cleanlab's pool in the data audit: Pool.terminate sends each worker SIGTERM. A worker
    # that took it as a stop raised in an at-fork hook once, lived on, and the run hung.
    import multiprocessing
    import time

    with stop_on_signals():
        pool = multiprocessing.get_context("fork").Pool(2)
        assert pool.map(abs, [-1, -2]) == [1, 2]
        workers = list(pool._pool)
        pool.map_async(time.sleep, [60, 60], chunksize=1)  # busy when their pool ends them
        time.sleep(0.5)
        pool.terminate()
        pool.join()
        assert not stop.requested()
    assert [w.exitcode for w in workers] == [-signal.SIGTERM] * 2


@pytest.mark.parametrize("hook_ran", [True, False])
def test_a_forked_child_takes_a_signal_as_it_would_have_without_the_run(hook_ran):
    with stop_on_signals():
        ours = signal.getsignal(signal.SIGTERM)
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            try:
                if not hook_ran:  # as if the signal came before the at-fork hook
                    signal.signal(signal.SIGTERM, ours)
                os.kill(os.getpid(), signal.SIGTERM)
                sum(range(100_000))
            finally:
                os._exit(3)
        assert _ended_by(pid) == signal.SIGTERM
        assert not stop.requested()
