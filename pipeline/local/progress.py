"""What `imgpipe run` shows while it works: components with their durations, ingestion, epochs.

The full logs go to the run's log file; `ProgressHandler`, a `logging.Handler` on the root logger
beside the file's, echoes only these records to the terminal:

- TFX's `LocalDagRunner` logs "Component <id> is running." and "Component <id> is finished."
  (absl logging, in `tfx/orchestration/local/local_dag_runner.py`), and its launcher "A cached
  execution <n> is used." when a component is reused: each becomes "<id>: running" and
  "<id>: done in 12.3 s" (or "reused from cache").
- Records of the `imgpipe.progress` logger are echoed as they are (the Trainer's epoch lines).
  Three extra attributes drive the ingestion bar: `imgpipe_ingest_total` (starts a bar with
  the images the ExampleGen will read, 0 when they are yet to be listed),
  `imgpipe_ingest_found` (images a listing step found: added to the total) and
  `imgpipe_ingest_done` (images read since the last such record). Beam's DirectRunner in
  `in_memory` mode runs the DoFns in this process, so these records reach the handler; other
  runners' workers log elsewhere and the bar is then not drawn.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import TextIO

from trainer.contract import (
    INGEST_DONE,
    INGEST_FOUND,
    INGEST_TOTAL,
    PROGRESS_LOGGER,
    progress_logger,
)

__all__ = ["INGEST_DONE", "INGEST_FOUND", "INGEST_TOTAL", "PROGRESS_LOGGER", "ProgressHandler",
           "progress_logger"]

_RUNNING = re.compile(r"Component (\S+) is running\.")
_FINISHED = re.compile(r"Component (\S+) is finished\.")
_CACHED = re.compile(r"A cached execution \d+ is used\.")
BAR_WIDTH = 30
REDRAW_SECONDS = 0.2


class ProgressHandler(logging.Handler):
    """Echoes component starts and ends with durations, ingestion and epoch lines to `stream`."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic,
                 interactive: bool | None = None):
        super().__init__(logging.INFO)
        self._stream = stream
        self._clock = clock
        self._interactive = (stream.isatty() if interactive is None else interactive)
        self._component: str | None = None
        self._started = 0.0
        self._cached = False
        self._total = 0
        self._done = 0
        self._drawn_at = float("-inf")
        self._bar_open = False
        self._quarters = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.name == PROGRESS_LOGGER or record.name.startswith(PROGRESS_LOGGER + "."):
                self._progress(record)
            elif record.name == "absl" or record.name.startswith("tfx"):
                self._component_event(record.getMessage())
        except Exception:  # noqa: BLE001  (logging's contract: report, never raise)
            self.handleError(record)

    def _write(self, line: str) -> None:
        if self._bar_open:
            self._stream.write("\n")
            self._bar_open = False
        self._stream.write(line + "\n")
        self._stream.flush()

    def _component_event(self, message: str) -> None:
        running = _RUNNING.fullmatch(message)
        if running:
            self._component, self._started, self._cached = running.group(1), self._clock(), False
            self._write(f"{self._component}: running")
            return
        if _CACHED.fullmatch(message):
            self._cached = True
            return
        finished = _FINISHED.fullmatch(message)
        if finished:
            name = finished.group(1)
            seconds = self._clock() - self._started if name == self._component else 0.0
            how = "reused from cache" if self._cached else "done"
            self._write(f"{name}: {how} in {seconds:.1f} s")
            self._component = None

    def _progress(self, record: logging.LogRecord) -> None:
        total = getattr(record, INGEST_TOTAL, None)
        found = getattr(record, INGEST_FOUND, None)
        done = getattr(record, INGEST_DONE, None)
        if total is not None:
            self._total, self._done, self._quarters = int(total), 0, 0
            self._write(f"  ingesting {self._total} images" if self._total
                        else f"  {record.getMessage()}")
        elif found is not None:
            self._total += int(found)
            self._write(f"  {record.getMessage()}")
        elif done is not None:
            self._done += int(done)
            self._ingest_bar()
        else:
            self._write(f"  {record.getMessage()}")

    def _ingest_bar(self) -> None:
        if not self._total:
            return
        done = min(self._done, self._total)
        finished = done >= self._total
        if self._interactive:
            now = self._clock()
            if not finished and now - self._drawn_at < REDRAW_SECONDS:
                return
            self._drawn_at = now
            filled = BAR_WIDTH * done // self._total
            self._stream.write(f"\r  [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
                               f"{done}/{self._total} images")
            self._stream.flush()
            self._bar_open = not finished
            if finished:
                self._stream.write("\n")
                self._stream.flush()
            return
        quarters = 4 * done // self._total
        if quarters > self._quarters:  # a log-friendly line at 25, 50, 75 and 100%
            self._quarters = quarters
            self._write(f"  ingested {done}/{self._total} images")

    def finish(self, failed: bool) -> str | None:
        """Closes the component still open when the run stops (a failed component logs no end);
        returns its id, or None when none was open."""
        component, self._component = self._component, None
        if component is not None:
            seconds = self._clock() - self._started
            state = "failed" if failed else "stopped"
            self._write(f"{component}: {state} after {seconds:.1f} s")
        return component
