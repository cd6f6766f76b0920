"""Output folders that cannot take a run: a read-only mount, a full disk. Refused up front, in
one line, before anything is written. Real mounts (tmpfs), which CI can make: it runs as root.
A disk that fills while a run works is `disk_full_run_test.py`.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

BASE_ARGS = ("--weights", "none", "--image-size", "75", "--epochs", "1")


def _fill(folder: Path) -> None:
    """Writes into `folder` until its file system has no block left."""
    with open(folder / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
        with pytest.raises(OSError):
            f.write(b"\0" * 65536)
            f.flush()


@pytest.mark.parametrize("below", [False, True])
def test_a_read_only_output_is_refused_up_front(cli, tmpfs, tmp_path, tree_state, write_classes,
                                                below):
    data = write_classes(tmp_path / "data")
    read_only = tmpfs("ro", options="ro")
    output = read_only / "out" if below else read_only
    before = tree_state(data)
    line = cli("run", "--data", str(data), "--output", str(output), *BASE_ARGS
               ).assert_one_line_error(f"--output {output} cannot be written")
    assert "read-only file system" in line
    assert ("where it would be made" in line) == below
    assert tree_state(data) == before and not (read_only / "out").exists()


def test_an_output_on_a_full_disk_is_refused_up_front(cli, tmpfs, tmp_path, write_classes):
    data = write_classes(tmp_path / "data")
    full = tmpfs("full", size="256k")
    _fill(full)
    line = cli("run", "--data", str(data), "--output", str(full / "out"), *BASE_ARGS
               ).assert_one_line_error("cannot be written")
    assert "no space left on device" in line
    assert sorted(p.name for p in full.iterdir()) == ["filler"]


def test_a_disk_that_fills_outside_the_steps_is_one_line(cli, tmp_path, write_classes):
    # The run's own files (its summary, last_run.json) are written after the steps: a disk
    # that fills there is told as one full disk, not a traceback.
    data, output = write_classes(tmp_path / "data"), tmp_path / "out"

    def pipeline(config, layout, **_):
        raise OSError(errno.ENOSPC, "No space left on device", str(layout.summary_path))

    line = cli("run", "--data", str(data), "--output", str(output), *BASE_ARGS,
               on_pipeline=pipeline).assert_one_line_error("no space left on device")
    assert line == (f"imgpipe: error: no space left on device in {output} (while imgpipe run "
                    "wrote its own files); free space there and run the same command again: "
                    "the steps that finished are kept, and it reuses them")
