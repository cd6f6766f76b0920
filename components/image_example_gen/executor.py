"""Beam side of the image ExampleGen: TFX's FileBasedExampleGen does splits and spans."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import tensorflow as tf
from apache_beam.io import fileio
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.types import standard_component_specs

from components.image_example_gen import reader
from components.image_example_gen.formats import is_image_path


def _to_example(readable: fileio.ReadableFile, input_base: str,
                class_names: tuple[str, ...]) -> tf.train.Example:
    path = readable.metadata.path
    label_name, relative = reader.relative_image_path(path, input_base)
    if label_name not in class_names:
        raise ValueError(f"{path}: class folder {label_name!r} is not one of {list(class_names)}")
    return reader.make_example(readable.read(), class_names.index(label_name), label_name,
                               relative)


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _ImageToExample(pipeline: beam.Pipeline, exec_properties: dict[str, Any],  # noqa: N802
                    split_pattern: str) -> beam.pvalue.PCollection:
    """Every image file matching `input_base/split_pattern` as one tf.train.Example."""
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY].rstrip("/")
    class_names = reader.class_names_in(input_base)
    return (
        pipeline
        | "MatchFiles" >> fileio.MatchFiles(f"{input_base}/{split_pattern}")
        | "ImagesOnly" >> beam.Filter(lambda m: is_image_path(m.path))
        | "ReadMatches" >> fileio.ReadMatches()
        | "ToExample" >> beam.Map(_to_example, input_base, class_names)
    )


class Executor(BaseExampleGenExecutor):
    """Reads `input_base/<class>/<image>` into examples with the encoded bytes and the label."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802
        return _ImageToExample
