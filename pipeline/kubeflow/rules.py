"""What each backend refuses in a compiled package, as a table of rules read from its source.

`RULES` binds each check to the targets it applies to and the file of the backend (or of TFX's
container entrypoint) where the rule is written; `check_spec` refuses, in one line, a package
that breaks any of them or that would not run the image and resources the user asked for.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline.errors import UserError
from pipeline.kubeflow.spec import (
    INPUTS_SPEC_FLAG,
    RESOLVER_QUERY,
    ResourceSpec,
    deployment_config,
)

# Where each acceptance rule below is written, in the backends' own repositories.
KFP_TEMPLATE = "kubeflow/pipelines backend/src/apiserver/template/v2_template.go"
KFP_VISITOR = "kubeflow/pipelines backend/src/v2/compiler/visitor.go"
KFP_DAG = "kubeflow/pipelines backend/src/v2/compiler/argocompiler/dag.go"
# resolveInputParameter and the input parameter type checks; backend/src/v2/driver/resolve.go
# since KFP 2.14, driver.go in 2.0 to 2.5.
KFP_DRIVER = "kubeflow/pipelines backend/src/v2/driver/driver.go"
TFX_STEP_BUILDER = "tensorflow/tfx tfx/orchestration/kubeflow/v2/step_builder.py"
TFX_ENTRYPOINT = ("tensorflow/tfx tfx/orchestration/kubeflow/v2/container/"
                  "kubeflow_v2_run_executor.py")

# What TFX 1.16's KubeflowV2DagRunner writes for each target: Kubeflow's API server takes schema
# 2.1.0 only; Vertex AI runs TFX's default, 2.0.0.
SCHEMA_VERSIONS = {"kubeflow": "2.1.0", "vertex": "2.0.0"}
SCHEMA_2_1 = "2.1.0"
# The API server's pipeline-name pattern; Go's regexp.MatchString is unanchored, so a name
# passes when any part of it matches.
KFP_PIPELINE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
TFX_ENTRYPOINT_MODULE = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
# A constant's kind, and the parameter types the driver accepts it for (STRING takes any kind:
# the driver converts the value to text).
_PARAMETER_TYPES_OF_KIND = {
    "string_value": {"STRING"},
    "number_value": {"STRING", "NUMBER_DOUBLE", "NUMBER_INTEGER"},
    "bool_value": {"STRING", "BOOLEAN"},
    "list_value": {"STRING", "LIST"},
    "struct_value": {"STRING", "STRUCT"},
}


Executors = Any  # PipelineDeploymentConfig.executors, a map from label to ExecutorSpec


@dataclasses.dataclass(frozen=True)
class Rule:
    """One thing a backend refuses: the targets it binds, its source file, and its check."""

    targets: tuple[str, ...]
    source: str
    check: Callable[[pipeline_spec_pb2.PipelineSpec, Executors], Iterator[str]]


def _tasks(spec: pipeline_spec_pb2.PipelineSpec, executors: Executors) -> Iterator[tuple]:
    """(task name, task, component, executor) of each root task that reaches an executor."""
    for name, task in sorted(spec.root.dag.tasks.items()):
        component = spec.components.get(task.component_ref.name)
        executor = executors.get(component.executor_label) if component is not None else None
        if executor is not None:
            yield name, task, component, executor


def _is_tfx_entrypoint(container: Any) -> bool:
    return (TFX_ENTRYPOINT_MODULE in container.command
            or "--executor_class_path" in container.args)


def _schema_is_2_1(spec: pipeline_spec_pb2.PipelineSpec, executors: Executors) -> Iterator[str]:
    # NewV2SpecTemplate: "KFP only supports schema version 2.1.0, but the pipeline spec has
    # version %s".
    if spec.schema_version != SCHEMA_2_1:
        yield (f"schemaVersion is {spec.schema_version or 'missing'}; Kubeflow Pipelines' API "
               f"server accepts {SCHEMA_2_1} only")


def _named_with_root(spec: pipeline_spec_pb2.PipelineSpec, executors: Executors
                     ) -> Iterator[str]:
    # NewV2SpecTemplate: "name is empty", "name should consist of lower case alphanumeric
    # characters...", "root component is empty".
    name = spec.pipeline_info.name
    if not name:
        yield "pipelineInfo.name is empty"
    elif not KFP_PIPELINE_NAME.search(name):
        yield f"pipelineInfo.name {name!r} has no lowercase letter or digit"
    if not spec.HasField("root"):
        yield "it has no root component"


def _tasks_reach_executors(spec: pipeline_spec_pb2.PipelineSpec, executors: Executors
                           ) -> Iterator[str]:
    # visitor.go: "cannot find component ref name=%q", "executor(label=%q) not found in
    # deployment config"; argocompiler/dag.go: "DAG %s must contain one or more non-exit tasks".
    if not spec.root.dag.tasks:
        yield "the pipeline has no tasks"
    for name, task in sorted(spec.root.dag.tasks.items()):
        component = spec.components.get(task.component_ref.name)
        if component is None:
            yield (f"task {name} names component {task.component_ref.name!r}, which the spec "
                   "does not define")
        elif component.executor_label not in executors:
            yield f"task {name} has no executor ({component.executor_label!r})"


def _kfp_executor_kinds(spec: pipeline_spec_pb2.PipelineSpec, executors: Executors
                        ) -> Iterator[str]:
    # argocompiler/dag.go: "resolver executors not implemented", "custom job executors is Google
    # Cloud only, it's not supported": containers and importers only.
    for name, _, _, executor in _tasks(spec, executors):
        kind = executor.WhichOneof("spec")
        if kind == "resolver":
            yield (f"task {name} is a resolver, which Kubeflow Pipelines does not run "
                   "(resolver executors not implemented)")
        elif kind not in ("container", "importer"):
            yield f"task {name} has a {kind} executor, which Kubeflow Pipelines cannot run"


def _vertex_executor_kinds(spec: pipeline_spec_pb2.PipelineSpec, executors: Executors
                           ) -> Iterator[str]:
    # step_builder.py compiles only LatestArtifactStrategy and LatestBlessedModelStrategy, into
    # these queries, which Vertex AI runs against its ML Metadata.
    for name, _, _, executor in _tasks(spec, executors):
        kind = executor.WhichOneof("spec")
        if kind == "resolver":
            queries = executor.resolver.output_artifact_queries
            bad = [q.filter for q in queries.values() if not RESOLVER_QUERY.fullmatch(q.filter)]
            if not queries or bad:
                yield (f"task {name} is a resolver KFP v2 does not support "
                       f"({bad[0] if bad else 'no queries'})")
        elif kind not in ("container", "importer"):
            yield f"task {name} has a {kind} executor, which vertex cannot run"


def _parameters_are_constant(spec: pipeline_spec_pb2.PipelineSpec, executors: Executors
                             ) -> Iterator[str]:
    # resolveInputParameter reads runtimeValue.constant; any other runtimeValue is "param runtime
    # value spec of type %T not implemented".
    for name, task in sorted(spec.root.dag.tasks.items()):
        for key, parameter in sorted(task.inputs.parameters.items()):
            if parameter.WhichOneof("kind") != "runtime_value":
                continue
            form = parameter.runtime_value.WhichOneof("value")
            if form != "constant":
                yield (f"task {name}'s parameter {key!r} is runtimeValue."
                       f"{_camel(form or 'empty')}; Kubeflow Pipelines' driver reads "
                       "runtimeValue.constant only")


def _parameter_types_match(spec: pipeline_spec_pb2.PipelineSpec, executors: Executors
                           ) -> Iterator[str]:
    # The driver's input parameter checks: "neither value nor default value provided for
    # non-optional parameter %q", "input parameter %q type mismatch: expect %s, got %s".
    for name, task, component, _ in _tasks(spec, executors):
        given = task.inputs.parameters
        for key, definition in sorted(component.input_definitions.parameters.items()):
            declared = pipeline_spec_pb2.ParameterType.ParameterTypeEnum.Name(
                definition.parameter_type)
            if key not in given:
                if not definition.is_optional and not definition.HasField("default_value"):
                    yield f"task {name} gives no value for its required parameter {key!r}"
                continue
            if given[key].WhichOneof("kind") != "runtime_value" or \
                    given[key].runtime_value.WhichOneof("value") != "constant":
                continue  # resolved at run time, or refused by the rule above
            kind = given[key].runtime_value.constant.WhichOneof("kind")
            if declared not in _PARAMETER_TYPES_OF_KIND.get(kind, set()):
                yield (f"task {name}'s parameter {key!r} is a {kind.removesuffix('_value')} "
                       f"but its component declares parameterType {declared}")


def _tfx_entrypoint_flags(spec: pipeline_spec_pb2.PipelineSpec, executors: Executors
                          ) -> Iterator[str]:
    # _parse_flags: --executor_class_path and --json_serialized_invocation_args are required;
    # the second takes `{{$}}`, the ExecutorInput the backend's launcher substitutes.
    for name, _, _, executor in _tasks(spec, executors):
        container = executor.container if executor.WhichOneof("spec") == "container" else None
        if container is not None and _is_tfx_entrypoint(container):
            for flag in ("--executor_class_path", "--json_serialized_invocation_args"):
                if flag not in container.args[:-1]:
                    yield f"task {name} runs TFX's entrypoint without {flag}"
            args = list(container.args)
            if "--json_serialized_invocation_args" in args[:-1] and \
                    args[args.index("--json_serialized_invocation_args") + 1] != "{{$}}":
                yield f"task {name} does not pass the ExecutorInput ({{{{$}}}}) to TFX"


def _tfx_reads_parameter_values(spec: pipeline_spec_pb2.PipelineSpec, executors: Executors
                                ) -> Iterator[str]:
    # _run_executor reads ExecutorInput.inputs.parameterValues (where a 2.1.0 backend puts the
    # parameters; KFP's driver does) only when given --json_serialized_inputs_spec_args, and
    # types them by its `parameters`; without it, it reads the 2.0.0 field `parameters` and the
    # executor runs without its properties.
    if spec.schema_version != SCHEMA_2_1:
        return
    for name, _, component, executor in _tasks(spec, executors):
        if executor.WhichOneof("spec") != "container" or \
                not _is_tfx_entrypoint(executor.container):
            continue
        args = list(executor.container.args)
        if INPUTS_SPEC_FLAG not in args[:-1]:
            yield (f"task {name} runs TFX's entrypoint without {INPUTS_SPEC_FLAG}, so its "
                   "executor would read none of its parameters")
            continue
        inputs = pipeline_spec_pb2.ComponentInputsSpec()
        try:
            json_format.Parse(args[args.index(INPUTS_SPEC_FLAG) + 1], inputs,
                              ignore_unknown_fields=True)
        except json_format.ParseError:
            yield f"task {name}'s {INPUTS_SPEC_FLAG} is not a ComponentInputsSpec"
            continue
        if dict(inputs.parameters) != dict(component.input_definitions.parameters):
            yield (f"task {name}'s {INPUTS_SPEC_FLAG} does not declare its component's "
                   "parameters")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


# What each backend refuses, read from its source. A package breaking one of these is never
# written by `imgpipe compile` and never sent by `imgpipe kfp` / `imgpipe vertex`.
RULES: tuple[Rule, ...] = (
    Rule(("kubeflow",), KFP_TEMPLATE, _schema_is_2_1),
    Rule(("kubeflow",), KFP_TEMPLATE, _named_with_root),
    # The IR's own references, which the KFP compiler follows; Vertex AI needs them too.
    Rule(("kubeflow", "vertex"), KFP_VISITOR, _tasks_reach_executors),
    Rule(("kubeflow",), KFP_DAG, _kfp_executor_kinds),
    Rule(("vertex",), TFX_STEP_BUILDER, _vertex_executor_kinds),
    Rule(("kubeflow",), KFP_DRIVER, _parameters_are_constant),
    Rule(("kubeflow",), KFP_DRIVER, _parameter_types_match),
    Rule(("kubeflow", "vertex"), TFX_ENTRYPOINT, _tfx_entrypoint_flags),
    Rule(("kubeflow", "vertex"), TFX_ENTRYPOINT, _tfx_reads_parameter_values),
)


def spec_problems(spec: pipeline_spec_pb2.PipelineSpec, target: str, image: str | None = None,
                  resources: Mapping[str, ResourceSpec] | None = None) -> list[str]:
    """Why `target` would refuse or misrun `spec`: one sentence per problem, none when fine.

    First the backend's `RULES`, each problem naming its source file; then what the user asked:
    containers have a command and run `image`, and each executor asks for exactly its
    `resources` (executor label to ResourceSpec; an executor left out asks for none), when given.
    """
    try:
        executors = deployment_config(spec).executors
    except json_format.ParseError as error:
        return [f"its deploymentSpec is not a PipelineDeploymentConfig ({error})"]
    problems = [f"{problem} ({rule.source})" for rule in RULES if target in rule.targets
                for problem in rule.check(spec, executors)]
    for name, _, _, executor in _tasks(spec, executors):
        if executor.WhichOneof("spec") != "container":
            continue
        container = executor.container
        if image is not None and container.image != image:
            problems.append(f"task {name} runs image {container.image!r}, not {image!r}")
        if not container.args and not container.command:
            problems.append(f"task {name}'s container has no command")
    if resources is not None:
        for label, executor in sorted(executors.items()):
            if executor.WhichOneof("spec") != "container":
                continue
            wanted = resources.get(label, ResourceSpec())
            if executor.container.resources != wanted:
                problems.append(f"{label.removesuffix('_executor')} asks for "
                                f"{json_format.MessageToDict(executor.container.resources)}, "
                                f"not the resources given ({json_format.MessageToDict(wanted)})")
        problems += [f"{label.removesuffix('_executor')} is not in the package, so it cannot "
                     "ask for the resources given" for label in sorted(resources)
                     if label not in executors]
    return problems


def check_spec(spec: pipeline_spec_pb2.PipelineSpec, target: str, what: str,
               image: str | None = None, resources: Mapping[str, ResourceSpec] | None = None,
               remedy: str | None = None) -> None:
    """Raises a one-line UserError: the first problem of `spec_problems`, and what to do."""
    problems = spec_problems(spec, target, image, resources)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        remedy = remedy or f"recompile it with 'imgpipe compile --target {target}'"
        raise UserError(f"{what} is not a valid {target} pipeline: {problems[0]}{more}; "
                        f"{remedy}")
