"""The terminal's progress lines: components with durations, the ingestion bar, epoch lines."""

import inspect
import io
import logging

import pytest
from absl import logging as absl_logging

from pipeline.local.progress import (
    INGEST_DONE,
    INGEST_FOUND,
    INGEST_TOTAL,
    ProgressHandler,
    progress_logger,
)


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def echo():
    """A ProgressHandler on the root logger at INFO, as `imgpipe run` installs it."""
    stream, clock = io.StringIO(), _Clock()
    handler = ProgressHandler(stream, clock=clock, interactive=False)
    root = logging.getLogger()
    saved_level, saved_verbosity = root.level, absl_logging.get_verbosity()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # As `stderr_to` does: any SavedModel written earlier in this process reset absl to WARNING.
    absl_logging.set_verbosity(absl_logging.INFO)
    yield stream, clock, handler
    root.removeHandler(handler)
    root.setLevel(saved_level)
    absl_logging.set_verbosity(saved_verbosity)


def test_tfx_logs_the_lines_the_handler_reads():
    from tfx.orchestration.local import local_dag_runner
    from tfx.orchestration.portable import launcher

    runner = inspect.getsource(local_dag_runner)
    assert "logging.info('Component %s is running.', node_id)" in runner
    assert "logging.info('Component %s is finished.', node_id)" in runner
    assert "logging.info('A cached execution %d is used.', execution.id)" in inspect.getsource(
        launcher)


def test_each_component_is_echoed_when_it_starts_and_ends_with_its_duration(echo):
    stream, clock, _ = echo
    absl_logging.info("Component %s is running.", "ImageExampleGen")
    absl_logging.info("Publishing output artifacts for execution 1")  # not echoed
    clock.now += 12.34
    absl_logging.info("Component %s is finished.", "ImageExampleGen")
    absl_logging.info("Component %s is running.", "StatisticsGen")
    absl_logging.info("A cached execution %d is used.", 7)
    clock.now += 0.5
    absl_logging.info("Component %s is finished.", "StatisticsGen")
    assert stream.getvalue().splitlines() == [
        "ImageExampleGen: running", "ImageExampleGen: done in 12.3 s",
        "StatisticsGen: running", "StatisticsGen: reused from cache in 0.5 s"]


def test_a_failed_component_is_closed_with_its_time(echo):
    stream, clock, handler = echo
    absl_logging.info("Component %s is running.", "Trainer")
    clock.now += 3.0
    assert handler.finish(failed=True) == "Trainer"
    assert handler.finish(failed=True) is None  # nothing open any more
    assert stream.getvalue().splitlines() == ["Trainer: running", "Trainer: failed after 3.0 s"]


def test_progress_records_are_echoed_and_others_are_not(echo):
    stream, _, _ = echo
    progress_logger().info("epoch %d/%d: loss %.2f", 2, 5, 0.25)
    logging.getLogger("tensorflow").info("epoch-like noise")
    logging.getLogger("some.library").warning("a warning for the log file only")
    assert stream.getvalue() == "  epoch 2/5: loss 0.25\n"


def test_ingestion_prints_the_total_and_each_quarter_without_a_terminal(echo):
    stream, _, _ = echo
    log = progress_logger()
    log.info("ingesting %d images", 8, extra={INGEST_TOTAL: 8})
    for _ in range(8):
        log.info("ingested 1 more image", extra={INGEST_DONE: 1})
    assert stream.getvalue().splitlines() == [
        "  ingesting 8 images", "  ingested 2/8 images", "  ingested 4/8 images",
        "  ingested 6/8 images", "  ingested 8/8 images"]


def test_images_found_by_listings_inside_beam_add_up_to_the_total(echo):
    stream, _, _ = echo
    log = progress_logger()
    log.info("listing and ingesting the images under %d folder(s)", 2, extra={INGEST_TOTAL: 0})
    log.info("found %d images under %s", 3, "train", extra={INGEST_FOUND: 3})
    log.info("read", extra={INGEST_DONE: 2})
    log.info("found %d images under %s", 1, "eval", extra={INGEST_FOUND: 1})
    log.info("read", extra={INGEST_DONE: 2})
    assert stream.getvalue().splitlines() == [
        "  listing and ingesting the images under 2 folder(s)", "  found 3 images under train",
        "  ingested 2/3 images", "  found 1 images under eval", "  ingested 4/4 images"]


def test_ingestion_draws_a_bar_in_place_on_a_terminal():
    stream, clock = io.StringIO(), _Clock()
    handler = ProgressHandler(stream, clock=clock, interactive=True)
    log = logging.getLogger("imgpipe.progress.test_bar")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        log.info("ingesting", extra={INGEST_TOTAL: 10})
        clock.now += 1
        log.info("tick", extra={INGEST_DONE: 5})
        log.info("tick", extra={INGEST_DONE: 1})  # within the redraw interval: not drawn
        absl_logging.info("ignored")  # other loggers never reach this one
        log.info("epoch 1/1: loss 0.1")  # a line closes the open bar first
        clock.now += 1
        log.info("tick", extra={INGEST_DONE: 4})
    finally:
        log.removeHandler(handler)
    half = "#" * 15 + "." * 15
    assert stream.getvalue() == (
        "  ingesting 10 images\n"
        f"\r  [{half}] 5/10 images\n"
        "  epoch 1/1: loss 0.1\n"
        f"\r  [{'#' * 30}] 10/10 images\n")


def test_absl_info_lines_survive_a_savedmodel_save_only_with_absl_verbosity_set(echo, tmp_path):
    """Why `imgpipe run` sets absl's verbosity: TF's SavedModel writer resets it to the flag's
    value (WARNING by default) after each save, and Transform saves before the Trainer runs."""
    import tensorflow as tf

    stream, _, _ = echo
    saved = absl_logging.get_verbosity()
    try:
        # As in a fresh process: the flag at its default, absl's logger deferring to the root.
        absl_logging.set_verbosity(-1)
        logging.getLogger("absl").setLevel(logging.NOTSET)
        absl_logging.info("Component %s is running.", "ImageExampleGen")
        tf.saved_model.save(tf.Module(), str(tmp_path / "a"))
        absl_logging.info("Component %s is running.", "Lost")
        absl_logging.set_verbosity(absl_logging.INFO)
        tf.saved_model.save(tf.Module(), str(tmp_path / "b"))
        absl_logging.info("Component %s is running.", "Trainer")
    finally:
        absl_logging.set_verbosity(saved)
    assert stream.getvalue().splitlines() == ["ImageExampleGen: running", "Trainer: running"]
