"""Runs the pipeline on this machine (LocalDagRunner, SQLite ML Metadata, Beam's DirectRunner),
then reads the run back: its summary and its report."""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pipeline.errors import UserError
from pipeline.local.disk_space import disk_full_error, is_disk_full, write_whole
from pipeline.local.layout import OutputLayout
from pipeline.local.logs import stderr_to

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig
    from pipeline.results.summary import RunSummary


def run_local(config: PipelineConfig, metadata_path: Path) -> None:
    """Runs `create_pipeline(config)` to completion; raises if a component fails."""
    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline

    metadata_path.parent.mkdir(parents=True, exist_ok=True)
    connection = tfx.orchestration.metadata.sqlite_metadata_connection_config(str(metadata_path))
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config, connection))


def write_run_report(layout: OutputLayout, summary: RunSummary, stamp: str,
                     log_path: Path) -> str:
    """Writes the run's HTML report; returns its path, or why there is none (never raises)."""
    from pipeline.results.report import write_report

    with stderr_to(log_path):  # loading the model is noisy on file descriptor 2
        try:
            return str(write_report(layout.root, summary.pipeline_name, summary, stamp=stamp))
        except Exception as error:  # noqa: BLE001  (a report must never fail the run)
            logging.exception("the run report could not be written")
            return f"not written ({type(error).__name__}: {error}); see {log_path}"


def write_summary(path: Path, summary: RunSummary) -> None:
    """Writes summary.json in one atomic step."""
    write_whole(path, (json.dumps(summary.to_json(), indent=2) + "\n").encode("utf-8"))


def run_and_summarize(config: PipelineConfig, layout: OutputLayout, with_report: bool = True,
                      *, echo: Callable[[str], None], terminal: TextIO
                      ) -> tuple[RunSummary, str]:
    """Runs the pipeline with its logs in a file, then reads back and saves the run's summary
    and writes its report; returns the summary and the report's path ('' without a report)."""
    from pipeline.local.progress import ProgressHandler
    from pipeline.results.summary import read_run_summary

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_path = layout.log_path(stamp)
    echo(f"running the pipeline (full log: {log_path})")
    failure = None
    progress = ProgressHandler(terminal)
    try:
        with stderr_to(log_path, progress):
            try:
                run_local(config, layout.metadata_path)
            except Exception as error:  # noqa: BLE001  (reported below, with its component)
                logging.exception("pipeline failed")
                failure = error
    except OSError:  # the log's last lines did not fit (a full disk): the failure comes first
        if failure is None:
            raise
    stopped_in = progress.finish(failed=failure is not None)
    threshold = config.gate.accuracy_threshold
    try:
        summary = read_run_summary(layout.metadata_path, config.pipeline_name, threshold)
    except LookupError:
        summary = None
    if failure is not None:
        failed = [name for name, state in (summary.components if summary else {}).items()
                  if state == "failed"]
        # The step the log saw start and not finish first: on a full disk, ML Metadata may
        # have recorded nothing of this run.
        name = stopped_in or (failed[0] if failed else None)
        where = f"component {name}" if name else "the pipeline"
        if is_disk_full(failure):  # no report: it could not be written either
            raise disk_full_error(failure, layout.root, f"in {where}") from None
    report = ""
    if with_report:
        report = write_run_report(layout, summary, stamp, log_path) if summary else "not written"
    if failure is not None:
        message = str(failure).strip().splitlines()
        raise UserError(f"{where} failed: {type(failure).__name__}: "
                        f"{message[-1] if message else ''}; full log: {log_path}"
                        + (f"; report: {report}" if report else ""))
    # The findings before the summary that points at them, each replaced whole.
    if summary.audit:
        write_whole(layout.audit_path, Path(summary.audit["findings"]).read_bytes())
    elif layout.audit_path.exists():  # --no-audit: no stale findings beside this run's summary
        layout.audit_path.unlink()
    write_summary(layout.summary_path, summary)
    return summary, report
