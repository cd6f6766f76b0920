"""A disk that fills under the commands other than `imgpipe run`: one line, exit 2, no traceback.

`run`'s own cases are `disk_full_run_test.py`. Here, on real tmpfs file systems (CI runs as
root): `sample-data` writing into a 64 KiB disk, and `kfp run-local` with a package whose one
task writes 2 MiB into its output under a 1 MiB pipeline root (the task runs as a subprocess,
so what tells the runner is the task's log, as a pod's log would).
"""

from __future__ import annotations

import json
from pathlib import Path

# The task's container: its output artifact's file is written larger than the disk.
FILLING_SCRIPT = """\
import json, pathlib, sys
pathlib.Path(sys.argv[1]).write_bytes(b"x" * (2 << 20))
"""


def _filling_package(tmp_path: Path, root: Path) -> Path:
    spec = {
        "pipelineInfo": {"name": "filling"}, "schemaVersion": "2.1.0",
        "defaultPipelineRoot": str(root),
        "root": {"dag": {"tasks": {"write": {
            "taskInfo": {"name": "write"}, "componentRef": {"name": "write"}}}}},
        "components": {"write": {
            "executorLabel": "write_executor",
            "outputDefinitions": {"artifacts": {"out": {"artifactType": {
                "schemaTitle": "system.Artifact"}}}}}},
        "deploymentSpec": {"executors": {"write_executor": {"container": {
            "image": "img:1", "command": ["python", "-c", FILLING_SCRIPT],
            "args": ["{{$.outputs.artifacts['out'].path}}"]}}}},
    }
    package = tmp_path / "filling.yaml"
    package.write_text(json.dumps(spec))
    return package


def _one_line(result) -> str:
    assert result.code == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_sample_data_on_a_full_disk_says_where_and_that_the_same_command_rewrites_it(
        imgpipe, tmpfs):
    out = tmpfs("disk", size="64k") / "data"
    line = _one_line(imgpipe.run("sample-data", "--per-class", "50", str(out)))
    assert line == (f"imgpipe: error: no space left on device in {out} (imgpipe sample-data); "
                    f"free space there and run the same command again: {out} holds part of the "
                    "images, which it rewrites whole")


def test_kfp_run_local_names_the_task_the_disk_stopped(imgpipe, tmpfs, tmp_path):
    root = tmpfs("root", size="1m")
    package = _filling_package(tmp_path, root)
    line = _one_line(imgpipe.run("kfp", "run-local", str(package), "--pipeline-root", str(root),
                                 "--backend", "kfp"))
    assert line.startswith(f"imgpipe: error: no space left on device under {root} (task "
                           "write; "), line
    assert line.endswith("); free space there and run the same command again"), line
    assert not (root / ".run-local" / "store.partial").exists()  # no half-written store
