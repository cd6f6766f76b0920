"""SIGTERM and SIGHUP stop `imgpipe run` as Ctrl-C does: an exception in the main thread.

Python's default for SIGTERM ends the process on the spot: no `finally`, no `except`, so a child
process (the load check's probe) outlives it and nothing says what happened. Raised as an
exception instead, the stop unwinds like Ctrl-C: the running component's cleanup runs (a push's
staging folder is removed, `subprocess.run` kills its child), the output lock is released and
the CLI prints one line. TensorFlow checks for the exception between ops, so a training step
finishes first: the stop takes at most a step or a Beam bundle. ML Metadata keeps the stopped
component as running (as after a kill), and the next run with the same command reuses every
component that finished (TFX's cache).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """The run was stopped by `signal_name` (a KeyboardInterrupt, so it unwinds as Ctrl-C);
    `note` is what the CLI adds to its one line."""

    def __init__(self, signum: int, note: str = "") -> None:
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum  # what a shell reports for a process the signal ended
        self.note = note
        super().__init__(self.signal_name)


RESUMABLE = "the steps that finished are kept, and the same command reuses them"


def as_stopped(interrupt: KeyboardInterrupt, note: str = RESUMABLE) -> Stopped:
    """`interrupt` (Ctrl-C's KeyboardInterrupt or a `Stopped`) as a `Stopped` with `note`."""
    stopped = interrupt if isinstance(interrupt, Stopped) else Stopped(signal.SIGINT)
    stopped.note = note
    return stopped


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise `Stopped` in the main thread, once: a second
    signal while the first unwinds is ignored, so cleanup is not cut short (SIGKILL still
    ends the process)."""
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    raised = False

    def handler(signum: int, frame: object) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise Stopped(signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)
