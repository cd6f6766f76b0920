"""What Beam's workers run for the image ExampleGen: one file in, one serialized example out.

Kept light on purpose. A Beam worker process imports the module of every function it runs when
it unpickles them; Beam's DirectRunner in multi-processing mode starts fresh workers for each
pipeline run, so an import here is paid by each worker on each run. This module imports Beam
and Pillow only; TensorFlow (for its decoder and `tf.train.Example`) is imported once per
worker in `setup`, and TFX, whose ExampleGen modules are heavy to import, never.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from components.image_example_gen.inspect import Unusable, inspect_image
from components.image_example_gen.report import QuarantinedFile
from trainer.contract import INGEST_DONE, progress_logger

QUARANTINED = "quarantined"
# `imgpipe run` echoes this logger's records to the terminal: the `imgpipe_ingest_done`
# attribute says how many more files were read since the last record.
# They reach it when Beam runs in this process (DirectRunner in_memory, the default).
PROGRESS = progress_logger()
PROGRESS_STEPS = 100  # at most about this many progress records per split


def split_tag(index: int) -> str:
    """The tagged output of output split `index`."""
    return f"split-{index}"


@dataclasses.dataclass(frozen=True)
class HashSplits:
    """TFX's output split by hash buckets: ExampleGen's `_PartitionFn`, for one feature.

    TFX hashes the partition feature's serialized `tf.train.Feature` with SHA-256 and takes it
    modulo the total of the buckets; the split is the first whose cumulative bucket count is
    above that. Repeated here, on the example this module builds, so that a worker needs no TFX
    (tests check it against TFX's own function).
    """

    feature: str  # the partition feature; '' hashes the whole example, as TFX does
    cumulative_buckets: tuple[int, ...]  # e.g. (4, 5) for train 4 / eval 1

    def index(self, example: Any) -> int:
        """The output split of a `tf.train.Example` (hashed whole when `feature` is empty)."""
        if self.feature:
            key = example.features.feature[self.feature].SerializeToString(deterministic=True)
        else:
            key = example.SerializeToString(deterministic=True)
        bucket = int(hashlib.sha256(key).hexdigest(), 16) % self.cumulative_buckets[-1]
        return bisect.bisect(self.cumulative_buckets, bucket)


class ToExample(beam.DoFn):
    """A candidate file -> its serialized example on its split's output, or a quarantine record.

    Candidates are (path, path relative to the data root, class name). Without `splits`, every
    example goes to output split 0 (an input split is an output split).
    """

    def __init__(self, class_names: Sequence[str], max_pixels: int,
                 splits: HashSplits | None = None, report_every: int = 1):
        self._class_names = tuple(class_names)
        self._max_pixels = max_pixels
        self._splits = splits
        self._make_example = None
        self._report_every = max(1, report_every)
        self._unreported = 0

    def finish_bundle(self) -> None:
        """Reports the files read since the last progress record."""
        if self._unreported:
            PROGRESS.info("read %d more files", self._unreported,
                          extra={INGEST_DONE: self._unreported})
            self._unreported = 0

    def setup(self) -> None:
        """TensorFlow, once per worker (for the decoder check and `tf.train.Example`)."""
        from components.image_example_gen import reader  # TF_USE_LEGACY_KERAS is set by now

        self._make_example = reader.make_example

    def process(self, candidate: tuple[str, str, str]) -> Iterator[Any]:
        """Reads, checks and converts one file."""
        self._unreported += 1
        if self._unreported >= self._report_every:
            self.finish_bundle()
        path, relative, class_name = candidate
        try:
            with FileSystems.open(path) as handle:
                data = handle.read()
        except Exception as error:  # noqa: BLE001  (any filesystem's own errors)
            yield beam.pvalue.TaggedOutput(QUARANTINED, QuarantinedFile(
                relative, "unreadable", f"unreadable ({type(error).__name__}: {error})",
                class_name).__dict__)
            return
        try:
            info = inspect_image(data, self._max_pixels)
        except Unusable as verdict:
            yield beam.pvalue.TaggedOutput(QUARANTINED, QuarantinedFile(
                relative, verdict.kind, verdict.reason, class_name).__dict__)
            return
        example = self._make_example(data, self._class_names.index(class_name), class_name,
                                     relative, info.height, info.width, info.format)
        index = self._splits.index(example) if self._splits else 0
        yield beam.pvalue.TaggedOutput(split_tag(index), example.SerializeToString())


def to_examples(pipeline: beam.Pipeline, name: str, candidates: list[tuple[str, str, str]],
                to_example: ToExample, outputs: int, quarantine_prefix: str
                ) -> list[beam.pvalue.PCollection]:
    """The serialized examples of each of `outputs` splits; quarantine records to text files.

    The candidates are shuffled across workers before conversion (`Spread`), so each split's
    examples are written in no particular order of path or class.
    """
    results = (
        pipeline
        | f"Candidates[{name}]" >> beam.Create(candidates)
        | f"Spread[{name}]" >> beam.Reshuffle()
        | f"ToExample[{name}]" >> beam.ParDo(to_example).with_outputs(
            QUARANTINED, *[split_tag(i) for i in range(outputs)])
    )
    _ = (results[QUARANTINED]
         | f"AsJson[{name}]" >> beam.Map(json.dumps, ensure_ascii=False)
         | f"WriteQuarantined[{name}]" >> beam.io.WriteToText(quarantine_prefix,
                                                              file_name_suffix=".jsonl"))
    return [results[split_tag(i)] for i in range(outputs)]
