"""A disk that fills during a run: recognized in whatever a step wraps it in, told in one line.

ENOSPC reaches the run in many shapes: Python's `OSError` (errno 28), TensorFlow's
`ResourceExhaustedError` ("...; No space left on device", from tf.io.gfile and checkpoints),
SQLite's "database or disk is full" (ML Metadata), and Beam's re-raise of either with the
step's name added (which keeps the message, not the errno). So the whole exception chain is
searched, by errno and by message. Nothing is lost by stopping there: every step writes its
outputs under a new execution folder, ML Metadata's SQLite rolls back a write that did not fit,
and the push stages a version out of TF Serving's sight; the same command, once space is free,
reuses every step that finished (TFX's cache).
"""

from __future__ import annotations

import errno
from pathlib import Path

from pipeline.errors import UserError

# What each layer says when the disk is full: the C library (Python, TensorFlow), SQLite.
NO_SPACE_MESSAGES = ("no space left on device", "database or disk is full")


def _chain(error: BaseException) -> list[BaseException]:
    """`error` and every exception it was raised from or while handling, without repeats."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def is_disk_full(error: BaseException) -> bool:
    """True when `error`, or any exception in its chain, says the disk has no space left."""
    for link in _chain(error):
        if isinstance(link, OSError) and link.errno == errno.ENOSPC:
            return True
        if any(message in str(link).lower() for message in NO_SPACE_MESSAGES):
            return True
    return False


def full_folder(error: BaseException, output: Path) -> Path:
    """The folder to free: `output`, unless the chain names a file that lies outside it (e.g. a
    temporary folder on another disk), then the nearest folder of that file's that still exists
    (a step's temporary folder is removed as it fails)."""
    root = output.resolve()
    for link in _chain(error):
        name = getattr(link, "filename", None) if isinstance(link, OSError) else None
        if isinstance(name, str | Path) and str(name):
            path = Path(name).resolve()
            if path != root and root not in path.parents:
                folder = path.parent
                while not folder.is_dir():
                    folder = folder.parent
                return folder
    return output


def disk_full_error(error: BaseException, output: Path, where: str) -> UserError:
    """The one line for a run stopped by a full disk `where` (e.g. "in component Trainer")."""
    return UserError(f"no space left on device in {full_folder(error, output)} ({where}); free "
                     "space there and run the same command again: the steps that finished are "
                     "kept, and it reuses them")
