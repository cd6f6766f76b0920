"""`imgpipe kfp run-local`: the ExecutorInput and placeholders against what KFP's driver and
launcher do (kubeflow/pipelines 2.17.0, backend/src/v2/driver/driver.go, resolve.go,
component/launcher_v2.go) and what TFX's entrypoint reads, the store's resolver queries and
cache; then both compiled packages run here to a pushed model (slow)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from PIL import Image
from tfx.orchestration.kubeflow.v2.container import (
    kubeflow_v2_entrypoint_utils,
    kubeflow_v2_run_executor,
)

from pipeline.cli import cli
from pipeline.errors import UserError
from pipeline.kubeflow.local_run import executor_input as ei
from pipeline.kubeflow.local_run import runner
from pipeline.kubeflow.local_run.store import ArtifactStore, Execution

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = "title: tfx.Examples\ntype: object\n"
MODEL = "title: tfx.Model\ntype: object\n"
BLESSING = "title: tfx.ModelBlessing\ntype: object\n"


def _component(parameters: dict) -> pipeline_spec_pb2.ComponentSpec:
    return json_format.ParseDict({
        "executorLabel": "Trainer_executor",
        "inputDefinitions": {"artifacts": {"examples": {"artifactType": {
            "instanceSchema": EXAMPLES}}}, "parameters": parameters},
        "outputDefinitions": {"artifacts": {"model": {"artifactType": {
            "instanceSchema": MODEL}}}},
    }, pipeline_spec_pb2.ComponentSpec())


def _task(parameters: dict) -> pipeline_spec_pb2.PipelineTaskSpec:
    return json_format.ParseDict({"taskInfo": {"name": "Trainer"},
                                  "componentRef": {"name": "Trainer"},
                                  "inputs": {"parameters": parameters}},
                                 pipeline_spec_pb2.PipelineTaskSpec())


def test_outputs_are_provisioned_as_kfps_driver_and_vertex_name_them():
    component = _component({})
    kfp = ei.TaskPaths.of("kfp", "/r/", "job", "Trainer", "u1")
    # driver.go provisionOutputs: <root>/<task>/<uuid>/<key>, named by its key; the output
    # metadata file in the task root's local path.
    assert kfp == ei.TaskPaths("/r/Trainer/u1", "/r/Trainer/u1/output_metadata.json")
    outputs = ei.provision_outputs("kfp", component, kfp, {"model": "ignored"})
    model = outputs.artifacts["model"].artifacts[0]
    assert (model.name, model.uri, model.type.instance_schema) == ("model", "/r/Trainer/u1/model",
                                                                   MODEL)
    assert outputs.output_file == "/r/Trainer/u1/output_metadata.json"
    # TFX's entrypoint: {gcsOutputDirectory}/{project}/{job}/{task}_{uuid}/executor_output.json;
    # the task's unique id is the folder's name.
    vertex = ei.TaskPaths.of("vertex", "/r", "job-1", "Trainer", "u2")
    outputs = ei.provision_outputs("vertex", component, vertex,
                                   {"model": ei.artifact_name("vertex", 7)})
    assert outputs.output_file == "/r/local/job-1/Trainer_u2/executor_output.json"
    assert outputs.artifacts["model"].artifacts[0].name == (
        "projects/local/locations/local/metadataStores/default/artifacts/7")
    assert ei.local_path_for_uri("gs://b/x") == "/gcs/b/x"  # LocalPathForURI's mounts


def test_parameters_go_where_each_schema_puts_them_and_tfx_reads_them():
    inputs_spec = {"custom_config": {"parameterType": "STRING"},
                   "steps": {"parameterType": "NUMBER_INTEGER"},
                   "job": {"parameterType": "STRING"}}
    component = _component(inputs_spec)
    executor_input = ei.ExecutorInput()
    ei.resolve_parameters("Trainer", _task({
        "custom_config": {"runtimeValue": {"constant": '{"a": 1}'}},
        "steps": {"runtimeValue": {"constant": 3}},
        "job": {"runtimeValue": {"constant": "{{$.pipeline_job_name}}"}}}),
        component, executor_input.inputs, ei.run_placeholders("pipe", "run-1", "Trainer", "7"))
    values = json_format.MessageToDict(executor_input.inputs)["parameterValues"]
    assert values == {"custom_config": '{"a": 1}', "steps": 3, "job": "pipe"}
    assert not executor_input.inputs.parameters
    # TFX's entrypoint, given the inputs spec as a 2.1.0 container is: integers stay integers.
    spec = json_format.ParseDict({"parameters": inputs_spec},
                                 pipeline_spec_pb2.ComponentInputsSpec())
    properties = kubeflow_v2_entrypoint_utils.parse_execution_properties(
        executor_input.inputs.parameter_values, executor_input.inputs.parameters, spec)
    assert properties == {"custom_config": '{"a": 1}', "steps": 3, "job": "pipe"}
    assert isinstance(properties["steps"], int)
    # Schema 2.0.0 (Vertex): constantValue goes to `parameters`, read without an inputs spec.
    legacy = ei.ExecutorInput()
    ei.resolve_parameters("Trainer", _task({"steps": {"runtimeValue": {"constantValue": {
        "intValue": "3"}}}}), _component({"steps": {"type": "INT"}}), legacy.inputs, {})
    assert kubeflow_v2_entrypoint_utils.parse_execution_properties(
        legacy.inputs.parameter_values, legacy.inputs.parameters, None) == {"steps": 3}


@pytest.mark.parametrize("parameters,definitions,expected", [
    ({}, {"steps": {"parameterType": "NUMBER_INTEGER"}},
     "neither value nor default value provided for non-optional parameter 'steps'"),
    ({"steps": {"runtimeValue": {"constant": "3"}}}, {"steps": {"parameterType": "NUMBER_INTEGER"}},
     "input parameter 'steps' type mismatch: expect NUMBER_INTEGER, got string_value"),
    ({"steps": {"componentInputParameter": "x"}}, {"steps": {"parameterType": "STRING"}},
     "is not a constant"),
])
def test_parameters_kfps_driver_refuses_are_refused(parameters, definitions, expected):
    with pytest.raises(UserError, match=re.escape(expected)):
        ei.resolve_parameters("Trainer", _task(parameters), _component(definitions),
                              ei.ExecutorInput().inputs, {})


def test_a_string_parameter_takes_any_value_as_text_and_defaults_fill_in_at_launch():
    component = _component({"config": {"parameterType": "STRING"},
                            "extra": {"parameterType": "STRING", "defaultValue": "d"}})
    executor_input = ei.ExecutorInput()
    ei.resolve_parameters("Trainer", _task({"config": {"runtimeValue": {"constant": 3}}}),
                          component, executor_input.inputs, {})
    assert executor_input.inputs.parameter_values["config"].string_value == "3"  # PbValueToText
    # launcher_v2.go addDefaultParams, on a copy: the driver's ExecutorInput keeps no default.
    launched = ei.with_defaults(executor_input, component)
    assert launched.inputs.parameter_values["extra"].string_value == "d"
    assert "extra" not in executor_input.inputs.parameter_values


def _executor_input() -> ei.ExecutorInput:
    executor_input = ei.ExecutorInput()
    examples = executor_input.inputs.artifacts["examples"].artifacts.add()
    examples.CopyFrom(ei.RuntimeArtifact(name="12", uri="/r/ImageExampleGen/u/examples"))
    examples.type.instance_schema = EXAMPLES
    examples.metadata.update({"span": 0.0, "split_names": '["train", "eval"]'})
    for key, value in (("rate", 0.5), ("steps", 3.0), ("big", 1e20), ("flag", True),
                       ("name", "x y")):
        json_format.ParseDict(value, executor_input.inputs.parameter_values[key])
    executor_input.outputs.CopyFrom(ei.provision_outputs(
        "kfp", _component({}), ei.TaskPaths.of("kfp", "/r", "j", "Trainer", "u"), {}))
    return executor_input


def test_placeholders_are_substituted_as_kfps_launcher_does():
    executor_input = _executor_input()
    args = ["--json_serialized_invocation_args", "{{$}}",
            "{{$.inputs.artifacts['examples'].uri}}", "{{$.inputs.artifacts['examples'].path}}",
            "{{$.outputs.artifacts['model'].uri}}", "r={{$.inputs.parameters['rate']}}",
            "{{$.inputs.parameters['steps']}}", "{{$.inputs.parameters['big']}}",
            "{{$.inputs.parameters['flag']}}", "{{$.inputs.parameters['name']}}"]
    words = ei.substitute("Trainer", args, executor_input)
    # Go's strconv.FormatFloat(v, 'f', -1, 64) and strconv.FormatBool.
    assert words[2:] == ["/r/ImageExampleGen/u/examples", "/r/ImageExampleGen/u/examples",
                         "/r/Trainer/u/model", "r=0.5", "3", "100000000000000000000", "true",
                         "x y"]
    # `{{$}}` is the ExecutorInput itself, which TFX's entrypoint parses back: its flag parser,
    # then the artifacts as TFX artifacts, metadata merged into their properties.
    flags, _ = kubeflow_v2_run_executor._parse_flags(["x", "--executor_class_path", "m.E",
                                                     *words[:2]])
    parsed = ei.ExecutorInput()
    json_format.Parse(flags.json_serialized_invocation_args, parsed)
    assert parsed == executor_input
    artifacts = kubeflow_v2_entrypoint_utils.parse_raw_artifact_dict(parsed.inputs.artifacts)
    examples = artifacts["examples"][0]
    assert (examples.uri, examples.span, examples.split_names) == (
        "/r/ImageExampleGen/u/examples", 0, '["train", "eval"]')


def test_a_placeholder_the_launcher_does_not_know_is_refused():
    with pytest.raises(UserError, match=re.escape(
            "task Trainer: the local run cannot substitute {{$.inputs.parameters['nope']}}")):
        ei.substitute("Trainer", ["{{$.inputs.parameters['nope']}}"], _executor_input())


def test_executor_output_metadata_is_merged_as_kfps_launcher_merges_it(tmp_path):
    target = ei.RuntimeArtifact(uri="/r/a")
    target.metadata.update({"kept": 1.0, "replaced": "old"})
    source = ei.RuntimeArtifact()
    source.metadata.update({"replaced": "new", "blessed": 1.0})
    ei.merge_runtime_artifact(source, target)
    assert target.uri == "/r/a"  # an empty URI leaves it
    assert json_format.MessageToDict(target.metadata) == {"kept": 1.0, "replaced": "new",
                                                          "blessed": 1.0}
    assert ei.read_executor_output(str(tmp_path / "missing.json")) == \
        pipeline_spec_pb2.ExecutorOutput()  # getExecutorOutputFile: missing is empty
    (tmp_path / "bad.json").write_text('{"unknown": 1}')
    with pytest.raises(UserError, match="cannot read the output metadata file"):
        ei.read_executor_output(str(tmp_path / "bad.json"))


def _record(store: ArtifactStore, schema: str, metadata: dict) -> int:
    artifact = ei.RuntimeArtifact(uri=f"/r/{len(metadata)}")
    artifact.type.instance_schema = schema
    artifact.metadata.update(metadata)
    artifact_id = store.reserve_id()
    store.record_artifact(artifact_id, "run", "task", "key", artifact)
    return artifact_id


BLESSED = 'schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1'
MODEL_OF = ('schema_title="tfx.Model" AND state=LIVE AND '
            "name=\"{{$.inputs.artifacts['input'].metadata['current_model_id']}}\"")


def test_resolver_queries_find_the_latest_blessed_model_across_runs(tmp_path):
    store = ArtifactStore(str(tmp_path), "pipe")
    assert store.query("vertex", BLESSED, {}) is None
    first = _record(store, MODEL, {})
    second = _record(store, MODEL, {"x": 1.0})
    name = ei.artifact_name("vertex", first)
    blessing = _record(store, BLESSING, {"blessed": 1.0, "current_model_id": name})
    _record(store, BLESSING, {"blessed": 0.0, "current_model_id": ei.artifact_name(
        "vertex", second)})  # later, but not blessed
    ArtifactStore(str(tmp_path), "other").save()
    store.save()
    store = ArtifactStore(str(tmp_path), "pipe")  # read back, as the next run does
    assert store.query("vertex", BLESSED, {}) == blessing
    found = store.runtime_artifact("vertex", blessing)
    assert store.query("vertex", MODEL_OF, {"input": found}) == first
    assert store.query("vertex", MODEL_OF, {}) is None  # no blessing found: no model
    assert ArtifactStore(str(tmp_path), "other").query("vertex", BLESSED, {}) is None
    with pytest.raises(UserError, match="is not one TFX compiles"):
        store.query("vertex", 'schema_title="tfx.Model" OR state=LIVE', {})


def test_the_cache_key_is_kfps_and_only_a_completed_execution_serves(tmp_path):
    component = _component({})
    container = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec(
        image="img:1", command=["python"], args=["{{$}}"])
    executor_input = _executor_input()
    key = runner.fingerprint(executor_input, component, container)
    elsewhere = ei.ExecutorInput()
    elsewhere.CopyFrom(executor_input)
    elsewhere.outputs.artifacts["model"].artifacts[0].uri = "/r/Trainer/other/model"
    assert runner.fingerprint(elsewhere, component, container) == key  # URIs wiped
    elsewhere.inputs.artifacts["examples"].artifacts[0].name = "13"
    assert runner.fingerprint(elsewhere, component, container) != key
    container.args.append("--more")
    assert runner.fingerprint(executor_input, component, container) != key
    store = ArtifactStore(str(tmp_path), "pipe")
    store.record_execution(Execution("r1", "Trainer", "FAILED", key, {}, 1.0))
    assert store.cached(key) is None
    store.record_execution(Execution("r2", "Trainer", "COMPLETE", key, {"model": [4]}, 1.0))
    assert store.cached(key).outputs == {"model": [4]}
    assert ArtifactStore(str(tmp_path), "other").cached(key) is None


def test_tasks_run_after_what_they_depend_on():
    spec = json_format.ParseDict({"root": {"dag": {"tasks": {
        "a": {"taskInfo": {"name": "a"}},
        "c": {"taskInfo": {"name": "c"}, "dependentTasks": ["b"]},
        "b": {"taskInfo": {"name": "b"}, "inputs": {"artifacts": {"x": {
            "taskOutputArtifact": {"producerTask": "z", "outputArtifactKey": "k"}}}}},
        "z": {"taskInfo": {"name": "z"}}}}}}, pipeline_spec_pb2.PipelineSpec())
    assert runner.task_order(spec) == ["a", "z", "b", "c"]


def test_tasks_get_the_images_environment_and_our_code():
    env_block = re.search(r"^ENV (.*?)\n\n", (ROOT / "Dockerfile").read_text(), re.M | re.S)
    image_env = dict(re.findall(r"(\w+)=(\S+)", env_block.group(1)))
    assert image_env.pop("PYTHONPATH") == "/opt/imgpipe"  # our source, in the image
    assert runner.IMAGE_ENV == image_env
    container = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec()
    container.env.add(name="EXTRA", value="1")
    env = runner.container_environment(container)
    assert env["PYTHONPATH"].split(":")[0] == str(ROOT) and env["EXTRA"] == "1"
    assert all(env[k] == v for k, v in image_env.items())
    assert runner.command_line(["python", "-m", "m"], ["a"])[1:] == ["-m", "m", "a"]


def test_a_package_without_a_local_root_is_refused_in_one_line(tmp_path):
    package = tmp_path / "p.json"
    package.write_text("{}")
    result = CliRunner().invoke(cli, ["kfp", "run-local", str(package)])
    assert isinstance(result.exception, UserError)
    assert "\n" not in str(result.exception)


# A container that reads the ExecutorInput it is given, writes its output artifact's file and
# the output metadata file, as a TFX executor does, in a second or so.
_TINY_SCRIPT = """
import json, pathlib, sys
executor_input = json.loads(sys.argv[1])
pathlib.Path(sys.argv[2]).write_text(str(executor_input["inputs"]["parameterValues"]["n"]))
output = {"artifacts": {"out": {"artifacts": [{"metadata": {"written": 1}}]}}}
pathlib.Path(executor_input["outputs"]["outputFile"]).write_text(json.dumps(output))
"""


def _tiny_package(tmp_path: Path) -> Path:
    spec = {
        "pipelineInfo": {"name": "tiny"}, "schemaVersion": "2.1.0",
        "defaultPipelineRoot": str(tmp_path / "root"),
        "root": {"dag": {"tasks": {"make": {
            "taskInfo": {"name": "make"}, "componentRef": {"name": "make"},
            "cachingOptions": {"enableCache": True},
            "inputs": {"parameters": {"n": {"runtimeValue": {"constant": 7}}}}}}}},
        "components": {"make": {
            "executorLabel": "make_executor",
            "inputDefinitions": {"parameters": {"n": {"parameterType": "NUMBER_INTEGER"}}},
            "outputDefinitions": {"artifacts": {"out": {"artifactType": {
                "schemaTitle": "system.Artifact"}}}}}},
        "deploymentSpec": {"executors": {"make_executor": {"container": {
            "image": "img:1", "command": ["python", "-c", _TINY_SCRIPT],
            "args": ["{{$}}", "{{$.outputs.artifacts['out'].path}}"]}}}},
    }
    package = tmp_path / "tiny.yaml"
    package.write_text(json.dumps(spec))
    return package


def test_a_container_runs_with_its_placeholders_and_a_second_run_is_a_cache_hit(tmp_path):
    package = _tiny_package(tmp_path)
    first = runner.run_package(package, "kfp")
    assert [(t.name, t.state) for t in first.tasks] == [("make", "done")]
    store = json.loads((tmp_path / "root" / ".run-local" / "store.json").read_text())
    (artifact,) = store["artifacts"]
    assert float(Path(artifact["uri"]).read_text()) == 7  # the output path, given the parameter
    assert artifact["metadata"] == {"written": 1, "display_name": "out"}
    second = runner.run_package(package, "kfp")
    assert [(t.name, t.state, t.detail) for t in second.tasks] == [
        ("make", "cached", f"outputs of run {first.job_id}")]
    (tmp_path / "root" / "marker").write_text("")
    with pytest.raises(UserError, match="is a Vertex AI PipelineJob"):
        runner.run_package(package.rename(tmp_path / "tiny.json"), "kfp")

# The end-to-end runs: both targets compiled with --for-run-local, then run here, every task in
# TFX's own container entrypoint as a subprocess. Bright and dark noise images: a signal even a
# frozen base with random weights carries (tests/e2e/gate_test.py), so no weights are loaded.
CLASSES = ("bright", "dark")
TRAINING = ("--weights", "none", "--image-size", "75", "--epochs", "2", "--batch-size", "16",
            "--learning-rate", "0.01", "--no-augment", "--accuracy-threshold", "0")
UPSTREAM = ("ImageExampleGen", "StatisticsGen", "SchemaGen", "CurateSchema", "ExampleValidator",
            "DataGate", "Transform")
BLESSING_RESOLVER = "latest_blessed_model_resolver-model-blessing-resolver"
MODEL_RESOLVER = "latest_blessed_model_resolver-model-resolver"


def _write_images(root: Path, per_class: int = 12, seed: int = 5) -> None:
    rng = np.random.default_rng(seed)
    for name, (low, high) in zip(CLASSES, ((185, 256), (0, 70)), strict=True):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(low, high, (75, 75, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:03d}.png")


def _compile_for_run_local(tmp_path: Path, target: str) -> tuple[Path, Path]:
    data, root = tmp_path / "data", tmp_path / "root"
    if not data.exists():
        _write_images(data)
    package = tmp_path / ("pipeline.json" if target == "vertex" else "pipeline.yaml")
    result = CliRunner().invoke(cli, [
        "compile", "--target", target, "--image", "imgpipe:test", "--for-run-local",
        "--pipeline-root", str(root), "--data", str(data), "--classes", ",".join(CLASSES),
        "--layout", "classes", "--output", str(package), *TRAINING])
    assert result.exit_code == 0, (result.output, result.exception)
    return package, root


def _run_local(package: Path, *args: str) -> tuple[dict[str, tuple[str, str]], str]:
    """Runs `imgpipe kfp run-local`; each task's (state, detail) and the command's output."""
    result = CliRunner().invoke(cli, ["kfp", "run-local", str(package), *args])
    assert result.exit_code == 0, (result.output, result.exception)
    states = {}
    for line in result.output.splitlines():
        match = re.fullmatch(r"(\S+) +(\w+) +[0-9.]+ s(?: \((.*)\))?", line)
        if match:
            states[match.group(1)] = (match.group(2), match.group(3) or "")
    return states, result.output


def _store(root: Path) -> dict:
    return json.loads((root / ".run-local" / "store.json").read_text())


def _artifact(store: dict, run_of: str, task: str, key: str) -> dict:
    execution = next(e for e in reversed(store["executions"])
                     if e["task"] == task and e["run"] == run_of)
    return next(a for a in store["artifacts"] if a["id"] == execution["outputs"][key][0])


@pytest.mark.slow
def test_the_kubeflow_package_runs_here_to_a_pushed_model(tmp_path):
    package, root = _compile_for_run_local(tmp_path, "kubeflow")
    states, output = _run_local(package)  # --backend kfp, from the .yaml
    assert states == {name: ("done", "") for name in (*UPSTREAM, "DataAudit", "Trainer",
                                                      "Evaluator", "ModelLoadCheck", "Pusher")}
    version = root / "serving" / "image-classifier" / "1"
    assert f"pushed: {version}" in output
    assert (version / "saved_model.pb").is_file()
    logs = next((root / ".run-local" / "logs").iterdir())
    assert not list(logs.glob("*.driver.log"))  # KFP runs no preCacheCheck
    store = _store(root)
    run_id = store["executions"][-1]["run"]
    examples = _artifact(store, run_id, "ImageExampleGen", "examples")
    # driver.go's layout, and the metadata KFP records: TFX's properties plus display_name.
    assert re.fullmatch(rf"{root}/ImageExampleGen/\w+/examples", examples["uri"])
    assert examples["metadata"]["display_name"] == "examples"
    assert json.loads(examples["metadata"]["split_names"]) == ["train", "eval"]


@pytest.mark.slow
@pytest.mark.timeout(3600)  # two runs of the pipeline, the second mostly from the cache
def test_the_vertex_package_runs_twice_here_reusing_the_cache_and_the_blessed_model(tmp_path):
    package, root = _compile_for_run_local(tmp_path, "vertex")
    refused = CliRunner().invoke(cli, ["kfp", "run-local", str(package), "--backend", "kfp"])
    assert isinstance(refused.exception, UserError)
    assert str(refused.exception) == (
        f"{package} is a Vertex AI PipelineJob; run it with --backend vertex, or compile "
        "--target kubeflow for a package Kubeflow Pipelines takes")
    assert not root.exists()  # refused before anything ran

    states, output = _run_local(package)  # --backend vertex, from the .json
    assert states[BLESSING_RESOLVER] == ("resolved", "found none")
    assert states[MODEL_RESOLVER] == ("resolved", "found none")
    assert all(states[name] == ("done", "") for name in (*UPSTREAM, "Trainer", "Pusher"))
    assert f"pushed: {root}/serving/image-classifier/1" in output
    store = _store(root)
    first_run = store["executions"][-1]["run"]
    first_model = _artifact(store, first_run, "Trainer", "model")
    # The ExampleGen driver ran first; its span and fingerprint reached the examples' metadata.
    examples = _artifact(store, first_run, "ImageExampleGen", "examples")
    assert examples["metadata"]["input_fingerprint"].startswith("split:images,num_files:24,")

    states, output = _run_local(package)
    assert {name: states[name][0] for name in UPSTREAM} == dict.fromkeys(UPSTREAM, "cached")
    model_name = ei.artifact_name("vertex", first_model["id"])
    assert states[MODEL_RESOLVER] == ("resolved", f"found {model_name}")
    assert states["Trainer"][0] == states["Evaluator"][0] == "done"
    assert f"pushed: {root}/serving/image-classifier/2" in output
    store = _store(root)
    second_run = store["executions"][-1]["run"]
    history = json.loads(Path(_artifact(store, second_run, "Trainer", "model_run")["uri"],
                              "history.json").read_text())
    assert history["warm_start_from"].startswith(first_model["uri"])
    # DataAudit's eval features reached the Trainer's container through its ExecutorInput; the
    # Trainer compared them with its own (--weights none: two random bases, so not taken).
    assert history["validation"]["given"] is True, history["validation"]
    assert history["validation"]["reason"].startswith("they are not the Trainer's own"), (
        history["validation"])
    blessing = _artifact(store, second_run, "Evaluator", "blessing")
    assert blessing["metadata"]["baseline_model_id"] == model_name
    assert blessing["metadata"]["blessed"] == 1
