"""`kill -9` of `imgpipe run` during training; the re-run reuses the finished steps and completes.

Two real pipeline runs on 2 classes x 20 images at 75 px with a random base (the cheapest run
there is): the first is SIGKILLed, its whole process group, once the Trainer's `run_fn` has
logged its device plan; the second, the same command, must complete, with ingestion, statistics,
schema and Transform taken from TFX's cache (their executions CACHED in ML Metadata), and the
store must pass SQLite's integrity check with the killed run's history still in it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from pipeline.local.sample_data import write_sample_data

MODEL = "crash"
TRAINING_STARTED = "devices: "  # trainer/run.py logs the device plan as run_fn starts
RUN_ARGS = ("--weights", "none", "--image-size", "75", "--epochs", "2", "--batch-size", "8",
            "--no-augment", "--dense-units", "16", "--accuracy-threshold", "0",
            "--model-name", MODEL, "--no-report")
UPSTREAM = ("ImageExampleGen", "StatisticsGen", "SchemaGen", "Transform")
TIMEOUT_SECONDS = 600

pytestmark = pytest.mark.slow


def _executions(metadata: Path) -> dict[str, list[str]]:
    """Component id -> the states of its executions, oldest first, read with ML Metadata."""
    from pipeline.results.metadata import STATE_NAMES, open_store

    store = open_store(metadata)
    states: dict[str, list[str]] = {}
    for execution in sorted(store.get_executions(), key=lambda e: e.id):
        nodes = [c.name for c in store.get_contexts_by_execution(execution.id)
                 if c.name.startswith(f"{MODEL}.")]
        if nodes:
            states.setdefault(nodes[0][len(MODEL) + 1:], []).append(
                STATE_NAMES.get(execution.last_known_state, "unknown"))
    return states


@pytest.fixture(scope="module")
def crash(tmp_path_factory, imgpipe):
    root = tmp_path_factory.mktemp("crash")
    data, output = root / "data", root / "out"
    write_sample_data(data, ("circle", "cross"), 20, 75, 0)
    args = ("run", "--data", str(data), "--output", str(output), *RUN_ARGS)
    first = imgpipe.start(*args)
    deadline = time.monotonic() + TIMEOUT_SECONDS
    started = None
    while started is None:
        assert first.poll() is None, imgpipe.finish(first)
        assert time.monotonic() < deadline, "training never started"
        logs = list((output / "logs").glob("run-*.log")) if (output / "logs").is_dir() else []
        if logs and TRAINING_STARTED in logs[0].read_text(errors="replace"):
            started = time.monotonic()
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    killed = imgpipe.finish(first, timeout=60)
    after_kill = _executions(output / "metadata.sqlite")
    second = imgpipe.run(*args, timeout=TIMEOUT_SECONDS)
    return {"output": output, "killed": killed, "after_kill": after_kill, "second": second,
            "after_rerun": _executions(output / "metadata.sqlite")}


def test_the_first_run_died_during_training(crash):
    assert crash["killed"].code == -signal.SIGKILL
    after = crash["after_kill"]
    assert all(after[name] == ["complete"] for name in UPSTREAM), after
    assert after["Trainer"] == ["running"]  # killed mid-execution, as ML Metadata saw it
    assert "Pusher" not in after


def test_the_rerun_completes_and_pushes(crash):
    second = crash["second"]
    assert second.code == 0, second.stdout + second.stderr
    summary = json.loads((crash["output"] / "summary.json").read_text())
    assert summary["components"]["Trainer"] == "complete"
    assert summary["pushed_path"] == str(crash["output"] / "serving" / MODEL / "1")
    assert (crash["output"] / "serving" / MODEL / "1" / "saved_model.pb").is_file()


def test_the_rerun_reused_the_finished_upstream_steps(crash):
    after = crash["after_rerun"]
    for name in UPSTREAM:
        assert after[name] == ["complete", "cached"], (name, after[name])
    assert after["Trainer"] == ["running", "complete"]


def test_ml_metadata_is_intact(crash):
    metadata = crash["output"] / "metadata.sqlite"
    with sqlite3.connect(f"{metadata.as_uri()}?mode=ro", uri=True) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        runs = connection.execute(
            "SELECT COUNT(*) FROM Context c JOIN Type t ON c.type_id = t.id "
            "WHERE t.name = 'pipeline_run'").fetchone()[0]
    assert runs == 2  # the killed run's history is kept beside the new one
