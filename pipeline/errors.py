"""The one exception type whose message is shown to users as is, and how a full disk is told."""

from __future__ import annotations

import errno


class UserError(Exception):
    """A problem the user can fix; its message is one line: what, where, what to do."""


# What each layer says when the disk is full: the C library (Python, TensorFlow), SQLite. Read
# in exception chains (`pipeline.local.disk_space`) and in the logs of a task run apart.
NO_SPACE_MESSAGES = ("no space left on device", "database or disk is full")


def exception_chain(error: BaseException) -> list[BaseException]:
    """`error` and every exception it was raised from or while handling, without repeats."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def is_disk_full(error: BaseException) -> bool:
    """True when `error`, or any exception in its chain, says the disk has no space left."""
    for link in exception_chain(error):
        if isinstance(link, OSError) and link.errno == errno.ENOSPC:
            return True
        if any(message in str(link).lower() for message in NO_SPACE_MESSAGES):
            return True
    return False
