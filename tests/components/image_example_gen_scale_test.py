"""ExampleGen at scale: the submitted Beam pipeline does not grow with the number of files.

Issue 18, item 7: a `beam.Create` of every path cost about 70 bytes a file in the submitted
pipeline (7 MB at 100k files). The executor now puts only the split folders in the graph and
lists them inside Beam. The test builds the executor's real pipeline through `Do` and stops it
at `run()`, where a runner would submit it, measuring the pipeline proto
(`Pipeline.to_runner_api()`, what the PortableRunner sends to a job service). And what the
listing hands the shuffle, which a runner holding a shuffle in memory keeps per file, is a file
name, not its paths (time and memory at 100k: `benchmarks/ingest_scale.py`).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import apache_beam as beam
import pytest
from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor

from components.image_example_gen import convert, standalone
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


def test_the_listing_carries_file_names_by_folder_and_the_reader_joins_them_back(tmp_path):
    # What crosses the shuffle is what a runner holds per file (the DirectRunner in memory):
    # one folder and its file names per list, a few bytes of pickle a file beyond its name.
    data = _folder(tmp_path / "data", 600)
    listed = list(convert.ListFiles(str(data)).process(""))
    lists = [item for item in listed if not isinstance(item, beam.pvalue.TaggedOutput)]
    assert sorted((folder, class_name, len(names)) for folder, class_name, names in lists) == [
        ("cat", "cat", 88), ("cat", "cat", 256), ("cat", "cat", 256),
        ("dog", "dog", 88), ("dog", "dog", 256), ("dog", "dog", 256)]
    names_bytes = sum(len(name) for _, _, names in lists for name in names)
    assert len(pickle.dumps(lists)) - names_bytes < 4 * 1200, len(pickle.dumps(lists))

    reader = convert.ToExample(str(data), ("cat", "dog"), 10**8)
    reader.setup()
    out = list(reader.process(("dog", "dog", ["image_00007.jpg"])))
    # The file is empty: quarantined by content, under its own relative path and class.
    (record,) = [o.value for o in out]
    assert (record["path"], record["class_name"]) == ("dog/image_00007.jpg", "dog"), record
    assert record["kind"] != "unreadable", record  # read: the path was joined right
    # A path that does not join back travels whole: read from there, named as listed.
    elsewhere = str(data / "cat" / "image_00001.jpg")
    (odd,) = [o.value for o in reader.process(("dog", "dog", ["gone.jpg"], elsewhere))]
    assert (odd["path"], odd["kind"]) == ("dog/gone.jpg", record["kind"]), odd
    (gone,) = [o.value for o in reader.process(("dog", "dog", ["gone.jpg"]))]
    assert gone["kind"] == "unreadable", gone
