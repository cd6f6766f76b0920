"""The image ExampleGen without an orchestrator: the driver's resolution, then the executor.

For tests and benchmarks. `exec_properties` builds what the component hands TFX's launcher and
runs this component's own driver on it (span and version resolved, patterns filled in, the
fingerprint computed), as the launcher does before calling the executor; `run_executor` then
calls `Executor.Do`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tfx.components.example_gen import utils
from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.image_example_gen.component import ImageLayout
from components.image_example_gen.driver import ImageExampleGenDriver
from components.image_example_gen.executor import Executor
from components.image_example_gen.settings import IngestSettings


def exec_properties(data_root: str, layout: ImageLayout | None = None,
                    settings: IngestSettings | None = None) -> dict[str, Any]:
    """The executor's properties for `data_root`, resolved by the image ExampleGen's driver."""
    layout = layout or ImageLayout()
    input_config = layout.input_config()
    output_config = layout.output_config() or utils.make_default_output_config(input_config)
    range_config = layout.range_config()
    properties = {
        "input_base": str(data_root),
        "input_config": proto_utils.proto_to_json(input_config),
        "output_config": proto_utils.proto_to_json(output_config),
        "range_config": proto_utils.proto_to_json(range_config) if range_config else None,
        "custom_config": proto_utils.proto_to_json(
            (settings or IngestSettings()).to_proto(window=layout.window)),
        "output_data_format": example_gen_pb2.FORMAT_TF_EXAMPLE,
        "output_file_format": example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    }
    # The driver needs no metadata store to resolve properties.
    return ImageExampleGenDriver(None).resolve_exec_properties(properties, None, None)


def run_executor(data_root: str, out: str, layout: ImageLayout | None = None,
                 settings: IngestSettings | None = None,
                 beam_pipeline_args: Sequence[str] = ()) -> standard_artifacts.Examples:
    """Runs the executor on `data_root` into `out`; the Examples artifact (`span` set)."""
    properties = exec_properties(data_root, layout, settings)
    examples = examples_artifact(out, properties)
    executor = Executor(BaseBeamExecutor.Context(beam_pipeline_args=list(beam_pipeline_args))
                        if beam_pipeline_args else None)
    executor.Do({}, {"examples": [examples]}, properties)
    return examples


def examples_artifact(out: str, properties: dict[str, Any]) -> standard_artifacts.Examples:
    """The output artifact at `out` with the span, version and fingerprint, as the driver sets."""
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    examples.span = int(properties[utils.SPAN_PROPERTY_NAME])
    if properties.get(utils.VERSION_PROPERTY_NAME) is not None:
        examples.version = int(properties[utils.VERSION_PROPERTY_NAME])
    return examples
