"""The spec checks and Kubeflow's adaptations on small hand-made specs (no TFX, no compile)."""

import copy
import json

import pytest
from google.protobuf import json_format

from pipeline.errors import UserError
from pipeline.kubeflow import rules as kubeflow_rules
from pipeline.kubeflow import spec as kubeflow_spec

IMAGE = "registry.example/imgpipe:1"


TFX_COMMAND = ["python", "-m", kubeflow_rules.TFX_ENTRYPOINT_MODULE]


def _container(image: str, inputs: dict, schema: str) -> dict:
    """A TFX executor's container as KubeflowV2DagRunner writes it in `schema`."""
    args = ["--executor_class_path", "x.Executor", "--json_serialized_invocation_args", "{{$}}"]
    if schema == "2.1.0":
        args += ["--json_serialized_inputs_spec_args", json.dumps(inputs, indent=2,
                                                                  sort_keys=True)]
    return {"container": {"image": image, "command": TFX_COMMAND, "args": args}}


def _spec(image: str = IMAGE, resolver_filter: str | None = None, schema: str = "2.1.0") -> dict:
    """ExampleGen -> Trainer in TFX's `schema` form, with an optional resolver feeding the
    Trainer's base_model. 2.1.0 is what Kubeflow takes, 2.0.0 TFX's default, which Vertex runs.
    """
    legacy = schema == "2.0.0"
    trainer_inputs = {
        "artifacts": {
            "examples": {"artifactType": {"instanceSchema": "title: tfx.Examples\n"}},
            "base_model": {"artifactType": {"instanceSchema": "title: tfx.Model\n"}}},
        "parameters": {"custom_config": {"type": "STRING"} if legacy
                       else {"parameterType": "STRING"}}}
    spec = {
        "pipelineInfo": {"name": "image-classifier"},
        "schemaVersion": schema,
        "components": {
            "ImageExampleGen": {"executorLabel": "ImageExampleGen_executor"},
            "Trainer": {"executorLabel": "Trainer_executor", "inputDefinitions": trainer_inputs},
        },
        "deploymentSpec": {"executors": {
            "ImageExampleGen_executor": _container(image, {}, schema),
            "Trainer_executor": _container(image, trainer_inputs, schema),
        }},
        "root": {"dag": {"tasks": {
            "ImageExampleGen": {"componentRef": {"name": "ImageExampleGen"},
                                "taskInfo": {"name": "ImageExampleGen"}},
            "Trainer": {"componentRef": {"name": "Trainer"}, "taskInfo": {"name": "Trainer"},
                        "dependentTasks": ["ImageExampleGen"],
                        "inputs": {
                            "artifacts": {"examples": {"taskOutputArtifact": {
                                "producerTask": "ImageExampleGen",
                                "outputArtifactKey": "examples"}}},
                            "parameters": {"custom_config": {"runtimeValue": (
                                {"constantValue": {"stringValue": "{}"}} if legacy
                                else {"constant": "{}"})}}}},
        }}},
    }
    if resolver_filter is not None:
        spec["components"]["resolver"] = {"executorLabel": "resolver_executor"}
        spec["deploymentSpec"]["executors"]["resolver_executor"] = {
            "resolver": {"outputArtifactQueries": {"model": {"filter": resolver_filter}}}}
        spec["root"]["dag"]["tasks"]["resolver"] = {"componentRef": {"name": "resolver"},
                                                    "taskInfo": {"name": "resolver"}}
        trainer = spec["root"]["dag"]["tasks"]["Trainer"]
        trainer["dependentTasks"].append("resolver")
        trainer["inputs"]["artifacts"]["base_model"] = {"taskOutputArtifact": {
            "producerTask": "resolver", "outputArtifactKey": "model"}}
    return spec


def _inputs_spec_arg(spec: dict, executor: str) -> dict:
    args = spec["deploymentSpec"]["executors"][executor]["container"]["args"]
    return json.loads(args[args.index("--json_serialized_inputs_spec_args") + 1])


BLESSED = 'schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1'


def _problems(spec: dict, target: str, **kwargs) -> list[str]:
    return kubeflow_rules.spec_problems(kubeflow_spec.parse_spec(spec, "t"), target, **kwargs)


def test_a_good_spec_has_no_problems_and_vertex_accepts_tfx_resolver_queries():
    assert _problems(_spec(), "kubeflow", image=IMAGE) == []
    assert _problems(_spec(resolver_filter=BLESSED, schema="2.0.0"), "vertex", image=IMAGE) == []
    assert _problems(_spec(resolver_filter=BLESSED), "vertex", image=IMAGE) == []


def _one_line_refusal(spec: dict, target: str) -> str:
    with pytest.raises(UserError) as error:
        kubeflow_rules.check_spec(kubeflow_spec.parse_spec(spec, "p.yaml"), target, "p.yaml")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"p.yaml is not a valid {target} pipeline: ")
    assert message.endswith(f"; recompile it with 'imgpipe compile --target {target}'")
    return message


def test_kubeflow_refuses_schema_2_0_0_as_its_api_server_does():
    message = _one_line_refusal(_spec(schema="2.0.0"), "kubeflow")
    assert ("pipeline: schemaVersion is 2.0.0; Kubeflow Pipelines' API server accepts 2.1.0 "
            "only (kubeflow/pipelines backend/src/apiserver/template/v2_template.go)") in message


def test_kubeflow_refuses_a_constant_value_parameter_as_its_driver_does():
    spec = _spec()
    spec["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]["custom_config"] = {
        "runtimeValue": {"constantValue": {"stringValue": "{}"}}}
    message = _one_line_refusal(spec, "kubeflow")
    assert ("pipeline: task Trainer's parameter 'custom_config' is runtimeValue.constantValue; "
            "Kubeflow Pipelines' driver reads runtimeValue.constant only "
            "(kubeflow/pipelines backend/src/v2/driver/driver.go)") in message


def _trainer(spec: dict) -> tuple[dict, dict, list]:
    """The Trainer's task parameters, component parameter definitions and container args."""
    return (spec["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"],
            spec["components"]["Trainer"]["inputDefinitions"]["parameters"],
            spec["deploymentSpec"]["executors"]["Trainer_executor"]["container"]["args"])


def _declared_as(spec: dict, definition: dict) -> None:
    """The Trainer's parameter declared as `definition`, in its component and TFX's copy."""
    _, definitions, args = _trainer(spec)
    definitions["custom_config"] = definition
    args[5] = json.dumps(spec["components"]["Trainer"]["inputDefinitions"])


@pytest.mark.parametrize("change,expected", [
    (lambda s: s["pipelineInfo"].update(name="_"),
     "pipelineInfo.name '_' has no lowercase letter or digit (kubeflow/pipelines backend/src/"
     "apiserver/template/v2_template.go)"),
    (lambda s: _declared_as(s, {"type": "STRING"}),
     "task Trainer's parameter 'custom_config' is a string but its component declares "
     "parameterType PARAMETER_TYPE_ENUM_UNSPECIFIED (kubeflow/pipelines backend/src/v2/driver/"
     "driver.go)"),
    (lambda s: _declared_as(s, {"parameterType": "NUMBER_INTEGER"}),
     "task Trainer's parameter 'custom_config' is a string but its component declares "
     "parameterType NUMBER_INTEGER"),
    (lambda s: _trainer(s)[0].clear(),
     "task Trainer gives no value for its required parameter 'custom_config'"),
    (lambda s: _trainer(s)[2].__delitem__(slice(4, 6)),
     "task Trainer runs TFX's entrypoint without --json_serialized_inputs_spec_args, so its "
     "executor would read none of its parameters (tensorflow/tfx tfx/orchestration/kubeflow/v2/"
     "container/kubeflow_v2_run_executor.py)"),
    (lambda s: _trainer(s)[2].__setitem__(5, "{}"),
     "task Trainer's --json_serialized_inputs_spec_args does not declare its component's "
     "parameters"),
    (lambda s: _trainer(s)[2].__setitem__(3, "{}"),
     "task Trainer does not pass the ExecutorInput ({{$}}) to TFX"),
])
def test_kubeflow_refuses_what_its_backend_and_tfx_entrypoint_would_fail(change, expected):
    spec = _spec()
    change(spec)
    assert expected in _one_line_refusal(spec, "kubeflow")


def test_an_optional_parameter_may_go_without_a_value():
    spec = _spec()
    _declared_as(spec, {"parameterType": "NUMBER_INTEGER", "isOptional": True})
    _trainer(spec)[0].clear()
    assert _problems(spec, "kubeflow", image=IMAGE) == []


def test_every_rule_names_a_file_of_the_backend_it_was_read_from():
    for rule in kubeflow_rules.RULES:
        assert set(rule.targets) <= set(kubeflow_spec.TARGETS), rule
        assert rule.source.startswith(("kubeflow/pipelines backend/src/",
                                       "tensorflow/tfx tfx/orchestration/kubeflow/v2/")), rule
        assert rule.source.endswith((".go", ".py")), rule
    assert kubeflow_rules.SCHEMA_VERSIONS == {"kubeflow": "2.1.0", "vertex": "2.0.0"}


@pytest.mark.parametrize("spec,target,expected", [
    (_spec(image="other:2"), "vertex", "runs image 'other:2', not"),
    (_spec(resolver_filter=BLESSED), "kubeflow", "Kubeflow Pipelines does not run"),
    (_spec(resolver_filter="custom_strategy()"), "vertex", "resolver KFP v2 does not support"),
])
def test_problems_name_the_task_and_what_is_wrong(spec, target, expected):
    problems = _problems(spec, target, image=IMAGE)
    assert any(expected in p for p in problems), problems


def test_a_task_without_executor_is_refused_in_one_line():
    spec = _spec()
    del spec["deploymentSpec"]["executors"]["Trainer_executor"]
    with pytest.raises(UserError) as error:
        kubeflow_rules.check_spec(kubeflow_spec.parse_spec(spec, "p.yaml"), "kubeflow", "p.yaml")
    assert "task Trainer has no executor" in str(error.value)
    assert "\n" not in str(error.value)


def test_unknown_fields_are_refused_as_the_kfp_client_would():
    spec = _spec()
    spec["root"]["dag"]["tasks"]["Trainer"]["bogus"] = 1
    with pytest.raises(UserError, match="not a PipelineSpec kfp-pipeline-spec can read"):
        kubeflow_spec.parse_spec(spec, "p.yaml")


def test_adapt_for_kubeflow_drops_resolvers_and_their_inputs_and_uncaches_example_gen():
    spec = _spec(resolver_filter=BLESSED)
    original = copy.deepcopy(spec)
    changes = kubeflow_spec.adapt_for_kubeflow(spec, "gs://bucket/root")
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"ImageExampleGen", "Trainer"}
    assert "resolver" not in spec["components"]
    assert "resolver_executor" not in spec["deploymentSpec"]["executors"]
    assert set(tasks["Trainer"]["inputs"]["artifacts"]) == {"examples"}
    assert tasks["Trainer"]["dependentTasks"] == ["ImageExampleGen"]
    trainer_inputs = spec["components"]["Trainer"]["inputDefinitions"]["artifacts"]
    assert trainer_inputs["base_model"]["isOptional"] is True
    # TFX's 2.1.0 container carries its own copy of the inputs: kept the same.
    assert _inputs_spec_arg(spec, "Trainer_executor") == spec["components"]["Trainer"][
        "inputDefinitions"]
    assert _inputs_spec_arg(original, "Trainer_executor") != _inputs_spec_arg(spec,
                                                                              "Trainer_executor")
    assert tasks["ImageExampleGen"]["cachingOptions"] == {"enableCache": False}
    assert spec["defaultPipelineRoot"] == "gs://bucket/root"
    assert any("Trainer without 'base_model'" in change for change in changes)
    assert _problems(spec, "kubeflow", image=IMAGE) == []
    assert _problems(original, "kubeflow", image=IMAGE) != []


def test_trainer_resources_per_target():
    resources = kubeflow_spec.StepResources(gpus=2, gpu_type="nvidia-l4", memory_gb=32.0, cpus=8)
    vertex = json_format.MessageToDict(resources.resource_spec("vertex"))
    assert vertex == {"cpuLimit": 8.0, "memoryLimit": 32.0,
                      "accelerator": {"type": "NVIDIA_L4", "count": "2"}}
    kubeflow = resources.resource_spec("kubeflow")
    assert kubeflow.accelerator.type == "nvidia.com/gpu"
    assert (kubeflow.cpu_request, kubeflow.memory_request) == (8.0, 32.0)  # Kubernetes' requests
    assert kubeflow_spec.StepResources().resource_spec("vertex") is None


@pytest.mark.parametrize("text,gigabytes", [("32G", 32.0), ("32GB", 32.0), ("16Gi", 17.18),
                                            ("512M", 0.512), ("1.5T", 1500.0)])
def test_memory_sizes(text, gigabytes):
    assert kubeflow_spec.parse_memory_gb(text) == pytest.approx(gigabytes, abs=0.01)


@pytest.mark.parametrize("text", ["32", "lots", "0G", "-1G"])
def test_bad_memory_sizes(text):
    with pytest.raises(UserError, match="--trainer-memory"):
        kubeflow_spec.parse_memory_gb(text)


def test_gpu_names_accept_gke_and_vertex_spellings():
    assert kubeflow_spec.normalize_gpu_type("nvidia-tesla-t4") == "nvidia-tesla-t4"
    assert kubeflow_spec.normalize_gpu_type("NVIDIA_TESLA_T4") == "nvidia-tesla-t4"
    with pytest.raises(UserError, match="--gpu-type"):
        kubeflow_spec.normalize_gpu_type("t4")


def test_the_check_sees_every_step_ask_for_exactly_the_resources_given():
    trainer = kubeflow_spec.StepResources(gpus=1, memory_gb=16.0, cpus=4).resource_spec(
        "kubeflow")
    beam = kubeflow_spec.StepResources(memory_gb=8.0, cpus=2).resource_spec("kubeflow")
    wanted = {"Trainer_executor": trainer, "ImageExampleGen_executor": beam}
    spec = _spec()
    problems = _problems(spec, "kubeflow", image=IMAGE, resources=wanted)
    assert len(problems) == 2 and problems[0].startswith("ImageExampleGen asks for {}, not ")
    kubeflow_spec.set_resources(spec, wanted)
    assert spec["deploymentSpec"]["executors"]["ImageExampleGen_executor"]["container"][
        "resources"] == {"cpuLimit": 2.0, "cpuRequest": 2.0, "memoryLimit": 8.0,
                         "memoryRequest": 8.0}
    assert _problems(spec, "kubeflow", image=IMAGE, resources=wanted) == []
    # A step asking for what was not given (here: the Trainer, for none) is refused too.
    assert _problems(spec, "kubeflow", image=IMAGE, resources={
        "ImageExampleGen_executor": beam}) == [
        "Trainer asks for {'cpuLimit': 4.0, 'memoryLimit': 16.0, 'accelerator': {'type': "
        "'nvidia.com/gpu', 'count': '1'}, 'cpuRequest': 4.0, 'memoryRequest': 16.0}, not the "
        "resources given ({})"]
    missing = {**wanted, "Evaluator_executor": beam}
    assert _problems(spec, "kubeflow", resources=missing) == [
        "Evaluator is not in the package, so it cannot ask for the resources given"]
