"""Compiles `create_pipeline(config)` with KubeflowV2DagRunner for Kubeflow Pipelines or Vertex AI.

Kubeflow gets a YAML PipelineSpec (what its client uploads), Vertex AI a JSON PipelineJob. This
module decides paths and runner config; the spec's adaptations and checks are `kubeflow_spec`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import yaml
from tfx import v1 as tfx
from tfx.orchestration.kubeflow.v2 import compiler_utils
from tfx.utils import import_utils

from pipeline.config import PipelineConfig
from pipeline.errors import UserError
from pipeline.kubeflow import platform as kubeflow_platform
from pipeline.kubeflow import rules as kubeflow_rules
from pipeline.kubeflow import spec as kubeflow_spec
from pipeline.pipeline import create_pipeline

PACKAGE_SUFFIXES = {"kubeflow": (".yaml", ".yml"), "vertex": (".json",)}


@dataclasses.dataclass(frozen=True)
class RemoteTarget:
    """Where and how the compiled pipeline runs: orchestrator, image, what the Trainer and each
    Beam step (ExampleGen, StatisticsGen, Transform, Evaluator) ask for, and the PVCs every step
    mounts (Kubeflow only)."""

    target: str
    image: str
    resources: kubeflow_spec.StepResources = kubeflow_spec.StepResources()
    beam_resources: kubeflow_spec.StepResources = kubeflow_spec.StepResources()
    mounts: tuple[kubeflow_platform.PvcMount, ...] = ()

    def __post_init__(self) -> None:
        if self.target not in kubeflow_spec.TARGETS:
            raise ValueError(f"target must be one of {kubeflow_spec.TARGETS}, got {self.target}")
        if not self.image:
            raise ValueError("image must not be empty")
        if self.mounts and self.target != "kubeflow":
            raise ValueError("PVC mounts are Kubeflow's; Vertex AI has no Kubernetes volumes")

    def platform(self, executor_labels: list[str]) -> dict[str, Any] | None:
        """Kubeflow's PlatformSpec document for these executors: the mounts, the GPU nodes."""
        gpus = self.resources.gpus
        return kubeflow_platform.build_platform(
            executor_labels, self.mounts, kubeflow_spec.TRAINER_EXECUTOR if gpus else None,
            self.resources.gpu_type)

    def executor_resources(self) -> dict[str, kubeflow_spec.ResourceSpec]:
        """Each executor's `resources` in the compiled spec; executors left out ask for none."""
        wanted = {kubeflow_spec.TRAINER_EXECUTOR: self.resources.resource_spec(self.target)}
        beam = self.beam_resources.resource_spec(self.target)
        wanted.update((label, beam) for label in kubeflow_spec.BEAM_EXECUTORS)
        return {label: spec for label, spec in wanted.items() if spec is not None}


@dataclasses.dataclass(frozen=True)
class RemotePaths:
    """Artifacts under the pipeline root; TF Serving's base under it too unless given."""

    pipeline_root: str
    serving_dir: str | None = None

    def serving_model_dir(self, model_name: str) -> str:
        """`<serving dir>/<model-name>`, the layout `imgpipe run` uses under OUTPUT/serving."""
        base = self.serving_dir or f"{self.pipeline_root.rstrip('/')}/serving"
        return f"{base.rstrip('/')}/{model_name}"


@dataclasses.dataclass(frozen=True)
class CompiledPackage:
    """The written file and what was changed to make the target able to run it."""

    path: Path
    target: str
    task_count: int
    changes: tuple[str, ...] = ()


def compile_package(config: PipelineConfig, remote: RemoteTarget, output: Path
                    ) -> CompiledPackage:
    """Compiles, writes `output` in the target's format, then reads it back and checks it.

    Kubeflow gets PipelineSpec schema 2.1.0 (`runtimeValue.constant` parameters, TFX's
    `--json_serialized_inputs_spec_args`), the only one its API server takes; Vertex AI gets
    TFX's default 2.0.0. A package breaking its backend's `kubeflow_rules.RULES` is not written.
    """
    suffixes = PACKAGE_SUFFIXES[remote.target]
    if output.suffix.lower() not in suffixes:
        raise UserError(f"--output {output}: a {remote.target} package is written as "
                        f"{' or '.join(suffixes)}; name the file e.g. pipeline{suffixes[0]}")
    pipeline = create_pipeline(config)
    resources = remote.executor_resources()
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=remote.image,
            use_pipeline_spec_2_1=(
                kubeflow_rules.SCHEMA_VERSIONS[remote.target] == kubeflow_rules.SCHEMA_2_1)))
    try:
        job = runner.run(pipeline, write_out=False)  # the PipelineJob as a dict, written below
    except (ValueError, TypeError, NotImplementedError) as error:  # TFX's refusals
        lines = str(error).strip().splitlines()
        raise UserError(f"KubeflowV2DagRunner cannot compile the pipeline for {remote.target} "
                        f"({lines[0] if lines else type(error).__name__})") from None
    changes: list[str] = []
    kubeflow_spec.set_resources(job["pipelineSpec"], resources)
    if remote.target == "kubeflow":
        spec = job["pipelineSpec"]
        changes = kubeflow_spec.adapt_for_kubeflow(spec, config.pipeline_root)
        platform = remote.platform(sorted(label for label, executor in
                                           spec["deploymentSpec"]["executors"].items()
                                           if "container" in executor))
        text = yaml.safe_dump_all([spec] + ([platform] if platform else []), sort_keys=True)
    else:
        text = json.dumps(job, indent=1, sort_keys=True) + "\n"
    # Checked as written, then moved into place: a package that fails the checks never appears.
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial{output.suffix}")
    partial.write_text(text, encoding="utf-8")
    try:
        spec_proto = kubeflow_spec.read_package(partial, remote.target)
        kubeflow_rules.check_spec(spec_proto, remote.target, str(output), remote.image, resources,
                                 remedy="nothing was written; please report this with the "
                                        "command you ran")
        problems = artifact_type_problems(spec_proto)
        if remote.target == "kubeflow":
            problems += platform_problems(partial, remote, spec_proto)
        if problems:
            raise UserError(f"{output} is not a valid {remote.target} pipeline: {problems[0]}")
    except BaseException:
        partial.unlink()
        raise
    os.replace(partial, output)
    return CompiledPackage(output, remote.target, len(spec_proto.root.dag.tasks), tuple(changes))


def platform_problems(path: Path, remote: RemoteTarget, spec: Any) -> list[str]:
    """The written PlatformSpec read back: what the backend accepts, and every container step
    mounting every claim asked for (a step without its mount could not read the data)."""
    platform = kubeflow_platform.read_platform(path)
    executors = kubeflow_spec.deployment_config(spec).executors
    problems = kubeflow_platform.platform_problems(platform, set(executors))
    configured = ((platform or {}).get("platforms", {}).get("kubernetes", {})
                  .get("deploymentSpec", {}).get("executors", {}))
    wanted = [{"constant": m.claim, "mountPath": m.mount_path} for m in remote.mounts]
    for label, executor in sorted(executors.items()):
        if executor.WhichOneof("spec") == "container" and wanted and (
                configured.get(label, {}).get("pvcMount") != wanted):
            problems.append(f"{label.removesuffix('_executor')} does not mount the claims given")
    return problems


def artifact_type_problems(spec: Any) -> list[str]:
    """Custom artifact types the TFX container could not rebuild from their schema title.

    The container imports a custom type from its title (`module.Class`), so a title must be
    an importable TFX artifact class whose TYPE_NAME is that title.
    """
    titles = set()
    for component in spec.components.values():
        for group in (component.input_definitions.artifacts,
                      component.output_definitions.artifacts):
            for artifact in group.values():
                schema = artifact.artifact_type.instance_schema
                titles.add(yaml.safe_load(schema).get("title") if schema
                           else artifact.artifact_type.schema_title)
    problems = []
    for title in sorted(t for t in titles if t not in compiler_utils.TITLE_TO_CLASS_PATH):
        try:
            artifact_class = import_utils.import_class_by_path(title)
        except ImportError:
            problems.append(f"artifact type {title!r} cannot be imported by that name in the "
                            "container")
            continue
        if getattr(artifact_class, "TYPE_NAME", None) != title:
            problems.append(f"artifact type {title!r} imports a class whose TYPE_NAME differs")
    return problems
