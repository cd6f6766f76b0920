"""A stop asked for by a signal, remembered until the run ends, so that it is honoured even when
its KeyboardInterrupt is lost.

The signal handler raises `Stopped` in the main thread at whatever bytecode runs next. When that
is inside a finalizer (`__del__`, a weakref callback: TensorFlow runs many while it frees
tensors and resources), CPython reports "Exception ignored in ..." and the run goes on as if
no signal came. Our executors therefore call `raise_if_requested()` where a stop must win:
as each of our components starts, after the load check's probe, and before a push makes a
version visible. `pipeline.local.interrupt` sets the request; nothing else should.
"""

from __future__ import annotations

import signal


class Stopped(KeyboardInterrupt):
    """The run was stopped by `signal_name` (a KeyboardInterrupt, so it unwinds as Ctrl-C);
    `note` is what the CLI adds to its one line."""

    def __init__(self, signum: int, note: str = "") -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum  # what a shell reports for a process the signal ended
        self.note = note
        super().__init__(self.signal_name)


_requested: int | None = None


def request(signum: int) -> None:
    """Remembers that `signum` asked the run to stop (the first signal wins)."""
    global _requested
    if _requested is None:
        _requested = signum


def clear() -> None:
    """Forgets the request: the run it was for has ended."""
    global _requested
    _requested = None


def requested() -> int | None:
    """The signal that asked for a stop in this run, if one did."""
    return _requested


def raise_if_requested() -> None:
    """Raises `Stopped` again when a stop was asked for and the run is still going."""
    if _requested is not None:
        raise Stopped(_requested)
