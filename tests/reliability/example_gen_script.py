"""Runs the image ExampleGen's executor on DATA into OUT, as TFX's driver and launcher would.

Usage: python example_gen_script.py DATA OUT. Prints the Examples artifact's ingestion
properties as one JSON line. A script, not a test: reliability tests run it under strace, in a
process of its own (the component tests' `run_executor`, reduced to what is needed here).
"""

from __future__ import annotations

import json
import os
import sys

# A process of its own: Keras 2 (tf_keras) is chosen before TensorFlow loads, as imgpipe does.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from tfx.components.example_gen import utils
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.image_example_gen.component import ImageLayout
from components.image_example_gen.executor import Executor, IngestSettings

PROPERTIES = ("files_found", "ingested", "quarantined", "quarantined_per_kind",
              "ingested_per_class", "class_names", "quarantine_report", "skipped",
              "skipped_report")


def main(data_root: str, out: str) -> None:
    """Resolves the split patterns and runs the executor; prints what it recorded."""
    layout = ImageLayout()
    input_config = layout.input_config()
    output_config = layout.output_config() or utils.make_default_output_config(input_config)
    _, span, version = utils.calculate_splits_fingerprint_span_and_version(
        data_root, input_config.splits, layout.range_config())
    examples = standard_artifacts.Examples()
    examples.uri = out
    settings = IngestSettings(max_quarantined_fraction=0.9)
    Executor().Do({}, {"examples": [examples]}, {
        "input_base": data_root,
        "input_config": proto_utils.proto_to_json(input_config),
        "output_config": proto_utils.proto_to_json(output_config),
        "custom_config": proto_utils.proto_to_json(settings.to_proto()),
        "output_data_format": example_gen_pb2.FORMAT_TF_EXAMPLE,
        "output_file_format": example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        "span": span,
        "version": version,
    })
    props = examples.mlmd_artifact.custom_properties
    print(json.dumps({name: props[name].int_value if props[name].HasField("int_value")
                      else props[name].string_value for name in PROPERTIES}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
