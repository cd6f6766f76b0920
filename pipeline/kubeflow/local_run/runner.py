"""Runs a compiled package's DAG here: each task's container command as a subprocess.

The order and the rules are the backend's: tasks in dependency order, each given the
ExecutorInput its backend builds (executor_input.py), the command and arguments of its
container with the placeholders substituted, this environment's Python for the image's
`python`, and the image's environment (the Dockerfile's ENV, `IMAGE_ENV`). Our code reaches the
subprocess as in the image, on PYTHONPATH. Per backend:

- kfp: what Kubeflow Pipelines' open-source backend runs. The package must pass its rules
  (`rules.py`: schema 2.1.0, no resolvers, ...); a container's `lifecycle.preCacheCheck` is
  never run (KFP's driver has no such hook); the cache as KFP's driver keys it.
- vertex: what Vertex AI runs besides: the ExampleGen driver (`preCacheCheck`) before the cache
  is looked up, its span and fingerprint then part of the key (TFX's
  `file_based_example_gen/driver.py` says that is its purpose), and resolver tasks, evaluated
  against the store kept under the pipeline root (store.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from components.serving_pusher import properties as pushed
from pipeline.errors import NO_SPACE_MESSAGES, UserError, is_disk_full
from pipeline.kubeflow import rules
from pipeline.kubeflow.local_run import executor_input as ei
from pipeline.kubeflow.local_run.store import ArtifactStore, Execution, schema_title
from pipeline.kubeflow.spec import deployment_config, read_package

# The image's ENV (Dockerfile; tests/pipeline/kfp_run_local_test.py keeps them equal). Its
# PYTHONPATH, /opt/imgpipe, is where our source is: here, the folder holding `pipeline/`.
IMAGE_ENV = {"TF_USE_LEGACY_KERAS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PIP_NO_CACHE_DIR": "1"}
PROJECT_ROOT = Path(__file__).resolve().parents[3]
TARGET_OF = {"kfp": "kubeflow", "vertex": "vertex"}


@dataclasses.dataclass(frozen=True)
class TaskResult:
    """One task of the run: done, cached, resolved, failed or skipped, and how long it took."""

    name: str
    state: str
    seconds: float
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class RunResult:
    """The run: its id, its tasks, and where the model was pushed (or why not)."""

    job_id: str
    pipeline_root: str
    tasks: tuple[TaskResult, ...]
    pushed_to: str | None
    not_pushed_because: str = ""


def package_root(package: Path, backend: str) -> str:
    """The pipeline root the package names: Vertex's gcsOutputDirectory, KFP's default root."""
    text = package.read_text(encoding="utf-8")
    if backend == "vertex":
        return json.loads(text).get("runtimeConfig", {}).get("gcsOutputDirectory", "")
    import yaml

    return (next(yaml.safe_load_all(text)) or {}).get("defaultPipelineRoot", "")


def task_order(spec: pipeline_spec_pb2.PipelineSpec) -> list[str]:
    """The root DAG's tasks, each after every task it depends on (ties by name)."""
    tasks = spec.root.dag.tasks
    needs = {name: set(task.dependent_tasks) | {
        a.task_output_artifact.producer_task for a in task.inputs.artifacts.values()
        if a.WhichOneof("kind") == "task_output_artifact"} for name, task in tasks.items()}
    order: list[str] = []
    while len(order) < len(tasks):
        ready = sorted(n for n in tasks if n not in order and needs[n] <= set(order))
        if not ready:
            raise UserError("the package's tasks depend on each other in a cycle")
        order.append(ready[0])
    return order


def fingerprint(executor_input: ei.ExecutorInput, component: pipeline_spec_pb2.ComponentSpec,
                container: pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec
                ) -> str:
    """The cache key, as KFP's driver builds it (`backend/src/v2/cacheutils/cache.go`
    GenerateCacheKey, `driver/cache.go` getFingerPrint): input artifact names and parameter
    values, output artifacts without their URIs, output parameter types, the image, command
    and arguments before substitution. Output artifacts count by key, type and metadata: their
    names are per-run resource names on Vertex AI, and keys (so constant) on KFP."""
    inputs = json_format.MessageToDict(executor_input.inputs)
    key = {
        "inputArtifactNames": {k: [a.get("name") for a in v.get("artifacts", [])]
                               for k, v in inputs.get("artifacts", {}).items()},
        "inputParameterValues": inputs.get("parameterValues", {}),
        "inputParameters": inputs.get("parameters", {}),
        "outputArtifactsSpec": {k: {"type": json_format.MessageToDict(v.artifacts[0].type),
                                    "metadata": json_format.MessageToDict(v.artifacts[0].metadata)}
                                for k, v in executor_input.outputs.artifacts.items()},
        "outputParametersSpec": {k: pipeline_spec_pb2.ParameterType.ParameterTypeEnum.Name(
            v.parameter_type) for k, v in component.output_definitions.parameters.items()},
        "containerSpec": {"image": container.image,
                          "cmdArgs": list(container.command) + list(container.args)},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def container_environment(container: Any = None) -> dict[str, str]:
    """This machine's environment with the image's ENV and the container's `env` over it."""
    env = dict(os.environ)
    env.update(IMAGE_ENV)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PROJECT_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    for variable in getattr(container, "env", []):
        env[variable.name] = variable.value
    return env


def command_line(command: list[str], args: list[str]) -> list[str]:
    """The container's command and arguments; the image's `python` is this environment's."""
    words = list(command) + list(args)
    if words and words[0] in ("python", "python3"):
        words[0] = sys.executable
    return words


@contextlib.contextmanager
def _root_lock(root: Path) -> Iterator[None]:
    lock = root / ".run-local" / "lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"another local run is using pipeline root {root}; wait for it to "
                            "finish, or pass another --pipeline-root") from None
        yield


def run_package(package: Path, backend: str, pipeline_root: str | None = None,
                on_task: Callable[[TaskResult], None] = lambda _: None) -> RunResult:
    """Runs every task of `package` as `backend` would; `on_task` hears of each as it ends."""
    if backend not in ei.BACKENDS:
        raise ValueError(f"backend must be one of {ei.BACKENDS}, got {backend}")
    target = TARGET_OF[backend]
    if backend == "kfp" and package.suffix.lower() == ".json":
        raise UserError(f"{package} is a Vertex AI PipelineJob; run it with --backend vertex, "
                        "or compile --target kubeflow for a package Kubeflow Pipelines takes")
    spec = read_package(package, target)
    rules.check_spec(spec, target, str(package),
                     remedy=f"compile it with 'imgpipe compile --target {target} "
                            "--for-run-local'")
    root = pipeline_root or package_root(package, backend)
    if not root or "://" in root:
        raise UserError(f"pipeline root {root or '(none)'} is not a folder on this machine; pass "
                        "--pipeline-root DIR, or compile with --for-run-local")
    root = str(Path(root).expanduser().resolve())
    with _root_lock(Path(root)):
        return _Run(spec, backend, root).run(on_task)


class _Run:
    """One walk of the DAG: the tasks' outputs by key, the store, the log folder."""

    def __init__(self, spec: pipeline_spec_pb2.PipelineSpec, backend: str, root: str) -> None:
        self.spec, self.backend, self.root = spec, backend, root
        self.executors = deployment_config(spec).executors
        name = spec.pipeline_info.name
        stamp = datetime.datetime.now().strftime("%Y%m%d%H%M%S%f")
        # Vertex AI's job ids are <pipeline>-<time>; KFP's run ids are UUIDs.
        self.job_id = f"{name}-{stamp}" if backend == "vertex" else str(uuid.uuid4())
        self.store = ArtifactStore(root, name)
        self.logs = Path(root) / ".run-local" / "logs" / self.job_id
        self.outputs: dict[str, dict[str, list[int]]] = {}
        self.results: list[TaskResult] = []
        self._running = ""  # the task being run, for the line a full disk gets

    def run(self, on_task: Callable[[TaskResult], None]) -> RunResult:
        """Every task in dependency order; a full disk, in a task or here, is one line."""
        try:
            return self._run(on_task)
        except Exception as error:
            if isinstance(error, UserError) or not is_disk_full(error):
                raise
            raise self._disk_full(self._running, f"log {self.logs / self._running}.*.log"
                                  ) from None

    def _disk_full(self, name: str, detail: str) -> UserError:
        return UserError(f"no space left on device under {self.root} (task {name}"
                         f"{'; ' + detail if detail else ''}); free space there and run the "
                         "same command again")

    def _run(self, on_task: Callable[[TaskResult], None]) -> RunResult:
        for name in task_order(self.spec):
            self._running = name
            started = time.monotonic()
            task = self.spec.root.dag.tasks[name]
            component = self.spec.components[task.component_ref.name]
            executor = self.executors[component.executor_label]
            inputs = self._input_artifacts(name, task)
            if inputs is None:
                state, detail = "skipped", "an upstream task failed"
            elif executor.WhichOneof("spec") == "resolver":
                state, detail = self._resolve(name, executor.resolver, inputs)
            elif executor.WhichOneof("spec") == "container":
                state, detail = self._run_container(name, task, component, executor.container,
                                                    inputs, started)
            else:
                raise UserError(f"task {name} has a {executor.WhichOneof('spec')} executor, "
                                "which the local run does not run")
            result = TaskResult(name, state, time.monotonic() - started, detail)
            self.results.append(result)
            on_task(result)
        failed = [r for r in self.results if r.state == "failed"]
        if failed and self._disk_was_full(failed[0].name):
            raise self._disk_full(failed[0].name, failed[0].detail)
        if failed:
            raise UserError(f"task {failed[0].name} failed ({failed[0].detail}); later tasks "
                            f"were skipped, the run's logs are in {self.logs}")
        return self._summary()

    def _input_artifacts(self, name: str, task: pipeline_spec_pb2.PipelineTaskSpec
                         ) -> dict[str, ei.RuntimeArtifact] | None:
        # resolve.go resolveUpstreamArtifacts: the producer's recorded output. A resolver that
        # found nothing gives no artifact, and the input is left out.
        inputs = {}
        for key, spec in sorted(task.inputs.artifacts.items()):
            if spec.WhichOneof("kind") != "task_output_artifact":
                raise UserError(f"task {name}'s input {key!r} is not a task output; the local "
                                "run takes the packages TFX compiles")
            producer = spec.task_output_artifact.producer_task
            if producer not in self.outputs:
                return None
            ids = self.outputs[producer].get(spec.task_output_artifact.output_artifact_key, [])
            if ids:
                inputs[key] = self.store.runtime_artifact(self.backend, ids[0])
        if any(t not in self.outputs for t in task.dependent_tasks):
            return None
        return inputs

    def _resolve(self, name: str, resolver: pipeline_spec_pb2.PipelineDeploymentConfig
                 .ResolverSpec, inputs: dict[str, ei.RuntimeArtifact]) -> tuple[str, str]:
        found = {}
        for key, query in sorted(resolver.output_artifact_queries.items()):
            artifact_id = self.store.query(self.backend, query.filter, inputs)
            found[key] = [artifact_id] if artifact_id is not None else []
        self.outputs[name] = found
        names = [ei.artifact_name(self.backend, i) for ids in found.values() for i in ids]
        return "resolved", f"found {', '.join(names)}" if names else "found none"

    def _run_container(self, name: str, task: pipeline_spec_pb2.PipelineTaskSpec,
                       component: pipeline_spec_pb2.ComponentSpec, container,
                       inputs: dict[str, ei.RuntimeArtifact], started: float
                       ) -> tuple[str, str]:
        task_id = uuid.uuid4().hex[:12]
        paths = ei.TaskPaths.of(self.backend, self.root, self.job_id, name, task_id)
        ids = {key: self.store.reserve_id() for key in component.output_definitions.artifacts}
        executor_input = ei.ExecutorInput()
        for key, artifact in inputs.items():
            executor_input.inputs.artifacts[key].artifacts.add().CopyFrom(artifact)
        ei.resolve_parameters(name, task, component, executor_input.inputs, ei.run_placeholders(
            self.spec.pipeline_info.name, self.job_id, name, task_id))
        executor_input.outputs.CopyFrom(ei.provision_outputs(
            self.backend, component, paths,
            {k: ei.artifact_name(self.backend, i) for k, i in ids.items()}))
        Path(paths.task_root).mkdir(parents=True, exist_ok=True)
        if self.backend == "vertex" and container.lifecycle.HasField("pre_cache_check"):
            check = container.lifecycle.pre_cache_check
            code = self._subprocess(name, "driver", container, check.command, check.args,
                                    ei.with_defaults(executor_input, component))
            if code:
                return self._failed(name, f"its preCacheCheck driver exited with {code}", started)
            self._apply_driver_output(executor_input, ei.read_executor_output(paths.output_file))
        cache_key = fingerprint(executor_input, component, container)
        cached = self.store.cached(cache_key) if task.caching_options.enable_cache else None
        if cached is not None:
            self.outputs[name] = cached.outputs
            self.store.record_execution(Execution(self.job_id, name, "CACHED", cache_key,
                                                  cached.outputs, 0.0))
            self.store.save()
            return "cached", f"outputs of run {cached.run}"
        code = self._subprocess(name, "executor", container, container.command, container.args,
                                ei.with_defaults(executor_input, component))
        if code:
            return self._failed(name, f"exit code {code}", started)
        output = ei.read_executor_output(paths.output_file)
        recorded = {}
        for key, artifacts in executor_input.outputs.artifacts.items():
            artifact = artifacts.artifacts[0]
            if output.artifacts.get(key) and output.artifacts[key].artifacts:
                ei.merge_runtime_artifact(output.artifacts[key].artifacts[0], artifact)
            if self.backend == "kfp" and "display_name" not in artifact.metadata.fields:
                artifact.metadata.fields["display_name"].string_value = key  # RecordArtifact
            self.store.record_artifact(ids[key], self.job_id, name, key, artifact)
            recorded[key] = [ids[key]]
        self.outputs[name] = recorded
        self.store.record_execution(Execution(self.job_id, name, "COMPLETE", cache_key,
                                              recorded, time.monotonic() - started))
        self.store.save()
        return "done", ""

    def _apply_driver_output(self, executor_input: ei.ExecutorInput,
                             output: pipeline_spec_pb2.ExecutorOutput) -> None:
        # The driver's parameters replace the task's, in the field the package's schema uses;
        # its artifacts' metadata joins the outputs' (driver.py: "The CAIP Pipelines service
        # will update the task's properties and artifacts prior to running the executor").
        legacy = bool(executor_input.inputs.parameters)
        for key, value in output.parameter_values.items():
            if not legacy:
                executor_input.inputs.parameter_values[key].CopyFrom(value)
            elif value.WhichOneof("kind") == "string_value":
                executor_input.inputs.parameters[key].string_value = value.string_value
            elif value.number_value == int(value.number_value):
                executor_input.inputs.parameters[key].int_value = int(value.number_value)
            else:
                executor_input.inputs.parameters[key].double_value = value.number_value
        for key, value in output.parameters.items():
            executor_input.inputs.parameters[key].CopyFrom(value)
        for key, artifacts in output.artifacts.items():
            if artifacts.artifacts and executor_input.outputs.artifacts[key].artifacts:
                target = executor_input.outputs.artifacts[key].artifacts[0]
                ei.merge_runtime_artifact(artifacts.artifacts[0], target)

    def _subprocess(self, name: str, what: str, container, command, args,
                    executor_input: ei.ExecutorInput) -> int:
        words = command_line(ei.substitute(name, list(command), executor_input),
                             ei.substitute(name, list(args), executor_input))
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.{what}.log", "wb") as log:
            return subprocess.run(words, env=container_environment(container), stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  check=False).returncode

    def _disk_was_full(self, name: str) -> bool:
        """True when the end of a task's logs says the disk was full."""
        for log in self.logs.glob(f"{name}.*.log"):
            with open(log, "rb") as handle:
                handle.seek(max(0, log.stat().st_size - 65536))
                text = handle.read().decode("utf-8", "replace").lower()
            if any(message in text for message in NO_SPACE_MESSAGES):
                return True
        return False

    def _failed(self, name: str, why: str, started: float) -> tuple[str, str]:
        self.store.record_execution(Execution(self.job_id, name, "FAILED", "", {},
                                              time.monotonic() - started))
        self.store.save()
        return "failed", f"{why}; log {self.logs / name}.*.log"

    def _summary(self) -> RunResult:
        pushed_to, because = None, "no Pusher ran"
        for ids in self.outputs.values():
            for artifact_id in (i for group in ids.values() for i in group):
                record = self.store.artifact(artifact_id)
                if schema_title(record["type"]) != "tfx.PushedModel":
                    continue
                metadata = record["metadata"]
                if metadata.get(pushed.PUSHED) == 1:
                    pushed_to, because = metadata.get(pushed.PUSHED_DESTINATION), ""
                else:
                    because = metadata.get(pushed.NOT_PUSHED_BECAUSE) or "the Pusher did not push"
        return RunResult(self.job_id, self.root, tuple(self.results), pushed_to, because)
