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

import os
from pathlib import Path

from pipeline.errors import UserError, exception_chain, is_disk_full

__all__ = ["command_disk_full_error", "disk_full_error", "full_folder", "is_disk_full",
           "write_whole"]


def _named_folder(error: BaseException, outside: Path | None = None) -> Path | None:
    """The nearest existing folder of the first file the chain names (outside `outside`)."""
    for link in exception_chain(error):
        name = getattr(link, "filename", None) if isinstance(link, OSError) else None
        if isinstance(name, str | Path) and str(name):
            path = Path(name).resolve()
            if outside is None or path != outside and outside not in path.parents:
                folder = path.parent
                while not folder.is_dir():
                    folder = folder.parent
                return folder
    return None


def full_folder(error: BaseException, output: Path) -> Path:
    """The folder to free: `output`, unless the chain names a file that lies outside it (e.g. a
    temporary folder on another disk), then the nearest folder of that file's that still exists
    (a step's temporary folder is removed as it fails)."""
    return _named_folder(error, output.resolve()) or output


def disk_full_error(error: BaseException, output: Path, where: str) -> UserError:
    """The one line for a run stopped by a full disk `where` (e.g. "in component Trainer")."""
    return UserError(f"no space left on device in {full_folder(error, output)} ({where}); free "
                     "space there and run the same command again: the steps that finished are "
                     "kept, and it reuses them")


def command_disk_full_error(error: BaseException, command: str, folder: Path | None = None,
                            then: str = "run the same command again") -> UserError:
    """The one line for any other command stopped by a full disk (`command`: "sample-data"):
    the folder named in the chain, else `folder`, else none; `then`, what to do once freed."""
    where = _named_folder(error) or folder
    return UserError(f"no space left on device{f' in {where}' if where else ''} (imgpipe "
                     f"{command}); free space there and {then}")


def write_whole(path: Path, data: bytes) -> None:
    """Writes `path` in one atomic step: a full disk or a stop leaves the last one whole, and
    no partial file beside it."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
