"""The image ExampleGen's executor: every file ingested, quarantined or skipped, in TFX's layout.

`Do` resolves which folders each split reads (the driver has already put the chosen span into
the patterns; with a span window, the folders of the earlier spans of the window are read too)
and the class names (the class folders directly under them: a cheap listing), and hands only
those folders to Beam. Beam lists every file under them on its workers, skips system files
(`files.classify`: listed apart, never counted as quarantined), quarantines what cannot be a
labelled image by its path, then reads, checks and converts the rest in parallel
(`convert.py`, the only code Beam's workers import). The file list is never in the submitted
pipeline, so its size does not grow with the data. Beam writes the quarantined and skipped
files and per-folder counts beside the examples; `Do` then merges them into the quarantine and
skipped reports, records the counts and class names on the Examples artifact, and fails the
component when the input is not fit to train on (too many quarantined files, or a class with no
image).

The Beam pipeline is this executor's own (`GenerateExamplesByBeam`, TFX's extension point, and
the writing in `Do`), with TFX's semantics: output splits by TFX's hash of the partition
feature, gzipped TFRecords named as TFX names them, payload and file format properties. It
differs from TFX's in two ways that keep workers light and memory flat: the split is chosen in
the same step that makes the example, and the examples are written without a second shuffle
(the candidates are already shuffled before conversion).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import posixpath
from typing import Any

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen import utils, write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components import stop
from components.image_example_gen import convert, files, properties
from components.image_example_gen.report import (
    REPORT_FILE,
    SKIPPED_FILE,
    IngestReport,
    QuarantinedFile,
    SkippedFile,
)
from components.image_example_gen.settings import IngestSettings, window_from_exec_properties
from trainer.contract import INGEST_TOTAL

__all__ = ["Executor", "IngestSettings"]

_PLAN_KEY = "_image_ingest_plan"
_PARTS_DIR = ".quarantine-parts"


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What Beam is given: the folders of each split pattern, and where to report."""

    input_base: str
    roots: dict[str, list[str]]  # pattern -> folders relative to input_base
    class_names: tuple[str, ...]
    parts_dir: str
    max_pixels: int


@dataclasses.dataclass(frozen=True)
class _Listed:
    """What Beam's listing and conversion found, read back from the parts files."""

    quarantined: list[QuarantinedFile]
    skipped: list[SkippedFile]
    data_per_root: dict[str, dict[str, int]]  # root -> class ('' outside one) -> data files


def _read_parts(parts_dir: str) -> _Listed:
    listed = _Listed([], [], {})
    for path in sorted(tf.io.gfile.glob(posixpath.join(parts_dir, "*.jsonl"))):
        with tf.io.gfile.GFile(path) as handle:
            for line in handle:
                if not line.strip():
                    continue
                record = json.loads(line)
                kind = record.pop("record")
                if kind == convert.QUARANTINED:
                    listed.quarantined.append(QuarantinedFile(**record))
                elif kind == convert.SKIPPED:
                    listed.skipped.append(SkippedFile(**record))
                else:
                    counts = listed.data_per_root.setdefault(record["root"], {})
                    for name, count in record["data_per_class"].items():
                        counts[name] = counts.get(name, 0) + count
    return listed


def _configs(exec_properties: dict[str, Any]
             ) -> tuple[example_gen_pb2.Input, example_gen_pb2.Output]:
    input_config, output_config = example_gen_pb2.Input(), example_gen_pb2.Output()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                              input_config)
    proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY],
                              output_config)
    return input_config, output_config


class Executor(BaseExampleGenExecutor):
    """Reads `<split root>/<class>/<image>` into examples; accounts for every other file."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802
        """Not used: `GenerateExamplesByBeam` makes and splits the examples in one step."""
        raise NotImplementedError("the image ExampleGen builds its pipeline in "
                                  "GenerateExamplesByBeam")

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline,  # noqa: N802
                               exec_properties: dict[str, Any]
                               ) -> dict[str, beam.pvalue.PCollection]:
        """Output split name -> its serialized examples; quarantined files to the report parts."""
        plan: _Plan = exec_properties[_PLAN_KEY]
        input_config, output_config = _configs(exec_properties)
        split_names = utils.generate_output_split_names(input_config, output_config)

        to_example = functools.partial(convert.ToExample, plan.input_base, plan.class_names,
                                       plan.max_pixels)
        if output_config.split_config.splits:  # one input split, hash-split into the outputs
            buckets = [s.hash_buckets for s in output_config.split_config.splits]
            hash_splits = convert.HashSplits(
                output_config.split_config.partition_feature_name,
                tuple(sum(buckets[: i + 1]) for i in range(len(buckets))))
            (pattern,) = plan.roots
            return dict(zip(split_names, convert.to_examples(
                pipeline, "images", plan.input_base, plan.roots[pattern],
                to_example(hash_splits), len(split_names),
                posixpath.join(plan.parts_dir, "split-0")), strict=True))
        result = {}
        for index, (name, split) in enumerate(zip(split_names, input_config.splits,
                                                  strict=True)):
            (result[name],) = convert.to_examples(
                pipeline, name, plan.input_base, plan.roots[split.pattern], to_example(None),
                1, posixpath.join(plan.parts_dir, f"split-{index}"))
        return result

    def _write_examples(self, output_dict: dict[str, list],
                        exec_properties: dict[str, Any]) -> None:
        """The Beam run: each output split as gzipped TFRecords, where and as TFX writes them."""
        if exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY,
                               example_gen_pb2.FORMAT_TF_EXAMPLE) != \
                example_gen_pb2.FORMAT_TF_EXAMPLE:
            raise ValueError("the image ExampleGen writes tf.train.Example payloads only")
        file_format = exec_properties.get(standard_component_specs.OUTPUT_FILE_FORMAT_KEY,
                                          example_gen_pb2.FORMAT_TFRECORDS_GZIP)
        input_config, output_config = _configs(exec_properties)
        outputs = output_dict[standard_component_specs.EXAMPLES_KEY]
        split_names = utils.generate_output_split_names(input_config, output_config)
        for artifact in outputs:
            artifact.split_names = artifact_utils.encode_split_names(split_names)
        with self._make_beam_pipeline() as pipeline:
            for name, examples in self.GenerateExamplesByBeam(pipeline, exec_properties).items():
                _ = examples | f"WriteSplit[{name}]" >> beam.io.WriteToTFRecord(
                    os.path.join(artifact_utils.get_split_uri(outputs, name),
                                 write_split.DEFAULT_TF_RECORD_FILE_NAME),
                    file_name_suffix=".gz")
        for artifact in outputs:
            examples_utils.set_payload_format(artifact, example_gen_pb2.FORMAT_TF_EXAMPLE)
            examples_utils.set_file_format(artifact, write_split.to_file_format_str(file_format))

    def Do(self, input_dict: dict[str, list], output_dict: dict[str, list],  # noqa: N802
           exec_properties: dict[str, Any]) -> None:
        """Ingests, quarantines or skips every file; records the reports on the Examples."""
        stop.raise_if_requested()
        examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY])
        settings = IngestSettings.from_exec_properties(exec_properties)
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY].rstrip("/")
        input_config, _ = _configs(exec_properties)
        span = int(exec_properties.get("span") or 0)
        window = window_from_exec_properties(exec_properties)
        split_roots = [files.split_root(s.pattern) for s in input_config.splits]
        windows = {s.pattern: files.window_roots(input_base, [files.split_root(s.pattern)],
                                                 span, window) for s in input_config.splits}
        roots = {pattern: [root for _, root in listing] for pattern, listing in windows.items()}
        all_roots = [root for listing in roots.values() for root in listing]
        class_names = files.class_names_under(input_base, all_roots)
        plan = _Plan(
            input_base=input_base,
            roots=roots,
            class_names=class_names,
            parts_dir=posixpath.join(examples.uri, _PARTS_DIR),
            max_pixels=settings.max_pixels,
        )
        self._log_startup(input_dict, output_dict, exec_properties)
        convert.PROGRESS.info("listing and ingesting the images under %d folder(s)",
                              len(all_roots), extra={INGEST_TOTAL: 0})
        self._write_examples(output_dict, {**exec_properties, _PLAN_KEY: plan})

        listed = _read_parts(plan.parts_dir)
        tf.io.gfile.rmtree(plan.parts_dir)
        per_class: dict[str, int] = {name: 0 for name in class_names}
        for counts in listed.data_per_root.values():
            for name, count in counts.items():
                if name in per_class:
                    per_class[name] += count
        data_files = sum(sum(counts.values()) for counts in listed.data_per_root.values())
        report = IngestReport(class_names, data_files + len(listed.skipped), per_class,
                              tuple(listed.quarantined), tuple(listed.skipped))
        _write_report(examples, report)
        examples.set_string_custom_property(properties.FOLDERS_READ, json.dumps(
            [posixpath.join(input_base, root) for root in all_roots], ensure_ascii=False))
        if window > 1:
            spans_read = sorted({n for listing in windows.values() for n, _ in listing})
            _record_window(examples, window, spans_read, report, listed.data_per_root)
        previous = files.previous_span(input_base, split_roots, span, window)
        if previous is not None:
            examples.set_int_custom_property(properties.PREVIOUS_SPAN, previous[0])
            examples.set_string_custom_property(properties.PREVIOUS_SPAN_IMAGES_PER_CLASS,
                                                json.dumps(previous[1], ensure_ascii=False))
            if window > 1:
                examples.set_string_custom_property(properties.PREVIOUS_SPANS_READ,
                                                    ",".join(map(str, previous[2])))
        refusals = report.stop_reasons(settings.max_quarantined_fraction,
                                       posixpath.join(examples.uri, REPORT_FILE))
        if refusals:
            raise ValueError(f"input under {input_base} is not fit to train on: "
                             + "; ".join(refusals))


def _write_report(examples: Any, report: IngestReport) -> None:
    """The quarantine and skipped reports, and the counts and class names as properties."""
    path = posixpath.join(examples.uri, REPORT_FILE)
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write("".join(line + "\n" for line in report.lines()))
    skipped_path = posixpath.join(examples.uri, SKIPPED_FILE)
    with tf.io.gfile.GFile(skipped_path, "w") as handle:
        handle.write("".join(line + "\n" for line in report.skipped_lines()))
    examples.set_string_custom_property(properties.CLASS_NAMES, json.dumps(list(report.class_names),
                                                                  ensure_ascii=False))
    examples.set_int_custom_property(properties.FILES_FOUND, report.files_found)
    examples.set_int_custom_property(properties.INGESTED, report.ingested)
    examples.set_int_custom_property(properties.QUARANTINED, report.quarantined_count)
    examples.set_string_custom_property(properties.QUARANTINED_PER_KIND,
                                        json.dumps(report.quarantined_per_kind))
    examples.set_string_custom_property(properties.INGESTED_PER_CLASS, json.dumps(
        report.ingested_per_class, ensure_ascii=False))
    examples.set_string_custom_property(properties.QUARANTINE_REPORT, path)
    examples.set_int_custom_property(properties.SKIPPED, report.skipped_count)
    examples.set_string_custom_property(properties.SKIPPED_REPORT, skipped_path)


def _record_window(examples: Any, window: int, spans_read: list[int], report: IngestReport,
                   data_per_root: dict[str, dict[str, int]]) -> None:
    """Which spans of the window were read (a missing span is absent), and examples per span."""
    per_span = {number: 0 for number in spans_read}
    for root, counts in data_per_root.items():
        number = files.span_of(root)
        if number in per_span:
            per_span[number] += sum(counts.values())
    for quarantined in report.quarantined:
        number = files.span_of(quarantined.path)
        if number in per_span:
            per_span[number] -= 1
    examples.set_int_custom_property(properties.WINDOW, window)
    examples.set_string_custom_property(properties.SPANS_READ, ",".join(map(str, spans_read)))
    examples.set_string_custom_property(properties.INGESTED_PER_SPAN, json.dumps(
        {str(n): count for n, count in sorted(per_span.items())}))
