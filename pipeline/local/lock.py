"""One run per output folder at a time: an exclusive lock on OUTPUT/.imgpipe.lock."""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import UserError
from pipeline.local.layout import OutputLayout


@contextlib.contextmanager
def output_lock(output: Path) -> Iterator[None]:
    """Holds OUTPUT/.imgpipe.lock exclusively, or fails at once if another process holds it.

    The kernel releases a flock when its process ends, however it ends, so a killed run never
    leaves a stale lock; the file itself stays and only says who holds it. When the body fails
    in a folder this call created and nothing but the lock was written, the folder is removed:
    a refused run leaves no output behind.
    """
    created = not output.exists()
    output.mkdir(parents=True, exist_ok=True)
    lock_path = OutputLayout(output).lock_path
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise UserError(f"another imgpipe run is using {output} ({holder}); wait for it to "
                            "finish, or pass another --output") from None
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {started}\n".encode(), 0)
        try:
            yield
        except BaseException:
            if created and os.listdir(output) == [lock_path.name]:
                os.unlink(lock_path)  # still locked: nobody else can hold it now
                output.rmdir()
            raise
    finally:
        os.close(fd)
