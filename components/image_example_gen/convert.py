"""What Beam's workers run for the image ExampleGen: folders listed, files read and converted.

The Beam graph holds only the split folders (`beam.Create` of a few roots): `ListFiles` walks
each on a worker and classifies every file (`files.classify`: candidate image, system file
skipped, or quarantined by its path), `Reshuffle` fans the candidates out, and `ToExample`
reads, checks and converts each one. So the submitted pipeline does not grow with the number of
files (a `beam.Create` of every path cost about 70 bytes a file, 7 MB at 100k files).

Kept light on purpose. A Beam worker process imports the module of every function it runs when
it unpickles them; Beam's DirectRunner in multi-processing mode starts fresh workers for each
pipeline run, so an import here is paid by each worker on each run. This module imports Beam
and Pillow only; TensorFlow (for its file listing, decoder and `tf.train.Example`) is imported
once per worker in `setup`, and TFX, whose ExampleGen modules are heavy to import, never.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
import logging
import os
import posixpath
import time
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from components.image_example_gen import files
from components.image_example_gen.inspect import Unusable, inspect_image
from components.image_example_gen.report import QuarantinedFile, SkippedFile
from trainer.contract import INGEST_DONE, INGEST_FOUND, progress_logger

QUARANTINED = "quarantined"
# `imgpipe run` echoes this logger's records to the terminal: the `imgpipe_ingest_done`
# attribute says how many more files were read since the last record.
# They reach it when Beam runs in this process (DirectRunner in_memory, the default).
PROGRESS = progress_logger()
PROGRESS_SECONDS = 1.0  # at most one progress record a second per DoFn instance
# Candidates travel in lists of this many through the shuffle: a runner that holds a shuffle in
# memory (the DirectRunner) pays its per-element overhead per list, not per file, and a list is
# still a small unit of work to spread across workers.
CANDIDATES_PER_ELEMENT = 256
SKIPPED = "skipped"
COUNTS = "counts"


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


class ListFiles(beam.DoFn):
    """A split folder -> its candidate images; its skipped and path-quarantined files apart.

    Each input is a folder relative to the data root (a split's root, or an earlier span's in a
    window). Candidates go to the main output in lists: `(folder, class name, file names)`, up to
    `CANDIDATES_PER_ELEMENT` names of one folder, the folder relative to the data root
    (`ToExample` joins them to the root again; a path that would not join back so, never seen,
    travels alone with its full path as a fourth item). So the shuffle carries a file's name,
    not its full path twice, and its per-element cost once per list. System files
    go to `SKIPPED`, files that cannot be an image of a class by their path to `QUARANTINED`
    (both as report records), and one `COUNTS` record per folder: its data
    files (all but the skipped ones) per class, which the executor needs for its counts.
    """

    def __init__(self, input_base: str):
        self._input_base = input_base

    def process(self, root: str) -> Iterator[Any]:
        """Walks one folder, one directory listing at a time."""
        per_class: dict[str, int] = {}
        candidates = 0
        batch: tuple[str, str, list[str]] | None = None  # (folder, class name, file names)
        for found in files.iter_files(self._input_base, root):
            if found.skipped:
                yield beam.pvalue.TaggedOutput(SKIPPED, SkippedFile(
                    found.relative, found.problem[1]).__dict__)
                continue
            key = found.class_name or ""
            per_class[key] = per_class.get(key, 0) + 1
            if found.problem:
                yield beam.pvalue.TaggedOutput(QUARANTINED, QuarantinedFile(
                    found.relative, *found.problem, found.class_name).__dict__)
                continue
            candidates += 1
            folder, name = posixpath.split(found.relative)
            if posixpath.join(self._input_base, found.relative) != found.path:
                yield folder, found.class_name, [name], found.path
                continue
            if batch and (batch[:2] != (folder, found.class_name)
                          or len(batch[2]) == CANDIDATES_PER_ELEMENT):
                yield batch
                batch = None
            batch = batch or (folder, found.class_name, [])
            batch[2].append(name)
        if batch:
            yield batch
        PROGRESS.info("found %d images under %s", candidates, root or ".",
                      extra={INGEST_FOUND: candidates})
        yield beam.pvalue.TaggedOutput(COUNTS, {"root": root, "data_per_class": per_class})


class ToExample(beam.DoFn):
    """A candidate file -> its serialized example on its split's output, or a quarantine record.

    Candidates come in lists from `ListFiles`. Without `splits`, every example goes to output
    split 0 (an input split is an output split).
    """

    def __init__(self, input_base: str, class_names: Sequence[str], max_pixels: int,
                 splits: HashSplits | None = None):
        self._input_base = input_base
        self._class_names = tuple(class_names)
        self._max_pixels = max_pixels
        self._splits = splits
        self._make_example = None
        self._unreported = 0
        self._reported_at = 0.0

    def finish_bundle(self) -> None:
        """Reports the files read since the last progress record."""
        if self._unreported:
            PROGRESS.info("read %d more files", self._unreported,
                          extra={INGEST_DONE: self._unreported})
            self._unreported = 0
        self._reported_at = time.monotonic()

    def setup(self) -> None:
        """TensorFlow, once per worker (for the decoder check and `tf.train.Example`)."""
        from components.image_example_gen import reader  # TF_USE_LEGACY_KERAS is set by now

        self._make_example = reader.make_example
        self._reported_at = time.monotonic()
        # Where this code was imported from, and by which process: on external workers, the
        # installed package (tests/e2e/beam_workers_test.py reads this line in the worker logs).
        logging.getLogger(__name__).info("imgpipe ToExample set up in process %d from %s",
                                         os.getpid(), __file__)

    def process(self, candidates: tuple[Any, ...]) -> Iterator[Any]:
        """Reads, checks and converts one folder's list of files (see `ListFiles`)."""
        folder, class_name, names = candidates[:3]
        for name in names:
            relative = posixpath.join(folder, name)
            path = candidates[3] if len(candidates) > 3 else posixpath.join(self._input_base,
                                                                            relative)
            yield from self._convert(path, relative, class_name)

    def _convert(self, path: str, relative: str, class_name: str) -> Iterator[Any]:
        """Reads, checks and converts one file."""
        self._unreported += 1
        if time.monotonic() - self._reported_at >= PROGRESS_SECONDS:
            self.finish_bundle()
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


def to_examples(pipeline: beam.Pipeline, name: str, input_base: str, roots: Sequence[str],
                to_example: ToExample, outputs: int, parts_prefix: str
                ) -> list[beam.pvalue.PCollection]:
    """The serialized examples of each of `outputs` splits; the reports' records to text files.

    Only `roots` (folders relative to `input_base`) are in the graph: the files are listed on
    the workers, then shuffled across them before conversion (`Spread`), so each split's
    examples are written in no particular order of path or class. Quarantined, skipped and
    count records go to `<parts_prefix>-*.jsonl`, one JSON object a line, its kind in `record`
    (one writer: each `WriteToText` adds stages, which the DirectRunner pays on every run).
    """
    listed = (
        pipeline
        | f"Roots[{name}]" >> beam.Create(list(roots))
        | f"List[{name}]" >> beam.ParDo(ListFiles(input_base)).with_outputs(
            QUARANTINED, SKIPPED, COUNTS, main="candidates")
    )
    results = (
        listed.candidates
        | f"Spread[{name}]" >> beam.Reshuffle()
        | f"ToExample[{name}]" >> beam.ParDo(to_example).with_outputs(
            QUARANTINED, *[split_tag(i) for i in range(outputs)])
    )
    records = [records | f"Tag[{name}][{label}]" >> beam.Map(_tagged, kind)
               for label, kind, records in (
                   ("quarantined by path", QUARANTINED, listed[QUARANTINED]),
                   ("quarantined by content", QUARANTINED, results[QUARANTINED]),
                   ("skipped", SKIPPED, listed[SKIPPED]), ("counts", COUNTS, listed[COUNTS]))]
    _ = (records
         | f"Records[{name}]" >> beam.Flatten()
         | f"WriteRecords[{name}]" >> beam.io.WriteToText(parts_prefix,
                                                          file_name_suffix=".jsonl"))
    return [results[split_tag(i)] for i in range(outputs)]


def _tagged(record: dict[str, Any], kind: str) -> str:
    """A report record as one JSON line, with its kind (`QUARANTINED`, `SKIPPED`, `COUNTS`)."""
    return json.dumps({"record": kind, **record}, ensure_ascii=False)
