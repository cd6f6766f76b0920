"""`imgpipe compile` with KubeflowV2DagRunner: both targets, read back as their clients do."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from google.protobuf import json_format, struct_pb2
from kfp import components
from kfp.client.client import _extract_pipeline_yaml
from kfp.kubernetes.kubernetes_executor_config_pb2 import KubernetesExecutorConfig
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2.container import (
    kubeflow_v2_entrypoint_utils,
    kubeflow_v2_run_executor,
)

from pipeline.cli import cli
from pipeline.errors import UserError
from pipeline.kubeflow import rules as kubeflow_rules
from pipeline.kubeflow import spec as kubeflow_spec
from pipeline.kubeflow.compile import artifact_type_problems

IMAGE = "europe-docker.pkg.dev/project/imgpipe/imgpipe:1"
WEIGHTS = "/opt/imgpipe/weights/base.h5"
BEAM_COMPONENTS = ("ImageExampleGen", "StatisticsGen", "Transform", "Evaluator")
INPUTS_SPEC_FLAG = "--json_serialized_inputs_spec_args"
TFX_COMMAND = ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]


def _compile(*args: str):
    return CliRunner().invoke(cli, ["compile", "--image", IMAGE, "--weights", WEIGHTS, *args])


def _executors(spec: dict) -> dict:
    return spec["deploymentSpec"]["executors"]


def _parameter(spec: dict, task: str, name: str) -> str:
    """A task's constant string parameter, in the one field its schema version puts it."""
    value = spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"][name]["runtimeValue"]
    if spec["schemaVersion"] == "2.1.0":
        return value["constant"]
    return value["constantValue"]["stringValue"]


def _task_parameters(spec: dict) -> list[tuple[str, str, dict]]:
    return [(task, name, value) for task, body in spec["root"]["dag"]["tasks"].items()
            for name, value in body.get("inputs", {}).get("parameters", {}).items()]


def _inputs_spec_arg(args: list[str]) -> dict:
    return json.loads(args[args.index(INPUTS_SPEC_FLAG) + 1])


@pytest.fixture(scope="module")
def vertex_job(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("vertex") / "pipeline.json"
    result = _compile(
        "--target", "vertex", "--pipeline-root", "gs://bucket/root", "--output", str(out),
        "--data", "gs://bucket/images", "--classes", "dogs,cats", "--layout", "spans",
        "--gpus", "1", "--gpu-type", "nvidia-tesla-t4", "--trainer-memory", "32G",
        "--beam-cpus", "3", "--beam-memory", "12G",
        "--beam-pipeline-args", "--runner=DataflowRunner --project=p",
        "--beam-pipeline-args", "--region=europe-west4")
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"{out}: 14 tasks for vertex" in result.output
    return json.loads(out.read_text())


def test_vertex_package_is_a_pipeline_job_with_every_task_on_the_image(vertex_job):
    job = json_format.ParseDict(vertex_job, pipeline_spec_pb2.PipelineJob())
    assert job.runtime_config.gcs_output_directory == "gs://bucket/root"
    spec = vertex_job["pipelineSpec"]
    tasks = spec["root"]["dag"]["tasks"]
    assert {"ImageExampleGen", "CurateSchema", "DataAudit", "DataGate", "ModelLoadCheck", "Pusher",
            "Trainer"} <= set(tasks)
    executors = _executors(spec)
    for name, task in tasks.items():
        executor = executors[spec["components"][task["componentRef"]["name"]]["executorLabel"]]
        assert "container" in executor or "resolver" in executor, name
        if "container" in executor:
            assert executor["container"]["image"] == IMAGE, name
    resolvers = [e["resolver"] for e in executors.values() if "resolver" in e]
    assert len(resolvers) == 2  # LatestBlessedModelStrategy: the blessing, then its model
    # The span is picked at run time by TFX's driver, in the ExampleGen's pre-cache hook.
    example_gen = executors["ImageExampleGen_executor"]["container"]
    assert "preCacheCheck" in example_gen["lifecycle"]


def test_vertex_trainer_resources_and_beam_args(vertex_job):
    executors = _executors(vertex_job["pipelineSpec"])
    resources = executors["Trainer_executor"]["container"]["resources"]
    # Vertex AI picks the machine from the limits; the CPUs are the default, 4.
    assert resources == {"accelerator": {"count": "1", "type": "NVIDIA_TESLA_T4"},
                         "memoryLimit": 32.0, "cpuLimit": 4.0}
    for name in BEAM_COMPONENTS:
        container = executors[f"{name}_executor"]["container"]
        assert container["args"][-3:] == ["--runner=DataflowRunner", "--project=p",
                                          "--region=europe-west4"]
        assert container["resources"] == {"cpuLimit": 3.0, "memoryLimit": 12.0}, name
    others = {label for label, executor in executors.items() if "container" in executor} - {
        f"{name}_executor" for name in (*BEAM_COMPONENTS, "Trainer")}
    assert others and all("resources" not in executors[label]["container"] for label in others)


def test_vertex_package_keeps_tfx_schema_2_0_0_which_vertex_runs(vertex_job):
    spec = vertex_job["pipelineSpec"]
    assert spec["schemaVersion"] == "2.0.0"
    parameters = _task_parameters(spec)
    assert len(parameters) > 20
    for task, name, value in parameters:
        assert set(value["runtimeValue"]) == {"constantValue"}, (task, name)
    for executor in _executors(spec).values():
        assert INPUTS_SPEC_FLAG not in executor.get("container", {}).get("args", [])


def test_vertex_push_goes_under_the_pipeline_root_and_custom_types_import(vertex_job):
    serving = _parameter(vertex_job["pipelineSpec"], "Pusher", "serving_model_dir")
    assert serving == "gs://bucket/root/serving/image-classifier"
    spec = kubeflow_spec.parse_spec(vertex_job["pipelineSpec"], "t")
    verdict = spec.components["DataGate"].output_definitions.artifacts["verdict"]
    assert "title: components.DataVerdict" in verdict.artifact_type.instance_schema
    assert artifact_type_problems(spec) == []
    broken = pipeline_spec_pb2.PipelineSpec()
    broken.CopyFrom(spec)
    broken.components["DataGate"].output_definitions.artifacts["verdict"].artifact_type \
        .instance_schema = "title: ImageDataVerdict\n"
    assert artifact_type_problems(broken)


def test_vertex_evaluator_gates_with_our_paired_metric_against_the_baseline(vertex_job):
    """The Evaluator in the image loads the gate's metric by module name: it must be ours."""
    import importlib

    eval_config = json.loads(_parameter(vertex_job["pipelineSpec"], "Evaluator", "eval_config"))
    metrics = eval_config["metrics_specs"][0]["metrics"]
    (paired,) = [m for m in metrics if m.get("module", "").startswith("components.")]
    assert getattr(importlib.import_module(paired["module"]), paired["class_name"])
    levels = sorted(t["threshold"]["change_threshold"]["absolute"]
                    for t in paired["per_slice_thresholds"])
    assert levels == pytest.approx([0.05 / 2, 0.05])  # two classes: each at alpha / 2
    assert "baseline_model" in vertex_job["pipelineSpec"]["root"]["dag"]["tasks"]["Evaluator"][
        "inputs"]["artifacts"]


@pytest.fixture(scope="module")
def kubeflow_package(tmp_path_factory) -> tuple[Path, str]:
    """A kubeflow package of two classes on GPUs, and what compile said."""
    out = tmp_path_factory.mktemp("kubeflow") / "pipeline.yaml"
    result = _compile(
        "--target", "kubeflow", "--pipeline-root", "gs://bucket/root", "--output", str(out),
        "--data", "gs://bucket/images", "--classes", "dogs,cats", "--layout", "classes",
        "--serving-dir", "gs://bucket/models", "--gpus", "2", "--gpu-type", "nvidia-l4")
    assert result.exit_code == 0, (result.output, result.exception)
    return out, result.output


def test_kubeflow_package_is_yaml_the_kfp_client_reads_without_resolvers(kubeflow_package):
    out, output = kubeflow_package
    assert "for kubeflow: Trainer without 'base_model'" in output
    documents = list(yaml.safe_load_all(out.read_text()))
    assert len(documents) == 2  # the PipelineSpec, then Kubernetes' platform spec
    doc = _extract_pipeline_yaml(str(out))  # exactly what kfp.Client uploads
    spec = doc.pipeline_spec
    assert spec.default_pipeline_root == "gs://bucket/root"
    assert not any("resolver" in name for name in spec.root.dag.tasks)
    assert "base_model" not in spec.root.dag.tasks["Trainer"].inputs.artifacts
    assert "baseline_model" not in spec.root.dag.tasks["Evaluator"].inputs.artifacts
    assert not spec.root.dag.tasks["ImageExampleGen"].caching_options.enable_cache
    kubeflow_rules.check_spec(spec, "kubeflow", str(out), image=IMAGE)
    executors = json_format.MessageToDict(doc.platform_spec)["platforms"]["kubernetes"][
        "deploymentSpec"]["executors"]
    assert executors["Trainer_executor"]["nodeSelector"]["labels"] == {
        "cloud.google.com/gke-accelerator": "nvidia-l4"}
    trainer = documents[0]["deploymentSpec"]["executors"]["Trainer_executor"]["container"]
    # The defaults, as requests and limits: Kubernetes schedules by the requests.
    assert trainer["resources"] == {"accelerator": {"type": "nvidia.com/gpu", "count": "2"},
                                    "cpuLimit": 4.0, "cpuRequest": 4.0, "memoryLimit": 16.0,
                                    "memoryRequest": 16.0}
    for name in BEAM_COMPONENTS:
        container = documents[0]["deploymentSpec"]["executors"][f"{name}_executor"]["container"]
        assert container["resources"] == {"cpuLimit": 2.0, "cpuRequest": 2.0, "memoryLimit": 8.0,
                                          "memoryRequest": 8.0}, name
    assert _parameter(documents[0], "Pusher", "serving_model_dir") == (
        "gs://bucket/models/image-classifier")
    trainer_config = json.loads(_parameter(documents[0], "Trainer", "custom_config"))
    assert trainer_config["hparams"]["class_names"] == ["cats", "dogs"]  # --classes, sorted
    assert trainer_config["hparams"]["weights"] == WEIGHTS
    # Promised two GPUs, the Trainer refuses to train on the CPU (trainer/devices.py).
    assert trainer_config["hparams"]["devices"]["require_gpus"] == 2


def test_kubeflow_package_is_schema_2_1_0_with_constant_parameters(kubeflow_package):
    out, _ = kubeflow_package
    text = out.read_text()
    spec = next(yaml.safe_load_all(text))
    assert spec["schemaVersion"] == "2.1.0"  # the only one Kubeflow's API server takes
    assert "constantValue" not in text
    parameters = _task_parameters(spec)
    assert len(parameters) > 20
    for task, name, value in parameters:
        assert set(value["runtimeValue"]) == {"constant"}, (task, name)
    for name, component in spec["components"].items():
        for key, definition in component.get("inputDefinitions", {}).get("parameters", {}).items():
            assert "parameterType" in definition and "type" not in definition, (name, key)
    # The kfp 2.5 SDK reads it as a component, with its own loader and protos.
    component = components.load_component_from_file(str(out))
    assert component.pipeline_spec.schema_version == "2.1.0"
    assert set(component.pipeline_spec.root.dag.tasks) == set(spec["root"]["dag"]["tasks"])


def test_kubeflow_containers_give_tfx_what_its_2_1_entrypoint_reads(kubeflow_package):
    """Each container is TFX's entrypoint with its inputs spec; given an ExecutorInput as KFP's
    driver and launcher build it (parameters in `parameterValues` only), TFX's own flag parser
    and property reader find every parameter, integers as integers."""
    out, _ = kubeflow_package
    spec = next(yaml.safe_load_all(out.read_text()))
    executors = _executors(spec)
    for task, body in spec["root"]["dag"]["tasks"].items():
        component = spec["components"][body["componentRef"]["name"]]
        container = executors[component["executorLabel"]]["container"]
        assert container["command"] == TFX_COMMAND, task
        definitions = component.get("inputDefinitions", {})
        assert _inputs_spec_arg(container["args"]) == definitions, task
        executor_input = pipeline_spec_pb2.ExecutorInput()
        for name, value in body.get("inputs", {}).get("parameters", {}).items():
            executor_input.inputs.parameter_values[name].CopyFrom(
                json_format.ParseDict(value["runtimeValue"]["constant"], struct_pb2.Value()))
        args = [arg.replace("{{$}}", json_format.MessageToJson(executor_input))
                for arg in container["args"]]
        flags, beam_args = kubeflow_v2_run_executor._parse_flags(["executor", *args])
        assert "--direct_running_mode=in_memory" in beam_args
        parsed = pipeline_spec_pb2.ExecutorInput()
        json_format.Parse(flags.json_serialized_invocation_args, parsed)
        inputs_spec = pipeline_spec_pb2.ComponentInputsSpec()
        json_format.Parse(flags.json_serialized_inputs_spec_args, inputs_spec)
        properties = kubeflow_v2_entrypoint_utils.parse_execution_properties(
            parsed.inputs.parameter_values, parsed.inputs.parameters, inputs_spec)
        assert set(properties) == set(definitions.get("parameters", {})), task
        for name, definition in definitions.get("parameters", {}).items():
            if definition["parameterType"] == "NUMBER_INTEGER":
                assert isinstance(properties[name], int), (task, name)
        if definitions.get("parameters"):  # without the inputs spec, TFX reads none of them
            assert kubeflow_v2_entrypoint_utils.parse_execution_properties(
                parsed.inputs.parameter_values, parsed.inputs.parameters, None) == {}
    example_gen = executors["ImageExampleGen_executor"]["container"]
    assert _inputs_spec_arg(example_gen["lifecycle"]["preCacheCheck"]["args"]) == spec[
        "components"]["ImageExampleGen"]["inputDefinitions"]


def test_a_package_kubeflow_would_refuse_is_not_written(tmp_path, monkeypatch):
    monkeypatch.setitem(kubeflow_rules.SCHEMA_VERSIONS, "kubeflow", "2.0.0")  # TFX's default
    out = tmp_path / "pipeline.yaml"
    result = _compile("--target", "kubeflow", "--pipeline-root", "gs://b/root", "--output",
                      str(out), "--data", "gs://b/images", "--classes", "a,b", "--layout",
                      "classes", "--weights", "none")
    assert isinstance(result.exception, UserError), result.output
    message = str(result.exception)
    assert message.startswith(
        f"{out} is not a valid kubeflow pipeline: schemaVersion is 2.0.0; Kubeflow Pipelines' "
        "API server accepts 2.1.0 only (kubeflow/pipelines backend/src/apiserver/template/"
        "v2_template.go) (and ")  # the constantValue parameters
    assert message.endswith("; nothing was written; please report this with the command you ran")
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []  # neither the package nor its partial file


@pytest.mark.parametrize("args,expected", [
    (["--target", "kubeflow", "--classes", "a,b", "--layout", "spans"],
     "--target kubeflow cannot read span-<N> folders"),
    (["--target", "vertex"], "cannot be read here to find its classes"),
    (["--target", "vertex", "--classes", "a,b"], "give its --layout too"),
    (["--target", "vertex", "--classes", "a", "--layout", "classes"], "at least two class"),
    (["--target", "vertex", "--classes", "a,b", "--layout", "classes", "--model-name",
      "image_classifier"], "--model-name 'image_classifier'"),
    (["--target", "vertex", "--classes", "a,b", "--layout", "classes", "--model-name",
      "image-classifier\n"], "--model-name 'image-classifier\\n'"),
    (["--target", "vertex", "--classes", "a,b", "--layout", "classes", "--weights",
      "gs://b/w.h5"], "bake the file into the image"),
    (["--target", "vertex", "--classes", "a,b", "--layout", "classes", "--trainer-memory",
      "lots"], "--trainer-memory 'lots'"),
    (["--target", "vertex", "--classes", "a,b", "--layout", "classes", "--beam-memory",
      "8"], "--beam-memory '8' is not a memory size"),
    (["--target", "vertex", "--classes", "a,b", "--layout", "classes",
      "--beam-pipeline-args", "DataflowRunner"], "is not a Beam flag"),
])
def test_compile_refuses_before_compiling(tmp_path, args, expected):
    result = _compile("--pipeline-root", "gs://b/root", "--output",
                      str(tmp_path / "p.json"), "--data", "gs://b/images", *args)
    assert isinstance(result.exception, UserError), result.output
    assert expected in str(result.exception)
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize("flag,value,expected", [
    ("--pipeline-root", "s3://b/root", "--pipeline-root s3://b/root: the image's TensorFlow 2.16 "
     "reads and writes gs:// only (s3:// needs tensorflow-io, which the image lacks)"),
    ("--pipeline-root", "minio://b/root", "(minio:// needs tensorflow-io"),
    ("--serving-dir", "hdfs://n/models", "(hdfs:// needs tensorflow-io"),
    ("--data", "s3://b/images", "--data s3://b/images: the image's TensorFlow 2.16"),
    ("--pipeline-root", "gs://", "gs:// only"),
])
def test_compile_refuses_what_the_images_tensorflow_cannot_reach(tmp_path, flag, value,
                                                                 expected):
    args = {"--pipeline-root": "gs://b/root", "--data": "gs://b/images", flag: value}
    result = _compile("--target", "vertex", "--output", str(tmp_path / "p.json"), "--classes",
                      "a,b", "--layout", "classes", *[x for kv in args.items() for x in kv])
    assert isinstance(result.exception, UserError), result.output
    assert expected in str(result.exception) and "\n" not in str(result.exception)
    assert not (tmp_path / "p.json").exists()


def test_compile_refuses_a_data_folder_only_this_machine_sees(tmp_path):
    data = tmp_path / "images"
    for name in ("cats", "dogs"):
        (data / name).mkdir(parents=True)
    result = _compile("--target", "kubeflow", "--output", str(tmp_path / "p.yaml"),
                      "--pipeline-root", "gs://b/root", "--data", str(data))
    assert isinstance(result.exception, UserError), result.output
    assert str(result.exception) == (
        f"--data {data} is a path on this machine, which the pipeline's pods cannot see; copy it "
        "to a bucket (gsutil -m cp -r) and pass gs://BUCKET/..., or mount a claim that holds it "
        "(--pvc CLAIM:/MOUNT/PATH, Kubeflow only), see docs/kubeflow-vertex.md")
    assert not (tmp_path / "p.yaml").exists()


def test_kubeflow_steps_mount_the_claims_that_hold_data_and_models(tmp_path):
    out = tmp_path / "pipeline.yaml"
    result = _compile(
        "--target", "kubeflow", "--pipeline-root", "gs://bucket/root", "--output", str(out),
        "--pvc", "images:/mnt/images/", "--pvc", "models.v1:/mnt/models", "--data",
        "/mnt/images/pets", "--serving-dir", "/mnt/models/serving", "--classes", "cats,dogs",
        "--layout", "classes")
    assert result.exit_code == 0, (result.output, result.exception)
    doc = _extract_pipeline_yaml(str(out))  # exactly what kfp.Client uploads
    executors = json_format.MessageToDict(doc.platform_spec)["platforms"]["kubernetes"][
        "deploymentSpec"]["executors"]
    pipeline_spec = next(yaml.safe_load_all(out.read_text()))
    containers = {label for label, executor in _executors(pipeline_spec).items()
                  if "container" in executor}
    assert set(executors) == containers and len(containers) >= 9
    for config in executors.values():
        # Parsed as strictly as the backend's compiler does (protojson into kfp-kubernetes' proto).
        parsed = json_format.ParseDict(config, KubernetesExecutorConfig())
        assert [(m.constant, m.mount_path) for m in parsed.pvc_mount] == [
            ("images", "/mnt/images"), ("models.v1", "/mnt/models")]
    spec = json_format.MessageToDict(doc.pipeline_spec)
    assert _parameter(spec, "ImageExampleGen", "input_base") == "/mnt/images/pets"
    assert _parameter(spec, "Pusher", "serving_model_dir") == (
        "/mnt/models/serving/image-classifier")


@pytest.mark.parametrize("args,expected", [
    (["--target", "vertex", "--pvc", "images:/mnt/images", "--data", "/mnt/images"],
     "--pvc is for --target kubeflow: Vertex AI steps mount no Kubernetes volumes"),
    (["--target", "kubeflow", "--pvc", "images", "--data", "gs://b/images"],
     "--pvc 'images': write CLAIM:/MOUNT/PATH"),
    (["--target", "kubeflow", "--pvc", "Images:/mnt/i", "--data", "gs://b/images"],
     "'Images' is not a Kubernetes claim name"),
    (["--target", "kubeflow", "--pvc", "images:mnt/i", "--data", "gs://b/images"],
     "the mount path must be an absolute folder other than /"),
    (["--target", "kubeflow", "--pvc", "a:/mnt", "--pvc", "b:/mnt/b", "--data", "/mnt/x"],
     "--pvc a:/mnt and b:/mnt/b overlap"),
    (["--target", "kubeflow", "--pvc", "a:/mnt/a", "--data", "/mnt/ab/images"],
     "--data /mnt/ab/images is a path on this machine, which the pipeline's pods cannot see "
     "(mounted: /mnt/a)"),
])
def test_compile_refuses_claims_it_cannot_mount(tmp_path, args, expected):
    output = tmp_path / ("p.json" if "vertex" in args else "p.yaml")
    result = _compile("--output", str(output), "--pipeline-root", "gs://b/root", "--classes",
                      "a,b", "--layout", "classes", *args)
    assert isinstance(result.exception, UserError), result.output
    assert expected in str(result.exception) and "\n" not in str(result.exception)
    assert not output.exists()


def test_compile_needs_explicit_weights_and_the_right_suffix(tmp_path):
    base = ["compile", "--target", "vertex", "--image", IMAGE, "--pipeline-root", "gs://b/r",
            "--data", "gs://b/images", "--classes", "a,b", "--layout", "classes"]
    result = CliRunner().invoke(cli, [*base, "--output", str(tmp_path / "p.json")])
    assert "compile needs --weights" in str(result.exception)
    result = CliRunner().invoke(cli, [*base, "--weights", "none", "--output",
                                      str(tmp_path / "p.yaml")])
    assert "a vertex package is written as .json" in str(result.exception)


def test_command_line_error_is_one_line_and_exit_2(tmp_path):
    imgpipe = str(Path(sys.executable).parent / "imgpipe")
    result = subprocess.run(
        [imgpipe, "compile", "--target", "kubeflow", "--image", IMAGE, "--pipeline-root",
         "gs://b/r", "--output", str(tmp_path / "p.yaml"), "--data", "gs://b/images",
         "--weights", "none"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imgpipe: error: --data gs://b/images")


def test_for_run_local_takes_paths_on_this_machine_only(tmp_path):
    result = _compile("--target", "vertex", "--for-run-local", "--output",
                      str(tmp_path / "p.json"), "--pipeline-root", str(tmp_path / "root"),
                      "--data", "gs://b/images", "--classes", "a,b", "--layout", "classes")
    assert isinstance(result.exception, UserError), result.output
    assert str(result.exception) == (
        "--data gs://b/images: --for-run-local takes a path on this machine (the local run "
        "cannot reach a bucket); drop --for-run-local for gs://")
    assert not (tmp_path / "p.json").exists()
