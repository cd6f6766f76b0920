"""The compiled pipeline spec: Trainer resources, Kubeflow's adaptations, and the checks.

KubeflowV2DagRunner writes IR that Vertex AI Pipelines runs as is. The open-source Kubeflow
Pipelines backend runs the same IR with two gaps (backend/src/v2/compiler/argocompiler/dag.go,
driver): it has no resolver executors ("resolver executors not implemented") and it never runs a
container's `lifecycle.preCacheCheck`, which is where TFX's ExampleGen driver picks the span and
fingerprints the input files. `adapt_for_kubeflow` removes what Kubeflow cannot run; `check_spec`
refuses a spec a backend would reject or that would run the wrong image.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline.errors import UserError

TARGETS = ("kubeflow", "vertex")
TRAINER_EXECUTOR = "Trainer_executor"
EXAMPLE_GEN_TASK = "ImageExampleGen"
# What KubeflowV2DagRunner compiles LatestArtifactStrategy and LatestBlessedModelStrategy into;
# it refuses any other strategy. Vertex AI runs these queries against its ML Metadata.
RESOLVER_QUERY = re.compile(r'schema_title="[\w.]+" AND state=LIVE( AND .+)?')
GPU_TYPE = re.compile(r"nvidia-[a-z0-9-]+")
GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
KUBERNETES_GPU_RESOURCE = "nvidia.com/gpu"
MEMORY = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(G|Gi|GB|M|Mi|MB|T|Ti|TB)")
_MEMORY_GB = {"G": 1.0, "GB": 1.0, "Gi": 2**30 / 1e9, "M": 1e-3, "MB": 1e-3, "Mi": 2**20 / 1e9,
              "T": 1e3, "TB": 1e3, "Ti": 2**40 / 1e9}

ResourceSpec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec


def normalize_gpu_type(value: str) -> str:
    """A GPU name in GKE's spelling, `nvidia-tesla-t4`; Vertex's `NVIDIA_TESLA_T4` is accepted."""
    name = value.strip().lower().replace("_", "-")
    if not GPU_TYPE.fullmatch(name):
        raise UserError(f"--gpu-type {value!r} is not a GPU name; use GKE's spelling, e.g. "
                        "nvidia-tesla-t4, nvidia-l4 or nvidia-tesla-a100")
    return name


def parse_memory_gb(value: str) -> float:
    """`32G`, `32Gi`, `512M` as gigabytes (10^9 bytes), the unit of KFP's `memory_limit`."""
    match = MEMORY.fullmatch(value.strip())
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"--trainer-memory {value!r} is not a memory size; write e.g. 32G, "
                        "30Gi or 512M")
    return round(float(match.group(1)) * _MEMORY_GB[match.group(2)], 3)


@dataclasses.dataclass(frozen=True)
class TrainerResources:
    """What the Trainer's container asks for; None or 0 leaves the backend's default."""

    gpus: int = 0
    gpu_type: str = "nvidia-tesla-t4"
    memory_gb: float | None = None
    cpus: float | None = None

    def __post_init__(self) -> None:
        if self.gpus < 0:
            raise ValueError(f"gpus must be >= 0, got {self.gpus}")
        if self.gpus and not GPU_TYPE.fullmatch(self.gpu_type):
            raise ValueError(f"gpu_type must be like nvidia-tesla-t4, got {self.gpu_type!r}")

    def accelerator_type(self, target: str) -> str:
        """Vertex names the GPU model; Kubernetes asks for a resource, nodes carry the model."""
        if target == "vertex":
            return self.gpu_type.upper().replace("-", "_")
        return KUBERNETES_GPU_RESOURCE

    def resource_spec(self, target: str) -> ResourceSpec | None:
        """The Trainer's `platform_config`, as KubeflowV2DagRunner copies it into the spec."""
        spec = ResourceSpec()
        if self.cpus:
            spec.cpu_limit = self.cpus
        if self.memory_gb:
            spec.memory_limit = self.memory_gb
        if self.gpus:
            spec.accelerator.type = self.accelerator_type(target)
            spec.accelerator.count = self.gpus
        return spec if spec.ByteSize() else None

    def kubernetes_platform(self) -> dict[str, Any] | None:
        """Kubeflow's platform spec: a GKE node selector for the GPU model, when GPUs are asked."""
        if not self.gpus:
            return None
        selector = {"nodeSelector": {"labels": {GKE_ACCELERATOR_LABEL: self.gpu_type}}}
        return {"platforms": {"kubernetes": {"deploymentSpec": {
            "executors": {TRAINER_EXECUTOR: selector}}}}}


def adapt_for_kubeflow(spec: dict[str, Any], pipeline_root: str) -> list[str]:
    """Edits a PipelineSpec dict in place for Kubeflow Pipelines; returns what it changed.

    - Resolver tasks are removed, with the inputs they fed (the Trainer's warm start, the
      Evaluator's baseline): both inputs are optional, so the run trains from scratch and the
      gate is the accuracy threshold alone.
    - The ExampleGen task is never cached: without TFX's driver its cache key never sees new
      files, so a recurring run would reuse the first run's examples forever.
    - `defaultPipelineRoot` is set: the YAML has no PipelineJob around it to carry the root.
    """
    changes = []
    executors = spec["deploymentSpec"]["executors"]
    tasks = spec["root"]["dag"]["tasks"]
    resolvers = {name for name, task in tasks.items()
                 if "resolver" in executors.get(_executor_label(spec, task), {})}
    for name in sorted(resolvers):
        component = tasks.pop(name)["componentRef"]["name"]
        executors.pop(spec["components"].pop(component)["executorLabel"], None)
    for name, task in tasks.items():
        artifacts = task.get("inputs", {}).get("artifacts", {})
        for key in [k for k, a in artifacts.items()
                    if a.get("taskOutputArtifact", {}).get("producerTask") in resolvers]:
            del artifacts[key]
            inputs = spec["components"][task["componentRef"]["name"]]["inputDefinitions"]
            inputs["artifacts"][key]["isOptional"] = True
            changes.append(f"{name} without '{key}' (Kubeflow has no resolver executors)")
        if "dependentTasks" in task:
            task["dependentTasks"] = [t for t in task["dependentTasks"] if t not in resolvers]
    if EXAMPLE_GEN_TASK in tasks:
        tasks[EXAMPLE_GEN_TASK]["cachingOptions"] = {"enableCache": False}
        changes.append(f"{EXAMPLE_GEN_TASK} never cached (Kubeflow does not run TFX's driver)")
    spec["defaultPipelineRoot"] = pipeline_root
    return changes


def _executor_label(spec: dict[str, Any], task: dict[str, Any]) -> str:
    return spec["components"].get(task["componentRef"]["name"], {}).get("executorLabel", "")


def parse_spec(document: dict[str, Any], what: str) -> pipeline_spec_pb2.PipelineSpec:
    """A PipelineSpec from its JSON dict, as strictly as the KFP client parses it."""
    try:
        return json_format.ParseDict(document, pipeline_spec_pb2.PipelineSpec())
    except json_format.ParseError as error:
        raise UserError(f"{what} is not a PipelineSpec kfp-pipeline-spec can read "
                        f"({str(error).splitlines()[0]}); recompile it with 'imgpipe compile'"
                        ) from None


def parse_job(document: dict[str, Any], what: str) -> pipeline_spec_pb2.PipelineSpec:
    """The PipelineSpec inside a PipelineJob JSON dict (Vertex AI's format)."""
    try:
        job = json_format.ParseDict(document, pipeline_spec_pb2.PipelineJob())
    except json_format.ParseError as error:
        raise UserError(f"{what} is not a PipelineJob kfp-pipeline-spec can read "
                        f"({str(error).splitlines()[0]}); recompile it with 'imgpipe compile "
                        "--target vertex'") from None
    if not job.runtime_config.gcs_output_directory:
        raise UserError(f"{what} has no runtimeConfig.gcsOutputDirectory (the pipeline root); "
                        "recompile it with 'imgpipe compile --target vertex'")
    return parse_spec(json_format.MessageToDict(job.pipeline_spec), what)


def read_package(path: Path, target: str) -> pipeline_spec_pb2.PipelineSpec:
    """The PipelineSpec of a compiled package, parsed with kfp-pipeline-spec's protos."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot read pipeline package {path} ({error.strerror}); pass the "
                        "file 'imgpipe compile' wrote") from None
    try:
        if target == "vertex":
            return parse_job(json.loads(text), str(path))
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except (ValueError, yaml.YAMLError) as error:
        raise UserError(f"pipeline package {path} is not valid "
                        f"{'JSON' if target == 'vertex' else 'YAML'} "
                        f"({str(error).splitlines()[0]})") from None
    if not documents or not isinstance(documents[0], dict):
        raise UserError(f"pipeline package {path} holds no PipelineSpec")
    return parse_spec(documents[0], str(path))


def deployment_config(spec: pipeline_spec_pb2.PipelineSpec
                      ) -> pipeline_spec_pb2.PipelineDeploymentConfig:
    """The spec's executors: a Struct in PipelineSpec, parsed strictly into its own proto."""
    return json_format.ParseDict(json_format.MessageToDict(spec.deployment_spec),
                                 pipeline_spec_pb2.PipelineDeploymentConfig())


def spec_problems(spec: pipeline_spec_pb2.PipelineSpec, target: str, image: str | None = None,
                  resources: ResourceSpec | None = None) -> list[str]:
    """Why `target` would refuse or misrun `spec`: one sentence per problem, none when fine.

    Every task must reach an executor; containers must run `image` (when given); resolvers
    must be the queries TFX compiles its two supported strategies into, and only on Vertex;
    the Trainer must ask for `resources` (when given).
    """
    try:
        executors = deployment_config(spec).executors
    except json_format.ParseError as error:
        return [f"its deploymentSpec is not a PipelineDeploymentConfig ({error})"]
    problems = []
    tasks = spec.root.dag.tasks
    if not tasks:
        problems.append("the pipeline has no tasks")
    for name, task in sorted(tasks.items()):
        component = spec.components.get(task.component_ref.name)
        if component is None:
            problems.append(f"task {name} names component {task.component_ref.name!r}, "
                            "which the spec does not define")
            continue
        executor = executors.get(component.executor_label)
        if executor is None:
            problems.append(f"task {name} has no executor ({component.executor_label!r})")
            continue
        kind = executor.WhichOneof("spec")
        if kind == "container":
            if image is not None and executor.container.image != image:
                problems.append(f"task {name} runs image {executor.container.image!r}, "
                                f"not {image!r}")
            if not executor.container.args and not executor.container.command:
                problems.append(f"task {name}'s container has no command")
        elif kind == "resolver":
            if target != "vertex":
                problems.append(f"task {name} is a resolver, which Kubeflow Pipelines does not "
                                "run (resolver executors not implemented)")
            queries = executor.resolver.output_artifact_queries
            bad = [q.filter for q in queries.values() if not RESOLVER_QUERY.fullmatch(q.filter)]
            if not queries or bad:
                problems.append(f"task {name} is a resolver KFP v2 does not support "
                                f"({bad[0] if bad else 'no queries'})")
        elif kind != "importer":
            problems.append(f"task {name} has a {kind} executor, which {target} cannot run")
    if resources is not None:
        trainer = executors.get(TRAINER_EXECUTOR)
        if trainer is None or trainer.container.resources != resources:
            problems.append("the Trainer does not ask for the resources given "
                            f"({json_format.MessageToDict(resources)})")
    return problems


def check_spec(spec: pipeline_spec_pb2.PipelineSpec, target: str, what: str,
               image: str | None = None, resources: ResourceSpec | None = None) -> None:
    """Raises a one-line UserError naming the first problem of `spec_problems`."""
    problems = spec_problems(spec, target, image, resources)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(f"{what} is not a valid {target} pipeline: {problems[0]}{more}")
