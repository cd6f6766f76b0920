"""Kubeflow's platform spec (PVC mounts, GPU nodes): written as the backend reads it, refused as
the backend would refuse or ignore it (pipeline/kubeflow/platform.py cites the files)."""

import pytest
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2

from pipeline.errors import UserError
from pipeline.kubeflow.platform import PvcMount, build_platform, platform_problems

LABELS = ["ImageExampleGen_executor", "Trainer_executor"]


def _executors(platform: dict) -> dict:
    return platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_every_step_mounts_every_claim_and_only_the_trainer_picks_gpu_nodes():
    mounts = (PvcMount.parse("images:/mnt/images"), PvcMount.parse("models:/mnt/models/"))
    platform = build_platform(LABELS, mounts, "Trainer_executor", "nvidia-l4")
    executors = _executors(platform)
    assert set(executors) == set(LABELS)
    for label, config in executors.items():
        parsed = json_format.ParseDict(config,
                                       kubernetes_executor_config_pb2.KubernetesExecutorConfig())
        assert [(m.constant, m.mount_path) for m in parsed.pvc_mount] == [
            ("images", "/mnt/images"), ("models", "/mnt/models")]
        assert bool(parsed.node_selector.labels) == (label == "Trainer_executor")
    assert executors["Trainer_executor"]["nodeSelector"]["labels"] == {
        "cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert platform_problems(platform, set(LABELS)) == []


def test_nothing_to_say_writes_no_platform_spec():
    assert build_platform(LABELS, ()) is None
    assert platform_problems(None, set(LABELS)) == []
    only_gpus = build_platform(LABELS, (), "Trainer_executor", "nvidia-tesla-t4")
    assert set(_executors(only_gpus)) == {"Trainer_executor"}


def test_what_the_backend_refuses_or_ignores_is_named():
    platform = build_platform(LABELS, (PvcMount.parse("images:/mnt/images"),))
    executors = _executors(platform)
    executors["Trainer_executor"]["pvcMount"][0]["readOnly"] = True  # not in the proto
    executors["Transform_executor"] = executors.pop("ImageExampleGen_executor")  # no such step
    problems = platform_problems(platform, set(LABELS))
    assert len(problems) == 2
    assert "is not a KubernetesExecutorConfig" in problems[0] and "spec_patch.go" in problems[0]
    assert "Transform_executor" in problems[1] and "ignores it" in problems[1]


def test_a_mount_without_a_name_or_with_a_relative_path_is_refused():
    platform = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {
        "Trainer_executor": {"pvcMount": [{"mountPath": "/mnt/a"}]},
        "ImageExampleGen_executor": {"pvcMount": [{"constant": "a", "mountPath": "mnt"}]}}}}}}
    problems = platform_problems(platform, set(LABELS))
    assert "without a claim name or mount path" in problems[1] and "k8s.go" in problems[1]
    assert "which Kubernetes refuses" in problems[0]


@pytest.mark.parametrize("value", ["images", ":/mnt", "images:", "a_b:/mnt", "images:/",
                                   "images:relative", "x" * 254 + ":/mnt"])
def test_pvc_flag_values_kubernetes_would_refuse(value):
    with pytest.raises(UserError) as error:
        PvcMount.parse(value)
    assert str(error.value).startswith("--pvc ") and "\n" not in str(error.value)


def test_a_path_is_on_a_mount_only_below_its_folder():
    mount = PvcMount.parse("images:/mnt/images")
    assert mount.holds("/mnt/images") and mount.holds("/mnt/images/a/../b")
    assert not mount.holds("/mnt/images2") and not mount.holds("/mnt/images/../x")
