"""A run's full log: TensorFlow's, Beam's and TFX's output goes to a file, not the terminal."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def stderr_to(log_path: Path, *also: logging.Handler) -> Iterator[None]:
    """Sends file descriptor 2 (TensorFlow's C++ logs, Beam, absl) and Python logging to a file.

    Handlers in `also` receive Python logging too (e.g. the terminal's progress lines).
    absl's verbosity is set to INFO as well: TensorFlow's SavedModel writer sets it back to the
    value of absl's `--verbosity` flag (WARNING unless given) after each save, which from
    Transform's first save on would drop TFX's own INFO lines ("Component X is finished.").
    """
    from absl import logging as absl_logging

    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(log_path, "a", encoding="utf-8")  # noqa: SIM115  (closed below, last)
    saved_fd = os.dup(2)
    handler = logging.StreamHandler(log_file)
    root = logging.getLogger()
    saved_handlers, root.handlers = root.handlers, [handler, *also]
    saved_level = root.level
    saved_verbosity = absl_logging.get_verbosity()
    saved_raise = logging.raiseExceptions
    root.setLevel(logging.INFO)
    absl_logging.set_verbosity(absl_logging.INFO)
    # A record the file cannot take (a full disk) is dropped, not printed with a traceback on
    # every later record; the step whose own write fails next stops the run in one line.
    logging.raiseExceptions = False
    os.dup2(log_file.fileno(), 2)
    failed = True
    try:
        yield
        failed = False
    finally:
        # File descriptor 2 and the handlers first: a full disk can fail the flush below, and
        # an error must reach the terminal, not the file that could not take it.
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        root.handlers = saved_handlers
        root.setLevel(saved_level)
        absl_logging.set_verbosity(saved_verbosity)
        logging.raiseExceptions = saved_raise
        try:
            log_file.close()
        except OSError:
            if not failed:  # the block's own error, if any, is the one to tell
                raise
