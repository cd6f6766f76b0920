"""A public reader of the ML Metadata a run records: its executions, their states and outputs.

The run summary, the report and the end-to-end tests read runs through it, as TFX's own tests
assert on ML Metadata rather than on files.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import ml_metadata as mlmd
from tfx import v1 as tfx

STATE_NAMES = {
    mlmd.proto.Execution.COMPLETE: "complete",
    mlmd.proto.Execution.CACHED: "cached",
    mlmd.proto.Execution.FAILED: "failed",
    mlmd.proto.Execution.RUNNING: "running",
    mlmd.proto.Execution.NEW: "new",
    mlmd.proto.Execution.CANCELED: "canceled",
}


@dataclasses.dataclass(frozen=True)
class PipelineRun:
    """One run of a pipeline: each component's execution state and output artifacts."""

    run_id: str
    states: dict[str, str]  # component id -> "complete", "cached", "failed", ...
    outputs: dict[str, dict[str, list[mlmd.proto.Artifact]]]  # component -> output key -> ...

    def artifacts(self, component: str, key: str) -> list[mlmd.proto.Artifact]:
        """The artifacts `component` wrote under output `key`; [] when it wrote none."""
        return self.outputs.get(component, {}).get(key, [])


def open_store(metadata_path: Path) -> mlmd.MetadataStore:
    """The SQLite ML Metadata store of a local run."""
    config = tfx.orchestration.metadata.sqlite_metadata_connection_config(str(metadata_path))
    return mlmd.MetadataStore(config)


def run_contexts(store: mlmd.MetadataStore, pipeline_name: str) -> list[mlmd.proto.Context]:
    """The `pipeline_run` contexts of `pipeline_name`, oldest first; [] when it never ran."""
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is None:
        return []
    pipeline_execution_ids = {e.id for e in store.get_executions_by_context(pipeline.id)}
    runs = [c for c in store.get_contexts_by_type("pipeline_run")
            if any(e.id in pipeline_execution_ids for e in store.get_executions_by_context(c.id))]
    return sorted(runs, key=lambda c: (c.create_time_since_epoch, c.id))


def execution_outputs(store: mlmd.MetadataStore, execution_id: int
                      ) -> dict[str, list[mlmd.proto.Artifact]]:
    """The output artifacts of one execution, by output key (e.g. 'blessing')."""
    keyed: dict[int, str] = {}
    for event in store.get_events_by_execution_ids([execution_id]):
        if event.type == mlmd.proto.Event.OUTPUT and event.path.steps:
            keyed[event.artifact_id] = event.path.steps[0].key
    by_key: dict[str, list] = {}
    for artifact in store.get_artifacts_by_id(sorted(keyed)):
        by_key.setdefault(keyed[artifact.id], []).append(artifact)
    return by_key


def read_run(store: mlmd.MetadataStore, pipeline_name: str, run: mlmd.proto.Context
             ) -> PipelineRun:
    """The states and outputs of every component execution in `run`, in execution order."""
    states: dict[str, str] = {}
    outputs: dict[str, dict[str, list]] = {}
    for execution in sorted(store.get_executions_by_context(run.id), key=lambda e: e.id):
        nodes = [c.name for c in store.get_contexts_by_execution(execution.id)
                 if c.name.startswith(f"{pipeline_name}.")]
        name = nodes[0][len(pipeline_name) + 1:] if nodes else str(execution.id)
        states[name] = STATE_NAMES.get(execution.last_known_state, "unknown")
        outputs[name] = execution_outputs(store, execution.id)
    return PipelineRun(run_id=run.name, states=states, outputs=outputs)


def read_runs(metadata_path: Path, pipeline_name: str) -> list[PipelineRun]:
    """Every run of `pipeline_name` recorded in `metadata_path`, oldest first."""
    store = open_store(metadata_path)
    return [read_run(store, pipeline_name, run) for run in run_contexts(store, pipeline_name)]


def read_latest_run(metadata_path: Path, pipeline_name: str) -> PipelineRun:
    """The most recent run of `pipeline_name`; LookupError when there is none."""
    store = open_store(metadata_path)
    runs = run_contexts(store, pipeline_name)
    if not runs:
        raise LookupError(f"no run of pipeline {pipeline_name} in ML Metadata")
    return read_run(store, pipeline_name, runs[-1])
