"""`imgpipe compile --tflite`: TFLiteExport compiles for both targets, wired into the Pusher."""

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.kubeflow import rules as kubeflow_rules
from pipeline.kubeflow import spec as kubeflow_spec
from pipeline.kubeflow.compile import artifact_type_problems

IMAGE = "europe-docker.pkg.dev/project/imgpipe/imgpipe:1"


@pytest.mark.parametrize("target", ["vertex", "kubeflow"])
def test_the_tflite_step_compiles_and_feeds_the_pusher(tmp_path: Path, target: str):
    out = tmp_path / ("pipeline.json" if target == "vertex" else "pipeline.yaml")
    result = CliRunner().invoke(cli, [
        "compile", "--image", IMAGE, "--weights", "/opt/imgpipe/weights/base.h5",
        "--target", target, "--pipeline-root", "gs://bucket/root", "--output", str(out),
        "--data", "gs://bucket/images", "--classes", "dogs,cats", "--layout", "classes",
        "--tflite", "int8,float16", "--tflite-tolerance", "2.5"])
    assert result.exit_code == 0, (result.output, result.exception)
    text = out.read_text()
    document = json.loads(text)["pipelineSpec"] if target == "vertex" \
        else next(yaml.safe_load_all(text))
    spec = kubeflow_spec.parse_spec(document, str(out))
    kubeflow_rules.check_spec(spec, target, str(out), image=IMAGE)
    assert artifact_type_problems(spec) == []
    tasks = spec.root.dag.tasks
    pusher_input = tasks["Pusher"].inputs.artifacts["tflite_models"].task_output_artifact
    assert (pusher_input.producer_task, pusher_input.output_artifact_key) == (
        "TFLiteExport", "tflite_models")
    export_inputs = tasks["TFLiteExport"].inputs.artifacts
    assert export_inputs["examples"].task_output_artifact.producer_task == "ImageExampleGen"
    assert export_inputs["transform_graph"].task_output_artifact.producer_task == "Transform"
    assert export_inputs["model_blessing"].task_output_artifact.producer_task == "Evaluator"
    output = spec.components["TFLiteExport"].output_definitions.artifacts["tflite_models"]
    assert "title: components.TFLiteModels" in output.artifact_type.instance_schema
    parameters = document["root"]["dag"]["tasks"]["TFLiteExport"]["inputs"]["parameters"]
    assert "int8,float16" in json.dumps(parameters["formats"])
    assert "2.5" in json.dumps(parameters["tolerance_points"])
