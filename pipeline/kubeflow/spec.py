"""The compiled pipeline spec: reading it, Trainer resources, and Kubeflow's adaptations.

KubeflowV2DagRunner writes IR that Vertex AI Pipelines runs as is (schema 2.0.0). The open-source
Kubeflow Pipelines backend takes schema 2.1.0 only, which TFX writes when asked
(`use_pipeline_spec_2_1`), and runs it with two gaps (backend/src/v2/compiler/argocompiler/dag.go,
driver): it has no resolver executors ("resolver executors not implemented") and it never runs a
container's `lifecycle.preCacheCheck`, which is where TFX's ExampleGen driver picks the span and
fingerprints the input files. `adapt_for_kubeflow` removes what Kubeflow cannot run; the checks
of what each backend refuses are in `rules.py`.
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
# The steps that run Beam pipelines: ExampleGen, StatisticsGen, Transform, Evaluator.
BEAM_EXECUTORS = ("ImageExampleGen_executor", "StatisticsGen_executor", "Transform_executor",
                  "Evaluator_executor")
EXAMPLE_GEN_TASK = "ImageExampleGen"
# What KubeflowV2DagRunner compiles LatestArtifactStrategy and LatestBlessedModelStrategy into;
# it refuses any other strategy. Vertex AI runs these queries against its ML Metadata.
RESOLVER_QUERY = re.compile(r'schema_title="[\w.]+" AND state=LIVE( AND .+)?')
GPU_TYPE = re.compile(r"nvidia-[a-z0-9-]+")
KUBERNETES_GPU_RESOURCE = "nvidia.com/gpu"
MEMORY = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(G|Gi|GB|M|Mi|MB|T|Ti|TB)")
_MEMORY_GB = {"G": 1.0, "GB": 1.0, "Gi": 2**30 / 1e9, "M": 1e-3, "MB": 1e-3, "Mi": 2**20 / 1e9,
              "T": 1e3, "TB": 1e3, "Ti": 2**40 / 1e9}

INPUTS_SPEC_FLAG = "--json_serialized_inputs_spec_args"

ResourceSpec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec

def normalize_gpu_type(value: str) -> str:
    """A GPU name in GKE's spelling, `nvidia-tesla-t4`; Vertex's `NVIDIA_TESLA_T4` is accepted."""
    name = value.strip().lower().replace("_", "-")
    if not GPU_TYPE.fullmatch(name):
        raise UserError(f"--gpu-type {value!r} is not a GPU name; use GKE's spelling, e.g. "
                        "nvidia-tesla-t4, nvidia-l4 or nvidia-tesla-a100")
    return name


def parse_memory_gb(value: str, flag: str = "--trainer-memory") -> float:
    """`32G`, `32Gi`, `512M` as gigabytes (10^9 bytes), the unit of KFP's `memory_limit`."""
    match = MEMORY.fullmatch(value.strip())
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"{flag} {value!r} is not a memory size; write e.g. 32G, "
                        "30Gi or 512M")
    return round(float(match.group(1)) * _MEMORY_GB[match.group(2)], 3)


@dataclasses.dataclass(frozen=True)
class StepResources:
    """What one step's container asks for; None or 0 leaves the backend's default.

    `cpus` and `memory_gb` are the limits, and on Kubeflow the requests too (a pod that gets what
    it may use is not evicted under memory pressure); Vertex AI picks the machine from the limits.
    """

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
        """The container's `resources` in the compiled spec, as the target reads them."""
        spec = ResourceSpec()
        if self.cpus:
            spec.cpu_limit = self.cpus
            if target == "kubeflow":
                spec.cpu_request = self.cpus
        if self.memory_gb:
            spec.memory_limit = self.memory_gb
            if target == "kubeflow":
                spec.memory_request = self.memory_gb
        if self.gpus:
            spec.accelerator.type = self.accelerator_type(target)
            spec.accelerator.count = self.gpus
        return spec if spec.ByteSize() else None


def set_resources(spec: dict[str, Any], resources: dict[str, ResourceSpec]) -> None:
    """Writes each executor's `resources` into a PipelineSpec dict, in place.

    Done on the compiled spec rather than through `platform_config` because TFX 1.16's step
    builder drops a FileBasedExampleGen's platform_config (`_build_file_based_example_gen_spec`).
    """
    executors = spec["deploymentSpec"]["executors"]
    for label, resource_spec in sorted(resources.items()):
        executors[label]["container"]["resources"] = json_format.MessageToDict(resource_spec)


def adapt_for_kubeflow(spec: dict[str, Any], pipeline_root: str) -> list[str]:
    """Edits a PipelineSpec dict in place for Kubeflow Pipelines; returns what it changed.

    - Resolver tasks are removed, with the inputs they fed (the Trainer's warm start, the
      Evaluator's baseline): both inputs are optional, so the run trains from scratch and the
      gate is the accuracy threshold alone. The copy of the inputs TFX passes its container
      (`--json_serialized_inputs_spec_args`) says so too.
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
            component = spec["components"][task["componentRef"]["name"]]
            component["inputDefinitions"]["artifacts"][key]["isOptional"] = True
            _copy_inputs_spec_into_args(component, executors)
            changes.append(f"{name} without '{key}' (Kubeflow has no resolver executors)")
        if "dependentTasks" in task:
            task["dependentTasks"] = [t for t in task["dependentTasks"] if t not in resolvers]
    if EXAMPLE_GEN_TASK in tasks:
        tasks[EXAMPLE_GEN_TASK]["cachingOptions"] = {"enableCache": False}
        changes.append(f"{EXAMPLE_GEN_TASK} never cached (Kubeflow does not run TFX's driver)")
    spec["defaultPipelineRoot"] = pipeline_root
    return changes


def _copy_inputs_spec_into_args(component: dict[str, Any], executors: dict[str, Any]) -> None:
    """TFX's 2.1.0 containers carry their inputDefinitions as an argument: keep it the same."""
    container = executors.get(component["executorLabel"], {}).get("container", {})
    inputs = json.dumps(component["inputDefinitions"], indent=2, sort_keys=True)
    for args in (container.get("args", []),
                 container.get("lifecycle", {}).get("preCacheCheck", {}).get("args", [])):
        if INPUTS_SPEC_FLAG in args[:-1]:
            args[args.index(INPUTS_SPEC_FLAG) + 1] = inputs


def _executor_label(spec: dict[str, Any], task: dict[str, Any]) -> str:
    return spec["components"].get(task["componentRef"]["name"], {}).get("executorLabel", "")


def parse_spec(document: dict[str, Any], what: str) -> pipeline_spec_pb2.PipelineSpec:
    """A PipelineSpec from its JSON dict, as strictly as the KFP client parses it.

    Kubeflow's API server refuses unknown fields too (protojson.Unmarshal in v2_template.go).
    """
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
