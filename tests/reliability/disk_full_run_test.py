"""`imgpipe run` on an output whose disk fills while it works, at three points, then with space.

All on one output folder on a real tmpfs (CI runs as root), with the cheapest run there is
(2 classes x 20 images at 75 px, a random base, one epoch). A filler file takes the disk's
free space once a log line shows the run has reached the point:
1. ingestion: the disk is filled when the ExampleGen starts, before it writes its examples;
2. training: filled when `run_fn` starts, before the Trainer writes its logs and model;
3. the push: when the load check starts, a served version 1 is put in place (the trained model,
   copied in as a push would) and the disk is left with 1.5 times the model's size, so the
   Pusher's own artifact copy fits and its staged version 2 for TF Serving does not.
Each stopped run must exit 2 with one line naming the folder, the step, and what to do (free
space, run the same command again), no traceback; hold no lock; serve no new version, whole or
partial, and leave the served one byte for byte as it was; and leave ML Metadata passing
SQLite's integrity check. After each, the filler is deleted and the next run reuses every step
that finished; the last one pushes version 2 beside the untouched version 1.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from pipeline.local.sample_data import write_sample_data

MODEL = "full"
RUN_ARGS = ("--weights", "none", "--image-size", "75", "--epochs", "1", "--batch-size", "8",
            "--no-augment", "--dense-units", "16", "--accuracy-threshold", "0",
            "--model-name", MODEL, "--no-report")
UPSTREAM = ("ImageExampleGen", "StatisticsGen", "SchemaGen", "Transform")
TRAINING_STARTED = "devices: "  # trainer/run.py logs the device plan as run_fn starts
TIMEOUT_SECONDS = 600
# Where each point's filler goes in, and what the step that fails there is.
POINTS = {"ingest": ("Component ImageExampleGen is running.", "ImageExampleGen"),
          "training": (TRAINING_STARTED, "Trainer"),
          "push": ("Component ModelLoadCheck is running.", "Pusher")}

pytestmark = pytest.mark.slow


def _free_bytes(folder: Path) -> int:
    status = os.statvfs(folder)
    return status.f_bavail * status.f_frsize


def _fill(disk: Path, leave: int) -> Path:
    """Writes disk/filler until only `leave` bytes are free (0: until the disk refuses)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while (room := _free_bytes(disk) - leave) > 0 or not leave:
            try:
                os.write(fd, b"\0" * (min(room, 1 << 20) if leave else 1 << 20))
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
                break
    finally:
        os.close(fd)
    return filler


def _latest_model(output: Path) -> Path:
    """The SavedModel the latest Trainer execution wrote."""
    models = (output / "pipeline" / "Trainer" / "model").iterdir()
    return max(models, key=lambda p: int(p.name)) / "Format-Serving"


def _files(root: Path) -> dict[str, int]:
    """Every file under `root` and its size."""
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*")
            if p.is_file()}


def _served(output: Path) -> list[str]:
    """Every entry of the model's base path: versions, and anything a push left."""
    base = output / "serving" / MODEL
    return sorted(os.listdir(base)) if base.is_dir() else []


def _fill_during(imgpipe, run_record, tree_state, args, disk: Path, output: Path,
                 point: str) -> dict:
    """Starts a run, fills the disk at `point`'s marker; what the run did and left."""
    marker, _ = POINTS[point]
    process = imgpipe.start(*args)
    run_record.wait_for_log(process, output, marker)
    leave, served_before, version_1 = 0, None, output / "serving" / MODEL / "1"
    if point == "push":
        model = _latest_model(output)
        shutil.copytree(model, version_1)
        served_before = tree_state(version_1)
        leave = int(1.5 * sum(_files(model).values()))
    filler = _fill(disk, leave)
    result = imgpipe.finish(process, timeout=TIMEOUT_SECONDS)
    metadata = output / "metadata.sqlite"
    left = {"result": result, "lock_free": run_record.lock_is_free(output), "left_room": leave,
            "integrity": run_record.integrity(metadata), "served": _served(output),
            "executions": run_record.executions(metadata, MODEL),
            "served_before": served_before,
            "served_after": tree_state(version_1) if served_before else None}
    filler.unlink()  # space returns
    return left


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory, imgpipe, run_record, tmpfs_under, tree_state):
    root = tmp_path_factory.mktemp("full_disk")
    data = root / "data"
    write_sample_data(data, ("circle", "cross"), 20, 75, 0)
    with tmpfs_under(root) as mount:
        disk = mount("disk", size="512m")
        output = disk / "out"
        args = ("run", "--data", str(data), "--output", str(output), *RUN_ARGS)
        runs = {point: _fill_during(imgpipe, run_record, tree_state, args, disk, output, point)
                for point in POINTS}
        final = imgpipe.run(*args, timeout=TIMEOUT_SECONDS)
        metadata = output / "metadata.sqlite"
        yield {"output": output, "runs": runs, "final": final,
               "executions": run_record.executions(metadata, MODEL),
               "integrity": run_record.integrity(metadata), "served": _served(output),
               "served_1": tree_state(output / "serving" / MODEL / "1")}


@pytest.mark.parametrize("point", list(POINTS))
def test_a_full_disk_stops_the_run_in_one_line(full_disk, point):
    run = full_disk["runs"][point]
    _, step = POINTS[point]
    assert run["result"].code == 2, (run["result"].stdout, run["result"].stderr)
    lines = run["result"].stderr.strip().splitlines()
    assert lines == [f"imgpipe: error: no space left on device in {full_disk['output']} "
                     f"(in component {step}); free space there and run the same command again: "
                     "the steps that finished are kept, and it reuses them"], lines
    assert "Traceback" not in run["result"].stdout + run["result"].stderr


@pytest.mark.parametrize("point", list(POINTS))
def test_a_full_disk_corrupts_nothing_and_serves_nothing_new(full_disk, point):
    run = full_disk["runs"][point]
    assert run["lock_free"]
    assert run["integrity"] == "ok"
    # No new version, and no staging folder left beside the versions.
    assert run["served"] == (["1"] if point == "push" else [])


def test_the_version_served_before_the_failed_push_is_untouched(full_disk):
    push = full_disk["runs"]["push"]
    assert "saved_model.pb" in push["served_before"]
    assert push["served_after"] == push["served_before"]
    assert full_disk["served_1"] == push["served_before"]  # and after the next push


def test_each_fill_landed_where_it_was_meant_to(full_disk):
    ingest, training, push = (full_disk["runs"][p]["executions"] for p in POINTS)
    # ML Metadata cannot record a failure on a full disk: the stopped step may stay "running".
    assert "complete" not in ingest.get("ImageExampleGen", []) and "Trainer" not in ingest
    assert training["Transform"][-1] == "complete"
    assert "complete" not in training["Trainer"]
    assert push["ModelLoadCheck"][-1] == "complete"
    assert push["Pusher"][-1] != "complete"
    # At the push the disk had room for the Pusher's own copy, not for the staged version.
    assert full_disk["runs"]["push"]["left_room"] > 0


def test_the_same_command_completes_once_space_returns(full_disk):
    final = full_disk["final"]
    assert final.code == 0, final.stdout + final.stderr
    after = full_disk["executions"]
    for name in UPSTREAM:  # each finished once, in the first run that got there, then reused
        assert after[name].count("complete") == 1, (name, after[name])
        assert after[name][-1] == "cached", (name, after[name])
    assert after["Pusher"][-1] == "complete"
    assert full_disk["integrity"] == "ok"
    output = full_disk["output"]
    summary = json.loads((output / "summary.json").read_text())
    assert summary["pushed_path"] == str(output / "serving" / MODEL / "2")
    assert full_disk["served"] == [".last_version", "1", "2"]
    copies = (output / "pipeline" / "Pusher" / "pushed_model").iterdir()
    pushed = _files(output / "serving" / MODEL / "2")
    assert pushed == _files(max(copies, key=lambda p: int(p.name)))
    assert "saved_model.pb" in pushed
