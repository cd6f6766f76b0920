"""Beam side of the image ExampleGen: TFX's FileBasedExampleGen does splits and spans.

`Do` lists every file under each split's folder first (the driver has already put the chosen
span into the patterns), quarantines what cannot be a labelled image by its path, and hands the
rest to Beam, which reads, checks and converts each file in parallel. Files that fail the image
checks are written by Beam beside the examples; `Do` then merges them into the quarantine
report, records the counts and class names on the Examples artifact, and fails the component
when the input is not fit to train on (too many quarantined files, or a class with no image).
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
from typing import Any

import apache_beam as beam
import tensorflow as tf
from apache_beam.io.filesystems import FileSystems
from google.protobuf import json_format, struct_pb2
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.image_example_gen import files, reader
from components.image_example_gen.inspect import DEFAULT_MAX_PIXELS, Unusable, inspect_image
from components.image_example_gen.report import (
    DEFAULT_MAX_QUARANTINED_FRACTION,
    REPORT_FILE,
    IngestReport,
    QuarantinedFile,
)

_PLAN_KEY = "_image_ingest_plan"
_QUARANTINED = "quarantined"
_PARTS_DIR = ".quarantine-parts"


@dataclasses.dataclass(frozen=True)
class IngestSettings:
    """The image ExampleGen's own settings, carried in its `custom_config`."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_quarantined_fraction: float = DEFAULT_MAX_QUARANTINED_FRACTION

    def __post_init__(self) -> None:
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be at least 1, got {self.max_pixels}")
        if not 0.0 <= self.max_quarantined_fraction <= 1.0:
            raise ValueError("max_quarantined_fraction must be in [0, 1], got "
                             f"{self.max_quarantined_fraction}")

    def to_proto(self) -> example_gen_pb2.CustomConfig:
        """As ExampleGen's `custom_config` (a Struct packed in an Any)."""
        struct = struct_pb2.Struct()
        struct.update(dataclasses.asdict(self))
        config = example_gen_pb2.CustomConfig()
        config.custom_config.Pack(struct)
        return config

    @classmethod
    def from_exec_properties(cls, exec_properties: dict[str, Any]) -> IngestSettings:
        """Reads `custom_config` back (defaults when unset)."""
        value = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
        if not value:
            return cls()
        config = example_gen_pb2.CustomConfig()
        proto_utils.json_to_proto(value, config)
        struct = struct_pb2.Struct()
        if not config.custom_config.Unpack(struct):
            raise ValueError(f"image ExampleGen's custom_config is not a Struct: {value}")
        values = json_format.MessageToDict(struct)
        return cls(max_pixels=int(values.get("max_pixels", DEFAULT_MAX_PIXELS)),
                   max_quarantined_fraction=float(values.get(
                       "max_quarantined_fraction", DEFAULT_MAX_QUARANTINED_FRACTION)))


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What Beam is given: the candidate images of each split pattern, and where to report."""

    candidates: dict[str, list[tuple[str, str, str]]]  # pattern -> (path, relative, class)
    class_names: tuple[str, ...]
    parts_dir: str
    max_pixels: int


class _ToExample(beam.DoFn):
    """A candidate file -> its example, or a quarantine record (tagged output)."""

    def __init__(self, class_names: tuple[str, ...], max_pixels: int):
        self._class_names = class_names
        self._max_pixels = max_pixels

    def process(self, candidate: tuple[str, str, str]):
        path, relative, class_name = candidate
        try:
            with FileSystems.open(path) as handle:
                data = handle.read()
        except Exception as error:  # noqa: BLE001  (any filesystem's own errors)
            yield beam.pvalue.TaggedOutput(_QUARANTINED, QuarantinedFile(
                relative, "unreadable", f"unreadable ({type(error).__name__}: {error})",
                class_name).__dict__)
            return
        try:
            info = inspect_image(data, self._max_pixels)
        except Unusable as verdict:
            yield beam.pvalue.TaggedOutput(_QUARANTINED, QuarantinedFile(
                relative, verdict.kind, verdict.reason, class_name).__dict__)
            return
        yield reader.make_example(data, self._class_names.index(class_name), class_name,
                                  relative, info.height, info.width, info.format)


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _ImageToExample(pipeline: beam.Pipeline, exec_properties: dict[str, Any],  # noqa: N802
                    split_pattern: str) -> beam.pvalue.PCollection:
    """The candidate images of one split pattern as tf.train.Examples; failures to the report."""
    plan: _Plan = exec_properties[_PLAN_KEY]
    index = list(plan.candidates).index(split_pattern)
    results = (
        pipeline
        | "Candidates" >> beam.Create(plan.candidates[split_pattern])
        | "Spread" >> beam.Reshuffle()
        | "ToExample" >> beam.ParDo(_ToExample(plan.class_names, plan.max_pixels))
        .with_outputs(_QUARANTINED, main="examples")
    )
    _ = (results[_QUARANTINED]
         | "AsJson" >> beam.Map(json.dumps, ensure_ascii=False)
         | "WriteQuarantined" >> beam.io.WriteToText(
             posixpath.join(plan.parts_dir, f"split-{index}"), file_name_suffix=".jsonl"))
    return results.examples


def _read_parts(parts_dir: str) -> list[QuarantinedFile]:
    records = []
    for path in sorted(tf.io.gfile.glob(posixpath.join(parts_dir, "*.jsonl"))):
        with tf.io.gfile.GFile(path) as handle:
            records.extend(QuarantinedFile(**json.loads(line)) for line in handle if line.strip())
    return records


class Executor(BaseExampleGenExecutor):
    """Reads `<split root>/<class>/<image>` into examples; accounts for every other file."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802
        return _ImageToExample

    def Do(self, input_dict: dict[str, list], output_dict: dict[str, list],  # noqa: N802
           exec_properties: dict[str, Any]) -> None:
        examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY])
        settings = IngestSettings.from_exec_properties(exec_properties)
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY].rstrip("/")
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                                  input_config)
        roots = {s.pattern: files.split_root(s.pattern) for s in input_config.splits}
        class_names = files.class_names_under(input_base, list(roots.values()))
        found = {pattern: files.find_files(input_base, root) for pattern, root in roots.items()}
        everything = [f for listing in found.values() for f in listing]
        by_path = [QuarantinedFile(f.relative, *f.problem, f.class_name)
                   for f in everything if f.problem]
        plan = _Plan(
            candidates={p: [(f.path, f.relative, f.class_name) for f in listing if not f.problem]
                        for p, listing in found.items()},
            class_names=class_names,
            parts_dir=posixpath.join(examples.uri, _PARTS_DIR),
            max_pixels=settings.max_pixels,
        )
        super().Do(input_dict, output_dict, {**exec_properties, _PLAN_KEY: plan})

        by_content = _read_parts(plan.parts_dir)
        tf.io.gfile.rmtree(plan.parts_dir)
        per_class: dict[str, int] = {name: 0 for name in class_names}
        for f in everything:
            if f.class_name in per_class:
                per_class[f.class_name] += 1
        report = IngestReport(class_names, len(everything), per_class,
                              tuple(by_path + by_content))
        _write_report(examples, report)
        examples.set_string_custom_property("folders_read", json.dumps(
            [posixpath.join(input_base, root) for root in roots.values()], ensure_ascii=False))
        previous = files.previous_span(input_base, list(roots.values()),
                                       int(exec_properties.get("span") or 0))
        if previous is not None:
            examples.set_int_custom_property("previous_span", previous[0])
            examples.set_string_custom_property("previous_span_images_per_class", json.dumps(
                previous[1], ensure_ascii=False))
        stop = report.stop_reasons(settings.max_quarantined_fraction,
                                   posixpath.join(examples.uri, REPORT_FILE))
        if stop:
            raise ValueError(f"input under {input_base} is not fit to train on: "
                             + "; ".join(stop))


def _write_report(examples: Any, report: IngestReport) -> None:
    """The quarantine report file, and the counts and class names as artifact properties."""
    path = posixpath.join(examples.uri, REPORT_FILE)
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write("".join(line + "\n" for line in report.lines()))
    examples.set_string_custom_property("class_names", json.dumps(list(report.class_names),
                                                                  ensure_ascii=False))
    examples.set_int_custom_property("files_found", report.files_found)
    examples.set_int_custom_property("ingested", report.ingested)
    examples.set_int_custom_property("quarantined", report.quarantined_count)
    examples.set_string_custom_property("quarantined_per_kind",
                                        json.dumps(report.quarantined_per_kind))
    examples.set_string_custom_property("ingested_per_class", json.dumps(
        report.ingested_per_class, ensure_ascii=False))
    examples.set_string_custom_property("quarantine_report", path)
