"""A full disk recognized in every wrapping a run meets, and the run's log on a disk that is full.

`/dev/full` is a real device that fails every write with ENOSPC: the log file on it is a log on
a full disk, without a mount.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from pipeline.local.disk_space import disk_full_error, full_folder, is_disk_full
from pipeline.local.logs import stderr_to

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


def _raised_from(outer: BaseException, inner: BaseException) -> BaseException:
    """`outer`, raised while handling `inner` (its __context__), as Python chains them."""
    try:
        try:
            raise inner
        except BaseException:
            raise outer  # noqa: B904  (the implicit chain is what is tested)
    except BaseException as error:
        return error


@pytest.mark.parametrize("error", [
    ENOSPC,
    # Beam re-raises with the step's name: the errno is gone, the message stays.
    RuntimeError("OSError: [Errno 28] No space left on device [while running 'WriteSplit']"),
    # TensorFlow's tf.io.gfile and checkpoints (ResourceExhaustedError's message).
    Exception("/out/serving/m/.tmp-1-ab/variables/variables.data-00000-of-00001; "
              "No space left on device"),
    # ML Metadata's SQLite.
    Exception("Error when executing query: database or disk is full query: UPDATE `Execution`"),
    # TFX failing to record a failure, while handling the disk's own error.
    _raised_from(Exception("could not publish the failed execution"), ENOSPC),
], ids=["errno", "beam", "tensorflow", "sqlite", "chained"])
def test_a_full_disk_is_found_in_any_wrapping(error):
    assert is_disk_full(error)


@pytest.mark.parametrize("error", [
    OSError(errno.EACCES, "Permission denied"),
    Exception("OOM when allocating tensor with shape[64,2048,3,3]"),  # memory, not disk
    _raised_from(ValueError("bad"), KeyError("x")),
])
def test_other_errors_are_not_a_full_disk(error):
    assert not is_disk_full(error)


def test_a_chain_that_loops_ends(tmp_path):
    first, second = ValueError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first
    assert not is_disk_full(first)


def test_the_folder_named_is_the_output_unless_the_file_is_elsewhere(tmp_path):
    output = tmp_path / "out"
    inside = OSError(errno.ENOSPC, "No space left on device", str(output / "logs" / "run.log"))
    (tmp_path / "tmp").mkdir()
    elsewhere = OSError(errno.ENOSPC, "No space left on device",
                        str(tmp_path / "tmp" / "removed" / "x.tfrecord"))
    assert full_folder(inside, output) == output
    assert full_folder(ENOSPC, output) == output
    assert full_folder(_raised_from(RuntimeError("x"), elsewhere), output) == tmp_path / "tmp"
    line = str(disk_full_error(inside, output, "in component Trainer"))
    assert line == (f"no space left on device in {output} (in component Trainer); free space "
                    "there and run the same command again: the steps that finished are kept, "
                    "and it reuses them")


def _stderr_target() -> str:
    return os.readlink(f"/proc/self/fd/{2}")


def test_a_log_on_a_full_disk_drops_records_without_a_traceback_and_gives_fd_2_back(capfd):
    before = _stderr_target()
    with pytest.raises(OSError) as raised, stderr_to(Path("/dev/full")):
        assert _stderr_target() == "/dev/full"
        logging.getLogger("imgpipe.test").info("a record the disk cannot take")
        logging.getLogger("imgpipe.test").info("and another")
    # The run itself went well, so the log's last lines that did not fit are not hidden.
    assert raised.value.errno == errno.ENOSPC
    assert _stderr_target() == before
    assert logging.raiseExceptions  # set back
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Logging error" not in err, err


def test_the_runs_own_error_wins_over_the_logs_last_flush(capfd):
    before = _stderr_target()
    with pytest.raises(KeyError, match="the step's error"), stderr_to(Path("/dev/full")):
        logging.getLogger("imgpipe.test").info("a record the disk cannot take")
        raise KeyError("the step's error")
    assert _stderr_target() == before
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Logging error" not in err, err


class _Summary:
    def __init__(self, run: str) -> None:
        self.run = run

    def to_json(self) -> dict:
        return {"run": self.run}


def _write_half(monkeypatch) -> None:
    """Path.write_text and write_bytes write the first 5 characters or bytes, then find the
    disk full."""
    for name in ("write_text", "write_bytes"):
        real = getattr(Path, name)

        def write_half(self, data, *args, real=real, **kwargs):
            real(self, data[:5], *args, **kwargs)
            raise OSError(errno.ENOSPC, "No space left on device", str(self))

        monkeypatch.setattr(Path, name, write_half)


def test_a_summary_the_disk_cannot_take_leaves_the_last_one_whole(tmp_path, monkeypatch):
    from pipeline.local.runner import write_summary

    path = tmp_path / "summary.json"
    write_summary(path, _Summary("first"))
    last = path.read_bytes()
    _write_half(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        write_summary(path, _Summary("second"))
    assert path.read_bytes() == last and b'"first"' in last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_a_run_record_the_disk_cannot_take_leaves_the_last_one_whole(tmp_path, monkeypatch):
    from pipeline.local.new_data import DataState, read_last_run, record_run

    record_run(tmp_path, DataState(data="/data", latest_span=1))
    _write_half(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        record_run(tmp_path, DataState(data="/data", latest_span=2))
    assert read_last_run(tmp_path).latest_span == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_run.json"]
