"""Executors of CurateSchema and DataGate: artifact bookkeeping around `schema` and `checks`."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components import executor as executor_base
from components.data_audit import properties as audit_props  # the audit's counts
from components.data_validation import checks, properties
from components.data_validation.schema import curate_schema
from components.executor import Artifacts
from components.image_example_gen import properties as ex  # the Examples' properties

SCHEMA_KEY = "schema"
INFERRED_SCHEMA_KEY = "inferred_schema"
EXAMPLES_KEY = "examples"
ANOMALIES_KEY = "anomalies"
VERDICT_KEY = "verdict"
MAX_CLASS_DRIFT_KEY = "max_class_drift"
DEFAULT_MAX_CLASS_DRIFT = 0.25
AUDIT_KEY = "audit"  # DataAudit's findings, when the audit runs
MAX_LEAKAGE_KEY = "max_leakage"
DEFAULT_MAX_LEAKAGE = 0.05
SCHEMA_FILE = "schema.pbtxt"  # SchemaGen's file name, which Transform and Trainer look for
PROBLEMS_FILE = "problems.txt"

_LOG = logging.getLogger(__name__)


def _single(input_dict: dict[str, list[types.Artifact]], key: str) -> types.Artifact:
    return artifact_utils.get_single_instance(input_dict[key])


def _float(exec_properties: dict[str, Any], key: str, default: float) -> float:
    value = exec_properties.get(key)
    return default if value is None else float(value)


class CurateSchemaExecutor(executor_base.Executor):
    """Writes `curate_schema(inferred schema, the Examples' class names)`."""

    def run(self, input_dict: Artifacts, output_dict: Artifacts,
            exec_properties: dict[str, Any]) -> None:
        """Reads SchemaGen's schema and the class names the ExampleGen recorded."""
        inferred = io_utils.SchemaReader().read(
            io_utils.get_only_uri_in_dir(_single(input_dict, INFERRED_SCHEMA_KEY).uri))
        examples = _single(input_dict, EXAMPLES_KEY)
        class_names = json.loads(examples.get_string_custom_property(ex.CLASS_NAMES) or "[]")
        schema = curate_schema(inferred, class_names)
        io_utils.write_pbtxt_file(
            os.path.join(_single(output_dict, SCHEMA_KEY).uri, SCHEMA_FILE), schema)


def span_of(examples: types.Artifact) -> int:
    """The span of an Examples artifact: under the IR orchestrators TFX's ExampleGen driver
    records it as a custom property 'span'; the artifact property serves older drivers."""
    if examples.has_custom_property(ex.SPAN):
        return int(examples.get_int_custom_property(ex.SPAN))
    return int(examples.span)


def _json_property(artifact: types.Artifact, key: str) -> Any:
    return json.loads(artifact.get_string_custom_property(key) or "null")


class DataGateExecutor(executor_base.Executor):
    """Passes the data only without ExampleValidator anomalies, class changes or class drift."""

    def run(self, input_dict: Artifacts, output_dict: Artifacts,
            exec_properties: dict[str, Any]) -> None:
        """Collects every problem as one sentence; the verdict records them."""
        examples = _single(input_dict, EXAMPLES_KEY)
        problems: list[str] = []
        for anomalies in input_dict.get(ANOMALIES_KEY, []):
            for split in artifact_utils.decode_split_names(anomalies.split_names):
                path = os.path.join(artifact_utils.get_split_uri([anomalies], split),
                                    "SchemaDiff.pb")
                found = anomalies_pb2.Anomalies.FromString(io_utils.read_bytes_file(path))
                problems.extend(checks.describe_anomalies(found, split))
        compared_with = ""
        previous_counts = _json_property(examples, ex.PREVIOUS_SPAN_IMAGES_PER_CLASS)
        if previous_counts is not None:
            current_counts = _json_property(examples, ex.INGESTED_PER_CLASS) or {}
            now = f"span {span_of(examples)}"
            compared_with = f"span {examples.get_int_custom_property(ex.PREVIOUS_SPAN)}"
            if examples.has_custom_property(ex.SPANS_READ):  # a window: against the last one
                now = f"spans {examples.get_string_custom_property(ex.SPANS_READ)}"
                compared_with = ("spans "
                                 + examples.get_string_custom_property(ex.PREVIOUS_SPANS_READ))
            problems.extend(checks.class_changes(
                [n for n, count in current_counts.items() if count], list(previous_counts),
                now, compared_with))
            problems.extend(checks.class_drift(
                current_counts, previous_counts,
                _float(exec_properties, MAX_CLASS_DRIFT_KEY, DEFAULT_MAX_CLASS_DRIFT),
                now, compared_with))
        for audit in input_dict.get(AUDIT_KEY, []):
            problems.extend(checks.leakage(
                audit.get_int_custom_property(audit_props.LEAKED_EVAL_IMAGES),
                audit.get_int_custom_property(audit_props.EVAL_IMAGES),
                _float(exec_properties, MAX_LEAKAGE_KEY, DEFAULT_MAX_LEAKAGE)))
        verdict = _single(output_dict, VERDICT_KEY)
        io_utils.write_string_file(os.path.join(verdict.uri, PROBLEMS_FILE),
                                   "".join(p + "\n" for p in problems))
        verdict.set_int_custom_property(properties.PASSED, int(not problems))
        verdict.set_string_custom_property(properties.PROBLEMS,
                                           json.dumps(problems, ensure_ascii=False))
        verdict.set_string_custom_property(properties.COMPARED_WITH, compared_with)
        if problems:
            _LOG.warning("data gate: %d problem(s): %s", len(problems), "; ".join(problems))
