"""SIGTERM, SIGHUP and Ctrl-C (SIGINT) stop `imgpipe run` alike: an exception in the main thread.

Python's default for SIGTERM ends the process on the spot: no `finally`, no `except`, so a child
process (the load check's probe) outlives it and nothing says what happened. Raised as an
exception instead, the stop unwinds like Ctrl-C: the running component's cleanup runs (a push's
staging folder is removed, `subprocess.run` kills its child), the output lock is released and
the CLI prints one line. TensorFlow checks for the exception between ops, so a training step
finishes first: the stop takes at most a step or a Beam bundle. ML Metadata keeps the stopped
component as running (as after a kill), and the next run with the same command reuses every
component that finished (TFX's cache). The stop is also remembered (`components.stop`): an
exception raised inside a finalizer is lost, so our components check for it again.

A process forked meanwhile (a library's process pool: cleanlab's, in the data audit) gets its
signals back as they were: its pool ends it with SIGTERM, and a worker that raised `Stopped`
instead, inside an at-fork hook where the exception is dropped, lived on and the pool waited for
it forever.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

from components import stop
from components.stop import Stopped

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
__all__ = ["RESUMABLE", "STOP_SIGNALS", "Stopped", "as_stopped", "stop_on_signals"]


RESUMABLE = "the steps that finished are kept, and the same command reuses them"
# While `stop_on_signals` is active: each signal it handles -> the action it replaced.
_REPLACED: dict[int, Any] = {}


def _restore_in_forked_child() -> None:
    """In a child forked while the handlers are in place, its signals as they were before."""
    for signum, action in _REPLACED.items():
        signal.signal(signum, action)
    _REPLACED.clear()


os.register_at_fork(after_in_child=_restore_in_forked_child)


def as_stopped(interrupt: KeyboardInterrupt, note: str = RESUMABLE) -> Stopped:
    """`interrupt` (Ctrl-C's KeyboardInterrupt or a `Stopped`) as a `Stopped` with `note`."""
    stopped = interrupt if isinstance(interrupt, Stopped) else Stopped(signal.SIGINT)
    stopped.note = note
    return stopped


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise `Stopped` in the main thread, once, and
    are remembered for `components.stop.raise_if_requested`: a second signal while the first
    unwinds is ignored, so cleanup is not cut short (SIGKILL still ends the process). A signal
    this process was started ignoring stays ignored: `nohup` (SIGHUP), or a shell's background
    job (SIGINT)."""
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS
                if signal.getsignal(signum) is not signal.SIG_IGN}
    raised = False
    owner = os.getpid()

    def handler(signum: int, frame: object) -> None:
        nonlocal raised
        if os.getpid() != owner:  # a forked child, signalled before its at-fork hook ran
            signal.signal(signum, previous[signum])
            os.kill(os.getpid(), signum)  # delivered again, as the child would have taken it
            return
        stop.request(signum)
        if not raised:
            raised = True
            raise Stopped(signum)

    for signum in previous:
        signal.signal(signum, handler)
    _REPLACED.update(previous)
    try:
        yield
    finally:
        _REPLACED.clear()
        stop.clear()
        for signum, action in previous.items():
            signal.signal(signum, action)
