"""`imgpipe compile` with KubeflowV2DagRunner: both targets, read back as their clients do."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from google.protobuf import json_format
from kfp.client.client import _extract_pipeline_yaml
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline.cli import cli
from pipeline.errors import UserError
from pipeline.kubeflow import spec as kubeflow_spec
from pipeline.kubeflow.compile import artifact_type_problems

IMAGE = "europe-docker.pkg.dev/project/imgpipe/imgpipe:1"
WEIGHTS = "/opt/imgpipe/weights/base.h5"
BEAM_COMPONENTS = ("ImageExampleGen", "StatisticsGen", "Transform", "Evaluator")


def _compile(*args: str):
    return CliRunner().invoke(cli, ["compile", "--image", IMAGE, "--weights", WEIGHTS, *args])


def _executors(spec: dict) -> dict:
    return spec["deploymentSpec"]["executors"]


def _parameter(spec: dict, task: str, name: str) -> str:
    """A task's constant string parameter, as schema 2.0.0 writes it."""
    value = spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"][name]
    return value["runtimeValue"]["constantValue"]["stringValue"]


@pytest.fixture(scope="module")
def vertex_job(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("vertex") / "pipeline.json"
    result = _compile(
        "--target", "vertex", "--pipeline-root", "gs://bucket/root", "--output", str(out),
        "--data", "gs://bucket/images", "--classes", "dogs,cats", "--layout", "spans",
        "--gpus", "1", "--gpu-type", "nvidia-tesla-t4", "--trainer-memory", "32G",
        "--beam-pipeline-args", "--runner=DataflowRunner --project=p",
        "--beam-pipeline-args", "--region=europe-west4")
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"{out}: 13 tasks for vertex" in result.output
    return json.loads(out.read_text())


def test_vertex_package_is_a_pipeline_job_with_every_task_on_the_image(vertex_job):
    job = json_format.ParseDict(vertex_job, pipeline_spec_pb2.PipelineJob())
    assert job.runtime_config.gcs_output_directory == "gs://bucket/root"
    spec = vertex_job["pipelineSpec"]
    tasks = spec["root"]["dag"]["tasks"]
    assert {"ImageExampleGen", "CurateSchema", "DataGate", "ModelLoadCheck", "Pusher",
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
    assert resources == {"accelerator": {"count": "1", "type": "NVIDIA_TESLA_T4"},
                         "memoryLimit": 32.0}
    for name in BEAM_COMPONENTS:
        args = executors[f"{name}_executor"]["container"]["args"]
        assert args[-3:] == ["--runner=DataflowRunner", "--project=p", "--region=europe-west4"]
    assert "resources" not in executors["Transform_executor"]["container"]


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


def test_kubeflow_package_is_yaml_the_kfp_client_reads_without_resolvers(tmp_path):
    data = tmp_path / "images"
    for name in ("cats", "dogs"):
        (data / name).mkdir(parents=True)
        (data / name / "1.jpg").write_bytes(b"\xff\xd8\xff")
    out = tmp_path / "pipeline.yaml"
    result = _compile(
        "--target", "kubeflow", "--pipeline-root", "s3://bucket/root", "--output", str(out),
        "--data", str(data), "--serving-dir", "s3://bucket/models", "--gpus", "2",
        "--gpu-type", "nvidia-l4")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "for kubeflow: Trainer without 'base_model'" in result.output
    documents = list(yaml.safe_load_all(out.read_text()))
    assert len(documents) == 2  # the PipelineSpec, then Kubernetes' platform spec
    doc = _extract_pipeline_yaml(str(out))  # exactly what kfp.Client uploads
    spec = doc.pipeline_spec
    assert spec.default_pipeline_root == "s3://bucket/root"
    assert not any("resolver" in name for name in spec.root.dag.tasks)
    assert "base_model" not in spec.root.dag.tasks["Trainer"].inputs.artifacts
    assert "baseline_model" not in spec.root.dag.tasks["Evaluator"].inputs.artifacts
    assert not spec.root.dag.tasks["ImageExampleGen"].caching_options.enable_cache
    kubeflow_spec.check_spec(spec, "kubeflow", str(out), image=IMAGE)
    executors = json_format.MessageToDict(doc.platform_spec)["platforms"]["kubernetes"][
        "deploymentSpec"]["executors"]
    assert executors["Trainer_executor"]["nodeSelector"]["labels"] == {
        "cloud.google.com/gke-accelerator": "nvidia-l4"}
    trainer = documents[0]["deploymentSpec"]["executors"]["Trainer_executor"]["container"]
    assert trainer["resources"]["accelerator"] == {"type": "nvidia.com/gpu", "count": "2"}
    assert _parameter(documents[0], "Pusher", "serving_model_dir") == (
        "s3://bucket/models/image-classifier")
    trainer_config = json.loads(_parameter(documents[0], "Trainer", "custom_config"))
    assert trainer_config["hparams"]["class_names"] == ["cats", "dogs"]  # from the data scan
    assert trainer_config["hparams"]["weights"] == WEIGHTS


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
    (["--target", "vertex", "--classes", "a,b", "--layout", "classes",
      "--beam-pipeline-args", "DataflowRunner"], "is not a Beam flag"),
])
def test_compile_refuses_before_compiling(tmp_path, args, expected):
    result = _compile("--pipeline-root", "gs://b/root", "--output",
                      str(tmp_path / "p.json"), "--data", "gs://b/images", *args)
    assert isinstance(result.exception, UserError), result.output
    assert expected in str(result.exception)
    assert not (tmp_path / "p.json").exists()


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
