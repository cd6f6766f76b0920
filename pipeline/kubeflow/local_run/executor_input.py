"""One task's ExecutorInput as each backend builds it, and the launcher's placeholder substitution.

Kubeflow Pipelines, read at tag 2.17.0 of kubeflow/pipelines:
- `backend/src/v2/driver/driver.go` provisionOutputs: each output artifact is named by its key,
  its URI is `<root>/<task>/<uuid>/<key>`, its type and metadata those of the output definition;
  the output metadata file is `output_metadata.json` in the task root's local path.
- `backend/src/v2/driver/resolve.go` resolveInputs and resolveInputParameter: constants from
  `runtimeValue.constant` go to `parameterValues`, the run placeholders in a constant are
  replaced, parameters are checked against their declared types; input artifacts are the
  producer's recorded artifacts (`toRuntimeArtifact` in `backend/src/v2/metadata/converter.go`:
  name is the artifact id, metadata its properties and custom properties).
- `backend/src/v2/component/launcher_v2.go` addDefaultParams, compileCmdAndArgs and
  getPlaceholders: `{{$}}` is the ExecutorInput as JSON, then the `{{$.inputs...}}` and
  `{{$.outputs...}}` placeholders.
Vertex AI's service is not open source; its form is the one TFX's container entrypoint is
written and tested against (tensorflow/tfx `tfx/orchestration/kubeflow/v2/container/
kubeflow_v2_run_executor.py` and `testdata/executor_invocation.json`): artifacts named
`projects/.../metadataStores/default/artifacts/<id>`, schema 2.0.0 parameters in `parameters`,
the output file `<root>/<project>/<job>/<task>_<uuid>/executor_output.json`.
The one departure, for both: the pipeline root is a folder here, and an artifact's local path
is its URI (KFP's LocalPathForURI maps gs://B/x to the mounted /gcs/B/x).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

import numpy as np
from google.protobuf import json_format, struct_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline.errors import UserError

BACKENDS = ("kfp", "vertex")
# The project and region in Vertex AI's resource names; nothing here reaches Google Cloud.
VERTEX_PROJECT = "local"
VERTEX_ARTIFACT_NAME = "projects/local/locations/local/metadataStores/default/artifacts/{}"
# launcher_v2.go LocalPathForURI: the object stores' mount points in a KFP pod.
_MOUNTS = {"gs://": "/gcs/", "minio://": "/minio/", "s3://": "/s3/"}
_LEFTOVER = re.compile(r"\{\{\$[^}]*\}\}")

ExecutorInput = pipeline_spec_pb2.ExecutorInput
RuntimeArtifact = pipeline_spec_pb2.RuntimeArtifact


def artifact_name(backend: str, artifact_id: int) -> str:
    """A recorded artifact's name in an ExecutorInput: KFP's MLMD id, Vertex's resource name."""
    return str(artifact_id) if backend == "kfp" else VERTEX_ARTIFACT_NAME.format(artifact_id)


@dataclasses.dataclass(frozen=True)
class TaskPaths:
    """Where one execution of a task writes: its outputs' folder and the output metadata file."""

    task_root: str
    output_file: str

    @classmethod
    def of(cls, backend: str, root: str, job_id: str, task: str, uuid: str) -> TaskPaths:
        root = root.rstrip("/")
        if backend == "kfp":  # driver.go provisionOutputs
            task_root = f"{root}/{task}/{uuid}"
            return cls(task_root, f"{local_path_for_uri(task_root)}/output_metadata.json")
        # kubeflow_v2_run_executor.py: {gcsOutputDirectory}/{project_number}/{job}/{task}_{uuid}
        task_root = f"{root}/{VERTEX_PROJECT}/{job_id}/{task}_{uuid}"
        return cls(task_root, f"{task_root}/executor_output.json")


def local_path_for_uri(uri: str) -> str:
    """launcher_v2.go LocalPathForURI; a local folder stands for the mounted bucket itself."""
    for scheme, mount in _MOUNTS.items():
        if uri.startswith(scheme):
            return mount + uri[len(scheme):]
    if "://" in uri:
        raise UserError(f"artifact URI {uri} has a storage scheme the local run cannot reach")
    return uri


def provision_outputs(backend: str, component: pipeline_spec_pb2.ComponentSpec,
                      paths: TaskPaths, names: Mapping[str, str]) -> ExecutorInput.Outputs:
    """driver.go provisionOutputs: one artifact per output key under the task root.

    `names` gives each key's artifact name: KFP names it by its key; Vertex AI registers the
    artifact first, so it carries its resource name.
    """
    outputs = ExecutorInput.Outputs()
    for key, spec in sorted(component.output_definitions.artifacts.items()):
        artifact = outputs.artifacts[key].artifacts.add()
        artifact.name = key if backend == "kfp" else names[key]
        artifact.uri = f"{paths.task_root}/{key}"
        artifact.type.CopyFrom(spec.artifact_type)
        if spec.HasField("metadata"):
            artifact.metadata.CopyFrom(spec.metadata)
    for key in sorted(component.output_definitions.parameters):
        # /tmp/kfp/outputs/<key> in KFP's pod; the task root here, so runs never share it.
        outputs.parameters[key].output_file = f"{paths.task_root}/outputs/{key}"
    outputs.output_file = paths.output_file
    return outputs


def run_placeholders(job_name: str, job_id: str, task: str, task_id: str) -> dict[str, str]:
    """resolve.go resolveInputParameter: the placeholders a constant may be, and their values."""
    return {"{{$.pipeline_job_name}}": job_name, "{{$.pipeline_job_resource_name}}": job_id,
            "{{$.pipeline_job_uuid}}": job_id, "{{$.pipeline_task_name}}": task,
            "{{$.pipeline_task_uuid}}": task_id}


def resolve_parameters(name: str, task: pipeline_spec_pb2.PipelineTaskSpec,
                       component: pipeline_spec_pb2.ComponentSpec, inputs: ExecutorInput.Inputs,
                       placeholders: Mapping[str, str]) -> None:
    """The task's constant parameters into `inputs`, checked as KFP's driver checks them.

    `runtimeValue.constant` (schema 2.1.0) goes to `parameterValues`, where KFP's driver puts
    it; `runtimeValue.constantValue` (2.0.0) to `parameters`, the field TFX's entrypoint reads
    without an inputs spec. Any other parameter source is not part of a TFX package.
    """
    for key, spec in sorted(task.inputs.parameters.items()):
        runtime = spec.runtime_value if spec.WhichOneof("kind") == "runtime_value" else None
        form = runtime.WhichOneof("value") if runtime is not None else None
        if form == "constant":
            value = struct_pb2.Value()
            value.CopyFrom(runtime.constant)
            if value.WhichOneof("kind") == "string_value" and value.string_value in placeholders:
                value.string_value = placeholders[value.string_value]
            inputs.parameter_values[key].CopyFrom(value)
        elif form == "constant_value":
            inputs.parameters[key].CopyFrom(runtime.constant_value)
        else:
            raise UserError(f"task {name}'s parameter {key!r} is not a constant; the local run "
                            "takes the constants TFX compiles, recompile with 'imgpipe compile'")
    _check_parameter_types(name, component, inputs)


def _check_parameter_types(name: str, component: pipeline_spec_pb2.ComponentSpec,
                           inputs: ExecutorInput.Inputs) -> None:
    # resolve.go handleParamTypeValidationAndConversion: a required parameter needs a value or
    # a default; a STRING parameter takes any value as text; other types must match.
    kinds = {"NUMBER_DOUBLE": {"number_value"}, "NUMBER_INTEGER": {"number_value"},
             "BOOLEAN": {"bool_value"}, "LIST": {"list_value"}, "STRUCT": {"struct_value"}}
    for key, definition in sorted(component.input_definitions.parameters.items()):
        declared = pipeline_spec_pb2.ParameterType.ParameterTypeEnum.Name(
            definition.parameter_type)
        if key not in inputs.parameter_values:
            if (key not in inputs.parameters and not definition.is_optional
                    and not definition.HasField("default_value")):
                raise UserError(f"task {name}: neither value nor default value provided for "
                                f"non-optional parameter {key!r} (KFP's driver refuses it)")
            continue
        value = inputs.parameter_values[key]
        kind = value.WhichOneof("kind")
        if declared == "STRING":
            if kind != "string_value":
                inputs.parameter_values[key].string_value = _value_to_text(name, key, value)
        elif declared in kinds and kind not in kinds[declared]:
            raise UserError(f"task {name}: input parameter {key!r} type mismatch: expect "
                            f"{declared}, got {kind} (KFP's driver refuses it)")


def _value_to_text(task: str, key: str, value: struct_pb2.Value) -> str:
    # metadata/converter.go PbValueToText, for the scalars; a list or struct becomes Go's JSON
    # of the proto message there, which no component reads, so it is refused here.
    kind = value.WhichOneof("kind")
    if kind == "null_value":
        return ""
    if kind == "number_value":
        return _format_number(value.number_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    raise UserError(f"task {task}: STRING parameter {key!r} is given a {kind}; give it as text")


def with_defaults(executor_input: ExecutorInput, component: pipeline_spec_pb2.ComponentSpec
                  ) -> ExecutorInput:
    """launcher_v2.go addDefaultParams: declared defaults for parameters given no value."""
    result = ExecutorInput()
    result.CopyFrom(executor_input)
    for key, definition in component.input_definitions.parameters.items():
        if definition.HasField("default_value") and key not in result.inputs.parameter_values:
            result.inputs.parameter_values[key].CopyFrom(definition.default_value)
    return result


def _format_number(number: float) -> str:
    # Go's strconv.FormatFloat(v, 'f', -1, 64): the shortest form, never an exponent.
    return np.format_float_positional(number, trim="-")


def placeholders(executor_input: ExecutorInput) -> dict[str, str]:
    """launcher_v2.go getPlaceholders, for the scalar parameters and the artifacts."""
    values = {}
    for key, artifacts in executor_input.inputs.artifacts.items():
        if artifacts.artifacts:
            uri = artifacts.artifacts[0].uri
            values[f"{{{{$.inputs.artifacts['{key}'].uri}}}}"] = uri
            values[f"{{{{$.inputs.artifacts['{key}'].path}}}}"] = local_path_for_uri(uri)
    for key, artifacts in executor_input.outputs.artifacts.items():
        if artifacts.artifacts:
            uri = artifacts.artifacts[0].uri
            values[f"{{{{$.outputs.artifacts['{key}'].uri}}}}"] = uri
            values[f"{{{{$.outputs.artifacts['{key}'].path}}}}"] = local_path_for_uri(uri)
    for key, value in executor_input.inputs.parameter_values.items():
        kind = value.WhichOneof("kind")
        text = {"string_value": lambda v: v.string_value,
                "number_value": lambda v: _format_number(v.number_value),
                "bool_value": lambda v: "true" if v.bool_value else "false"}.get(kind)
        if text is not None:  # lists and structs: Go's json.Marshal of the proto, not mirrored
            values[f"{{{{$.inputs.parameters['{key}']}}}}"] = text(value)
    for key, parameter in executor_input.outputs.parameters.items():
        values[f"{{{{$.outputs.parameters['{key}'].output_file}}}}"] = parameter.output_file
    return values


def substitute(task: str, words: list[str], executor_input: ExecutorInput) -> list[str]:
    """launcher_v2.go compileCmdAndArgs: `{{$}}` first, then every other placeholder.

    A placeholder left over is one the launcher would not know or this run does not mirror
    (list and struct parameters): refused in one line rather than passed on as text.
    """
    whole = json_format.MessageToJson(executor_input, indent=None)
    values = placeholders(executor_input)
    result = []
    for word in words:
        word = word.replace("{{$}}", whole)
        for placeholder, value in values.items():
            word = word.replace(placeholder, value)
        result.append(word)
    for word, original in zip(result, words, strict=True):
        left = _LEFTOVER.findall(word.replace(whole, "")) if "{{$}}" in original else \
            _LEFTOVER.findall(word)
        if left:
            raise UserError(f"task {task}: the local run cannot substitute {left[0]} in its "
                            "container's arguments")
    return result


def merge_runtime_artifact(source: RuntimeArtifact, target: RuntimeArtifact) -> None:
    """launcher_v2.go mergeRuntimeArtifacts: the executor's URI and metadata win."""
    if source.uri:
        target.uri = source.uri
    for key, value in source.metadata.fields.items():
        target.metadata.fields[key].CopyFrom(value)


def read_executor_output(path: str) -> pipeline_spec_pb2.ExecutorOutput:
    """launcher_v2.go getExecutorOutputFile: a missing file is an empty ExecutorOutput."""
    output = pipeline_spec_pb2.ExecutorOutput()
    try:
        with open(path, encoding="utf-8") as file:
            json_format.Parse(file.read(), output)
    except FileNotFoundError:
        pass
    except (OSError, json_format.ParseError) as error:
        raise UserError(f"cannot read the output metadata file {path} ({error})") from None
    return output
