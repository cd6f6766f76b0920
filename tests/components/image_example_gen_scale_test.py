"""ExampleGen at scale: the submitted Beam pipeline does not grow with the number of files.

Issue 18, item 7: a `beam.Create` of every path cost about 70 bytes a file in the submitted
pipeline (7 MB at 100k files). The executor now puts only the split folders in the graph and
lists them inside Beam. The test builds the executor's real pipeline through `Do` and stops it
at `run()`, where a runner would submit it, measuring the pipeline proto
(`Pipeline.to_runner_api()`, what the PortableRunner sends to a job service).
"""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import pytest
from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor

from components.image_example_gen import standalone
from components.image_example_gen.executor import Executor


class _SubmittedError(Exception):
    """Raised by `_MeasuredPipeline.run` instead of running: the graph is all we need."""

    def __init__(self, size: int):
        super().__init__(size)
        self.size = size


class _MeasuredPipeline(beam.Pipeline):
    def run(self, test_runner_api="AUTO"):
        raise _SubmittedError(self.to_runner_api().ByteSize())


def _submitted_size(data_root: Path, out: Path) -> int:
    properties = standalone.exec_properties(str(data_root))
    examples = standalone.examples_artifact(str(out), properties)
    executor = Executor(BaseBeamExecutor.Context(make_beam_pipeline_fn=_MeasuredPipeline))
    with pytest.raises(_SubmittedError) as submitted:
        executor.Do({}, {"examples": [examples]}, properties)
    return submitted.value.size


def _folder(root: Path, files_per_class: int) -> Path:
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(files_per_class):  # never opened: the pipeline is not run
            (root / name / f"image_{i:05d}.jpg").write_bytes(b"")
    return root


def test_the_submitted_pipeline_does_not_grow_with_the_number_of_files(tmp_path):
    # Same-length folder names, so that only the number of files differs.
    few = _submitted_size(_folder(tmp_path / "a", 2), tmp_path / "out-a")
    many = _submitted_size(_folder(tmp_path / "b", 500), tmp_path / "out-b")
    # 996 more files at ~70 bytes each would be ~70 kB; a few bytes of slack for compression.
    assert abs(many - few) < 64, (few, many)
    assert few < 200_000
