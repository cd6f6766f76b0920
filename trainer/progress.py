"""The names by which the pipeline's steps report progress to `imgpipe run`'s terminal.

Records of the `PROGRESS_LOGGER` logger are echoed by `pipeline.progress.ProgressHandler`; two
extra record attributes drive its ingestion bar: `INGEST_TOTAL` (the images the ExampleGen will
read) and `INGEST_DONE` (images read since the previous such record). Defined here, the lowest
package every other one imports, so the Trainer, the ExampleGen and the handler share one
spelling.
"""

import logging

PROGRESS_LOGGER = "imgpipe.progress"
INGEST_TOTAL = "imgpipe_ingest_total"
INGEST_DONE = "imgpipe_ingest_done"


def progress_logger() -> logging.Logger:
    """The logger whose records `imgpipe run` shows on the terminal."""
    return logging.getLogger(PROGRESS_LOGGER)
